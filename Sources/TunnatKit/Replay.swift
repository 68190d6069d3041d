import NatTable
import PacketKit

/// `tunnat replay`: a capture through the NAT, with the capture's timestamps as the clock.
///
/// Packets from a private prefix go out, packets to a pool address come in. With `privateSideCapture`, the
/// capture is taken to be a private host's own (both directions, replies addressed to the host): each reply is
/// first readdressed to the external endpoint the NAT mapped, as the internet would have sent it.
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
    /// nil when the link layer held no IPv4 (then `linkDrop` says why).
    public var verdict: Verdict?
    /// The packet as the NAT would send it, for `.forward`.
    public var output: [UInt8]?
    /// True when this is a held fragment released by `record`.
    public var released: Bool
    /// The IPv4 datagram as handed to the NAT (with `keepInputs`): as read, or as readdressed.
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
    /// The output capture (link type raw IPv4).
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
        var writer = PcapWriter(linkType: .ipv4, nanosecondResolution: true)
        var outcomes: [ReplayOutcome] = []
        var records = 0
        var readdressed = 0
        while let record = try reader.next() {
            defer { records += 1 }
            let now = NatInstant(nanoseconds: UInt64(record.timestamp.seconds) * 1_000_000_000
                                 + UInt64(record.timestamp.nanoseconds))
            let range: Range<Int>
            switch reader.linkType.payload(of: record.data) {
            case .ipv4(let r): range = r
            case .notIPv4:
                nat.countDrop(.notIPv4)
                outcomes.append(ReplayOutcome(record: records, verdict: .drop(.notIPv4), output: nil, released: false))
                continue
            case .badLinkHeader:
                nat.countDrop(.truncated)
                outcomes.append(ReplayOutcome(record: records, verdict: .drop(.truncated), output: nil, released: false))
                continue
            }
            var packet = Array(record.data[range])
            var input: [UInt8]? = nil
            let (verdict, length) = packet.withUnsafeMutableBytes { buffer -> (Verdict, Int) in
                if options.privateSideCapture && nat.readdressCapturedReply(buffer) { readdressed += 1 }
                // What the NAT is handed: after readdressing, so a listing shows what it saw.
                if options.keepInputs { input = Array(buffer) }
                let verdict = nat.translate(buffer, now: now)
                // A forwarded packet passed validation: its total length is in bounds.
                return (verdict, buffer.count >= 4 ? Int(buffer.loadBE16(at: 2)) : 0)
            }
            var output: [UInt8]? = nil
            if case .forward = verdict {
                packet.removeSubrange(length...)
                writer.append(packet, timestamp: record.timestamp)
                output = packet
            }
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
