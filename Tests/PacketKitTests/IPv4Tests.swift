import PacketKit
import Testing

/// A real ICMP echo request, 10.0.0.1 -> 10.0.0.2, ID 0x1234, from the RFC 791 layout by hand.
let echoFixture = [UInt8](hex: """
    4500 0020 abcd 4000 4001 0000 0a00 0001 0a00 0002
    0800 0000 1234 0001 6162 6364
    """)!

@discardableResult
func withPacket<R>(_ bytes: [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
    var copy = bytes
    return try copy.withUnsafeMutableBytes { try body($0) }
}

@Suite struct IPv4Tests {
    @Test func parsesEveryField() throws {
        let packet = PacketBuilder.ipv4(
            source: IPv4Address(10, 1, 2, 3), destination: IPv4Address(198, 18, 0, 1), protocol: .udp,
            transport: [0, 1, 0, 2, 0, 8, 0, 0], identification: 0xBEEF, ttl: 17, dontFragment: true,
            options: [0x01, 0x01, 0x01, 0x00])
        try withPacket(packet) { b throws in
            let ip = try IPv4Packet(validating: b)
            #expect(ip.headerLength == 24)
            #expect(ip.totalLength == 32)
            #expect(ip.identification == 0xBEEF)
            #expect(ip.dontFragment && !ip.moreFragments && !ip.isFragment)
            #expect(ip.timeToLive == 17)
            #expect(ip.protocol == .udp)
            #expect(ip.source == IPv4Address(10, 1, 2, 3))
            #expect(ip.destination.description == "198.18.0.1")
            #expect(Array(ip.options) == [0x01, 0x01, 0x01, 0x00])
            #expect(ip.payload.count == 8)
            #expect(ip.isHeaderChecksumValid)
        }
    }

    @Test func fragmentFields() throws {
        let packet = PacketBuilder.ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2),
                                        protocol: .udp, transport: [UInt8](repeating: 0, count: 16),
                                        moreFragments: true, fragmentOffset: 1480)
        try withPacket(packet) { b throws in
            let ip = try IPv4Packet(validating: b)
            #expect(ip.moreFragments && ip.isFragment && ip.fragmentOffset == 1480)
        }
    }

    /// Each malformation is refused with the error that names it.
    @Test(arguments: [
        ("short buffer", "4500 0014 0000 0000 4001", PacketError.truncated(needed: 20, available: 10)),
        ("IPv6", "6000 0000 0000 0000 0000 0000 0000 0000 0000 0000", .badVersion(6)),
        ("IHL 4", "4400 0014 0000 0000 4001 0000 0a00 0001 0a00 0002", .badHeaderLength(16)),
        ("IHL past buffer", "4f00 0014 0000 0000 4001 0000 0a00 0001 0a00 0002", .truncated(needed: 60, available: 20)),
        ("total below header", "4500 0010 0000 0000 4001 0000 0a00 0001 0a00 0002", .badTotalLength(16)),
        ("total past buffer", "4500 0040 0000 0000 4001 0000 0a00 0001 0a00 0002", .truncated(needed: 64, available: 20)),
        ("bad checksum", "4500 0014 0000 0000 4001 1234 0a00 0001 0a00 0002", .badChecksum),
    ])
    func rejectsMalformedHeaders(name: String, hex: String, expected: PacketError) {
        withPacket([UInt8](hex: hex)!) { b in
            #expect(throws: expected, "\(name)") { try IPv4Packet(validating: b) }
        }
    }

    @Test func viewStopsAtTotalLengthDroppingLinkPadding() throws {
        var padded = PacketBuilder.icmpQuery(from: IPv4Address(10, 0, 0, 1), to: IPv4Address(10, 0, 0, 2),
                                             identifier: 7, payload: [])
        padded += [0, 0, 0, 0, 0, 0]
        try withPacket(padded) { b throws in #expect(try IPv4Packet(validating: b).buffer.count == 28) }
    }

    @Test func addressSettersKeepHeaderChecksumValid() throws {
        var fixture = echoFixture
        fixture.withUnsafeMutableBytes { IPv4Packet(unchecked: $0).fillHeaderChecksum() }
        try withPacket(fixture) { b throws in
            let ip = try IPv4Packet(validating: b)
            ip.setSource(IPv4Address(198, 18, 0, 1))
            ip.setDestination(IPv4Address(203, 0, 113, 200))
            #expect(ip.isHeaderChecksumValid)
            #expect(ip.source == IPv4Address(198, 18, 0, 1))
            let before = ip.headerChecksum
            ip.fillHeaderChecksum()
            #expect(ip.headerChecksum == before)
        }
    }

    @Test(arguments: ["10.0.0.0/8", "0.0.0.0/0", "192.168.1.7", "198.18.0.0/15"])
    func prefixRoundTrips(text: String) throws {
        let prefix = try #require(IPv4Prefix(text))
        #expect(prefix.description == (text.contains("/") ? text : text + "/32"))
    }

    @Test(arguments: ["10.0.0.1/8", "10.0.0.0/33", "10.0.0/8", "256.0.0.0/8", "10.0.0.0/", "a.b.c.d", " 10.0.0.0/8", "10.0.0.00001"])
    func prefixRejectsMalformedText(text: String) {
        #expect(IPv4Prefix(text) == nil)
    }

    @Test func prefixContainment() throws {
        let prefix = try #require(IPv4Prefix("172.16.0.0/12"))
        #expect(prefix.contains(IPv4Address(172, 31, 255, 255)))
        #expect(!prefix.contains(IPv4Address(172, 32, 0, 0)))
        #expect(try #require(IPv4Prefix("0.0.0.0/0")).contains(IPv4Address(8, 8, 8, 8)))
    }
}
