import NatTable
import PacketKit
import Testing

/// RFC 5508 (NAT behavioural requirements for ICMP), one test per requirement.
@Suite struct RFC5508Tests {
    @Test func rfc5508Req1QueryIdentifierMapping() throws {
        let nat = try makeNAT()
        let a = send(nat, ping(hostA, server, id: 777))
        let b = send(nat, ping(hostB, server, id: 777))
        #expect(a.verdict == .forward(.outbound) && a.source == pool1 && a.sourcePort == 777)
        #expect(b.sourcePort != 777, "a second host with the same identifier gets another one")
        let replyB = send(nat, ping(server, pool1, id: b.sourcePort, reply: true))
        #expect(replyB.verdict == .forward(.inbound) && replyB.destination == hostB && replyB.destinationPort == 777)
        let replyA = send(nat, ping(server, pool1, id: 777, reply: true))
        #expect(replyA.destination == hostA)
    }

    @Test func echoReplyFromPrivateSideDoesNotOpenAMapping() throws {
        let nat = try makeNAT()
        #expect(send(nat, ping(hostA, server, id: 5, reply: true)).verdict == .drop(.noMapping))
    }

    /// Found by fuzzing (Fuzz/Sources/FuzzTranslate): an echo reply whose identifier, sequence number and data are
    /// all zero sums to +0, which only a checksum of 0xFFFF complements; translation, which rewrites the identifier
    /// incrementally, once turned that checksum into 0x0000, and the host would have dropped the reply.
    @Test func allZeroEchoReplyKeepsAValidChecksum() throws {
        let nat = try makeNAT()
        let out = send(nat, PacketBuilder.icmpQuery(from: hostA, to: server, identifier: 0, sequence: 0, payload: []))
        #expect(out.verdict == .forward(.outbound))
        let reply = send(nat, PacketBuilder.icmpQuery(from: server, to: pool1, type: .echoReply, identifier: out.sourcePort,
                                                      sequence: 0, payload: []))
        #expect(reply.verdict == .forward(.inbound) && reply.destinationPort == 0)
    }

    @Test func rfc5508Req2QueryTimeoutAtLeast60s() throws {
        let nat = try makeNAT()
        send(nat, ping(hostA, server, id: 1), at: 100)
        nat.expire(now: .seconds(159), budget: 10)
        #expect(nat.flowCount == 1)
        nat.expire(now: .seconds(160), budget: 10)
        #expect(nat.flowCount == 0)
    }

    /// The three kinds of quoted datagram, each translated back with every checksum right.
    @Test(arguments: ["udp", "tcp", "icmp"], [ICMPv4Type.timeExceeded, .destinationUnreachable, .parameterProblem])
    func rfc5508Req4InboundErrorTranslatedWithEmbeddedHeaders(kind: String, type: ICMPv4Type) throws {
        let nat = try makeNAT()
        let original: [UInt8] = switch kind {
        case "udp": udp(hostA, 33434, server, 33435)
        case "tcp": tcp(hostA, 40000, server, 80, [.syn])
        default: ping(hostA, server, id: 4242)
        }
        let out = send(nat, original)
        let error = PacketBuilder.icmpError(from: router, to: pool1, type: type, code: 0, quoting: out.bytes)
        let back = send(nat, error)
        #expect(back.verdict == .forward(.inbound))
        #expect(back.bytes[20] == type.value, "type and code unchanged")
        #expect(back.destination == hostA && back.source == router)
        // The quote is now the datagram exactly as the host sent it.
        let quote = Array(back.bytes[28...])
        #expect(quote == Array(original.prefix(quote.count)))
    }

