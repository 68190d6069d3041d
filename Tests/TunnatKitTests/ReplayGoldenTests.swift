import Foundation
import NatTable
import PacketKit
import Testing
import TunnatKit

let pcapDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../../shared/testdata/pcaps").standardized.path
let pool = IPv4Address(198, 18, 0, 1)

func capture(_ name: String) throws -> [UInt8] {
    let path = "\(pcapDirectory)/\(name)"
    return try #require(FileManager.default.contents(atPath: path).map { [UInt8]($0) }, "missing \(path): the golden tests read the captures in ../shared/testdata/pcaps, the project's shared folder checked out beside this repository (scripts/test.sh says so before it starts)")
}

/// The IPv4 datagrams of a capture, in order.
func datagrams(_ file: [UInt8]) throws -> [[UInt8]] {
    var reader = try PcapReader(bytes: file)
    var out: [[UInt8]] = []
    while let record = try reader.next() {
        guard case .ipv4(let range) = reader.linkType.payload(of: record.data) else { continue }
        var bytes = Array(record.data[range])
        let total = Int(bytes[2]) << 8 | Int(bytes[3])
        if total < bytes.count { bytes.removeSubrange(total...) }
        out.append(bytes)
    }
    return out
}

/// A raw-IPv4 capture (link type 228) of these datagrams, one second apart.
func rawCapture(_ packets: [[UInt8]]) -> [UInt8] {
    var writer = PcapWriter(linkType: .ipv4, nanosecondResolution: false)
    for (i, packet) in packets.enumerated() {
        writer.append(packet, timestamp: PcapTimestamp(seconds: 1_600_000_000 + UInt32(i), nanoseconds: 0))
    }
    return writer.bytes
}

func natConfig(_ privatePrefix: String) -> NatConfiguration {
    NatConfiguration(privatePrefixes: [IPv4Prefix(privatePrefix)!], poolAddresses: [pool], seed: Replay.defaultSeed)
}

struct Fields {
    var source: IPv4Address, destination: IPv4Address, proto: IPProtocol, headerLength: Int, fragment: Bool
    init(_ bytes: [UInt8]) {
        var copy = bytes
        (source, destination, proto, headerLength, fragment) = copy.withUnsafeMutableBytes { b in
            let ip = IPv4Packet(unchecked: b)
            return (ip.source, ip.destination, ip.protocol, ip.headerLength, ip.fragmentOffset > 0)
        }
    }
}

/// An outbound packet may differ from what the host sent only in the source address, the source port (or ICMP
/// identifier) and the checksums that cover them; every checksum must verify.
func checkOutbound(_ input: [UInt8], _ output: [UInt8], preservedPort: Bool = true,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    let before = Fields(input), after = Fields(output)
    #expect(output.count == input.count, sourceLocation: sourceLocation)
    #expect(after.source == pool && after.destination == before.destination, sourceLocation: sourceLocation)
    #expect(ChecksumAudit.problems(in: output).isEmpty, "\(ChecksumAudit.problems(in: output))", sourceLocation: sourceLocation)
    var allowed: Set<Int> = [10, 11, 12, 13, 14, 15]
    let l4 = before.headerLength
    if !before.fragment {
        switch before.proto {
        case .tcp: allowed.formUnion([l4, l4 + 1, l4 + 16, l4 + 17])
        case .udp: allowed.formUnion([l4, l4 + 1, l4 + 6, l4 + 7])
        case .icmp: allowed.formUnion([l4 + 2, l4 + 3, l4 + 4, l4 + 5])
        default: break
        }
        if preservedPort {
            #expect(Array(output[l4..<l4 + 6]) == Array(input[l4..<l4 + 6]) || before.proto != .tcp && before.proto != .udp,
                    "port preserved", sourceLocation: sourceLocation)
        }
    }
    let changed = Set(zip(input, output).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset))
    #expect(changed.isSubset(of: allowed), "unexpected bytes changed: \(changed.subtracting(allowed).sorted())",
            sourceLocation: sourceLocation)
}

