import PacketKit
import Testing

@Suite struct IPv6Tests {
    @Test(arguments: [
        ("::", "::"), ("::1", "::1"), ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
        ("2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"), ("2001:db8:0:0:0:0:2:1", "2001:db8::2:1"),
        ("fd00:1::a", "fd00:1::a"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), ("2001:0:0:1::1", "2001:0:0:1::1"),
    ])
    func addressesParseAndPrintAsRFC5952Says(text: String, canonical: String) throws {
        let address = try #require(IPv6Address(text))
        #expect(address.description == canonical)
        #expect(IPv6Address(canonical) == address)
    }

    @Test(arguments: ["", ":", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "g::", "1:2:3:4:5:6:7::8",
                      "::1.2.3", "fe80::1%eth0", "1:2:3:4:5:6:7"])
    func malformedAddressesAreRefused(text: String) {
        #expect(IPv6Address(text) == nil)
    }

    @Test func prefixesRefuseHostBitsAndContainTheirAddresses() throws {
        let p = try #require(IPv6Prefix("fd00:1::/64"))
        #expect(p.contains(IPv6Address("fd00:1::ffff")!) && !p.contains(IPv6Address("fd00:2::1")!))
        #expect(IPv6Prefix("fd00:1::1/64") == nil && IPv6Prefix("fd00::/129") == nil)
        #expect(IPv6Prefix("::/0")!.contains(IPv6Address("2001:db8::1")!))
        #expect(IPv6Prefix("2001:db8::1/128")!.contains(IPv6Address("2001:db8::1")!))
    }

    /// RFC 6052 section 2.4's table: 192.0.2.33 under each prefix length.
    @Test(arguments: [
        ("2001:db8::/32", "2001:db8:c000:221::"), ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
        ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"), ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
        ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"), ("2001:db8:122:344::/96", "2001:db8:122:344::c000:221"),
        ("64:ff9b::/96", "64:ff9b::c000:221"),
    ])
    func rfc6052Sec2_4Examples(prefix: String, embedded: String) throws {
        let parsed = try #require(IPv6Prefix(prefix))
        let p = try #require(NAT64Prefix(parsed))
        let v4 = IPv4Address(192, 0, 2, 33).value
        #expect(p.embed(v4).description == embedded)
        #expect(p.extract(IPv6Address(embedded)!) == v4)
        #expect(p.extract(IPv6Address("2001:db9::1")!) == nil)
    }

    @Test func rfc6052Sec2_2OnlyTheSixLengths() {
        #expect(NAT64Prefix(IPv6Prefix("2001:db8::/33")!) == nil)
        #expect(NAT64Prefix(IPv6Prefix("2001:db8::/128")!) == nil)
        #expect(NAT64Prefix(IPv6Prefix("2001:db8:0:0:ff00::/96")!) == nil, "the u octet must be zero")
    }

    /// RFC 6052 section 3.1: the Well-Known Prefix stands for global IPv4 addresses only.
    @Test func rfc6052Sec3_1WellKnownPrefixOnlyGlobal() {
        let wkp = NAT64Prefix.wellKnown
        #expect(wkp.mayEmbed(IPv4Address(93, 184, 216, 34).value))
        for address in [IPv4Address(10, 0, 0, 1), IPv4Address(192, 168, 1, 1), IPv4Address(198, 18, 0, 1),
                        IPv4Address(100, 64, 0, 1), IPv4Address(127, 0, 0, 1)] {
            #expect(!wkp.mayEmbed(address.value), "\(address)")
        }
        let nsp = NAT64Prefix(IPv6Prefix("2001:db8:64::/96")!)!
        #expect(nsp.mayEmbed(IPv4Address(10, 0, 0, 1).value) && !nsp.mayEmbed(IPv4Address(224, 0, 0, 1).value))
    }

    @Test func packetWalkFindsTheUpperLayerAndTheFragmentHeader() throws {
        let a = IPv6Address("fd00::1")!, b = IPv6Address("fd00::2")!
        var bytes = PacketBuilder.ipv6(source: a, destination: b, nextHeader: 17, upper: [0, 1, 0, 2, 0, 12, 0, 0, 9, 9, 9, 9],
                                       extensions: [(0, [0, 0, 1, 4, 0, 0, 0, 0]),
                                                    PacketBuilder.fragmentHeader(offset: 64, more: true, identification: 7)])
        try bytes.withUnsafeMutableBytes { buf in
            let ip = try IPv6Packet(validating: buf)
            #expect(ip.upperProtocol == 17 && ip.upperOffset == 56 && ip.fragmentOffset == 64 && ip.moreFragments)
            #expect(ip.fragmentIdentification == 7 && ip.source == a && ip.destination == b)
        }
        bytes[5] += 1  // payload length one past the buffer
        let count = bytes.count
        bytes.withUnsafeMutableBytes { buf in
            _ = #expect(throws: PacketError.truncated(needed: count + 1, available: count)) { try IPv6Packet(validating: buf) }
        }
    }
}
