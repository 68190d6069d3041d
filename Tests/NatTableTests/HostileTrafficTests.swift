import NatTable
import PacketKit
import Testing

/// What an outsider can do to the table, rule by rule: nothing inbound grows state past a bound, blind RSTs and
/// FINs are refused, picked-up connections and full tables cannot be used to take ports, and the keys differ
/// from run to run.
@Suite struct HostileTrafficTests {
    func segment(_ from: (IPv4Address, UInt16), _ to: (IPv4Address, UInt16), _ flags: TCPFlags, seq: UInt32,
                 ack: UInt32 = 0, window: UInt16 = 65535, scale: UInt8? = nil, payload: Int = 0) -> [UInt8] {
        let options: [UInt8] = scale.map { [1, 3, 3, $0] } ?? []
        return PacketBuilder.tcp(from: from, to: to, flags: flags, sequence: seq, acknowledgment: ack, window: window,
                                 options: options, payload: [UInt8](repeating: 0x61, count: payload))
    }

    /// A connection opened through the NAT (window scale 7 both ways unless told otherwise), with a few bytes
    /// sent each way. Returns the external endpoint and the next sequence numbers of each side.
    func established(_ nat: NAT, scale: UInt8? = 7, at t: UInt64 = 0)
        -> (port: UInt16, clientNext: UInt32, serverNext: UInt32) {
        let syn = send(nat, segment((hostA, 40000), (server, 443), [.syn], seq: 1000, window: 64240, scale: scale), at: t)
        let port = syn.sourcePort
        send(nat, segment((server, 443), (pool1, port), [.syn, .ack], seq: 5000, ack: 1001, window: 65160, scale: scale),
             at: t)
        send(nat, segment((hostA, 40000), (server, 443), [.ack], seq: 1001, ack: 5001, window: 502, payload: 100), at: t)
        send(nat, segment((server, 443), (pool1, port), [.ack], seq: 5001, ack: 1101, window: 509, payload: 200), at: t)
        return (port, 1101, 5201)
    }

    // MARK: Inbound state

    @Test func inboundFromNewRemotesCreatesAtMostTheBoundThenPassesWithoutState() throws {
        let nat = try makeNAT { $0.maxInboundFlowsPerMapping = 4 }
        let out = send(nat, udp(hostA, 5000, server, 3478))
        for i in 0..<1000 {
            let remote = IPv4Address(198, 19, UInt8(1 + i >> 8), UInt8(i & 0xFF))
            let r = send(nat, udp(remote, 9999, pool1, out.sourcePort))
            // Endpoint-independent filtering: every remote may send to the mapping...
            #expect(r.verdict == .forward(.inbound) && r.destination == hostA)
        }
        // ...but only four of them leave a flow behind.
        #expect(nat.flowCount == 1 + 4)
        #expect(nat.counters.inboundFlowLimit == 996)
        #expect(nat.counters.flowsCreated == 5)
        // The host's own flows are not limited by it.
        send(nat, udp(hostA, 5000, server2, 3478))
        #expect(nat.flowCount == 6)
    }

    @Test func dependentFilteringCreatesNothingInbound() throws {
        let nat = try makeNAT(filtering: .addressDependent)
        let out = send(nat, udp(hostA, 5000, server, 3478))
        // From the address the host sent to, another port: let in, and no flow for it.
        #expect(send(nat, udp(server, 3479, pool1, out.sourcePort)).verdict == .forward(.inbound))
        #expect(nat.flowCount == 1)
        #expect(send(nat, udp(server2, 3478, pool1, out.sourcePort)).verdict == .drop(.filtered))
        let strict = try makeNAT(filtering: .addressAndPortDependent)
        let o = send(strict, udp(hostA, 5000, server, 3478))
        #expect(send(strict, udp(server, 3479, pool1, o.sourcePort)).verdict == .drop(.filtered))
        #expect(strict.flowCount == 1)
    }

