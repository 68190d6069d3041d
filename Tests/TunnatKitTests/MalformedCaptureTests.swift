import NatTable
import PacketKit
import Testing
import TunnatKit

/// A capture full of broken packets replays without a crash, and every packet is counted under a reason.
@Suite struct MalformedCaptureTests {
    static let host = IPv4Address(10, 0, 0, 5)
    static let remote = IPv4Address(198, 19, 0, 7)

    static func ethernet(_ payload: [UInt8], type: UInt16 = 0x0800, vlan: Bool = false) -> [UInt8] {
        var frame: [UInt8] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]
        if vlan { frame += [0x81, 0x00, 0x00, 0x64] }
        return frame + [UInt8(type >> 8), UInt8(type & 0xFF)] + payload
    }

    static func corrupt(_ packet: [UInt8], _ edit: (inout [UInt8]) -> Void) -> [UInt8] {
        var copy = packet
        edit(&copy)
        return copy
    }

    /// (what, Ethernet frame, what the NAT must do with it)
    static var cases: [(String, [UInt8], Verdict)] {
        let good = PacketBuilder.udp(from: (host, 5000), to: (remote, 53), payload: [1, 2, 3, 4])
        let goodTCP = PacketBuilder.tcp(from: (host, 40000), to: (remote, 80), flags: [.syn])
        let fixIP: (inout [UInt8]) -> Void = { b in b.withUnsafeMutableBytes { IPv4Packet(unchecked: $0).fillHeaderChecksum() } }
        return [
            ("valid udp", ethernet(good), .forward(.outbound)),
            ("valid udp behind a vlan tag", ethernet(good, vlan: true), .forward(.outbound)),
            ("ip cut short", ethernet(Array(good.prefix(12))), .drop(.truncated)),
            ("ip total length past capture", ethernet(Array(good.prefix(30))), .drop(.truncated)),
            ("ihl 3", ethernet(corrupt(good) { $0[0] = 0x43; fixIP(&$0) }), .drop(.badIPv4Header)),
            ("ihl 15 past packet", ethernet(corrupt(good) { $0[0] = 0x4F }), .drop(.truncated)),
            ("total length below header", ethernet(corrupt(good) { $0[3] = 10; fixIP(&$0) }), .drop(.badIPv4Header)),
            ("bad ip checksum", ethernet(corrupt(good) { $0[10] ^= 0x55 }), .drop(.badIPv4Checksum)),
            ("bad udp checksum", ethernet(corrupt(good) { $0[26] ^= 0x55 }), .drop(.badTransportChecksum)),
            ("bad tcp checksum", ethernet(corrupt(goodTCP) { $0[36] ^= 0x55 }), .drop(.badTransportChecksum)),
            ("udp length 4", ethernet(corrupt(good) { $0[25] = 4 }), .drop(.badTransportHeader)),
            ("udp length past datagram", ethernet(corrupt(good) { $0[25] = 200 }), .drop(.badTransportHeader)),
            ("tcp data offset 15", ethernet(corrupt(goodTCP) { $0[32] = 0xF0 }), .drop(.badTransportHeader)),
            ("tcp header cut short", ethernet(PacketBuilder.ipv4(source: host, destination: remote, protocol: .tcp,
                                                                 transport: [0, 1, 0, 2, 0, 0])), .drop(.badTransportHeader)),
            ("icmp cut short", ethernet(PacketBuilder.ipv4(source: host, destination: remote, protocol: .icmp,
                                                           transport: [8, 0, 0])), .drop(.badTransportHeader)),
            ("icmp error quoting garbage", ethernet(PacketBuilder.icmpError(
                from: remote, to: IPv4Address(198, 18, 0, 1), type: .timeExceeded, code: 0, quoting: [0x45, 1, 2])),
             .drop(.badTransportHeader)),
            ("ipv6 frame", ethernet([0x60] + [UInt8](repeating: 0, count: 39), type: 0x86DD), .drop(.notIPv4)),
            ("arp frame", ethernet([UInt8](repeating: 0, count: 28), type: 0x0806), .drop(.notIPv4)),
            ("garbage link layer", [1, 2, 3, 4, 5], .drop(.truncated)),
            ("garbage with ipv4 ethertype", ethernet([0xDE, 0xAD, 0xBE, 0xEF]), .drop(.truncated)),
            ("ipv6 inside ipv4 ethertype", ethernet([0x60] + [UInt8](repeating: 0, count: 39)), .drop(.notIPv4)),
            ("gre", ethernet(PacketBuilder.ipv4(source: host, destination: remote, protocol: IPProtocol(47),
                                                transport: [0, 0, 8, 0])), .drop(.unsupportedProtocol)),
            ("from outside the private prefixes", ethernet(PacketBuilder.udp(from: (remote, 1), to: (IPv4Address(198, 19, 0, 8), 2))),
             .drop(.notPrivateSource)),
            ("unsolicited inbound", ethernet(PacketBuilder.udp(from: (remote, 53), to: (IPv4Address(198, 18, 0, 1), 999))),
             .drop(.noMapping)),
            ("orphan later fragment", ethernet(PacketBuilder.ipv4(source: host, destination: remote, protocol: .udp,
                                                                  transport: [1, 2, 3, 4, 5, 6, 7, 8], identification: 77,
                                                                  fragmentOffset: 64)), .held),
        ]
    }

    @Test func everyMalformedPacketIsCountedUnderAReason() throws {
        var writer = PcapWriter(linkType: .ethernet, nanosecondResolution: false)
        for (i, entry) in Self.cases.enumerated() {
            writer.append(entry.1, timestamp: PcapTimestamp(seconds: 100 + UInt32(i), nanoseconds: 0))
        }
        let configuration = NatConfiguration(privatePrefixes: [IPv4Prefix("10.0.0.0/8")!],
                                             poolAddresses: [IPv4Address(198, 18, 0, 1)], seed: Replay.defaultSeed)
        let result = try Replay.run(capture: writer.bytes, configuration: configuration)
        #expect(result.records == Self.cases.count)
        for (outcome, entry) in zip(result.outcomes, Self.cases) {
            #expect(outcome.verdict == entry.2, "\(entry.0)")
        }
        let c = result.counters
        #expect(c.packets == UInt64(Self.cases.count))
        #expect(c.outbound + c.inbound + c.hairpin + c.heldFragments + c.arrivalDrops == c.packets, "nothing uncounted")
    }

    /// Thousands of random corruptions of valid packets: no crash, and every one counted exactly once.
    @Test func randomCorruptionsNeverCrashAndAreAllCounted() throws {
        let seeds: [[UInt8]] = [
            PacketBuilder.udp(from: (Self.host, 5000), to: (Self.remote, 53), payload: [1, 2, 3, 4]),
            PacketBuilder.tcp(from: (Self.host, 40000), to: (Self.remote, 80), flags: [.syn], options: [2, 4, 5, 0xB4]),
            PacketBuilder.icmpQuery(from: Self.host, to: Self.remote, identifier: 3),
            PacketBuilder.icmpError(from: Self.remote, to: IPv4Address(198, 18, 0, 1), type: .destinationUnreachable,
                                    code: 3, quoting: PacketBuilder.udp(from: (IPv4Address(198, 18, 0, 1), 5000), to: (Self.remote, 53))),
        ]
        var state: UInt64 = 0x1234_5678
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: state >> 33)
        }
        var writer = PcapWriter(linkType: .raw, nanosecondResolution: false)
        let count = 20000
        for i in 0..<count {
            var packet = seeds[i % seeds.count]
            for _ in 0..<(1 + next() % 4) { packet[next() % packet.count] = UInt8(truncatingIfNeeded: next()) }
            if next() % 5 == 0 { packet.removeLast(next() % packet.count) }
            if packet.isEmpty || next() % 7 != 0 {
                packet = packet.isEmpty ? [0x45] : packet
                packet.withUnsafeMutableBytes { b in
                    if b.count >= 20 && b[0] >> 4 == 4 && Int(b[0] & 0xF) * 4 <= b.count {
                        IPv4Packet(unchecked: b).fillHeaderChecksum()  // get past the header check more often
                    }
                }
            }
            writer.append(packet, timestamp: PcapTimestamp(seconds: UInt32(i / 100), nanoseconds: 0))
        }
        let configuration = NatConfiguration(privatePrefixes: [IPv4Prefix("10.0.0.0/8")!],
                                             poolAddresses: [IPv4Address(198, 18, 0, 1)], seed: Replay.defaultSeed)
        let result = try Replay.run(capture: writer.bytes, configuration: configuration)
        let c = result.counters
        #expect(c.packets == UInt64(count))
        #expect(c.outbound + c.inbound + c.hairpin + c.heldFragments + c.arrivalDrops == c.packets)
        #expect(c.dropped > 0 && c.outbound > 0, "the corpus reaches both outcomes")
        for outcome in result.outcomes where outcome.output != nil && !outcome.released {
            let problems = ChecksumAudit.problems(in: outcome.output!)
            #expect(!problems.contains("ip header"), "every forwarded packet has a valid IP header")
        }
    }
}
