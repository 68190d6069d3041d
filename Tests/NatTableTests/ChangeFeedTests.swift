import NatTable
import PacketKit
import Testing

/// The change feed of an active table and `apply` on a replica: after applying, the replica translates every
/// established flow exactly as the active did, and admits nothing the active would not.
@Suite struct ChangeFeedTests {
    /// An active with recording on, a replica (not live), and a helper that copies the changes across.
    func pair() throws -> (active: NAT, replica: NAT, sync: () throws -> Void) {
        let active = try makeNAT(pool: [pool1, pool2], seed: 7)
        active.recordChanges(true)
        let replica = try makeNAT(pool: [pool1, pool2], seed: 99)
        replica.setLive(false, now: .seconds(0))
        return (active, replica, {
            let (records, overflowed) = active.takeChanges()
            #expect(!overflowed)
            for r in records { try replica.apply(r, now: .seconds(1)) }
        })
    }

    @Test func recordsRoundTripThroughTheirWireForm() {
        let r = FlowRecord(operation: .upsert, protocolNumber: 6, tcpState: 3, internalAddress: hostA, internalPort: 40000,
                           externalAddress: pool1, externalPort: 1234, remoteAddress: server, remotePort: 443)
        var bytes: [UInt8] = [0xEE]
        r.encode(into: &bytes)
        #expect(bytes.count == 1 + FlowRecord.encodedSize)
        #expect(FlowRecord(decoding: bytes[...], at: 1) == r)
        #expect(FlowRecord(decoding: bytes[...], at: 2) == nil, "cut short")
        var unknown = bytes
        unknown[1] = 9
        #expect(FlowRecord(decoding: unknown[...], at: 1) == nil, "unknown operation")
        var proto = bytes
        proto[2] = 47
        #expect(FlowRecord(decoding: proto[...], at: 1) == nil, "GRE is not translated")
    }

    @Test func aReplicaTranslatesEstablishedFlowsAsTheActiveDid() throws {
        let (active, replica, sync) = try pair()
        let t = send(active, tcp(hostA, 40000, server, 443, [.syn]))
        send(active, tcp(server, 443, t.source, t.sourcePort, [.syn, .ack]))
        let u = send(active, udp(hostB, 5353, server2, 9000))
        let p = send(active, ping(hostA, server, id: 77))
        try sync()
        #expect(replica.flowCount == active.flowCount && replica.mappingCount == active.mappingCount)

        // A standby translates nothing, and keeps its flows however old they get.
        #expect(send(replica, tcp(server, 443, t.source, t.sourcePort, [.ack]), at: 5).verdict == .drop(.standby))
        #expect(replica.expire(now: .seconds(100_000), budget: 1000) == 0)

        replica.setLive(true, now: .seconds(100_000))
        let reply = send(replica, tcp(server, 443, t.source, t.sourcePort, [.ack]), at: 100_001)
        #expect(reply.verdict == .forward(.inbound))
        #expect(reply.destination == hostA && reply.destinationPort == 40000)
        let out = send(replica, tcp(hostA, 40000, server, 443, [.ack]), at: 100_001)
        #expect(out.source == t.source && out.sourcePort == t.sourcePort, "the same external endpoint")
        let dns = send(replica, udp(server2, 9000, u.source, u.sourcePort), at: 100_001)
        #expect(dns.destination == hostB && dns.destinationPort == 5353)
        let echo = send(replica, ping(server, p.source, id: p.sourcePort, reply: true), at: 100_001)
        #expect(echo.destination == hostA && echo.sourcePort == 77)
        // Unsolicited traffic is refused by the replica as by the active.
        #expect(send(replica, udp(server, 9000, pool1, 9999), at: 100_001).verdict == .drop(.noMapping))
        // The replica's allocator knows the replicated ports: a new host asking for the same TCP port cannot be
        // given it (several hosts, so that some are paired with the same pool address as hostA).
        var samePool = 0
        for i: UInt8 in 9...24 {
            let other = send(replica, tcp(IPv4Address(10, 0, 0, i), 40000, server, 1, [.syn]), at: 100_001)
            #expect(other.verdict == .forward(.outbound))
            #expect(!(other.source == t.source && other.sourcePort == t.sourcePort))
            if other.source == t.source { samePool += 1 }
        }
        #expect(samePool > 0)
    }

