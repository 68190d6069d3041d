@testable import Replication
import NatTable
import PacketKit
import SystemCalls
import Testing

/// The active/standby rules, driven by hand-made heartbeats on a hand-turned clock.
@Suite struct RoleMachineTests {
    func machine(_ node: UInt32, now: Double = 0) -> RoleMachine {
        RoleMachine(node: node, deadAfter: 0.6, startupWait: 2, now: now)
    }
    func peer(_ node: UInt32, _ role: Role, term: UInt64 = 1, healthy: Bool = true, synced: Bool = false,
              leader: UInt32 = 0, heard: Double) -> PeerView {
        PeerView(node: node, role: role, term: term, healthy: healthy, synced: synced, leader: leader, heard: heard)
    }

    @Test func aLoneNodeColdStartsAfterTheStartupWait() {
        var m = machine(1)
        #expect(m.step(now: 1.9, peers: [], healthy: true) == nil)
        #expect(m.step(now: 2.0, peers: [], healthy: false) == nil, "never while unhealthy")
        #expect(m.step(now: 2.1, peers: [], healthy: true) == .becomeActive(term: 1, coldStart: true))
        #expect(m.role == .active)
    }

    /// Found by fuzzing (Fuzz/Sources/FuzzSync): a peer's heartbeat carrying the largest term made the next
    /// takeover overflow and trap. The term saturates instead; ties still go to the lower node id.
    @Test func aPeerAtTheLargestTermDoesNotOverflowTheNextTerm() {
        var m = machine(1)
        #expect(m.step(now: 2.1, peers: [peer(2, .standby, term: .max, heard: 2.1)], healthy: true)
                == .becomeActive(term: .max, coldStart: true))
    }

    @Test func twoStartingNodesAgreeOnTheLowerID() {
        var a = machine(1)
        var b = machine(2)
        let now = 2.5
        #expect(a.step(now: now, peers: [peer(2, .starting, term: 0, heard: now)], healthy: true)
                == .becomeActive(term: 1, coldStart: true))
        #expect(b.step(now: now, peers: [peer(1, .starting, term: 0, heard: now)], healthy: true) == nil)
        #expect(b.step(now: now + 0.1, peers: [peer(1, .active, term: 1, heard: now + 0.1)], healthy: true)
                == .follow(leader: 1, term: 1))
    }

    @Test func aStartingNodeFollowsAnActiveAndNeverTakesItsPlace() {
        // The old active comes back: it hears the new one and follows, whatever its id.
        var old = machine(1, now: 10)
        #expect(old.step(now: 10.1, peers: [peer(2, .active, term: 2, heard: 10.1)], healthy: true)
                == .follow(leader: 2, term: 2))
        old.synced = true
        for t in stride(from: 10.2, to: 30, by: 0.1) {
            #expect(old.step(now: t, peers: [peer(2, .active, term: 2, heard: t)], healthy: true) == nil)
        }
        #expect(old.role == .standby)
    }

    @Test func aSyncedStandbyTakesOverWhenTheActiveFallsSilent() {
        var s = machine(2)
        _ = s.step(now: 0.1, peers: [peer(1, .active, term: 1, heard: 0.1)], healthy: true)
        s.synced = true
        #expect(s.step(now: 0.6, peers: [peer(1, .active, term: 1, heard: 0.1)], healthy: true) == nil, "0.5 s of silence")
        #expect(s.step(now: 0.75, peers: [peer(1, .active, term: 1, heard: 0.1)], healthy: true)
                == .becomeActive(term: 2, coldStart: false))
    }

    @Test func aStandbyTakesOverFromAnUnhealthyActive() {
        var s = machine(2)
        _ = s.step(now: 0.1, peers: [peer(1, .active, term: 3, heard: 0.1)], healthy: true)
        s.synced = true
        #expect(s.step(now: 0.2, peers: [peer(1, .active, term: 3, healthy: false, heard: 0.2)], healthy: false) == nil,
                "not while unhealthy itself")
        #expect(s.step(now: 0.3, peers: [peer(1, .active, term: 3, healthy: false, heard: 0.3)], healthy: true)
                == .becomeActive(term: 4, coldStart: false))
    }

    @Test func aStandbyWithoutACompleteReplicaIsNotEligible() {
        var s = machine(2)
        _ = s.step(now: 0.1, peers: [peer(1, .active, term: 1, heard: 0.1)], healthy: true)
        #expect(s.step(now: 1, peers: [peer(1, .active, term: 1, heard: 0.1)], healthy: true) == .restart)
        #expect(s.role == .starting)
        // It starts over; with nobody else it cold-starts after the startup wait, not before.
        #expect(s.step(now: 2.9, peers: [], healthy: true) == nil)
        #expect(s.step(now: 3.1, peers: [], healthy: true) == .becomeActive(term: 2, coldStart: true))
    }

    @Test func aStartingNodeLeavesTheTakeoverToASyncedStandby() {
        var n = machine(1)
        let standby = peer(2, .standby, term: 4, synced: true, leader: 3, heard: 5)
        #expect(n.step(now: 5, peers: [standby], healthy: true) == nil)
    }

    @Test func onlyTheLowestSyncedStandbyTakesOver() {
        var two = machine(2)
        var three = machine(3)
        let active = peer(1, .active, term: 1, heard: 0.1)
        _ = two.step(now: 0.1, peers: [active], healthy: true)
        _ = three.step(now: 0.1, peers: [active], healthy: true)
        two.synced = true
        three.synced = true
        let at = 1.0
        #expect(three.step(now: at, peers: [active, peer(2, .standby, term: 1, synced: true, leader: 1, heard: at)],
                           healthy: true) == nil)
        #expect(two.step(now: at, peers: [active, peer(3, .standby, term: 1, synced: true, leader: 1, heard: at)],
                         healthy: true) == .becomeActive(term: 2, coldStart: false))
    }

    @Test func anActiveStepsDownForAnActiveThatOutranksIt() {
        var a = machine(1)
        _ = a.step(now: 2.5, peers: [], healthy: true)
        #expect(a.role == .active && a.term == 1)
        #expect(a.step(now: 3, peers: [peer(2, .active, term: 1, heard: 3)], healthy: true) == nil, "same term, higher id")
        #expect(a.step(now: 3.1, peers: [peer(2, .active, term: 2, heard: 3.1)], healthy: true) == .follow(leader: 2, term: 2))
        #expect(a.role == .standby && !a.synced)
    }
}
