import NatTable
import PacketKit
import Testing
import TunnatKit

/// `tunnat replay` of captures with IPv6 in them: pcapng input, per-interface link types, NAT64 both ways.
@Suite struct ReplayNat64Tests {
    static let host6 = IPv6Address("fd00:1::a")!
    static let prefix = NAT64Prefix(IPv6Prefix("2001:db8:64::/96")!)!
    static let server = IPv4Address(198, 19, 0, 7)

    static func configuration(nat64: Bool) -> NatConfiguration {
        var configuration = natConfig("10.0.0.0/8")
        if nat64 {
            configuration.nat64 = Nat64Configuration(prefix: prefix, privatePrefixes: [IPv6Prefix("fd00:1::/64")!])
        }
        return configuration
    }

    /// A Linux cooked v2 header (as `tcpdump -i any` writes) for this ethertype.
    static func cookedV2(_ ethertype: UInt16) -> [UInt8] {
        [UInt8(ethertype >> 8), UInt8(ethertype & 0xFF), 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0]
    }

    static func ethernet(_ ethertype: UInt16) -> [UInt8] {
        [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, UInt8(ethertype >> 8), UInt8(ethertype & 0xFF)]
    }

    static let query = PacketBuilder.udp6(from: (host6, 40000), to: (prefix.embed(server.value), 53), payload: [1, 2, 3, 4])

    /// A pcapng capture: the IPv6 query on a cooked v2 interface (microseconds), then `more` on an Ethernet
    /// interface with nanosecond timestamps (with 6 bytes of trailing padding, as short Ethernet frames have).
    static func capture(then more: [[UInt8]]) -> [UInt8] {
        var writer = PcapngWriter()
        writer.addInterface(linkType: .linuxCookedV2)
        writer.addInterface(linkType: .ethernet, nanosecondResolution: true)
        writer.append(cookedV2(0x86DD) + query, interface: 0, timestamp: PcapTimestamp(seconds: 1_700_000_000, nanoseconds: 0))
        for (i, frame) in more.enumerated() {
            writer.append(frame + [0, 0, 0, 0, 0, 0], interface: 1,
                          timestamp: PcapTimestamp(seconds: 1_700_000_001, nanoseconds: 500 + UInt32(i)))
        }
        return writer.bytes
    }

    /// The output pcap's records, as (link type of the file, packets).
    static func output(_ pcap: [UInt8]) throws -> (PcapLinkType, [[UInt8]]) {
        var reader = try PcapReader(bytes: pcap)
        var packets: [[UInt8]] = []
        while let record = try reader.next() { packets.append(Array(record.data)) }
        return (reader.linkType, packets)
    }

    @Test func pcapngCaptureWithIPv6GoesThroughNAT64() throws {
        // The mapped port, from the query alone (a replay is deterministic: the same seed, the same port).
        let first = try Replay.run(capture: Self.capture(then: []), configuration: Self.configuration(nat64: true))
        let outbound = try #require(first.outcomes.first?.output)
        let mappedPort = UInt16(outbound[20]) << 8 | UInt16(outbound[21])

        let reply = PacketBuilder.udp(from: (Self.server, 53), to: (pool, mappedPort), payload: [5, 6, 7, 8])
        let result = try Replay.run(capture: Self.capture(then: [Self.ethernet(0x0800) + reply]),
                                    configuration: Self.configuration(nat64: true))
        #expect(result.records == 2)
        #expect(result.outcomes.map(\.verdict) == [.forward(.outbound), .forward(.inbound)], "\(result.summary)")
        #expect(result.counters.nat64Outbound == 1 && result.counters.nat64Inbound == 1)
        let listed = try Replay.run(capture: Self.capture(then: [Self.ethernet(0x0800) + reply]),
                                    configuration: Self.configuration(nat64: true), options: ReplayOptions(keepInputs: true))
        #expect(listed.outcomes.map(\.listing) == [
            "#1 outbound  udp [fd00:1::a]:40000 > [2001:db8:64::c613:7]:53  =>  udp 198.18.0.1:\(mappedPort) > 198.19.0.7:53",
            "#2 inbound  udp 198.19.0.7:53 > 198.18.0.1:\(mappedPort)  =>  udp [2001:db8:64::c613:7]:53 > [fd00:1::a]:40000",
        ])

        let (linkType, packets) = try Self.output(result.pcap)
        #expect(linkType == .raw)
        try #require(packets.count == 2)
        #expect(packets == result.outcomes.compactMap(\.output))
        for packet in packets { #expect(ChecksumAudit.problems(in: packet).isEmpty, "\(ChecksumAudit.problems(in: packet))") }

        // Out: IPv4 from the pool address to the server.
        let out = packets[0]
        #expect(out[0] >> 4 == 4 && out.count == 20 + 8 + 4)
        #expect(Array(out[12..<16]) == [198, 18, 0, 1] && Array(out[16..<20]) == [198, 19, 0, 7])
        #expect(out[9] == 17 && out[22...23] == [0x00, 53][...])

        // Back: IPv6 to the host, from the server's address in the prefix, without the Ethernet padding.
        let back = packets[1]
        #expect(back[0] >> 4 == 6 && back.count == 40 + 8 + 4)
        var copy = back
        copy.withUnsafeMutableBytes { b in
            #expect(IPv6Address(b, at: 8) == Self.prefix.embed(Self.server.value))
            #expect(IPv6Address(b, at: 24) == Self.host6)
        }
        #expect(back[40...41] == [0x00, 53][...] && UInt16(back[42]) << 8 | UInt16(back[43]) == 40000)
        #expect(Array(back.suffix(4)) == [5, 6, 7, 8])
    }

    /// Without NAT64 the output stays link type 228 and an IPv6 packet is counted as not IPv4, as before.
    @Test func withoutNAT64IPv6IsNotIPv4() throws {
        let result = try Replay.run(capture: Self.capture(then: []), configuration: Self.configuration(nat64: false))
        #expect(result.outcomes.map(\.verdict) == [.drop(.notIPv4)])
        #expect(result.counters[.notIPv4] == 1 && result.counters.packets == 1)
        let (linkType, packets) = try Self.output(result.pcap)
        #expect(linkType == .ipv4 && packets.isEmpty)
    }

    /// The NAT tells the families apart by the version nibble; the link layer's ethertype must agree with it.
    @Test func familyMustMatchTheEthertype() throws {
        let v4 = PacketBuilder.udp(from: (IPv4Address(10, 0, 0, 5), 5000), to: (Self.server, 53), payload: [1, 2, 3, 4])
        let frames = [
            Self.ethernet(0x86DD) + v4,  // IPv4 behind the IPv6 ethertype
            Self.ethernet(0x0800) + Self.query,  // IPv6 behind the IPv4 ethertype
            Self.ethernet(0x86DD) + Array(Self.query.prefix(20)),  // an IPv6 header cut short
            Self.ethernet(0x0800) + v4,  // IPv4, padded: comes out cut to its total length
        ]
        let result = try Replay.run(capture: Self.capture(then: frames), configuration: Self.configuration(nat64: true))
        #expect(result.outcomes.map(\.verdict) == [
            .forward(.outbound), .drop(.badIPv6Header), .drop(.notIPv4), .drop(.truncated), .forward(.outbound),
        ])
        #expect(result.outcomes.last?.output?.count == v4.count)
    }
}