    @Test func inboundErrorWithShortQuoteKeepsEveryChecksumRight() throws {
        // An 8-byte transport quote (RFC 792's minimum) holds TCP's ports but not its checksum.
        let nat = try makeNAT()
        let out = send(nat, tcp(hostA, 40000, server, 80, [.syn]))
        let error = PacketBuilder.icmpError(from: router, to: pool1, type: .destinationUnreachable,
                                            code: ICMPv4Type.fragmentationNeededCode, quoting: out.bytes,
                                            quoteLength: 28, nextHopMTU: 1400)
        let back = send(nat, error)
        #expect(back.verdict == .forward(.inbound))
        let quote = Array(back.bytes[28...])
        #expect(quote == Array(tcp(hostA, 40000, server, 80, [.syn]).prefix(28)))
        #expect(back.view { ICMPv4Message(unchecked: IPv4Packet(unchecked: $0).payload).nextHopMTU } == 1400)
    }

    @Test func outboundErrorAboutInboundDatagramIsTranslated() throws {
        // The server answers hostA's query; hostA's port is closed by then and it says so.
        let nat = try makeNAT()
        let query = send(nat, udp(hostA, 5353, server, 9000))
        let answer = send(nat, udp(server, 9000, pool1, query.sourcePort, payload: Array(repeating: 9, count: 40)))
        let error = PacketBuilder.icmpError(from: hostA, to: server, type: .destinationUnreachable, code: 3,
                                            quoting: answer.bytes)
        let out = send(nat, error)
        #expect(out.verdict == .forward(.outbound) && out.source == pool1 && out.destination == server)
        let quote = Array(out.bytes[28...])
        #expect(quote == udp(server, 9000, pool1, query.sourcePort, payload: Array(repeating: 9, count: 40)),
                "the server sees its own datagram, as it sent it")
    }

    @Test func rfc5508Req4ErrorWithoutFlowIsDropped() throws {
        let nat = try makeNAT()
        let stranger = udp(pool1, 5000, server, 9000)
        let error = PacketBuilder.icmpError(from: router, to: pool1, type: .destinationUnreachable, code: 3,
                                            quoting: stranger)
        #expect(send(nat, error).verdict == .drop(.icmpErrorNoFlow))
        #expect(nat.flowCount == 0)
    }

    @Test func rfc5508ErrorsNeverRefreshAFlow() throws {
        let nat = try makeNAT()
        let out = send(nat, udp(hostA, 5000, server, 9000), at: 0)
        let error = PacketBuilder.icmpError(from: router, to: pool1, type: .destinationUnreachable, code: 3,
                                            quoting: out.bytes)
        #expect(send(nat, error, at: 299).verdict == .forward(.inbound))
        nat.expire(now: .seconds(300), budget: 10)
        #expect(nat.flowCount == 0, "the error at 299 s did not extend the flow")
    }

    @Test func rfc5508Req3ErrorWithBadChecksumIsDropped() throws {
        let nat = try makeNAT()
        let out = send(nat, udp(hostA, 5000, server, 9000))
        var error = PacketBuilder.icmpError(from: router, to: pool1, type: .timeExceeded, code: 0, quoting: out.bytes)
        error[22] ^= 0xFF
        #expect(send(nat, error).verdict == .drop(.badTransportChecksum))
        var badQuote = PacketBuilder.icmpError(from: router, to: pool1, type: .timeExceeded, code: 0, quoting: out.bytes)
        badQuote[28 + 10] ^= 0xFF  // the quoted IP header checksum goes wrong, the outer ICMP checksum stays right
        badQuote.withUnsafeMutableBytes { ICMPv4Message(unchecked: IPv4Packet(unchecked: $0).payload).fillChecksum() }
        #expect(send(nat, badQuote).verdict == .drop(.badIPv4Checksum))
    }

    @Test func redirectsAndOtherTypesAreNotTranslated() throws {
        let nat = try makeNAT()
        let out = send(nat, udp(hostA, 5000, server, 9000))
        let redirect = PacketBuilder.icmpError(from: router, to: pool1, type: .redirect, code: 1, quoting: out.bytes)
        #expect(send(nat, redirect).verdict == .drop(.unsupportedICMP))
    }
}
