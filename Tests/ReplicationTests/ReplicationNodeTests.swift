import Logging
import NatTable
import PacketKit
@testable import Replication
import SystemCalls
import Testing
import TunIO

/// A data plane's table: the real `LockedNAT` the workers share, with helpers that send packets through it.
func makeTable(pool: IPv4Address = IPv4Address(198, 18, 0, 1)) throws -> LockedNAT {
    LockedNAT(nat: try NAT(configuration: NatConfiguration(privatePrefixes: [IPv4Prefix("10.0.0.0/8")!],
                                                           poolAddresses: [pool], seed: 5)))
}

extension LockedNAT {
    /// Sends a UDP packet from a private host through the table; the verdict.
    func outbound(_ host: UInt8, _ port: UInt16) -> Verdict {
        var bytes = PacketBuilder.udp(from: (IPv4Address(10, 0, 0, host), port), to: (IPv4Address(198, 19, 0, 1), 53),
                                      payload: [1])
        return state.withLock { s in bytes.withUnsafeMutableBytes { s.nat.translate($0, now: .seconds(1)) } }
    }

    /// A reply from the server to the external endpoint of (host, port), translated or not.
    func reply(via external: (address: IPv4Address, port: Port)) -> Verdict {
        var bytes = PacketBuilder.udp(from: (IPv4Address(198, 19, 0, 1), 53), to: (external.address, external.port.value),
                                      payload: [2])
        return state.withLock { s in bytes.withUnsafeMutableBytes { s.nat.translate($0, now: .seconds(2)) } }
    }

    func external(_ host: UInt8, _ port: UInt16) -> (address: IPv4Address, port: Port)? {
        state.withLock { $0.nat.externalEndpoint(protocol: .udp, address: IPv4Address(10, 0, 0, host), port: Port(port)) }
    }

    var changeSerial: UInt64 { state.withLock { $0.nat.changeSerial } }
}

/// Nodes joined by an in-memory network on a hand-turned clock: every datagram a node returns is delivered to its
/// addressee on the next step, unless the addressee is down. No sockets, no sleeps, no threads.
final class Network {
    final class Member {
        let node: ReplicationNode
        let table: LockedNAT
        var healthy = true
        var up = true
        init(node: ReplicationNode, table: LockedNAT) {
            self.node = node
            self.table = table
        }
    }

    let key = SyncKey(Array("0123456789abcdef0123456789abcdef-test-key".utf8))!
    var now = 0.0
    var members: [UDPEndpoint: Member] = [:]
    var wire: [(datagram: OutgoingDatagram, from: UDPEndpoint)] = []
    var epochs: UInt32 = 100
    /// Every datagram that crossed the wire, for tests that replay or tamper with them.
    var captured: [(datagram: OutgoingDatagram, from: UDPEndpoint)] = []

    static func endpoint(_ node: UInt32) -> UDPEndpoint { UDPEndpoint(address: 0x0A00_0000 | node, port: 7800) }

    func config(_ node: UInt32, peers: [UInt32]) -> ReplicationConfiguration {
        var c = ReplicationConfiguration(node: node, listen: Self.endpoint(node), peers: peers.map(Self.endpoint), keyFile: "")
        c.heartbeatMilliseconds = 20
        c.peerTimeoutMilliseconds = 200
        c.startupWaitMilliseconds = 300
        return c
    }

    /// Starts (or restarts, with a new epoch and an empty table) node `id`.
    @discardableResult
    func start(_ id: UInt32, peers: [UInt32], configure: (inout ReplicationConfiguration) -> Void = { _ in }) throws -> Member {
        var c = config(id, peers: peers)
        configure(&c)
        var logger = Logger(label: "test-\(id)")
        logger.logLevel = .critical
        epochs += 1
        let table = try makeTable()
        let member = Member(node: ReplicationNode(config: c, key: key, epoch: epochs, table: table, logger: logger, now: now),
                            table: table)
        members[Self.endpoint(id)] = member
        return member
    }