@Suite struct ReplayGoldenTests {
    /// Captures with both directions of a private host's traffic: the replies, readdressed as the internet would
    /// have sent them, must come out of the NAT as exactly the bytes the host received. The one exception is the
    /// RST-injection capture's second record: an RST+ACK whose ACK is the client's initial sequence number, not
    /// one past it, so the client in SYN-SENT discards it (RFC 9293 section 3.10.7.3); the NAT refuses it too.
    @Test(arguments: [
        ("zeek-http-get.pcap", "141.142.228.5/32", 14, [Int]()),
        ("zeek-icmp-5-pings.pcap", "172.16.133.2/32", 10, []),
        ("zeek-tcp-rst-inject-rae.pcap", "1.2.0.2/32", 8, [1]),
        ("zeek-dns53.pcap", "207.158.192.40/32", 1, []),
        ("zeek-ipv4-fragmented-1.pcap", "164.1.123.163/32", 3, []),
        ("zeek-ipv4-fragmented-3.pcap", "210.54.213.247/32", 5, []),
    ])
    func privateSideCaptureRoundTrips(name: String, privatePrefix: String, expectedForwarded: Int,
                                      outOfWindow: [Int]) throws {
        let file = try capture(name)
        let inputs = try datagrams(file)
        let prefix = IPv4Prefix(privatePrefix)!
        let result = try Replay.run(capture: file, configuration: natConfig(privatePrefix),
                                    options: ReplayOptions(privateSideCapture: true))
        #expect(result.counters.dropped == UInt64(outOfWindow.count), "\(result.summary)")
        #expect(result.counters[.outOfWindow] == UInt64(outOfWindow.count))
        let forwarded = result.outcomes.filter { $0.output != nil }
        #expect(forwarded.count == expectedForwarded)
        for outcome in result.outcomes where !outcome.released {
            if outOfWindow.contains(outcome.record) {
                #expect(outcome.verdict == .drop(.outOfWindow))
                continue
            }
            let input = inputs[outcome.record]
            let output = try #require(outcome.output)
            if prefix.contains(Fields(input).source) {
                #expect(outcome.verdict == .forward(.outbound))
                checkOutbound(input, output)
            } else {
                #expect(outcome.verdict == .forward(.inbound))
                #expect(output == input, "record \(outcome.record) comes back exactly as captured")
            }
        }
        // The output file holds exactly the forwarded packets, in order.
        #expect(try datagrams(result.pcap) == forwarded.map { $0.output! })
    }

    @Test func outOfOrderFragmentsFromACaptureAreHeldThenReleased() throws {
        let inputs = try datagrams(try capture("zeek-ipv4-fragmented-3.pcap"))
        let reversed = Array(inputs.reversed())
        let result = try Replay.run(capture: rawCapture(reversed), configuration: natConfig("210.54.213.247/32"))
        #expect(result.outcomes.filter { $0.verdict == .held }.count == 4)
        let outputs = result.outcomes.compactMap(\.output)
        #expect(outputs.count == 5 && result.counters.dropped == 0)
        // First fragment translated first, then the four it released, each with only its source rewritten.
        checkOutbound(inputs[0], outputs[0])
        for (output, input) in zip(outputs.dropFirst(), reversed.prefix(4)) { checkOutbound(input, output) }
    }

    /// Time exceeded for a host's UDP probe (traceroute): the router's error, readdressed to the NAT, must reach
    /// the host as captured.
    @Test func timeExceededQuotingUDPComesBackAsCaptured() throws {
        let error = try datagrams(try capture("zeek-icmp-icmp-timeexceeded.pcap"))[0]
        // The probe it quotes (10.0.0.2:30000 -> 10.0.0.1:13000), rebuilt so the NAT has seen it go out.
        let probe = PacketBuilder.udp(from: (IPv4Address(10, 0, 0, 2), 30000), to: (IPv4Address(10, 0, 0, 1), 13000),
                                      payload: [0x58, 0x58, 0x58, 0x58])
        let result = try Replay.run(capture: rawCapture([probe, error]), configuration: natConfig("10.0.0.2/32"),
                                    options: ReplayOptions(privateSideCapture: true))
        #expect(result.outcomes.map(\.verdict) == [.forward(.outbound), .forward(.inbound)])
        #expect(result.outcomes[1].output == error)
    }

    /// Port unreachable sent by a private host about a DNS answer that reached it: the server must see its own
    /// answer quoted, addressed to the NAT's endpoint, with every checksum consistent.
    @Test func portUnreachableFromPrivateHostIsTranslatedOutbound() throws {
        let error = try datagrams(try capture("zeek-icmp-icmp-destunreach-udp.pcap"))[0]
        let host = IPv4Address(192, 168, 1, 102), resolver = IPv4Address(192, 168, 1, 1)
        let query = PacketBuilder.udp(from: (host, 59207), to: (resolver, 53), payload: [1, 2, 3])
        let result = try Replay.run(capture: rawCapture([query, error]), configuration: natConfig("192.168.1.102/32"))
        #expect(result.outcomes.map(\.verdict) == [.forward(.outbound), .forward(.outbound)])
        let out = try #require(result.outcomes[1].output)
        #expect(ChecksumAudit.problems(in: out).isEmpty, "\(ChecksumAudit.problems(in: out))")
        var copy = out
        var original = error
        try copy.withUnsafeMutableBytes { o in
            try original.withUnsafeMutableBytes { i in
                let ip = IPv4Packet(unchecked: o)
                #expect(ip.source == pool && ip.destination == resolver)
                let quoted = try IPv4Packet(quoted: ICMPv4Message(unchecked: ip.payload).body)
                let quotedBefore = try IPv4Packet(quoted: ICMPv4Message(unchecked: IPv4Packet(unchecked: i).payload).body)
                #expect(quoted.destination == pool && quoted.source == resolver)
                #expect(quoted.payload.loadBE16(at: 2) == 59207)
                // The quote is cut short, so its UDP checksum cannot be verified whole; instead check that it moved
                // by exactly what the pseudo-header and port changed, summed from scratch on both sides.
                func coveredSum(_ q: IPv4Packet) -> UInt16 {
                    Checksum.sum(q.payload.prefix(upTo: 8), initial: q.pseudoHeaderSum)
                }
                #expect(coveredSum(quoted) == coveredSum(quotedBefore))
            }
        }
    }
}
