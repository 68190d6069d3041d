import PacketKit
@testable import Replication
import Testing

/// Wire-format versions: a node of this release speaks its newest version (4) with another, and version 2 (the previous
/// release's) with a peer that speaks nothing newer, so that a pair is upgraded one node at a time without losing a
/// flow. A node of the previous release is played by narrowing `wireVersions` to 2: it then sends hellos without
/// a version byte and refuses every datagram of version 3, as that release does.
@Suite struct WireVersionTests {
    static let previousRelease: ClosedRange<UInt8> = 2...2

    func start(_ net: Network, _ id: UInt32, peers: [UInt32], previous: Bool = false) throws -> Network.Member {
        let member = try net.start(id, peers: peers)
        if previous { member.node.wireVersions = Self.previousRelease }
        return member
    }

    func wire(_ m: Network.Member, _ net: Network) -> [UInt8?] { m.node.status(now: net.now).peers.map(\.wireVersion) }

    @Test func twoNodesOfThisReleaseSpeakTheNewestVersionAndTheirHellosVersion2() throws {
        let net = Network()
        var seen: [(kind: SyncMessage.Kind, version: UInt8)] = []
        net.lose = { d, _ in
            seen.append((d.kind, d.bytes[4]))
            return false
        }
        let (a, b) = try net.syncedPair()
        #expect(wire(a, net) == [SyncMessage.currentVersion] && wire(b, net) == [SyncMessage.currentVersion])
        #expect(seen.contains { $0.kind == .hello } && seen.filter { $0.kind == .hello }.allSatisfy { $0.version == 2 })
        #expect(seen.contains { $0.kind == .entries } && seen.filter { $0.kind != .hello }.allSatisfy { $0.version == SyncMessage.currentVersion })
        #expect(a.node.counters[SyncRejection.badVersion] == 0 && b.node.counters[SyncRejection.badVersion] == 0)
    }

    @Test func aNodeOfThePreviousReleaseIsSpokenToInItsVersion() throws {
        let net = Network()
        let a = try start(net, 1, peers: [2], previous: true)
        #expect(net.run(upTo: 1) { a.node.role == .active })
        for i in 0..<50 { _ = a.table.outbound(UInt8(1 + i), 4000) }
        var versions = Set<UInt8>()
        net.lose = { d, _ in
            versions.insert(d.bytes[4])
            return false
        }
        let b = try start(net, 2, peers: [1])
        #expect(net.run(upTo: 2) { b.node.synced && b.table.flowCount == 50 })
        #expect(versions == [2], "nothing newer reaches the old node")
        #expect(wire(a, net) == [2] && wire(b, net) == [2])
        #expect(a.node.counters[SyncRejection.badVersion] == 0)
    }

    /// Both nodes on the previous release; the standby upgraded, then a handover to it, then the other upgraded:
    /// every flow at every step, and version 3 once both speak it.
    @Test func anUpgradeOneNodeAtATimeLosesNoFlow() throws {
        let net = Network()
        let a = try start(net, 1, peers: [2], previous: true)
        #expect(net.run(upTo: 1) { a.node.role == .active })
        for i in 0..<100 { _ = a.table.outbound(UInt8(1 + i), 4000) }
        _ = try start(net, 2, peers: [1], previous: true)
        // The standby upgraded (restarted with an empty table): it syncs in version 2.
        let b = try start(net, 2, peers: [1])
        #expect(net.run(upTo: 2) { b.node.synced && b.table.flowCount == 100 })
        #expect(wire(a, net) == [2] && wire(b, net) == [2])
        _ = a.table.outbound(201, 5000)
        #expect(net.run(upTo: 1) { b.table.flowCount == 101 })
        net.run(for: 0.1)
        // The handover to the upgraded node.
        #expect(a.node.beginHandover(now: net.now) == nil)
        #expect(net.run(upTo: 1) { b.node.role == .active })
        #expect(net.run(upTo: 1) { a.node.handover?.state == .complete })
        net.kill(1)
        // The old active upgraded: it follows the new active and syncs in version 3.
        let a2 = try start(net, 1, peers: [2])
        #expect(net.run(upTo: 2) { a2.node.synced && a2.table.flowCount == 101 })
        #expect(wire(a2, net) == [SyncMessage.currentVersion] && wire(b, net) == [SyncMessage.currentVersion])
        #expect(b.node.role == .active && b.table.flowCount == 101 && b.node.counters[.handoversTaken] == 1)
        #expect(b.node.counters[SyncRejection.badVersion] == 0 && a2.node.counters[SyncRejection.badVersion] == 0)
    }

    /// NAT64 sessions (host records and the flows of IPv6 hosts' aliases, wire format v4) reach a standby of this
    /// release, which translates the replies to the IPv6 host once it takes over; a standby of the previous release
    /// (v3) is sent none of them, counted, and still gets every NAT44 flow.
    @Test func nat64SessionsReachOnlyAStandbyThatSpeaksV4() throws {
        for previous in [false, true] {
            let net = Network()
            let a = try start(net, 1, peers: [2])
            #expect(net.run(upTo: 1) { a.node.role == .active })
            for i in 0..<20 { _ = a.table.outbound(UInt8(1 + i), 4000) }
            var ports: [UInt16] = []
            for i in 0..<10 {
                let (verdict, port) = a.table.outbound6(UInt8(1 + i), 5000)
                #expect(verdict == .forward(.outbound))
                ports.append(port)
            }
            let b = try start(net, 2, peers: [1])
            if previous { b.node.wireVersions = 2...3 }
            #expect(net.run(upTo: 2) { b.node.synced })
            ports.append(a.table.outbound6(11, 5000).1)
            net.run(for: 0.5)
            if previous {
                #expect(b.table.flowCount == 20, "every NAT44 flow, no NAT64 one")
                #expect(a.node.counters[.nat64RecordsWithheld] >= 11)
                #expect(b.node.counters[SyncRejection.badVersion] == 0 && b.node.counters[.rejectedBadEntries] == 0)
            } else {
                #expect(b.table.flowCount == 31)
                #expect(b.table.state.withLock { $0.nat.nat64HostCount } == 11)
                net.kill(1)
                #expect(net.run(upTo: 3) { b.node.role == .active })
                for (i, port) in ports.enumerated() {
                    let (verdict, destination) = b.table.reply6(toPort: port)
                    #expect(verdict == .forward(.inbound))
                    #expect(destination == IPv6Address(high: 0xfd00_0001_0000_0000, low: UInt64(i + 1)))
                }
            }
        }
    }
}
