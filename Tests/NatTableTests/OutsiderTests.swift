import NatTable
import PacketKit
import Testing

/// What outsiders, forging hosts and ordinary traffic can do to a host's and the table's budgets, and to a
/// connection's tracking: each test is a way to starve a host, the pool or a connection that worked before.
@Suite struct OutsiderTests {
    func segment(_ from: (IPv4Address, UInt16), _ to: (IPv4Address, UInt16), _ flags: TCPFlags, seq: UInt32,
                 ack: UInt32 = 0, window: UInt16 = 509, scale: UInt8? = nil) -> [UInt8] {
        PacketBuilder.tcp(from: from, to: to, flags: flags, sequence: seq, acknowledgment: ack, window: window,
                          options: scale.map { [1, 3, 3, $0] } ?? [])
    }

    /// hostA:40000 to server:443, handshake seen, window scale 7 both ways. Returns the external port.
    func open(_ nat: NAT, clientISN: UInt32, serverISN: UInt32, at t: UInt64 = 0) -> UInt16 {
        let syn = send(nat, segment((hostA, 40000), (server, 443), [.syn], seq: clientISN, window: 64240, scale: 7), at: t)
        send(nat, segment((server, 443), (pool1, syn.sourcePort), [.syn, .ack], seq: serverISN, ack: clientISN &+ 1,
                          window: 65160, scale: 7), at: t)
        send(nat, segment((hostA, 40000), (server, 443), [.ack], seq: clientISN &+ 1, ack: serverISN &+ 1), at: t)
        return syn.sourcePort
    }

