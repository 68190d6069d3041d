import NatTable
import PacketKit
import Testing

/// RFC 7915 (IP/ICMP translation) as NAT64 applies it, one test per rule, named after its section.
@Suite struct RFC7915Tests {
    /// An outbound UDP flow of host6A to `server`, for the inbound tests: its external port.
    func opened(_ nat: NAT, port: UInt16 = 33434, to remotePort: UInt16 = 33435) -> UInt16 {
        send64(nat, udp6(host6A, port, to: server, remotePort)).v4.sourcePort
    }

    // MARK: Section 4: IPv4 to IPv6

    /// Section 4.1: traffic class from TOS, flow label 0, hop limit from TTL, payload length, next header.
    @Test func rfc7915Sec4_1HeaderFields() throws {
        let nat = try makeNAT64()
        let port = opened(nat)
        var packet = udp(server, 33435, pool1, port)
        packet[1] = 0xB8  // DSCP EF
        packet[8] = 33
        packet.withUnsafeMutableBytes { IPv4Packet(unchecked: $0).fillHeaderChecksum() }
        let back = send64(nat, packet)
        try #require(back.isIPv6)
        back.view { b in
            let ip = try! IPv6Packet(validating: b)
            #expect(ip.trafficClass == 0xB8 && ip.flowLabel == 0 && ip.hopLimit == 33)
            #expect(ip.payloadLength == packet.count - 20 && ip.upperProtocol == 17 && !ip.isFragment)
        }
        #expect(back.bytes.count == packet.count + 20)
    }

    /// Section 4.1: an IPv4 fragment gets a Fragment header: offset, M flag, and the Identification.
    @Test func rfc7915Sec4_1FragmentsGetAFragmentHeader() throws {
        let nat = try makeNAT64()
        let port = opened(nat)
        let datagram = PacketBuilder.udpDatagram(from: (server, 33435), to: (pool1, port), payload: Array(repeating: 7, count: 40))
        let first = PacketBuilder.ipv4(source: server, destination: pool1, protocol: .udp, transport: Array(datagram[..<24]),
                                       identification: 0xBEEF, moreFragments: true)
        let second = PacketBuilder.ipv4(source: server, destination: pool1, protocol: .udp, transport: Array(datagram[24...]),
                                        identification: 0xBEEF, fragmentOffset: 24)
        let a = send64(nat, first)
        let b = send64(nat, second)
        #expect(a.verdict == .forward(.inbound) && b.verdict == .forward(.inbound))
        for (t, offset, more) in [(a, 0, true), (b, 24, false)] {
            t.view { buf in
                let ip = try! IPv6Packet(validating: buf)
                #expect(ip.isFragment && ip.fragmentOffset == offset && ip.moreFragments == more)
                #expect(ip.fragmentIdentification == 0xBEEF && ip.upperProtocol == 17)
                #expect(ip.destination == host6A)
            }
        }
    }

    /// Section 4.1: an unexpired IPv4 source route is not translated.
    @Test func rfc7915Sec4_1SourceRouteDropped() throws {
        let nat = try makeNAT64()
        let port = opened(nat)
        let datagram = PacketBuilder.udpDatagram(from: (server, 33435), to: (pool1, port), payload: [1, 2])
        // LSRR, length 7, pointer 4 (one address left), then end of options.
        let routed = PacketBuilder.ipv4(source: server, destination: pool1, protocol: .udp, transport: datagram,
                                        options: [131, 7, 4, 198, 19, 0, 1, 0])
        #expect(send64(nat, routed).verdict == .drop(.sourceRouted))
    }

    /// Section 4.2: echo request/reply become ICMPv6 echo, checksum over the IPv6 pseudo-header.
    @Test func rfc7915Sec4_2EchoTranslated() throws {
        let nat = try makeNAT64()
        let out = send64(nat, PacketBuilder.echo6(from: host6A, to: nsp.embed(server.value), identifier: 9, sequence: 3))
        let reply = send64(nat, PacketBuilder.icmpQuery(from: server, to: pool1, type: .echoReply, identifier: out.v4.sourcePort, sequence: 3))
        #expect(reply.isIPv6 && reply.bytes[40] == ICMPv6Type.echoReply && reply.bytes[41] == 0)
    }

