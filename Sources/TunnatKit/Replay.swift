import NatTable
import PacketKit

/// `tunnat replay`: a capture through the NAT, with the capture's timestamps as the clock.
///
/// Packets from a private prefix go out, packets to a pool address come in. IPv6 packets go to the NAT too when
/// it does NAT64; otherwise they are counted as not IPv4. With `privateSideCapture`, the capture is taken to be a
/// private host's own (both directions, replies addressed to the host): each reply is first readdressed to the
/// external endpoint the NAT mapped, as the internet would have sent it (IPv4 replies only).
public struct ReplayOptions: Sendable {
    public var privateSideCapture: Bool
    /// Keep each record's packet as read, for listings.
    public var keepInputs: Bool
    public init(privateSideCapture: Bool = false, keepInputs: Bool = false) {
        self.privateSideCapture = privateSideCapture
        self.keepInputs = keepInputs
    }
}

/// What became of one captured record, or of a fragment it released.
public struct ReplayOutcome: Sendable {
    /// The record's position in the input, from 0.
    public var record: Int
    /// The NAT's verdict, or the drop a packet was counted under before it reached the NAT (the link layer held
    /// no IPv4, or no IPv6 the NAT takes).
    public var verdict: Verdict?
    /// The packet as the NAT would send it, for `.forward`.
    public var output: [UInt8]?
    /// True when this is a held fragment released by `record`.
    public var released: Bool
    /// The IP packet as handed to the NAT (with `keepInputs`): as read, or as readdressed.
    public var input: [UInt8]? = nil

    /// `#3 outbound  tcp 10.0.0.1:4000 > 198.19.0.1:80  =>  tcp 198.18.0.1:4000 > 198.19.0.1:80`
    public var listing: String {
        let number = "#\(record + 1)\(released ? " (released fragment)" : "")"
        let before = input.map(PacketSummary.describe) ?? ""
        switch verdict {
        case .forward(let direction)?:
            let after = output.map(PacketSummary.describe) ?? ""
            return released ? "\(number) \(direction)  =>  \(after)" : "\(number) \(direction)  \(before)  =>  \(after)"
        case .drop(let reason)?: return "\(number) dropped (\(reason))  \(before)"
        case .held?: return "\(number) held  \(before)"
        case nil: return number
        }
    }
}

public struct ReplayResult: Sendable {
    /// The output capture: link type 228 (raw IPv4), or 101 (raw, IPv4 or IPv6) when the NAT does NAT64.
    public var pcap: [UInt8]
    public var outcomes: [ReplayOutcome]
    public var records: Int
    public var readdressed: Int
    public var counters: NatCounters
    public var activeFlows: Int
    public var activeMappings: Int

    /// The summary `tunnat replay` prints.
    public var summary: String {
        var lines: [String] = []
        lines.append("records read:            \(records)")
        lines.append("translated outbound:     \(counters.outbound)")
        lines.append("translated inbound:      \(counters.inbound)")
        lines.append("translated hairpin:      \(counters.hairpin)")
        if readdressed > 0 { lines.append("replies readdressed:     \(readdressed) (private-side capture)") }
        lines.append("fragments held:          \(counters.heldFragments) (released: \(counters.releasedFragments))")
        lines.append("dropped:                 \(counters.dropped)")
        for reason in DropReason.allCases where counters[reason] > 0 {
            lines.append("  \(reason.description.padding(toLength: 22, withPad: " ", startingAt: 0)) \(counters[reason])")
        }
        lines.append("flows created:           \(counters.flowsCreated) (ports preserved: \(counters.portsPreserved) of \(counters.mappingsCreated) mappings)")
        lines.append("flows expired:           \(counters.flowsExpired)")
        lines.append("flows at end:            \(activeFlows) (mappings: \(activeMappings))")
        return lines.joined(separator: "\n")
    }
}

public enum Replay {
    /// The seed a replay uses when the configuration fixes none, so that a capture always replays the same way.
    public static let defaultSeed: UInt64 = 0x7475_6E6E_6174