    /// Both sides close: FIN, FIN, ACK. The flow stays, transitory.
    func close(_ nat: NAT, port: UInt16, clientNext: UInt32, serverNext: UInt32, at t: UInt64 = 0) {
        #expect(send(nat, segment((hostA, 40000), (server, 443), [.fin, .ack], seq: clientNext, ack: serverNext), at: t)
                .verdict == .forward(.outbound))
        #expect(send(nat, segment((server, 443), (pool1, port), [.fin, .ack], seq: serverNext, ack: clientNext &+ 1), at: t)
                .verdict == .forward(.inbound))
        send(nat, segment((hostA, 40000), (server, 443), [.ack], seq: clientNext &+ 1, ack: serverNext &+ 1), at: t)
    }

    // MARK: Accounting

    /// An outsider's datagrams to a host's mapping (endpoint-independent filtering) make flows, but those count
    /// against their own budget, never the host's: the host keeps every flow it may open.
    @Test func flowsMadeFromOutsideNeverUseUpTheHostsLimit() throws {
        let nat = try makeNAT(perHost: 4)
        let port = stream(nat, hostA, 5000)
        for i in 0..<16 { send(nat, udp(IPv4Address(198, 19, 1, UInt8(i)), 7000, pool1, port)) }
        #expect(nat.flowCount == 17 && nat.inboundFlowCount == 16)
        for p in UInt16(5001)...5003 {
            #expect(send(nat, udp(hostA, p, server, 9000)).verdict == .forward(.outbound))
        }
        #expect(nat.counters[.hostLimit] == 0)
    }

    /// The table-wide budget: past it an inbound datagram still reaches the host through its mapping, leaving no
    /// state; and in a full table, a host's new flow evicts one made from outside.
    @Test func flowsMadeFromOutsideHaveATableWideBudgetAndMakeRoom() throws {
        let nat = try makeNAT(maxFlows: 24) { $0.maxInboundFlows = 20 }
        let ports = (0..<4).map { stream(nat, hostA, UInt16(5000 + $0)) }
        for port in ports {
            for i in 0..<16 {
                let r = send(nat, udp(IPv4Address(198, 19, 2, UInt8(i)), 7000, pool1, port))
                #expect(r.verdict == .forward(.inbound) && r.destination == hostA)
            }
        }
        #expect(nat.inboundFlowCount == 20 && nat.counters.inboundFlowLimit == 64 - 20)
        #expect(nat.flowCount == 24)
        // Full: a host's new stream takes the place of an outsider's flow, not a refusal.
        stream(nat, hostB, 6000)
        #expect(nat.counters[.tableFull] == 0 && nat.counters.flowsEvicted == 1 && nat.inboundFlowCount == 19)
    }

    /// A resolver or a crawler behind the NAT: one datagram each way per source port, many new flows a second,
    /// never to a request/response port. At its limit the host replaces its own oldest single exchange; it never
    /// finds itself refused, not even its pings, and its streams stay.
    @Test func aHostOfSingleExchangesReplacesItsOwnOldestAndIsNeverLockedOut() throws {
        let nat = try makeNAT(maxFlows: 10_000, perHost: 1_000) { $0.requestResponsePorts = [] }
        let kept = stream(nat, hostA, 4000)
        for i in 0..<5_000 {
            let t = UInt64(i / 500)
            let port = UInt16(10_000 + i)
            let out = send(nat, udp(hostA, port, server, 9000), at: t)
            #expect(out.verdict == .forward(.outbound))
            send(nat, udp(server, 9000, pool1, out.sourcePort), at: t)
        }
        #expect(nat.counters[.hostLimit] == 0 && nat.flowCount == 1_000)
        #expect(send(nat, ping(hostA, server, id: 9), at: 10).verdict == .forward(.outbound))
        #expect(send(nat, udp(server, 9000, pool1, kept), at: 10).verdict == .forward(.inbound), "the stream stayed")
    }

    /// RFC 4787 REQ-5a: a single DNS exchange lives 30 s, not 5 minutes; a socket that asks again after its answer
    /// is a stream with the full UDP timer.
    @Test func aSingleExchangeToAWellKnownRequestResponsePortHasTheShortTimer() throws {
        let nat = try makeNAT()
        let one = send(nat, udp(hostA, 30000, server, 53), at: 0)
        send(nat, udp(server, 53, pool1, one.sourcePort), at: 0)
        stream(nat, hostA, 30001, server, 53, at: 0)
        send(nat, udp(hostA, 30002, server, 9000), at: 0)  // any other port: the full UDP timer
        nat.expire(now: .seconds(29), budget: 100)
        #expect(nat.flowCount == 3)
        nat.expire(now: .seconds(30), budget: 100)
        #expect(nat.flowCount == 2)
        #expect(nat.externalEndpoint(protocol: .udp, address: hostA, port: Port(30000)) == nil)
        nat.expire(now: .seconds(300), budget: 100)
        #expect(nat.flowCount == 0)
    }

    // MARK: Forged sources

    /// A host that forges sources within its subnet takes a new mapping per source; the per-prefix limit bounds
    /// them all together, and the rest of the private network is untouched.
    @Test func forgedSourcesWithinAPrefixCannotEscapeItsLimit() throws {
        let nat = try makeNAT(maxFlows: 10_000, perHost: 16) { $0.maxFlowsPerPrefix = 100 }
        for i in 0..<100 { stream(nat, IPv4Address(10, 0, 0, UInt8(i)), UInt16(20_000 + i)) }
        for i in 100..<1_000 {
            #expect(send(nat, udp(IPv4Address(10, 0, 0, UInt8(i & 0xFF)), UInt16(20_000 + i), server, 9000)).verdict
                    == .drop(.prefixLimit))
        }
        #expect(nat.flowCount == 100)
        #expect(nat.counters[.prefixLimit] == 900)
        #expect(send(nat, udp(IPv4Address(10, 0, 1, 5), 5000, server, 9000)).verdict == .forward(.outbound))
        // One-off datagrams from forged sources replace the prefix's own one-off flows, never its streams.
        let flood = try makeNAT(maxFlows: 10_000) { $0.maxFlowsPerPrefix = 100 }
        let kept = stream(flood, hostA, 4000)
        for i in 0..<1_000 { send(flood, udp(IPv4Address(10, 0, 0, UInt8(i & 0xFF)), UInt16(20_000 + i), server, 9000)) }
        #expect(flood.flowCount == 100 && flood.counters[.prefixLimit] == 0)
        #expect(send(flood, udp(server, 9000, pool1, kept)).verdict == .forward(.inbound))
    }

    /// An ICMP error from the private side is sent on only by the host whose flow it quotes, and only to the
    /// remote that sent the quoted datagram.
    @Test func aPrivateHostsICMPErrorMustQuoteItsOwnFlowAndGoToItsRemote() throws {
        let nat = try makeNAT()
        let outA = send(nat, udp(hostA, 5000, server, 9000))
        let inbound = send(nat, udp(server, 9000, pool1, outA.sourcePort))
        // hostB reports on hostA's flow.
        let forged = PacketBuilder.icmpError(from: hostB, to: server, type: .destinationUnreachable, code: 3,
                                             quoting: inbound.bytes)
        #expect(send(nat, forged).verdict == .drop(.icmpErrorForeign))
        // hostA quotes its own flow but sends the error elsewhere.
        let elsewhere = PacketBuilder.icmpError(from: hostA, to: server2, type: .destinationUnreachable, code: 3,
                                                quoting: inbound.bytes)
        #expect(send(nat, elsewhere).verdict == .drop(.icmpErrorForeign))
        let real = PacketBuilder.icmpError(from: hostA, to: server, type: .destinationUnreachable, code: 3,
                                           quoting: inbound.bytes)
        let out = send(nat, real)
        #expect(out.verdict == .forward(.outbound) && out.source == pool1 && out.destination == server)
        #expect(nat.counters[.icmpErrorForeign] == 2)
    }

    // MARK: TCP tracking

    /// Bare ACKs 2^30 apart once walked the tracked sequence space to where a forged RST was accepted. Out-of-
    /// window segments now pass to the host (which answers them) but move nothing.
    @Test func blindACKsCannotWalkTheWindowForAForgedRST() throws {
        let nat = try makeNAT()
        let port = open(nat, clientISN: 1000, serverISN: 5000)
        var seq: UInt32 = 5001
        for _ in 0..<8 {
            seq &+= (1 << 30) + 100_000
            #expect(send(nat, segment((server2, 443), (pool1, port), [.ack], seq: seq, ack: 1001)).verdict == .drop(.tcpNoFlow))
            let blind = send(nat, segment((server, 443), (pool1, port), [.ack], seq: seq, ack: 1001), at: 1)
            #expect(blind.verdict == .forward(.inbound))
        }
        #expect(nat.counters.outOfWindowIgnored == 8)
        #expect(send(nat, segment((server, 443), (pool1, port), [.rst], seq: seq &+ 1, ack: 1001)).verdict
                == .drop(.outOfWindow))
        #expect(send(nat, segment((server, 443), (pool1, port), [.rst], seq: 5001, ack: 1001)).verdict == .forward(.inbound))
    }

    /// A blind segment refreshes nothing: a closed connection still expires on time.
    @Test func blindSegmentsDoNotKeepAFlowAlive() throws {
        let nat = try makeNAT()
        let port = open(nat, clientISN: 1000, serverISN: 5000)
        close(nat, port: port, clientNext: 1001, serverNext: 5001)
        #expect(send(nat, segment((server, 443), (pool1, port), [.ack], seq: 5002 &+ 0x4000_0000, ack: 1002), at: 200)
                .verdict == .forward(.inbound))
        nat.expire(now: .seconds(240), budget: 10)
        #expect(nat.flowCount == 0)
    }

    /// The 4-tuple of a closed connection reused by a new one whose initial sequence numbers lie behind the old
    /// ones (as often as ahead): its FINs and RSTs are the new connection's, not blind ones.
    @Test(arguments: [UInt32(1_000_000), 0x7000_0000, 0x9000_0000])
    func aPortReusedAfterACloseIsANewConnection(behind: UInt32) throws {
        let nat = try makeNAT()
        let port = open(nat, clientISN: 3_000_000_000, serverISN: 4_000_000_000)
        close(nat, port: port, clientNext: 3_000_000_001, serverNext: 4_000_000_001)
        let c2 = 3_000_000_000 &- behind, s2 = 4_000_000_000 &- behind
        #expect(open(nat, clientISN: c2, serverISN: s2, at: 5) == port)
        #expect(send(nat, segment((hostA, 40000), (server, 443), [.fin, .ack], seq: c2 &+ 1, ack: s2 &+ 1), at: 6)
                .verdict == .forward(.outbound))
        #expect(send(nat, segment((server, 443), (pool1, port), [.rst], seq: s2 &+ 1), at: 6).verdict == .forward(.inbound))
        #expect(nat.counters[.outOfWindow] == 0)
    }

    /// A client that gives up on a connection attempt and connects again from the same port picks a new initial
    /// sequence number; the server's SYN-ACK, the FIN and the RST of that connection are all in its window.
    @Test func aNewAttemptFromTheSamePortStartsTheSequenceSpaceAfresh() throws {
        let nat = try makeNAT()
        let first = send(nat, segment((hostA, 40000), (server, 443), [.syn], seq: 2_000_000_000, scale: 7))
        let port = open(nat, clientISN: 2_000_000_000 &- 500_000_000, serverISN: 77, at: 3)
        #expect(port == first.sourcePort)
        #expect(send(nat, segment((hostA, 40000), (server, 443), [.fin, .ack], seq: 1_500_000_001, ack: 78), at: 4)
                .verdict == .forward(.outbound))
        #expect(send(nat, segment((server, 443), (pool1, port), [.rst], seq: 78), at: 4).verdict == .forward(.inbound))
        #expect(nat.counters[.outOfWindow] == 0)
    }

    // MARK: Found by review

    /// A host at its limit hairpins to its own socket whose only flow is the oldest evictable one: making room
    /// for the sender must not take the target's last flow, and with it the mapping the packet is about to use.
    @Test func makingRoomForAHairpinnedPacketSparesItsTarget() throws {
        let nat = try makeNAT(perHost: 2)
        let target = send(nat, udp(hostA, 5000, server, 9000), at: 0).sourcePort
        send(nat, udp(hostA, 5001, server, 9000), at: 1)
        let hairpin = send(nat, udp(hostA, 6000, pool1, target), at: 2)
        #expect(hairpin.verdict == .forward(.hairpin) && hairpin.destination == hostA && hairpin.destinationPort == 5000)
        #expect(nat.externalEndpoint(protocol: .udp, address: hostA, port: Port(5000))?.port.value == target)
        #expect(nat.externalEndpoint(protocol: .udp, address: hostA, port: Port(5001)) == nil, "the other one made room")
        // Every count comes back to zero: nothing was left half-released.
        nat.expire(now: .seconds(1_000), budget: 100)
        #expect(nat.flowCount == 0 && nat.mappingCount == 0 && nat.inboundFlowCount == 0)
        #expect(send(nat, udp(hostA, 5000, server, 9000), at: 1_000).verdict == .forward(.outbound))
    }

    /// SYN|RST and SYN|FIN are no SYNs: they go through the window check like any RST or FIN.
    @Test func aSYNWithRSTOrFINIsCheckedAsAnRSTOrFIN() throws {
        let nat = try makeNAT()
        let syn = send(nat, segment((hostA, 40000), (server, 443), [.syn], seq: 1000, scale: 7))
        for flags: TCPFlags in [[.syn, .rst], [.syn, .fin], [.syn, .rst, .ack]] {
            #expect(send(nat, segment((server, 443), (pool1, syn.sourcePort), flags, seq: 777, ack: 5)).verdict
                    == .drop(.outOfWindow))
        }
        send(nat, segment((server, 443), (pool1, syn.sourcePort), [.syn, .ack], seq: 5000, ack: 1001, scale: 7))
        send(nat, segment((hostA, 40000), (server, 443), [.ack], seq: 1001, ack: 5001))
        nat.expire(now: .seconds(1_000), budget: 10)
        #expect(nat.flowCount == 1, "established, not reset: the 2-hour timer")
    }

    /// A blind SYN-ACK (not acknowledging the client's SYN) restarts nothing; the real one still does, and the
    /// connection's FIN is then in its window.
    @Test func aBlindSYNACKCannotTakeOverTheServersSide() throws {
        let nat = try makeNAT()
        let syn = send(nat, segment((hostA, 40000), (server, 443), [.syn], seq: 1000, scale: 7))
        #expect(send(nat, segment((server, 443), (pool1, syn.sourcePort), [.syn, .ack], seq: 0x4000_0000, ack: 77,
                                  scale: 7)).verdict == .forward(.inbound))
        #expect(nat.counters.outOfWindowIgnored == 1)
        send(nat, segment((server, 443), (pool1, syn.sourcePort), [.syn, .ack], seq: 5000, ack: 1001, scale: 7))
        send(nat, segment((hostA, 40000), (server, 443), [.ack], seq: 1001, ack: 5001))
        #expect(send(nat, segment((server, 443), (pool1, syn.sourcePort), [.fin, .ack], seq: 5001, ack: 1001)).verdict
                == .forward(.inbound))
    }

    /// A forged SYN on a half-closed connection (one FIN) does not restart it: the side still open closes in its
    /// window.
    @Test func aSYNOnAHalfClosedConnectionRestartsNothing() throws {
        let nat = try makeNAT()
        let port = open(nat, clientISN: 1000, serverISN: 5000)
        send(nat, segment((server, 443), (pool1, port), [.fin, .ack], seq: 5001, ack: 1001))
        #expect(send(nat, segment((server, 443), (pool1, port), [.syn], seq: 0x7000_0000)).verdict == .forward(.inbound))
        #expect(send(nat, segment((hostA, 40000), (server, 443), [.fin, .ack], seq: 1001, ack: 5002)).verdict
                == .forward(.outbound))
        #expect(nat.counters[.outOfWindow] == 0)
    }

    /// An inbound SYN let in without state (the inbound budget spent) is answered by the host: the flow its
    /// SYN-ACK makes learns the remote's side from the ACK that completes the handshake.
    @Test func aHandshakeAnsweredByTheHostIsTrackedFromTheRemotesACK() throws {
        let nat = try makeNAT { $0.maxInboundFlows = 0 }
        let tcpMapping = send(nat, segment((hostA, 8000), (server2, 80), [.syn], seq: 1))  // hostA:8000 mapped
        #expect(send(nat, segment((server, 443), (pool1, tcpMapping.sourcePort), [.syn], seq: 9000, scale: 7)).verdict
                == .forward(.inbound))
        #expect(nat.counters.inboundFlowLimit == 1)
        send(nat, segment((hostA, 8000), (server, 443), [.syn, .ack], seq: 3000, ack: 9001, scale: 7))
        #expect(send(nat, segment((server, 443), (pool1, tcpMapping.sourcePort), [.ack], seq: 9001, ack: 3001)).verdict
                == .forward(.inbound))
        #expect(nat.counters.outOfWindowIgnored == 0)
        #expect(send(nat, segment((server, 443), (pool1, tcpMapping.sourcePort), [.fin, .ack], seq: 9001, ack: 3001))
                .verdict == .forward(.inbound))
    }

    /// A replica counts the flows made from outside as the active does: against the inbound budget, not the host.
    @Test func aReplicaCountsFlowsMadeFromOutsideAsTheActiveDoes() throws {
        let active = try makeNAT(perHost: 8)
        active.recordChanges(true)
        let udpPort = stream(active, hostA, 5000)
        let tcpPort = send(active, segment((hostA, 6000), (server, 443), [.syn], seq: 1)).sourcePort
        for i in 0..<3 {
            send(active, udp(IPv4Address(198, 19, 5, UInt8(i)), 7000, pool1, udpPort))
            send(active, segment((IPv4Address(198, 19, 6, UInt8(i)), 80), (pool1, tcpPort), [.syn], seq: 1))
        }
        #expect(active.inboundFlowCount == 6)
        let replica = try makeNAT(perHost: 8)
        replica.setLive(false, now: .seconds(0))
        for r in active.takeChanges().records { try replica.apply(r, now: .seconds(0)) }
        #expect(replica.flowCount == active.flowCount && replica.inboundFlowCount == 6)
        replica.setLive(true, now: .seconds(1))
        // hostA has 2 flows of its own: 6 more fit under its limit of 8.
        for p in UInt16(9000)..<9006 {
            #expect(send(replica, udp(hostA, p, server, 9000), at: 1).verdict == .forward(.outbound))
        }
    }

    /// A host at its limit with nothing of its own to evict is refused without another look for the rest of that
    /// second (a flood at the limit costs one bounded look a second); the next second it looks again.
    @Test func aHostThatFoundNothingToEvictLooksAgainTheNextSecond() throws {
        let nat = try makeNAT(perHost: 2)
        stream(nat, hostA, 5000)
        let port = open(nat, clientISN: 1000, serverISN: 5000)
        #expect(send(nat, udp(hostA, 5001, server, 9000), at: 0).verdict == .drop(.hostLimit))
        close(nat, port: port, clientNext: 1001, serverNext: 5001)  // now evictable, within the same second
        #expect(send(nat, udp(hostA, 5001, server, 9000), at: 0).verdict == .drop(.hostLimit))
        #expect(send(nat, udp(hostA, 5001, server, 9000), at: 1).verdict == .forward(.outbound))
        #expect(nat.counters.flowsEvicted == 1)
    }

    /// Flows made from outside wait in a class of their own: older than every flow of the host's, they are never
    /// in the way of the host's look for one of its own to evict, and they go first when the table is full.
    @Test func flowsMadeFromOutsideAreNeverInTheWayOfAHostsOwnEviction() throws {
        let nat = try makeNAT(maxFlows: 64, perHost: 4)
        let port = send(nat, udp(hostA, 5000, server, 9000), at: 0).sourcePort
        for i in 0..<16 { send(nat, udp(IPv4Address(198, 19, 1, UInt8(i)), 7000, pool1, port), at: 0) }
        for p in UInt16(5001)...5003 { send(nat, udp(hostA, p, server, 9000), at: 1) }
        for p in UInt16(5004)...5040 {
            #expect(send(nat, udp(hostA, p, server, 9000), at: 2).verdict == .forward(.outbound))
        }
        #expect(nat.counters[.hostLimit] == 0 && nat.inboundFlowCount == 16)
        // A full table: the outsiders' flows go before any of the hosts'.
        for i in 0..<60 { stream(nat, IPv4Address(10, 0, 1, UInt8(i)), 6000, at: 3) }
        #expect(nat.inboundFlowCount == 0 && nat.counters[.tableFull] == 0)
    }
}