    @Test func onlyASYNFromOutsideMayOpenATCPFlow() throws {
        let nat = try makeNAT()
        let out = send(nat, segment((hostA, 40000), (server, 443), [.syn], seq: 1))
        for flags: TCPFlags in [[.ack], [.rst], [.fin, .ack], [.syn, .ack], [.rst, .ack]] {
            #expect(send(nat, segment((server2, 80), (pool1, out.sourcePort), flags, seq: 9)).verdict == .drop(.tcpNoFlow))
        }
        #expect(nat.flowCount == 1)
        // A SYN from another remote (simultaneous open, RFC 5382 REQ-3 with endpoint-independent filtering).
        #expect(send(nat, segment((server2, 80), (pool1, out.sourcePort), [.syn], seq: 9)).verdict == .forward(.inbound))
        #expect(nat.flowCount == 2)
        // An outbound RST opens nothing either.
        #expect(send(nat, segment((hostB, 1234), (server, 443), [.rst], seq: 1)).verdict == .drop(.noMapping))
        #expect(nat.mappingCount == 1)
    }

    @Test func inboundEchoRequestsNeverReachAHost() throws {
        let nat = try makeNAT()
        let out = send(nat, ping(hostA, server, id: 77))
        // Not from the host pinged, not from anyone else, even through the host's own query mapping.
        #expect(send(nat, ping(server, pool1, id: out.sourcePort)).verdict == .drop(.inboundRequest))
        #expect(send(nat, ping(server2, pool1, id: out.sourcePort)).verdict == .drop(.inboundRequest))
        // A reply from someone not asked makes no flow and does not pass.
        #expect(send(nat, ping(server2, pool1, id: out.sourcePort, reply: true)).verdict == .drop(.filtered))
        let reply = send(nat, ping(server, pool1, id: out.sourcePort, reply: true))
        #expect(reply.verdict == .forward(.inbound) && reply.destination == hostA)
        #expect(nat.counters[.inboundRequest] == 2 && nat.flowCount == 1)
    }

    // MARK: TCP windows

