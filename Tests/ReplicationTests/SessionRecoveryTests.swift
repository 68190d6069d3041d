import Hashing
@testable import NatTable
import PacketKit
@testable import Replication
import SystemCalls
import Testing

/// A restart during a lost datagram, a wrong key, a forged flood: the pair must come back together, never as two
/// actives. Each of these once split a live pair (the restarted node cold-started next to the active).
@Suite struct SessionRecoveryTests {
    /// A synced pair: node 1 active with 100 flows, node 2 its synced standby.
    func pair() throws -> (Network, Network.Member, Network.Member) {
        let net = Network()
        let (a, b) = try net.syncedPair()
        return (net, a, b)
    }

    /// Node 2 the active, node 1 (the lower id) its synced standby, restarted with a key node 2 does not hold.
    func lowerNodeRestartedWithTheWrongKey() throws -> (Network, active: Network.Member, restarted: Network.Member) {
        let net = Network()
        let (b, _) = try net.syncedPair(active: 2, standby: 1, flows: 0)
        let a2 = try net.start(1, peers: [2], keyring: Network.wrongKey)
        return (net, b, a2)
    }

    static func isConfirmation(_ d: OutgoingDatagram) -> Bool {
        d.kind == .hello && d.bytes[7] & SyncMessage.answerWanted == 0
    }

    /// Forged from `node`'s address: a hello (or, `session`, a heartbeat) under a key nobody holds.
    static func forged(from node: UInt32, to receiver: UInt32, session: Bool = false, _ generator: inout SplitMix64) -> [UInt8] {
        let other = SyncKeyring(Array("not the shared key, but 32 bytes or more".utf8))!
        return other.seal(SyncMessage(kind: session ? .heartbeat : .hello, keyID: 1, sender: node, receiver: receiver,
                                      senderNonce: generator.next() | 1, receiverNonce: session ? generator.next() : 0,
                                      sequence: generator.next() >> 1, payload: Array(repeating: 0, count: session ? 16 : 8)))
    }

    func inject(_ d: [UInt8], to member: Network.Member, from node: UInt32, _ net: Network) {
        _ = member.node.receive(d, length: d.count, from: Network.endpoint(node), now: net.now)
    }

    /// The standby restarts and the hello that would confirm its new session to the active is lost. The active's
    /// next message from it carries the active's challenge and confirms the session instead.
    @Test func aLostConfirmationDuringARestartIsMendedByTheNextMessage() throws {
        let (net, a, _) = try pair()
        var lost = 0
        net.lose = { d, from in
            guard from == Network.endpoint(2), lost == 0, Self.isConfirmation(d) else { return false }
            lost += 1
            return true
        }
        let b = try net.start(2, peers: [1])
        #expect(net.run(upTo: 2) { b.node.synced && b.table.flowCount == 100 }, "\(b.node.counters.named)")
        #expect(lost == 1, "the confirmation was lost")
        #expect(a.node.role == .active && b.node.role == .standby && b.node.counters[.coldStarts] == 0)
        #expect(a.node.counters[.sessionsConfirmedByMessage] == 1)
        net.run(for: 2)
        #expect(a.node.role == .active && b.node.role == .standby && a.node.counters[.stepDowns] == 0)
    }

    /// Sessions that disagree with nothing pending (state neither side can confirm): both drop them and
    /// handshake again before either takes the other for dead.
    @Test func sessionsThatNoLongerMatchAreDroppedAndHandshakenAgainBeforeATakeover() throws {
        let (net, a, b) = try pair()
        let term = a.node.term
        // The active's session with node 2 becomes one node 2 never had.
        var generator = SplitMix64(seed: 5)
        let peer = try #require(a.node.peers.first)
        _ = peer.session.challenge { generator.next() }
        peer.session.confirm(senderNonce: 12345, version: SyncMessage.currentVersion)
        #expect(net.run(upTo: 1) { a.node.counters[.sessionsDropped] + b.node.counters[.sessionsDropped] > 0 })
        let before = a.table.flowCount
        _ = a.table.outbound(250, 50_000)
        #expect(net.run(upTo: 1) { b.table.flowCount == before + 1 }, "changes arrive again")
        #expect(a.node.role == .active && b.node.role == .standby && a.node.term == term)
        #expect(b.node.counters[.takeovers] == 0 && a.node.counters[.stepDowns] == 0)
    }

    /// The standby restarts with a key the active does not hold: it hears the active but cannot verify it, and
    /// must not start as a second active. Restarted with the right key, it syncs.
    @Test func aNodeRestartedWithTheWrongKeyNeverStartsBesideTheActive() throws {
        let (net, a, _) = try pair()
        let b = try net.start(2, peers: [1], keyring: Network.wrongKey)
        net.run(for: 5)
        #expect(b.node.role == .starting && b.node.counters[.coldStarts] == 0, "\(b.node.counters.named)")
        #expect(a.node.role == .active && a.node.counters[.stepDowns] == 0)
        let b2 = try net.start(2, peers: [1])
        #expect(net.run(upTo: 2) { b2.node.synced && b2.table.flowCount == 100 })
        #expect(a.node.role == .active && b2.node.counters[.coldStarts] == 0)
    }

