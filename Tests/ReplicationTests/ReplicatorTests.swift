import Logging
@testable import NatTable
@testable import Replication
import FakeAWS
import Synchronization
import SystemCalls
import Testing
import TunIO

/// The replicator's own loop (not only the node inside it): two replicators on an in-memory sync network and one
/// hand-turned clock, each turned by hand (`step`), as `run` turns them on their threads. What the loop adds to the
/// node: it hands over the link's datagrams, ticks the node, sends what it returns, publishes the role and status
/// for other threads, and calls the role observer.
@Suite struct ReplicatorTests {
    final class Roles: Sendable {
        let seen = Mutex<[Role]>([])
        var all: [Role] { seen.withLock { $0 } }
    }

    final class Pair {
        let network = MemorySyncNetwork()
        let clock = ManualClock(seconds: 0)
        var replicators: [UInt32: Replicator] = [:]
        var tables: [UInt32: LockedNAT] = [:]
        var roles: [UInt32: Roles] = [:]
        var lastStatus: [UInt32: Double] = [:]

        init() throws {
            let keyring = SyncKeyring(Array("0123456789abcdef0123456789abcdef-test-key".utf8))!
            var logger = Logger(label: "replicator-test")
            logger.logLevel = .critical
            for (me, peer) in [(UInt32(1), UInt32(2)), (2, 1)] {
                var c = ReplicationConfiguration(node: me, listen: Network.endpoint(me),
                                                 peers: [ReplicationPeer(node: peer, endpoint: Network.endpoint(peer))], keyFile: "")
                c.heartbeatMilliseconds = 20
                c.peerTimeoutMilliseconds = 200
                c.startupWaitMilliseconds = 300
                let table = try makeTable()
                let replicator = try Replicator(config: c, keyring: keyring, table: table, health: { true },
                                                link: network.link(Network.endpoint(me)), clock: clock, logger: logger)
                let observed = Roles()
                replicator.setRoleObserver { role in observed.seen.withLock { $0.append(role) } }
                replicators[me] = replicator
                tables[me] = table
                roles[me] = observed
                lastStatus[me] = -.infinity
            }
        }

        /// Turns both loops once, 5 ms apart, until `condition` holds or `seconds` of the clock have passed.
        func run(upTo seconds: Double, until condition: () -> Bool) -> Bool {
            let end = clock.seconds() + seconds
            while clock.seconds() < end {
                if condition() { return true }
                clock.advance(0.005)
                for id in [UInt32(1), 2] { replicators[id]!.step(waitMilliseconds: 0, lastStatus: &lastStatus[id]!) }
            }
            return condition()
        }
    }

    @Test func twoLoopsElectOneActiveAndTheStandbyFollowsItsTable() throws {
        let pair = try Pair()
        let a = pair.replicators[1]!, b = pair.replicators[2]!
        #expect(pair.run(upTo: 2) { a.role == .active && b.role == .standby && b.status.synced })
        #expect(a.status.role == .active && b.status.role == .standby && b.status.leader == 1)
        #expect(pair.roles[1]!.all == [.active] && pair.roles[2]!.all == [.standby], "each change of role is observed once")
        for i in 0..<50 { #expect(pair.tables[1]!.outbound(UInt8(1 + i), 2000) == .forward(.outbound)) }
        #expect(pair.run(upTo: 1) { pair.tables[2]!.flowCount == 50 })
        // The status other threads read is published at least every 100 ms of the clock.
        #expect(pair.run(upTo: 1) { a.status.counters[.recordsSent] >= 50 && b.status.counters[.recordsApplied] >= 50 })
        #expect(a.status.peers.first?.synced == true)
    }

    @Test func aStandbyCutOffFromTheActiveTakesOverWithTheReplicatedFlows() throws {
        let pair = try Pair()
        let a = pair.replicators[1]!, b = pair.replicators[2]!
        #expect(pair.run(upTo: 2) { a.role == .active && b.status.synced })
        for i in 0..<20 { _ = pair.tables[1]!.outbound(UInt8(1 + i), 3000) }
        #expect(pair.run(upTo: 1) { pair.tables[2]!.flowCount == 20 })
        // The active falls silent (its datagrams are lost): the standby takes over after the peer timeout.
        pair.network.drop { from, _ in from == Network.endpoint(1) }
        #expect(pair.run(upTo: 2) { b.role == .active })
        #expect(b.status.counters[.takeovers] == 1)
        #expect(pair.tables[2]!.external(1, 3000) != nil, "the replicated mapping is live on the new active")
    }
}