    @Test func deletesAndStateChangesFollow() throws {
        let (active, replica, sync) = try pair()
        let t = send(active, tcp(hostA, 40000, server, 443, [.syn]))
        send(active, tcp(server, 443, t.source, t.sourcePort, [.syn, .ack]))
        send(active, udp(hostB, 5353, server2, 9000))
        try sync()
        #expect(replica.flowCount == 2)
        // The UDP flow times out on the active.
        let udpTimeout = UInt64(active.configuration.timeouts.udp)
        #expect(active.expire(now: .seconds(udpTimeout + 1), budget: 10) == 1)
        // FIN each way: the flow moves to the transitory timer on the active, and must on the replica too.
        send(active, tcp(hostA, 40000, server, 443, [.fin, .ack]), at: udpTimeout + 2)
        send(active, tcp(server, 443, t.source, t.sourcePort, [.fin, .ack]), at: udpTimeout + 2)
        try sync()
        #expect(replica.flowCount == 1 && replica.mappingCount == 1)
        replica.setLive(true, now: .seconds(2000))
        let transitory = UInt64(active.configuration.timeouts.tcpTransitory)
        #expect(replica.expire(now: .seconds(2000 + transitory), budget: 10) == 1,
                "closed TCP flow retires on the transitory timer")
        #expect(replica.mappingCount == 0)
    }

    @Test func aSnapshotRebuildsTheTable() throws {
        let active = try makeNAT(pool: [pool1, pool2], seed: 7)
        for i in 0..<200 {
            send(active, udp(IPv4Address(10, 0, 1, UInt8(i % 50)), UInt16(2000 + i), server, 9000))
        }
        let replica = try makeNAT(pool: [pool1, pool2], seed: 3)
        replica.setLive(false, now: .seconds(0))
        // Stale content is removed before a resync.
        try replica.apply(FlowRecord(operation: .upsert, protocolNumber: 17, internalAddress: hostB, internalPort: 1,
                                     externalAddress: pool1, externalPort: 60000, remoteAddress: server, remotePort: 1),
                          now: .seconds(0))
        replica.removeAll()
        #expect(replica.flowCount == 0 && replica.mappingCount == 0)
        for r in active.snapshot() { try replica.apply(r, now: .seconds(0)) }
        #expect(replica.flowCount == 200 && replica.mappingCount == active.mappingCount)
        #expect(Set(replica.snapshot().map(\.description)) == Set(active.snapshot().map(\.description)))
        // Applying the same snapshot again changes nothing (records are idempotent).
        for r in active.snapshot() { try replica.apply(r, now: .seconds(0)) }
        #expect(replica.flowCount == 200)
    }

    @Test func conflictingAndForeignRecordsAreRefused() throws {
        let replica = try makeNAT(pool: [pool1], seed: 3)
        replica.setLive(false, now: .seconds(0))
        func rec(_ host: IPv4Address, _ port: UInt16, _ external: IPv4Address, _ eport: UInt16) -> FlowRecord {
            FlowRecord(operation: .upsert, protocolNumber: 17, internalAddress: host, internalPort: port,
                       externalAddress: external, externalPort: eport, remoteAddress: server, remotePort: 53)
        }
        try replica.apply(rec(hostA, 5000, pool1, 5000), now: .seconds(0))
        #expect(throws: ApplyFailure.notInPool) { try replica.apply(rec(hostB, 5000, pool2, 5000), now: .seconds(0)) }
        #expect(throws: ApplyFailure.conflict, "port held by another mapping") {
            try replica.apply(rec(hostB, 5001, pool1, 5000), now: .seconds(0))
        }
        #expect(throws: ApplyFailure.conflict, "internal endpoint mapped elsewhere") {
            try replica.apply(rec(hostA, 5000, pool1, 5002), now: .seconds(0))
        }
        #expect(replica.flowCount == 1 && replica.mappingCount == 1)
    }

    @Test func anOverflowingFeedSaysSo() throws {
        let active = try makeNAT(pool: [pool1, pool2], maxFlows: NAT.maxPendingChanges + 16)
        active.recordChanges(true)
        for i in 0...NAT.maxPendingChanges {
            send(active, udp(IPv4Address(10, 1, UInt8(i >> 8 & 0xFF), UInt8(i & 0xFF)), UInt16(7000 + i >> 16), server, 9000))
        }
        let (records, overflowed) = active.takeChanges()
        #expect(overflowed && records.count < NAT.maxPendingChanges)
        #expect(active.flowCount == NAT.maxPendingChanges + 1)
        let again = active.takeChanges()
        #expect(!again.overflowed && again.records.isEmpty)
    }
}
