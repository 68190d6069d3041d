import NatTable
import PacketKit
import Testing

/// RFC 5382 (NAT behavioural requirements for TCP), one test per requirement.
@Suite struct RFC5382Tests {
    /// Opens a connection hostA:sport -> server:80 and returns the external port.
    func open(_ nat: NAT, sport: UInt16 = 40000, at t: UInt64 = 0) -> UInt16 {
        let syn = send(nat, tcp(hostA, sport, server, 80, [.syn]), at: t)
        #expect(syn.verdict == .forward(.outbound))
        #expect(send(nat, tcp(server, 80, pool1, syn.sourcePort, [.syn, .ack]), at: t).verdict == .forward(.inbound))
        #expect(send(nat, tcp(hostA, sport, server, 80, [.ack]), at: t).verdict == .forward(.outbound))
        return syn.sourcePort
    }

    @Test func rfc5382Req1EndpointIndependentMapping() throws {
        let nat = try makeNAT()
        let first = send(nat, tcp(hostA, 40000, server, 80, [.syn]))
        let second = send(nat, tcp(hostA, 40000, server2, 443, [.syn]))
        #expect(first.source == second.source && first.sourcePort == second.sourcePort)
    }

    @Test func rfc5382Req2SimultaneousOpen() throws {
        // Even with the strictest filter, a SYN from the endpoint the host is already calling gets in.
        let nat = try makeNAT(filtering: .addressAndPortDependent)
        let syn = send(nat, tcp(hostA, 40000, server, 5000, [.syn]), at: 0)
        let crossing = send(nat, tcp(server, 5000, pool1, syn.sourcePort, [.syn]), at: 0)
        #expect(crossing.verdict == .forward(.inbound) && crossing.destination == hostA && crossing.destinationPort == 40000)
        #expect(send(nat, tcp(hostA, 40000, server, 5000, [.syn, .ack]), at: 1).verdict == .forward(.outbound))
        #expect(send(nat, tcp(server, 5000, pool1, syn.sourcePort, [.syn, .ack]), at: 1).verdict == .forward(.inbound))
        // Both SYNs seen: established, so it outlives the transitory timeout.
        nat.expire(now: .seconds(1 + 7439), budget: 100)
        #expect(nat.flowCount == 1)
    }

    @Test func rfc5382Req3UnsolicitedSYNIsDropped() throws {
        let nat = try makeNAT(filtering: .addressAndPortDependent)
        let port = open(nat)
        #expect(send(nat, tcp(server2, 80, pool1, port, [.syn])).verdict == .drop(.filtered))
        #expect(send(nat, tcp(server2, 80, pool1, 9999, [.syn])).verdict == .drop(.noMapping))
    }

    @Test func rfc5382Req5EstablishedTimeoutAtLeast2h4m() throws {
        let nat = try makeNAT()
        let port = open(nat)
        nat.expire(now: .seconds(7439), budget: 100)
        #expect(send(nat, tcp(server, 80, pool1, port, [.ack]), at: 7439).verdict == .forward(.inbound))
        nat.expire(now: .seconds(7439 + 7440), budget: 100)
        #expect(nat.flowCount == 0 && nat.mappingCount == 0)
    }

    typealias Segment = (outbound: Bool, flags: TCPFlags)
    static let openingSyn: Segment = (true, [.syn])
    static let synAck: Segment = (false, [.syn, .ack])
    static let transitorySequences: [(String, [Segment])] = [
        ("half open", [openingSyn]),
        ("both closed", [openingSyn, synAck, (true, [.fin, .ack]), (false, [.fin, .ack])]),
        ("reset", [openingSyn, synAck, (true, [.ack]), (false, [.rst])]),
        ("one side closed", [openingSyn, synAck, (true, [.fin, .ack])]),
    ]

    @Test(arguments: transitorySequences)
    func rfc5382Req5TransitoryTimeoutAtLeast4m(name: String, segments: [Segment]) throws {
        let nat = try makeNAT()
        var port: UInt16 = 0
        for (outbound, flags) in segments {
            let result = outbound
                ? send(nat, tcp(hostA, 40000, server, 80, flags), at: 0)
                : send(nat, tcp(server, 80, pool1, port, flags), at: 0)
            if outbound { port = result.sourcePort }
            #expect(result.verdict != .drop(.noMapping), "\(name)")
        }
        nat.expire(now: .seconds(239), budget: 100)
        #expect(nat.flowCount == 1, "\(name): kept for 4 minutes")
        nat.expire(now: .seconds(240), budget: 100)
        #expect(nat.flowCount == 0, "\(name): gone after 4 minutes")
    }

    @Test func newSYNReusingAClosedFourTupleOpensAfresh() throws {
        let nat = try makeNAT()
        let port = open(nat)
        send(nat, tcp(hostA, 40000, server, 80, [.rst]), at: 10)
        #expect(send(nat, tcp(hostA, 40000, server, 80, [.syn]), at: 20).sourcePort == port)
        #expect(send(nat, tcp(server, 80, pool1, port, [.syn, .ack]), at: 20).verdict == .forward(.inbound))
        nat.expire(now: .seconds(20 + 3600), budget: 100)
        #expect(nat.flowCount == 1, "established again, not stuck in the reset state")
    }

    @Test func outboundMidStreamSegmentPicksUpConnectionAsEstablished() throws {
        // A NAT that restarted sees an ACK of a connection it never saw open: like nf_conntrack_tcp_loose, it
        // takes it up rather than cutting the connection, and it is established once the other side answers.
        let nat = try makeNAT()
        let ack = send(nat, tcp(hostA, 40000, server, 80, [.ack], payload: [1, 2, 3]))
        #expect(ack.verdict == .forward(.outbound))
        #expect(send(nat, tcp(server, 80, pool1, ack.sourcePort, [.ack])).verdict == .forward(.inbound))
        nat.expire(now: .seconds(3600), budget: 100)
        #expect(nat.flowCount == 1)
    }

    @Test func rfc5382Req8Hairpinning() throws {
        let nat = try makeNAT()
        let a = open(nat, sport: 40000)
        let b = send(nat, tcp(hostB, 41000, server, 80, [.syn]))
        let hairpin = send(nat, tcp(hostA, 40000, pool1, b.sourcePort, [.syn]))
        #expect(hairpin.verdict == .forward(.hairpin))
        #expect(hairpin.destination == hostB && hairpin.destinationPort == 41000)
        #expect(hairpin.source == pool1 && hairpin.sourcePort == a)
    }

    @Test func badTCPChecksumIsDroppedAndCounted() throws {
        let nat = try makeNAT()
        var packet = tcp(hostA, 40000, server, 80, [.syn])
        packet[20 + 16] ^= 0x01
        #expect(send(nat, packet).verdict == .drop(.badTransportChecksum))
        #expect(nat.flowCount == 0 && nat.counters[.badTransportChecksum] == 1)
    }
}