    /// The lower-numbered node restarts with the wrong key next to the active: it hears datagrams it cannot verify
    /// (the active's) and stays starting rather than cold-start first.
    @Test func theLowerNodeWithTheWrongKeyWaitsForAnActiveItCannotVerify() throws {
        let (net, b, a2) = try lowerNodeRestartedWithTheWrongKey()
        net.run(for: 5)
        #expect(a2.node.role == .starting && a2.node.counters[.coldStarts] == 0)
        #expect(b.node.role == .active && b.node.counters[.stepDowns] == 0)
    }

    /// The active has dropped its session with a node (it sends that node hellos, not heartbeats) when the node
    /// restarts with the wrong key: hellos it cannot verify must keep it from starting too, whatever the ids.
    @Test func anActiveSendingOnlyHellosStillKeepsAWrongKeyedNodeFromStarting() throws {
        let (net, b, a2) = try lowerNodeRestartedWithTheWrongKey()
        let peer = try #require(b.node.peers.first)
        for _ in 0..<1000 {
            // The active keeps no session with node 1 (as after a forged flood made it drop one): hellos only.
            peer.session.drop()
            net.step()
        }
        #expect(a2.node.role == .starting && a2.node.counters[.coldStarts] == 0, "node 1 (the lower id) did not start")
        #expect(b.node.role == .active && b.node.counters[.stepDowns] == 0)
    }

    /// Two starting nodes whose keys differ: neither can tell what the other is, so neither starts (never two
    /// actives); once the keys agree, one starts and the other follows.
    @Test func twoStartingNodesWithDifferentKeysWaitUntilTheKeysAgree() throws {
        let net = Network()
        let a = try net.start(1, peers: [2])
        let b = try net.start(2, peers: [1], keyring: Network.wrongKey)
        net.run(for: 3)
        #expect(a.node.role == .starting && b.node.role == .starting)
        let b2 = try net.start(2, peers: [1])
        #expect(net.run(upTo: 3) { a.node.role == .active && b2.node.role == .standby })
    }

    /// A restarting node kept waiting past its startup wait (forged hellos from the active's address, whose own
    /// datagrams are lost) must not cold-start the moment its session is made: the active's first heartbeat has
    /// not come yet. Once it comes, the node follows.
    @Test func aSessionJustMadeIsNoReasonToColdStartBeforeThePeersFirstHeartbeat() throws {
        let (net, a, _) = try pair()
        net.lose = { _, from in from == Network.endpoint(1) }
        let b = try net.start(2, peers: [1])
        var generator = SplitMix64(seed: 9)
        for _ in 0..<200 {
            inject(Self.forged(from: 1, to: 2, &generator), to: b, from: 1, net)
            net.step()
        }
        #expect(b.node.role == .starting, "kept waiting by what it cannot verify")
        net.lose = nil
        #expect(net.run(upTo: 2) { b.node.synced && b.table.flowCount == 100 })
        #expect(b.node.counters[.coldStarts] == 0 && a.node.counters[.stepDowns] == 0)
    }

    /// 8 s of 1,000 forged hellos a second from the active's address while the standby restarts: the flood may not
    /// use up the budget of authentic hellos, so the restarted node handshakes, follows and syncs; it never starts.
    @Test func aForgedHelloFloodDoesNotKeepARestartedNodeFromItsActive() throws {
        let (net, a, _) = try pair()
        let b = try net.start(2, peers: [1])
        var generator = SplitMix64(seed: 26)
        var synced = -1.0
        let end = net.now + 8
        while net.now < end {
            for _ in 0..<5 { inject(Self.forged(from: 1, to: 2, &generator), to: b, from: 1, net) }
            net.step()
            if synced < 0 && b.node.synced && b.table.flowCount == 100 { synced = net.now }
        }
        #expect(synced > 0 && synced < end - 6, "synced during the flood")
        #expect(b.node.counters[SyncRejection.badTag] >= 7_900)
        #expect(a.node.role == .active && b.node.role == .standby && b.node.counters[.coldStarts] == 0)
    }

    /// A flood beyond what is opened (20,000 forged hellos and heartbeats a second): the restarted node may not get
    /// its handshake through, but it never starts as a second active; once the flood ends it syncs.
    @Test func aFloodBeyondTheOpeningBudgetDelaysButNeverSplits() throws {
        let (net, a, _) = try pair()
        let b = try net.start(2, peers: [1])
        var generator = SplitMix64(seed: 27)
        for step in 0..<600 {
            for i in 0..<100 { inject(Self.forged(from: 1, to: 2, session: (i + step) % 2 == 0, &generator), to: b, from: 1, net) }
            net.step()
            #expect(b.node.role != .active)
        }
        #expect(b.node.counters[SyncRejection.openRate] > 0)
        #expect(b.node.counters[.coldStarts] == 0 && a.node.role == .active)
        #expect(net.run(upTo: 2) { b.node.synced && b.table.flowCount == 100 })
    }
}