    /// Section 4.2: time exceeded (traceroute's answer) keeps its code; the quoted packet is translated too.
    @Test func rfc7915Sec4_2TimeExceededWithInnerPacket() throws {
        let nat = try makeNAT64()
        let out = send64(nat, udp6(host6A, 33434, to: server, 33435))
        let error = PacketBuilder.icmpError(from: router, to: pool1, type: .timeExceeded, code: 0, quoting: out.bytes)
        let back = send64(nat, error)
        #expect(back.verdict == .forward(.inbound) && back.isIPv6)
        #expect(back.v6.source == nsp.embed(router.value) && back.v6.destination == host6A)
        back.view { b in
            #expect(b[40] == ICMPv6Type.timeExceeded && b[41] == 0)
            let inner = try! IPv6Packet(validating: b.suffix(from: 48), quoted: true)
            #expect(inner.source == host6A && inner.destination == nsp.embed(server.value))
            #expect(inner.upperLayer.loadBE16(at: 0) == 33434, "the host's own port, as it sent it")
        }
    }

    /// Section 4.2: destination unreachable codes, figure by figure.
    @Test(arguments: [(UInt8(0), UInt8(1), UInt8(0)), (1, 1, 0), (3, 1, 4), (9, 1, 1), (10, 1, 1), (13, 1, 1),
                      (2, 4, 1)])
    func rfc7915Sec4_2DestinationUnreachableCodes(v4code: UInt8, type: UInt8, code: UInt8) throws {
        let nat = try makeNAT64()
        let out = send64(nat, udp6(host6A, 33434, to: server, 33435))
        let error = PacketBuilder.icmpError(from: server, to: pool1, type: .destinationUnreachable, code: v4code, quoting: out.bytes)
        let back = send64(nat, error)
        try #require(back.isIPv6)
        #expect(back.bytes[40] == type && back.bytes[41] == code)
        if type == ICMPv6Type.parameterProblem { #expect(back.view { $0.loadBE32(at: 44) } == 6, "points at next header") }
    }

    /// Section 4.2: fragmentation needed becomes packet too big, the MTU 20 bytes larger, never below 1280; an
    /// MTU of 0 (an old router) is estimated from the plateau table (RFC 1191).
    @Test(arguments: [(UInt16(1400), UInt32(1420)), (1000, 1280), (0, 1280)])
    func rfc7915Sec4_2FragmentationNeededToPacketTooBig(mtu: UInt16, expected: UInt32) throws {
        let nat = try makeNAT64()
        let out = send64(nat, udp6(host6A, 33434, to: server, 33435, payload: Array(repeating: 1, count: 1400)))
        let error = PacketBuilder.icmpError(from: router, to: pool1, type: .destinationUnreachable, code: 4,
                                            quoting: out.bytes, quoteLength: 28, nextHopMTU: mtu)
        let back = send64(nat, error)
        try #require(back.isIPv6)
        #expect(back.bytes[40] == ICMPv6Type.packetTooBig && back.view { $0.loadBE32(at: 44) } == expected)
    }

    /// Section 4.2: parameter problem pointers move to the IPv6 header's fields (figure 3); n/a ones drop.
    @Test(arguments: [(UInt8(8), UInt32(7)), (9, 6), (12, 8), (16, 24), (1, 1)])
    func rfc7915Sec4_2ParameterProblemPointer(pointer: UInt8, expected: UInt32) throws {
        let nat = try makeNAT64()
        let out = send64(nat, udp6(host6A, 33434, to: server, 33435))
        var error = PacketBuilder.icmpError(from: router, to: pool1, type: .parameterProblem, code: 0, quoting: out.bytes)
        error.withUnsafeMutableBytes { b in
            b[24] = pointer
            let icmp = ICMPv4Message(unchecked: b.suffix(from: 20))
            icmp.fillChecksum()
        }
        let back = send64(nat, error)
        try #require(back.isIPv6)
        #expect(back.bytes[40] == ICMPv6Type.parameterProblem && back.view { $0.loadBE32(at: 44) } == expected)
    }

    /// Section 4.2: ICMPv4 messages with no ICMPv6 counterpart are dropped (timestamp, redirect, source quench).
    @Test func rfc7915Sec4_2UntranslatableICMPv4Dropped() throws {
        let nat = try makeNAT64()
        let out = send64(nat, udp6(host6A, 33434, to: server, 33435))
        let quench = PacketBuilder.icmpError(from: router, to: pool1, type: ICMPv4Type(4), code: 0, quoting: out.bytes)
        #expect(send64(nat, quench).verdict != .forward(.inbound))
        let hostPrecedence = PacketBuilder.icmpError(from: router, to: pool1, type: .destinationUnreachable, code: 14, quoting: out.bytes)
        #expect(send64(nat, hostPrecedence).verdict == .drop(.unsupportedICMP))
    }

    /// Section 4.5: a UDP datagram without a checksum gets one; a fragment of one is dropped.
    @Test func rfc7915Sec4_5UDPZeroChecksum() throws {
        let nat = try makeNAT64()
        let port = opened(nat)
        let bare = PacketBuilder.udp(from: (server, 33435), to: (pool1, port), payload: [9, 9, 9], checksum: false)
        let back = send64(nat, bare)
        #expect(back.verdict == .forward(.inbound) && back.isIPv6)  // send64 audited the computed checksum
        let datagram = PacketBuilder.udpDatagram(from: (server, 33435), to: (pool1, port), payload: Array(repeating: 1, count: 40), checksum: false)
        let first = PacketBuilder.ipv4(source: server, destination: pool1, protocol: .udp, transport: Array(datagram[..<24]),
                                       identification: 5, moreFragments: true)
        #expect(send64(nat, first).verdict == .drop(.udpZeroChecksumFragment))
    }

    // MARK: Section 5: IPv6 to IPv4

    /// Section 5.1: TOS from traffic class, TTL from hop limit, DF set above 1260 bytes only, the IPv4 header
    /// checksum computed.
    @Test func rfc7915Sec5_1HeaderFieldsAndDF() throws {
        let nat = try makeNAT64()
        var small = udp6(host6A, 1, to: server, 9)
        small[0] = 0x6B  // traffic class 0xB8: 6 B8 0
        small[1] = 0x80
        small[7] = 17
        let s = send64(nat, small)
        s.view { b in
            let ip = try! IPv4Packet(validating: b)
            #expect(ip.typeOfService == 0xB8 && ip.timeToLive == 17 && !ip.dontFragment && !ip.isFragment)
        }
        let large = send64(nat, udp6(host6A, 1, to: server, 9, payload: Array(repeating: 0, count: 1300)))
        large.view { b in #expect(try! IPv4Packet(validating: b).dontFragment) }
        #expect(large.bytes.count == 20 + 8 + 1300)
    }

    /// Section 5.1: hop-by-hop and destination options are skipped; the protocol is the upper layer's.
    @Test func rfc7915Sec5_1OptionsHeadersSkipped() throws {
        let nat = try makeNAT64()
        let padN: [UInt8] = [0, 0, 1, 4, 0, 0, 0, 0]
        let packet = PacketBuilder.udp6(from: (host6A, 1), to: (nsp.embed(server.value), 9),
                                        extensions: [(0, padN), (60, padN)])
        let out = send64(nat, packet)
        #expect(out.verdict == .forward(.outbound) && out.bytes.count == packet.count - 56 + 20)
        out.view { b in #expect(try! IPv4Packet(validating: b).protocol == .udp) }
    }

    /// Section 5.1: a routing header with segments left is not translated.
    @Test func rfc7915Sec5_1RoutingHeaderWithSegmentsLeftDropped() throws {
        let nat = try makeNAT64()
        let routing: [UInt8] = [0, 0, 4, 1, 0, 0, 0, 0]  // type 4 (segment routing), one segment left
        let packet = PacketBuilder.udp6(from: (host6A, 1), to: (nsp.embed(server.value), 9), extensions: [(43, routing)])
        #expect(send64(nat, packet).verdict == .drop(.sourceRouted))
        let done: [UInt8] = [0, 0, 4, 0, 0, 0, 0, 0]
        let finished = PacketBuilder.udp6(from: (host6A, 1), to: (nsp.embed(server.value), 9), extensions: [(43, done)])
        #expect(send64(nat, finished).verdict == .forward(.outbound))
    }

    /// Section 5.1.1: a Fragment header becomes IPv4 fragment fields (ID's low 16 bits, offset, MF, DF clear).
    @Test func rfc7915Sec5_1_1FragmentHeaderToIPv4Fragments() throws {
        let nat = try makeNAT64()
        var datagram = PacketBuilder.udp6Datagram(from: (host6A, 1), to: (nsp.embed(server.value), 9), payload: Array(repeating: 3, count: 40))
        PacketBuilder.fillChecksum6(&datagram, field: 6, source: host6A, destination: nsp.embed(server.value), nextHeader: 17)
        let first = PacketBuilder.ipv6(source: host6A, destination: nsp.embed(server.value), nextHeader: 17,
                                       upper: Array(datagram[..<24]),
                                       extensions: [PacketBuilder.fragmentHeader(offset: 0, more: true, identification: 0x1234_5678)])
        let second = PacketBuilder.ipv6(source: host6A, destination: nsp.embed(server.value), nextHeader: 17,
                                        upper: Array(datagram[24...]),
                                        extensions: [PacketBuilder.fragmentHeader(offset: 24, more: false, identification: 0x1234_5678)])
        let a = send64(nat, first)
        let b = send64(nat, second)
        #expect(a.verdict == .forward(.outbound) && b.verdict == .forward(.outbound))
        for (t, offset, more) in [(a, 0, true), (b, 24, false)] {
            t.view { buf in
                let ip = try! IPv4Packet(validating: buf)
                #expect(ip.identification == 0x5678 && ip.fragmentOffset == offset && ip.moreFragments == more)
                #expect(!ip.dontFragment && ip.source == pool1)
            }
        }
    }

    /// Section 5.1: an extension header chain past the bound is refused, however it is built.
    @Test func rfc7915Sec5_1ExtensionChainBounded() throws {
        let nat = try makeNAT64()
        let padN: [UInt8] = [0, 0, 1, 4, 0, 0, 0, 0]
        let chain = [(UInt8(0), padN)] + Array(repeating: (UInt8(60), padN), count: IPv6Packet.maxExtensionHeaders)
        let packet = PacketBuilder.udp6(from: (host6A, 1), to: (nsp.embed(server.value), 9), extensions: chain)
        #expect(send64(nat, packet).verdict == .drop(.badIPv6Header))
        var cut = PacketBuilder.udp6(from: (host6A, 1), to: (nsp.embed(server.value), 9), extensions: [(60, padN)])
        cut[41] = 200  // the options header claims 1608 bytes
        #expect(send64(nat, cut).verdict == .drop(.truncated))
    }

    /// Section 5.2: ICMPv6 echo becomes ICMPv4 echo; other informational messages (MLD) are dropped.
    @Test func rfc7915Sec5_2EchoAndInformational() throws {
        let nat = try makeNAT64()
        let out = send64(nat, PacketBuilder.echo6(from: host6A, to: nsp.embed(server.value), identifier: 1))
        #expect(out.verdict == .forward(.outbound) && out.bytes[20] == 8 && out.bytes[21] == 0)
        let mld = PacketBuilder.icmpv6(from: host6A, to: nsp.embed(server.value), type: 130, word: 0, body: [])
        #expect(send64(nat, mld).verdict == .drop(.unsupportedICMP))
    }

    /// Section 5.2: ICMPv6 errors from the IPv6 host about an inbound flow: packet too big becomes fragmentation
    /// needed with the MTU 20 bytes smaller, port unreachable keeps its meaning, and the quoted packet is
    /// translated back to what the IPv4 server sent.
    @Test(arguments: [(UInt8(2), UInt8(0), UInt32(1400), UInt8(3), UInt8(4)), (1, 4, 0, 3, 3), (1, 0, 0, 3, 1),
                      (1, 1, 0, 3, 10), (3, 0, 0, 11, 0)])
    func rfc7915Sec5_2ErrorsFromTheIPv6Host(type: UInt8, code: UInt8, word: UInt32, v4type: UInt8, v4code: UInt8) throws {
        let nat = try makeNAT64()
        let port = opened(nat, port: 5000, to: 9000)
        let inbound = send64(nat, udp(server, 9000, pool1, port, payload: Array(repeating: 2, count: 100)))
        try #require(inbound.isIPv6)
        let error = PacketBuilder.icmpv6(from: host6A, to: nsp.embed(server.value), type: type, code: code, word: word,
                                         body: inbound.bytes)
        let out = send64(nat, error)
        #expect(out.verdict == .forward(.outbound) && !out.isIPv6)
        #expect(out.bytes[20] == v4type && out.bytes[21] == v4code)
        if type == ICMPv6Type.packetTooBig { #expect(out.view { $0.loadBE16(at: 26) } == 1380) }
        out.view { b in
            let quoted = try! IPv4Packet(quoted: b.suffix(from: 28))
            #expect(quoted.source == server && quoted.destination == pool1 && quoted.payload.loadBE16(at: 2) == port)
        }
    }

    /// Section 5.2: parameter problem pointers move to the IPv4 header's fields (figure 6).
    @Test(arguments: [(UInt32(7), UInt8(8)), (6, 9), (24, 16), (4, 2)])
    func rfc7915Sec5_2ParameterProblemPointer(pointer: UInt32, expected: UInt8) throws {
        let nat = try makeNAT64()
        let port = opened(nat, port: 5000, to: 9000)
        let inbound = send64(nat, udp(server, 9000, pool1, port))
        let error = PacketBuilder.icmpv6(from: host6A, to: nsp.embed(server.value), type: 4, code: 0, word: pointer,
                                         body: inbound.bytes)
        let out = send64(nat, error)
        #expect(out.bytes[20] == 12 && out.bytes[24] == expected)
    }

    /// Section 5.2: an ICMPv6 error with a bad checksum is dropped, not repaired by the translation.
    @Test func rfc7915Sec5_2BadChecksumDropped() throws {
        let nat = try makeNAT64()
        let port = opened(nat, port: 5000, to: 9000)
        let inbound = send64(nat, udp(server, 9000, pool1, port))
        var error = PacketBuilder.icmpv6(from: host6A, to: nsp.embed(server.value), type: 1, code: 4, word: 0, body: inbound.bytes)
        error[43] ^= 1
        #expect(send64(nat, error).verdict == .drop(.badTransportChecksum))
    }

    /// Fragmented ICMP is not translated either way (its checksum needs the whole message).
    @Test func fragmentedICMPDropped() throws {
        let nat = try makeNAT64()
        let body = PacketBuilder.echo6(from: host6A, to: nsp.embed(server.value), identifier: 1)
        let fragment = PacketBuilder.ipv6(source: host6A, destination: nsp.embed(server.value), nextHeader: 58,
                                          upper: Array(body[40...]),
                                          extensions: [PacketBuilder.fragmentHeader(offset: 0, more: true, identification: 1)])
        #expect(send64(nat, fragment).verdict == .drop(.icmpFragment))
    }

    /// Without headroom (a caller that gives none) a packet that must grow is dropped and counted, never written
    /// out of bounds.
    @Test func noHeadroomIsCounted() throws {
        let nat = try makeNAT64()
        let port = opened(nat)
        var packet = udp(server, 33435, pool1, port)
        let verdict = packet.withUnsafeMutableBytes { nat.translate($0, now: .seconds(0)) }
        #expect(verdict == .drop(.noHeadroom))
    }
}