    /// The node stops answering (a crash: kill -9).
    func kill(_ id: UInt32) { members[Self.endpoint(id)]?.up = false }

    /// One step of `dt` seconds: deliver what is on the wire, then tick every node that is up.
    func step(_ dt: Double = 0.005) {
        now += dt
        let delivering = wire
        wire.removeAll()
        for (datagram, from) in delivering {
            guard let member = members[datagram.to], member.up else { continue }
            let answers = member.node.receive(datagram.bytes, length: datagram.bytes.count, from: from, now: now)
            send(answers, from: datagram.to)
        }
        for (endpoint, member) in members.sorted(by: { $0.key.address < $1.key.address }) where member.up {
            send(member.node.tick(now: now, healthy: member.healthy).datagrams, from: endpoint)
        }
    }

    func send(_ datagrams: [OutgoingDatagram], from: UDPEndpoint) {
        for d in datagrams {
            members[from]?.node.sent(d, ok: true)
            wire.append((d, from))
            captured.append((d, from))
        }
    }

    /// Steps until `condition` holds, at most `seconds` of simulated time; whether it came true.
    func run(upTo seconds: Double, until condition: () -> Bool) -> Bool {
        let end = now + seconds
        while now < end {
            if condition() { return true }
            step()
        }
        return condition()
    }

    func run(for seconds: Double) {
        let end = now + seconds
        while now < end { step() }
    }
}