    @Test func aBlindRSTIsRefusedAndTheConnectionKeepsItsTimer() throws {
        let nat = try makeNAT()
        let c = established(nat)
        // The server's receive window is 509 << 7 = 65,152 bytes: far outside it, in either direction.
        for seq in [c.serverNext &+ 1_000_000, c.serverNext &- 1_000_000, c.serverNext &+ 0x8000_0000] {
            #expect(send(nat, segment((server, 443), (pool1, c.port), [.rst], seq: seq), at: 10).verdict
                    == .drop(.outOfWindow))
            #expect(send(nat, segment((server, 443), (pool1, c.port), [.fin, .ack], seq: seq, ack: c.clientNext), at: 10)
                    .verdict == .drop(.outOfWindow))
        }
        #expect(nat.counters[.outOfWindow] == 6)
        // Still established: alive after the transitory timeout, gone only after the established one.
        nat.expire(now: .seconds(10 + 3600), budget: 100)
        #expect(nat.flowCount == 1)
        // An RST in the window ends it as before (transitory timer).
        #expect(send(nat, segment((server, 443), (pool1, c.port), [.rst], seq: c.serverNext &+ 20_000), at: 3700).verdict
                == .forward(.inbound))
        nat.expire(now: .seconds(3700 + 240), budget: 100)
        #expect(nat.flowCount == 0)
    }

    @Test func anRSTFromThePrivateSideIsCheckedToo() throws {
        let nat = try makeNAT()
        let c = established(nat)
        #expect(send(nat, segment((hostA, 40000), (server, 443), [.rst], seq: c.clientNext &+ 50_000_000)).verdict
                == .drop(.outOfWindow))
        #expect(send(nat, segment((hostA, 40000), (server, 443), [.rst], seq: c.clientNext)).verdict == .forward(.outbound))
    }

    @Test func withoutWindowScalingTheWindowIsTheAdvertisedOne() throws {
        let nat = try makeNAT()
        let c = established(nat, scale: nil)
        // The client's window is 502 bytes, unscaled: 10,000 bytes ahead is outside it.
        #expect(send(nat, segment((server, 443), (pool1, c.port), [.rst], seq: c.serverNext &+ 70_000)).verdict
                == .drop(.outOfWindow))
        #expect(send(nat, segment((server, 443), (pool1, c.port), [.rst], seq: c.serverNext &+ 300)).verdict
                == .forward(.inbound))
    }

    @Test func anRSTAnsweringASYNMustAcknowledgeIt() throws {
        let nat = try makeNAT()
        let syn = send(nat, segment((hostA, 40000), (server, 443), [.syn], seq: 1000))
        // ACK = ISS (what the RST-injection capture does) is not acceptable in SYN-SENT (RFC 9293 3.10.7.3).
        #expect(send(nat, segment((server, 443), (pool1, syn.sourcePort), [.rst, .ack], seq: 0, ack: 1000)).verdict
                == .drop(.outOfWindow))
        #expect(send(nat, segment((server, 443), (pool1, syn.sourcePort), [.rst], seq: 0)).verdict == .drop(.outOfWindow))
        #expect(send(nat, segment((server, 443), (pool1, syn.sourcePort), [.rst, .ack], seq: 0, ack: 1001)).verdict
                == .forward(.inbound))
    }

    @Test func aTakenOverFlowLearnsItsWindowsFromTheNextSegments() throws {
        let active = try makeNAT(seed: 1)
        active.recordChanges(true)
        let c = established(active)
        let replica = try makeNAT(seed: 2)
        replica.setLive(false, now: .seconds(0))
        for r in active.takeChanges().records { try replica.apply(r, now: .seconds(0)) }
        replica.setLive(true, now: .seconds(5))
        // Nothing known yet: the first segments teach the replica where each side is.
        send(replica, segment((hostA, 40000), (server, 443), [.ack], seq: c.clientNext, ack: c.serverNext, window: 502), at: 5)
        send(replica, segment((server, 443), (pool1, c.port), [.ack], seq: c.serverNext, ack: c.clientNext, window: 509), at: 5)
        // Scales unknown (no handshake seen): the largest window is assumed, so only what is beyond it is refused.
        #expect(send(replica, segment((server, 443), (pool1, c.port), [.rst], seq: c.serverNext &+ 0x6000_0000), at: 5)
                .verdict == .drop(.outOfWindow))
        #expect(send(replica, segment((server, 443), (pool1, c.port), [.rst], seq: c.serverNext &+ 1_000_000), at: 5)
                .verdict == .forward(.inbound))
    }

    // MARK: Picked-up flows, limits, eviction

    @Test func aPickedUpFlowHasTheShortTimerUntilTheOtherSideAnswers() throws {
        let nat = try makeNAT()
        let ack = send(nat, segment((hostA, 40000), (server, 80), [.ack], seq: 7, ack: 9))
        #expect(ack.verdict == .forward(.outbound))
        let other = send(nat, segment((hostA, 40001), (server, 80), [.ack], seq: 7, ack: 9))
        nat.expire(now: .seconds(29), budget: 100)
        #expect(nat.flowCount == 2)
        // The server answers one of them: that one is established.
        #expect(send(nat, segment((server, 80), (pool1, other.sourcePort), [.ack], seq: 9, ack: 7), at: 29).verdict
                == .forward(.inbound))
        nat.expire(now: .seconds(30), budget: 100)
        #expect(nat.flowCount == 1)
        nat.expire(now: .seconds(29 + 7439), budget: 100)
        #expect(nat.flowCount == 1)
        #expect(NatConfiguration.Timeouts().tcpUnreplied == 30)
    }

    /// A server answers a bare ACK of a connection it does not have with an RST whose sequence number is that
    /// ACK's acknowledgment (RFC 9293 3.10.7.1): it passes, and the flow keeps the short timer.
    @Test func theRSTAnsweringAPickedUpSegmentPassesAndKeepsTheShortTimer() throws {
        let nat = try makeNAT()
        let ack = send(nat, segment((hostA, 40000), (server, 80), [.ack], seq: 7, ack: 123_456_789))
        #expect(send(nat, segment((server, 80), (pool1, ack.sourcePort), [.rst], seq: 123_456_789)).verdict
                == .forward(.inbound))
        nat.expire(now: .seconds(30), budget: 10)
        #expect(nat.flowCount == 0)
    }

    @Test func bareACKsFromOneHostCannotTakeEveryPort() throws {
        // The default per-host limit: a quarter of a pool address's ports.
        let nat = try makeNAT(maxFlows: 100_000) { $0.maxFlowsPerHost = NatConfiguration.defaultMaxFlowsPerHost }
        for port in 1...UInt16(65535) {
            send(nat, segment((hostA, port), (server, 80), [.ack], seq: 1, ack: 1))
        }
        // At its limit, each new one replaces the host's own oldest: the host never holds more.
        #expect(nat.flowCount == NatConfiguration.defaultMaxFlowsPerHost)
        #expect(nat.counters.flowsEvicted == 65535 - UInt64(NatConfiguration.defaultMaxFlowsPerHost))
        #expect(send(nat, segment((hostB, 40000), (server, 443), [.syn], seq: 1)).verdict == .forward(.outbound))
        // And they are gone after the unreplied timeout, not two hours.
        nat.expire(now: .seconds(30), budget: 100_000)
        #expect(nat.flowCount == 1)
    }

    @Test func aFullTableEvictsUnrepliedThenOneOffUDPThenTransitoryNeverEstablishedOrStreams() throws {
        let nat = try makeNAT(maxFlows: 5)
        let c = established(nat)
        stream(nat, hostA, 5000, at: 1)
        send(nat, segment((hostB, 41000), (server, 443), [.syn], seq: 1), at: 2)      // transitory (opening)
        send(nat, segment((hostB, 41001), (server, 80), [.ack], seq: 1, ack: 1), at: 3)  // unreplied
        send(nat, udp(hostB, 7000, server, 9000), at: 3)                              // one datagram, no answer
        #expect(nat.flowCount == 5)
        stream(nat, hostB, 6000, at: 4)
        #expect(nat.counters.flowsEvicted == 1)
        #expect(nat.externalEndpoint(protocol: .tcp, address: hostB, port: Port(41001)) == nil, "the unreplied one went first")
        stream(nat, hostB, 6001, at: 5)
        #expect(nat.externalEndpoint(protocol: .udp, address: hostB, port: Port(7000)) == nil, "then the one-off datagram")
        stream(nat, hostB, 6002, at: 6)
        #expect(nat.externalEndpoint(protocol: .tcp, address: hostB, port: Port(41000)) == nil, "then the transitory one")
        // Only established TCP and UDP streams are left: nothing may be evicted for a new flow.
        #expect(send(nat, udp(hostB, 6003, server, 9000), at: 6).verdict == .drop(.tableFull))
        #expect(send(nat, segment((server, 443), (pool1, c.port), [.ack], seq: c.serverNext, ack: c.clientNext), at: 7)
                .verdict == .forward(.inbound))
        #expect(nat.counters.flowsEvicted == 3)
    }

    /// A host making many short connections: closed ones hold their flows for the transitory timeout, so at its
    /// limit the host's oldest closed connection makes room, not a refusal for four minutes. Another host's
    /// transitory flows and the host's established ones are never taken for it.
    @Test func aHostAtItsLimitReplacesItsOwnOldestClosedConnection() throws {
        let nat = try makeNAT(perHost: 3)
        send(nat, segment((hostB, 42000), (server, 443), [.syn], seq: 1), at: 0)  // hostB's, transitory, oldest
        let open = established(nat, at: 1)  // hostA 40000, established
        var closed: [UInt16] = []
        for (i, port) in [UInt16(40001), 40002].enumerated() {
            let t = UInt64(2 + i)
            let syn = send(nat, segment((hostA, port), (server, 443), [.syn], seq: 10), at: t)
            send(nat, segment((server, 443), (pool1, syn.sourcePort), [.syn, .ack], seq: 20, ack: 11), at: t)
            send(nat, segment((hostA, port), (server, 443), [.ack, .fin], seq: 11, ack: 21), at: t)
            send(nat, segment((server, 443), (pool1, syn.sourcePort), [.ack, .fin], seq: 21, ack: 12), at: t)
            send(nat, segment((hostA, port), (server, 443), [.ack], seq: 12, ack: 22), at: t)
            closed.append(port)
        }
        #expect(nat.flowCount == 4)
        #expect(send(nat, segment((hostA, 40003), (server, 443), [.syn], seq: 1), at: 10).verdict == .forward(.outbound))
        #expect(nat.counters.flowsEvicted == 1 && nat.counters[.hostLimit] == 0)
        #expect(nat.externalEndpoint(protocol: .tcp, address: hostA, port: Port(closed[0])) == nil, "the oldest closed one went")
        #expect(nat.externalEndpoint(protocol: .tcp, address: hostA, port: Port(closed[1])) != nil)
        #expect(nat.externalEndpoint(protocol: .tcp, address: hostB, port: Port(42000)) != nil, "not another host's")
        // Left: the established one, the second closed one, the new opening one. The transitory ones go in turn,
        // oldest first; the established connection stays and keeps flowing.
        #expect(send(nat, segment((hostA, 40004), (server, 443), [.syn], seq: 1), at: 11).verdict == .forward(.outbound))
        #expect(send(nat, segment((hostA, 40005), (server, 443), [.syn], seq: 1), at: 12).verdict == .forward(.outbound))
        #expect(send(nat, segment((server, 443), (pool1, open.port), [.ack], seq: open.serverNext, ack: open.clientNext),
                     at: 13).verdict == .forward(.inbound))
        // UDP streams are never evicted: at its limit with them, the host is refused. A one-off datagram's flow is.
        let udpOnly = try makeNAT(perHost: 1)
        stream(udpOnly, hostA, 5000)
        #expect(send(udpOnly, segment((hostA, 40000), (server, 443), [.syn], seq: 1)).verdict == .drop(.hostLimit))
        let oneOff = try makeNAT(perHost: 1)
        send(oneOff, udp(hostA, 5000, server, 9000))
        #expect(send(oneOff, segment((hostA, 40000), (server, 443), [.syn], seq: 1)).verdict == .forward(.outbound))
        #expect(oneOff.externalEndpoint(protocol: .udp, address: hostA, port: Port(5000)) == nil)
    }

    @Test func aNewFlowOnAMappingWithOneTransitoryFlowDoesNotLoseTheMapping() throws {
        let nat = try makeNAT(maxFlows: 1)
        let syn = send(nat, segment((hostA, 40000), (server, 443), [.syn], seq: 1))
        // The same internal endpoint to another remote: the only evictable flow is the mapping's own.
        let second = send(nat, segment((hostA, 40000), (server2, 443), [.syn], seq: 1))
        #expect(second.verdict == .drop(.tableFull))
        #expect(nat.externalEndpoint(protocol: .tcp, address: hostA, port: Port(40000))?.port.value == syn.sourcePort)
    }

    // MARK: Keys

    @Test func differentSeedsPickDifferentPortsButTheSamePoolAddress() throws {
        let pool = (1...8).map { IPv4Address(198, 18, 0, UInt8($0)) }
        let a = try makeNAT(pool: pool, seed: 1)
        let b = try makeNAT(pool: pool, seed: 2)
        var samePorts = 0
        var compared = 0
        for i in 0..<64 {
            let host = IPv4Address(10, 0, 1, UInt8(i))
            let x = send(a, udp(host, 2000, server, 9000))
            let y = send(b, udp(host, 2000, server, 9000))
            #expect(x.source == y.source, "paired pooling comes from the configuration, not the seed")
            let x2 = send(a, udp(IPv4Address(10, 0, 2, UInt8(i)), 2000, server, 9000))
            let y2 = send(b, udp(IPv4Address(10, 0, 2, UInt8(i)), 2000, server, 9000))
            // Same pool address as the first host: port 2000 is taken, so a random one is drawn.
            guard x2.source == x.source else { continue }
            compared += 1
            if x2.sourcePort == y2.sourcePort { samePorts += 1 }
        }
        #expect(compared > 0)
        #expect(samePorts * 2 < compared, "randomised ports differ between seeds")
    }
}