    public static func run(capture: [UInt8], configuration: NatConfiguration, options: ReplayOptions = ReplayOptions())
        throws(PcapError) -> ReplayResult {
        let nat: NAT
        do { nat = try NAT(configuration: configuration) } catch {
            preconditionFailure("configuration was validated when loaded: \(error)")
        }
        var reader = try PcapReader(bytes: capture)
        let nat64 = configuration.nat64 != nil
        // With NAT64 the NAT sends IPv4 and IPv6; without, IPv4 only, and the output keeps the IPv4-only type.
        var writer = PcapWriter(linkType: nat64 ? .raw : .ipv4, nanosecondResolution: true)
        var outcomes: [ReplayOutcome] = []
        var records = 0
        var readdressed = 0
        while let record = try reader.next() {
            defer { records += 1 }
            let now = NatInstant(nanoseconds: UInt64(record.timestamp.seconds) * 1_000_000_000
                                 + UInt64(record.timestamp.nanoseconds))
            let range: Range<Int>
            let linkDrop: DropReason?
            switch record.linkType.payload(of: record.data) {
            case .ipv4(let r):
                range = r
                // IPv6 behind an IPv4 ethertype is not IPv4; a NAT doing NAT64 would take it as IPv6. (Without
                // NAT64 the NAT counts it as not IPv4 itself.)
                linkDrop = nat64 && record.data[r].first.map { $0 >> 4 } == 6 ? .notIPv4 : nil
            case .ipv6(let r) where nat64:
                range = r
                // The NAT tells the families apart by the version nibble: it must agree with the link layer.
                let version = record.data[r].first.map { $0 >> 4 }
                linkDrop = version == nil ? .truncated : version != 6 ? .badIPv6Header : nil
            case .ipv6, .notIPv4: (range, linkDrop) = (0..<0, .notIPv4)
            case .badLinkHeader: (range, linkDrop) = (0..<0, .truncated)
            }
            if let linkDrop {
                nat.countDrop(linkDrop)
                outcomes.append(ReplayOutcome(record: records, verdict: .drop(linkDrop), output: nil, released: false))
                continue
            }
            // Room in front of the packet: one translated from IPv4 to IPv6 grows into it.
            let room = Translate64.headroom
            var buffer = [UInt8](repeating: 0, count: room)
            buffer.append(contentsOf: record.data[range])
            var input: [UInt8]? = nil
            let (verdict, output) = buffer.withUnsafeMutableBytes { whole -> (Verdict, [UInt8]?) in
                var packet = UnsafeMutableRawBufferPointer(rebasing: whole[room...])
                if options.privateSideCapture && nat.readdressCapturedReply(packet) { readdressed += 1 }
                // What the NAT is handed: after readdressing, so a listing shows what it saw.
                if options.keepInputs { input = Array(packet) }
                let verdict = nat.translate(&packet, headroom: room, now: now)
                guard case .forward = verdict else { return (verdict, nil) }
                // `packet` is now where the translated packet is. A forwarded IPv4 packet passed validation: its
                // total length is in bounds, and what follows it (link-layer padding) is cut. An IPv6 one is the
                // whole window.
                guard packet.count >= 4, packet[0] >> 4 == 4 else { return (verdict, Array(packet)) }
                return (verdict, Array(packet.prefix(upTo: min(packet.count, Int(packet.loadBE16(at: 2))))))
            }
            if let output { writer.append(output, timestamp: record.timestamp) }
            outcomes.append(ReplayOutcome(record: records, verdict: verdict, output: output, released: false, input: input))
            for fragment in nat.takeReleasedFragments() {
                writer.append(fragment.bytes, timestamp: record.timestamp)
                outcomes.append(ReplayOutcome(record: records, verdict: .forward(fragment.direction),
                                              output: fragment.bytes, released: true))
            }
        }
        return ReplayResult(pcap: writer.bytes, outcomes: outcomes, records: records, readdressed: readdressed,
                            counters: nat.counters, activeFlows: nat.flowCount, activeMappings: nat.mappingCount)
    }
}