@Suite struct ReplicationNodeTests {
    @Test func aStandbyReplicatesTakesOverAndTheOldActiveRejoinsAsStandby() throws {
        let net = Network()
        let a = try net.start(1, peers: [2])
        #expect(net.run(upTo: 1) { a.node.role == .active }, "a lone node cold-starts")
        for i in 0..<300 { #expect(a.table.outbound(UInt8(1 + i % 200), UInt16(1000 + i)) == .forward(.outbound)) }

        let b = try net.start(2, peers: [1])
        #expect(net.run(upTo: 2) { b.node.synced }, "the bulk resync completes")
        #expect(b.node.role == .standby)
        #expect(b.table.flowCount == 300)
        // Changes after the resync stream across.
        for i in 0..<500 { _ = a.table.outbound(50, UInt16(20000 + i)) }
        #expect(net.run(upTo: 1) { b.table.flowCount == 800 })
        #expect(b.table.outbound(9, 9) == .drop(.standby), "a standby translates nothing")

        let external = try #require(a.table.external(50, 20123))
        net.kill(1)
        #expect(net.run(upTo: 1) { b.node.role == .active }, "the standby takes over")
        #expect(b.node.counters["takeovers"] == 1)
        #expect(b.table.reply(via: external) == .forward(.inbound), "a replicated flow still works")

        // The old active comes back empty: it follows, resyncs, and stays a standby.
        let a2 = try net.start(1, peers: [2])
        #expect(net.run(upTo: 2) { a2.node.synced })
        #expect(a2.table.flowCount == 800)
        net.run(for: 0.5)
        #expect(a2.node.role == .standby && b.node.role == .active)
        #expect(a2.node.counters["cold-starts"] == nil && a2.node.counters["takeovers"] == nil)
    }

    /// What the workers' hold waits on: the confirmed serial reaches a change only once the standby holds it, and
    /// with no standby alive there is nothing to wait for.
    @Test func theConfirmedSerialFollowsTheStandbysAcknowledgements() throws {
        let net = Network()
        let a = try net.start(1, peers: [2])
        #expect(net.run(upTo: 1) { a.node.role == .active })
        let b = try net.start(2, peers: [1])
        #expect(net.run(upTo: 2) { b.node.synced })
        for i in 0..<20 {
            #expect(a.table.outbound(UInt8(100 + i), 3000) == .forward(.outbound))
            let serial = a.table.changeSerial
            #expect(a.node.confirmedSerial < serial, "not confirmed before the standby has it")
            #expect(net.run(upTo: 0.5) { a.node.confirmedSerial >= serial })
            #expect(b.table.flowCount == i + 1, "the standby has flow \(i + 1) once it is confirmed")
        }
        net.kill(2)
        #expect(net.run(upTo: 1) { a.node.confirmedSerial == .max }, "a dead standby is not waited for")
    }

    /// A lost datagram is sent again (50 ms, doubling), and the standby still applies every batch in order.
    @Test func lostBatchesAreRetransmittedAndAppliedInOrder() throws {
        let net = Network()
        let a = try net.start(1, peers: [2])
        #expect(net.run(upTo: 1) { a.node.role == .active })
        let b = try net.start(2, peers: [1])
        #expect(net.run(upTo: 2) { b.node.synced })
        for i in 0..<200 { _ = a.table.outbound(7, UInt16(5000 + i)) }
        // Every other entries datagram is lost on its first crossing.
        var dropped = 0
        for _ in 0..<20 {
            net.step()
            net.wire.removeAll { entry in
                guard entry.datagram.kind == .entries, dropped < 3 else { return false }
                dropped += 1
                return true
            }
        }
        #expect(dropped == 3)
        #expect(net.run(upTo: 2) { b.table.flowCount == 200 })
        #expect((a.node.counters["retransmits"] ?? 0) >= 3)
        #expect((b.node.counters["entries-out-of-order"] ?? 0) >= 1)
    }

    /// The test plays an active peer: real messages are applied; forged, replayed, truncated, tampered and
    /// version-mismatched ones are counted and never applied.
    @Test func forgedAndReplayedMessagesAreRejected() throws {
        let net = Network()
        // A long peer timeout keeps the played peer the leader throughout.
        let a = try net.start(1, peers: [9]) { $0.peerTimeoutMilliseconds = 60_000 }
        let peer = Network.endpoint(9)
        var sequence: UInt64 = 0
        func sealed(_ kind: SyncMessage.Kind, _ payload: [UInt8], key: SyncKey? = nil, version: UInt8? = nil) -> [UInt8] {
            sequence += 1
            var d = (key ?? net.key).seal(SyncMessage(kind: kind, sender: 9, epoch: 7, sequence: sequence,
                                                      acknowledgement: 0, payload: payload))
            if let version { d[4] = version }
            return d
        }
        func deliver(_ d: [UInt8]) {
            _ = a.node.receive(d, length: d.count, from: peer, now: net.now)
            _ = a.node.tick(now: net.now, healthy: true)
        }
        var heartbeat = [UInt8](repeating: 0, count: 16)
        heartbeat[0] = Role.active.rawValue
        heartbeat[1] = 1
        heartbeat[11] = 5  // term 5
        heartbeat[15] = 9  // leader: itself
        func record(_ host: UInt8) -> FlowRecord {
            FlowRecord(operation: .upsert, protocolNumber: 17, internalAddress: IPv4Address(10, 0, 0, host),
                       internalPort: 4000, externalAddress: IPv4Address(198, 18, 0, 1), externalPort: 4000 + UInt16(host),
                       remoteAddress: IPv4Address(198, 19, 0, 1), remotePort: 53)
        }
        let wrongKey = SyncKey(Array("another key, not the shared one, 32+ bytes".utf8))!

        // A forged active (wrong key) is not followed.
        for _ in 0..<5 { deliver(sealed(.heartbeat, heartbeat, key: wrongKey)) }
        #expect(a.node.counters["rejected-badMAC"] == 5)
        #expect(a.node.role == .starting)
        // Nor is anyone not configured as a peer.
        let stranger = sealed(.heartbeat, heartbeat)
        _ = a.node.receive(stranger, length: stranger.count, from: Network.endpoint(8), now: net.now)
        #expect(a.node.counters["rejected-unknown-peer"] == 1)

        // The real one is: node 1 follows it and asks for a resync.
        let beat = sealed(.heartbeat, heartbeat)
        deliver(beat)
        #expect(a.node.role == .standby)
        let entries = sealed(.entries, Batch.encode(number: 1, flags: Batch.reset | Batch.end, records: [record(1)][...]))
        deliver(entries)
        #expect(a.node.synced)
        #expect(a.table.flowCount == 1)

        // Replays of both, and forged, truncated, wrong-version and tampered entries that would add flows.
        deliver(beat)
        deliver(entries)
        let more = Batch.encode(number: 2, flags: 0, records: [record(2)][...])
        deliver(sealed(.entries, more, key: wrongKey))
        let good = sealed(.entries, Batch.encode(number: 2, flags: 0, records: [record(3)][...]))
        deliver(Array(good.dropLast(1)))
        deliver(sealed(.entries, more, version: 2))
        var tampered = sealed(.entries, more)
        tampered[36 + 12 + 7] ^= 1  // a byte of the record's address
        deliver(tampered)
        // A datagram longer than the receive buffer shows as such and is refused.
        _ = a.node.receive(good, length: good.count + 1, from: peer, now: net.now)
        let c = a.node.counters
        #expect(c["rejected-replayed"] == 2 && c["rejected-badMAC"] == 7 && c["rejected-truncated"] == 1
                && c["rejected-badVersion"] == 1 && c["rejected-badLength"] == 1, "\(c)")
        #expect(a.table.flowCount == 1, "nothing rejected was applied")
        #expect(a.table.external(1, 4000) != nil)

        // And the real next batch still is.
        deliver(good)
        #expect(a.table.flowCount == 2)
    }

