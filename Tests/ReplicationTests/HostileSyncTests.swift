@testable import NatTable
import PacketKit
@testable import Replication
import SystemCalls
import Testing

/// The sync link as an attacker sees it: every datagram between the peers can be captured, replayed, reflected,
/// tampered with or forged from a peer's address. None of it may change a role or a table.
@Suite struct HostileSyncTests {
    /// A synced pair: node 1 active with 100 flows, node 2 its synced standby.
    func pair() throws -> (Network, Network.Member, Network.Member) {
        let net = Network()
        let (a, b) = try net.syncedPair()
        return (net, a, b)
    }

    func deliver(_ d: [UInt8], to member: Network.Member, from: UInt32, _ net: Network) {
        _ = member.node.receive(d, length: d.count, from: Network.endpoint(from), now: net.now)
    }

    /// The pair is as it was: roles, term, replica, and the active's changes still arrive.
    func expectUnharmed(_ net: Network, _ a: Network.Member, _ b: Network.Member, term: UInt64,
                        sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.node.role == .active && b.node.role == .standby && b.node.synced, sourceLocation: sourceLocation)
        #expect(a.node.term == term && b.node.term == term, sourceLocation: sourceLocation)
        let before = a.table.flowCount
        _ = a.table.outbound(250, UInt16(50_000 + before))
        #expect(net.run(upTo: 1) { b.table.flowCount == before + 1 }, "changes still arrive", sourceLocation: sourceLocation)
        #expect(a.node.counters[.stepDowns] == 0 && b.node.counters[.takeovers] == 0, sourceLocation: sourceLocation)
    }

    /// A's datagram to B, sent back to A as if from B (the attack that once made A refuse B for good).
    @Test func aReflectedDatagramIsDroppedAndChangesNothing() throws {
        let (net, a, b) = try pair()
        let term = a.node.term
        let fromA = net.captured.filter { $0.from == Network.endpoint(1) }.map(\.datagram.bytes)
        #expect(fromA.count > 10)
        for d in fromA { deliver(d, to: a, from: 2, net) }
        #expect(a.node.counters[SyncRejection.wrongReceiver] == UInt64(fromA.count))
        // And sent to B from A's own address as if B were the sender: B's own datagrams.
        let fromB = net.captured.filter { $0.from == Network.endpoint(2) }.map(\.datagram.bytes)
        for d in fromB { deliver(d, to: b, from: 1, net) }
        #expect(b.node.counters[SyncRejection.wrongReceiver] == UInt64(fromB.count))
        net.run(for: 1)
        expectUnharmed(net, a, b, term: term)
    }

    /// Our own id as the sender, a stranger's id, and a real peer's datagram from another address.
    @Test func wrongIdsAndAddressesAreDroppedAndCounted() throws {
        let (net, a, b) = try pair()
        let term = a.node.term
        let own = net.keyring.seal(SyncMessage(kind: .heartbeat, keyID: 1, sender: 2, receiver: 2, senderNonce: 1,
                                               receiverNonce: 2, sequence: 1, payload: Array(repeating: 0, count: 16)))
        deliver(own, to: b, from: 1, net)
        let stranger = net.keyring.seal(SyncMessage(kind: .hello, keyID: 1, sender: 9, receiver: 2, senderNonce: 1,
                                                    receiverNonce: 0, sequence: 1, payload: Array(repeating: 0, count: 8)))
        deliver(stranger, to: b, from: 1, net)
        let real = try #require(net.captured.last { $0.from == Network.endpoint(1) }).datagram.bytes
        _ = b.node.receive(real, length: real.count, from: UDPEndpoint(address: 0x0A00_0063, port: 7800), now: net.now)
        _ = b.node.receive(real, length: real.count, from: UDPEndpoint(address: 0x0A00_0001, port: 7801), now: net.now)
        let c = b.node.counters
        #expect(c[SyncRejection.ownID] == 1 && c[SyncRejection.unknownSender] == 1 && c[SyncRejection.wrongAddress] == 2, "\(c)")
        expectUnharmed(net, a, b, term: term)
    }

    /// Every captured datagram replayed, tampered (each byte flipped in turn), truncated or under another key.
    @Test func replayedTamperedAndForgedDatagramsAreRejectedAndNeverApplied() throws {
        let (net, a, b) = try pair()
        let term = a.node.term
        let toB = net.captured.filter { $0.from == Network.endpoint(1) }.map(\.datagram.bytes)
        let accepted = b.node.counters[.received]
        for d in toB { deliver(d, to: b, from: 1, net) }
        let sample = try #require(toB.last { $0[5] == SyncMessage.Kind.entries.rawValue })
        for i in sample.indices {
            var t = sample
            t[i] ^= 0x40
            deliver(t, to: b, from: 1, net)
        }
        for length in [0, 10, 51, 60, sample.count - 1] { deliver(Array(sample.prefix(length)), to: b, from: 1, net) }
        let other = SyncKeyring(Array("another key, not the shared one, 32+ bytes".utf8))!
        let header = try SyncMessage(header: sample, length: sample.count)
        let forged = other.seal(SyncMessage(kind: .entries, keyID: 1, sender: 1, receiver: 2, senderNonce: header.senderNonce,
                                            receiverNonce: header.receiverNonce, sequence: header.sequence + 1_000_000,
                                            payload: Batch.encode(number: 1, flags: Batch.reset | Batch.end, records: [][...])))
        deliver(forged, to: b, from: 1, net)
        #expect(b.node.counters[.received] == accepted, "nothing replayed, tampered or forged was accepted")
        #expect(b.node.counters[SyncRejection.replayed] > 0 && b.node.counters[SyncRejection.badTag] > 0)
        #expect(b.table.flowCount == 100)
        expectUnharmed(net, a, b, term: term)
    }

    /// The active dies; an attacker replays everything it ever sent, over and over. The standby must still take
    /// over (replayed heartbeats once kept a dead active alive), and a restarted node accepts none of it.
    @Test func replaysOfADeadActiveNeitherKeepItAliveNorReachARestartedNode() throws {
        let (net, a, b) = try pair()
        let fromA = net.captured.filter { $0.from == Network.endpoint(1) }.map(\.datagram.bytes)
        net.kill(1)
        let accepted = b.node.counters[.received]
        let tookOver = net.run(upTo: 2) {
            for d in fromA.suffix(40) { deliver(d, to: b, from: 1, net) }
            return b.node.role == .active
        }
        #expect(tookOver, "the standby takes over despite the replays")
        #expect(b.node.counters[.received] == accepted)
        _ = a

        // A restarted node 2 (new run, empty table) with node 1 still dead: the whole capture, replayed.
        let b2 = try net.start(2, peers: [1])
        for _ in 0..<5 {
            for d in fromA { deliver(d, to: b2, from: 1, net) }
            net.step()
        }
        let c = b2.node.counters
        #expect(c[.sessionsEstablished] == 0 && b2.node.role == .starting && b2.table.flowCount == 0, "\(c)")
        #expect(net.run(upTo: 1) { b2.node.role == .active }, "it cold-starts as if alone")
    }

    /// A flood from the peer's address: forged datagrams with the session's own header, hellos, garbage. Counted
    /// by a fixed set of reasons, never applied; the pair stays as it was.
    @Test func aFloodOfHostileDatagramsIsCountedAndHarmsNothing() throws {
        let (net, a, b) = try pair()
        let term = a.node.term
        let template = try #require(net.captured.last { $0.from == Network.endpoint(1) && $0.datagram.kind == .heartbeat }).datagram.bytes
        var generator = SplitMix64(seed: 11)
        let floods = 30_000
        for i in 0..<floods {
            var junk: [UInt8]
            switch i % 4 {
            case 0:
                junk = template
                for k in 32..<40 { junk[k] = UInt8(truncatingIfNeeded: generator.next()) }  // a new sequence
                junk[junk.count - 1] ^= 1
            case 1:
                junk = net.keyring.seal(SyncMessage(kind: .hello, keyID: 1, sender: 1, receiver: 2, senderNonce: generator.next() | 1,
                                                    receiverNonce: generator.next(), sequence: UInt64(i), payload: Array(repeating: 0, count: 8)))
            case 2: junk = (0..<Int(generator.next() % 1600)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            default: junk = template
            }
            deliver(junk, to: b, from: 1, net)
            if i % 1000 == 0 { net.step() }
        }
        let c = b.node.counters
        #expect(c.named.count < 40, "counters by reason, not by datagram: \(c.named.map(\.name))")
        #expect(c[.sessionsEstablished] == 1, "no flood message started a session")
        expectUnharmed(net, a, b, term: term)
        #expect(b.table.flowCount == 101)
    }

    /// Key rotation without downtime: a node sending with key 2 and accepting key 1 works with one still on key 1
    /// (accepting 2); a node without the other's key refuses it by its id.
    @Test func keysRotateWithOldAndNewAcceptedTogether() throws {
        let one = Array("the first key, at least 32 bytes long".utf8)
        let two = Array("the second key, at least 32 bytes long".utf8)
        let net = Network()
        let a = try net.start(1, peers: [2], keyring: SyncKeyring(keys: [1: one, 2: two], sendingID: 1)!)
        #expect(net.run(upTo: 1) { a.node.role == .active })
        for i in 0..<10 { _ = a.table.outbound(UInt8(1 + i), 4000) }
        let b = try net.start(2, peers: [1], keyring: SyncKeyring(keys: [1: one, 2: two], sendingID: 2)!)
        #expect(net.run(upTo: 2) { b.node.synced && b.table.flowCount == 10 }, "key 1 one way, key 2 the other")
        // Node 1 restarts having dropped key 2 too early: node 2's messages are refused by key id, unopened.
        let a2 = try net.start(1, peers: [2], keyring: SyncKeyring(keys: [1: one], sendingID: 1)!)
        net.run(for: 0.5)
        #expect(a2.node.counters[SyncRejection.unknownKey] > 0 && a2.node.counters[.sessionsEstablished] == 0)
    }
}