    /// A flood on the sync link: forged datagrams from the peer's address, datagrams from strangers, garbage of
    /// every length. Each is counted under a fixed set of reasons (the counters do not grow with the flood), none
    /// is applied, and the synced standby keeps its replica and goes on receiving the active's changes.
    @Test func aFloodOfHostileDatagramsIsCountedAndHarmsNothing() throws {
        let net = Network()
        let a = try net.start(1, peers: [2])
        #expect(net.run(upTo: 1) { a.node.role == .active })
        for i in 0..<100 { _ = a.table.outbound(UInt8(1 + i), 4000) }
        let b = try net.start(2, peers: [1])
        #expect(net.run(upTo: 2) { b.node.synced && b.table.flowCount == 100 })
        let wrongKey = SyncKey(Array("another key, not the shared one, 32+ bytes".utf8))!
        var generator = SystemRandomNumberGenerator()
        let floods = 50_000
        for i in 0..<floods {
            let junk: [UInt8]
            switch i % 3 {
            case 0:
                junk = wrongKey.seal(SyncMessage(kind: .entries, sender: 1, epoch: 7, sequence: UInt64(i), acknowledgement: 0,
                                                 payload: Batch.encode(number: UInt64(i), flags: Batch.reset, records: records(1)[...])))
            case 1: junk = (0..<Int.random(in: 0...1600, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            default: junk = net.key.seal(SyncMessage(kind: .heartbeat, sender: 1, epoch: 7, sequence: UInt64(i), acknowledgement: 0))
            }
            let from = i % 5 == 4 ? UDPEndpoint(address: 0xC612_0000 | UInt32(i), port: UInt16(truncatingIfNeeded: i)) : Network.endpoint(1)
            _ = b.node.receive(junk, length: junk.count, from: from, now: net.now)
            if i % 1000 == 0 { net.step() }
        }
        let c = b.node.counters
        #expect(c.count < 40, "counters by reason, not by datagram: \(c.keys.sorted())")
        #expect(c.filter { $0.key.hasPrefix("rejected-") }.values.reduce(0, +) == UInt64(floods))
        #expect(b.node.synced && b.node.role == .standby && b.table.flowCount == 100, "the replica is unharmed")
        for i in 0..<50 { _ = a.table.outbound(200, UInt16(6000 + i)) }
        #expect(net.run(upTo: 1) { b.table.flowCount == 150 }, "and the active's changes still arrive")
    }
}
