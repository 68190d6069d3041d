import Logging
@testable import NatTable
import PacketKit
@testable import Replication
import SystemCalls
import Testing
import TunIO

/// A data plane's table: the real `LockedNAT` the workers share, with helpers that send packets through it.
func makeTable(pool: IPv4Address = IPv4Address(198, 18, 0, 1)) throws -> LockedNAT {
    var configuration = NatConfiguration(privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: [pool], seed: 5)
    configuration.nat64 = Nat64Configuration(prefix: NAT64Prefix(IPv6Prefix("2001:db8:64::/96")!)!,
                                             privatePrefixes: [IPv6Prefix("fd00:1::/64")!])
    return LockedNAT(nat: try NAT(configuration: configuration))
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

    /// NAT64: a UDP packet from IPv6 host fd00:1::HOST to 198.19.0.1 through the prefix; the verdict and, when
    /// translated, the external port.
    func outbound6(_ host: UInt8, _ port: UInt16) -> (Verdict, UInt16) {
        let source = IPv6Address(high: 0xfd00_0001_0000_0000, low: UInt64(host))
        let packet = PacketBuilder.udp6(from: (source, port), to: (IPv6Address("2001:db8:64::c613:1")!, 53), payload: [1])
        let (verdict, out) = translate64(packet, at: 1)
        return (verdict, out.count >= 24 ? UInt16(out[20]) << 8 | UInt16(out[21]) : 0)
    }

    /// The server's reply to an external port: the verdict and the IPv6 destination it was translated to.
    func reply6(toPort port: UInt16) -> (Verdict, IPv6Address?) {
        let packet = PacketBuilder.udp(from: (IPv4Address(198, 19, 0, 1), 53), to: (IPv4Address(198, 18, 0, 1), port), payload: [2])
        var (verdict, out) = translate64(packet, at: 2)
        guard out.count >= 40, out[0] >> 4 == 6 else { return (verdict, nil) }
        return (verdict, out.withUnsafeMutableBytes { IPv6Address($0, at: 24) })
    }

    /// Translates with headroom in front, as the data path does; the verdict and the bytes that came out.
    func translate64(_ packet: [UInt8], at seconds: UInt64) -> (Verdict, [UInt8]) {
        state.withLock { s in
            var buffer = [UInt8](repeating: 0, count: Translate64.headroom) + packet
            return buffer.withUnsafeMutableBytes { b in
                var window = b.suffix(from: Translate64.headroom)
                let verdict = s.nat.translate(&window, headroom: Translate64.headroom, now: .seconds(seconds))
                return (verdict, Array(window))
            }
        }
    }
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

    let keyring = SyncKeyring(Array("0123456789abcdef0123456789abcdef-test-key".utf8))!
    var now = 0.0
    var members: [UDPEndpoint: Member] = [:]
    var wire: [(datagram: OutgoingDatagram, from: UDPEndpoint)] = []
    var starts: UInt64 = 0
    /// Every datagram that crossed the wire, for tests that replay or tamper with them.
    var captured: [(datagram: OutgoingDatagram, from: UDPEndpoint)] = []
    /// Drops a datagram on the wire when it says so (a lost datagram, a partition).
    var lose: ((_ datagram: OutgoingDatagram, _ from: UDPEndpoint) -> Bool)?

    static func endpoint(_ node: UInt32) -> UDPEndpoint { UDPEndpoint(address: 0x0A00_0000 | node, port: 7800) }

    func config(_ node: UInt32, peers: [UInt32]) -> ReplicationConfiguration {
        var c = ReplicationConfiguration(node: node, listen: Self.endpoint(node),
                                         peers: peers.map { ReplicationPeer(node: $0, endpoint: Self.endpoint($0)) }, keyFile: "")
        c.heartbeatMilliseconds = 20
        c.peerTimeoutMilliseconds = 200
        c.startupWaitMilliseconds = 300
        return c
    }

    /// Starts (or restarts, with a new run id, new nonces and an empty table) node `id`.
    @discardableResult
    func start(_ id: UInt32, peers: [UInt32], keyring: SyncKeyring? = nil, table: LockedNAT? = nil,
               configure: (inout ReplicationConfiguration) -> Void = { _ in }) throws -> Member {
        var c = config(id, peers: peers)
        configure(&c)
        var logger = Logger(label: "test-\(id)")
        logger.logLevel = .critical
        starts += 1
        var generator = SplitMix64(seed: starts &* 7919)
        let table = try table ?? makeTable()
        let node = ReplicationNode(config: c, keyring: keyring ?? self.keyring, run: 1000 + starts,
                                   random: { generator.next() }, table: table, logger: logger, now: now)
        let member = Member(node: node, table: table)
        members[Self.endpoint(id)] = member
        return member
    }

    /// A synced pair: node `active` the active with `flows` flows, node `standby` its synced standby.
    func syncedPair(active: UInt32 = 1, standby: UInt32 = 2, flows: Int = 100,
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> (active: Member, standby: Member) {
        let a = try start(active, peers: [standby])
        #expect(run(upTo: 1) { a.node.role == .active }, sourceLocation: sourceLocation)
        for i in 0..<flows { _ = a.table.outbound(UInt8(1 + i), 4000) }
        let b = try start(standby, peers: [active])
        #expect(run(upTo: 2) { b.node.synced && b.table.flowCount == flows }, sourceLocation: sourceLocation)
        return (a, b)
    }

    /// A key no node of the test network holds.
    static let wrongKey = SyncKeyring(Array("a key the other nodes do not hold, 32+ bytes".utf8))!

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
            if lose?(d, from) == true { continue }
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
        #expect(b.node.counters[.takeovers] == 1)
        #expect(b.table.reply(via: external) == .forward(.inbound), "a replicated flow still works")

        // The old active comes back empty: it follows, resyncs, and stays a standby.
        let a2 = try net.start(1, peers: [2])
        #expect(net.run(upTo: 2) { a2.node.synced })
        #expect(a2.table.flowCount == 800)
        net.run(for: 0.5)
        #expect(a2.node.role == .standby && b.node.role == .active)
        #expect(a2.node.counters[.coldStarts] == 0 && a2.node.counters[.takeovers] == 0)
    }

    /// What the workers' hold waits on: the confirmed serial reaches a change only once the standby holds it, and
    /// with no standby alive there is nothing to wait for.
    @Test func theConfirmedSerialFollowsTheStandbysAcknowledgements() throws {
        let net = Network()
        let a = try net.start(1, peers: [2])
        #expect(net.run(upTo: 1) { a.node.role == .active })
        let b = try net.start(2, peers: [1])
        #expect(net.run(upTo: 2) { b.node.synced })
        #expect(a.node.confirmedSerial == .max, "a standby resyncing is not waited for")
        #expect(net.run(upTo: 1) { a.node.confirmedSerial != .max }, "a synced one is, once its end is acknowledged")
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
        #expect(a.node.counters[.retransmits] >= 3)
        #expect(b.node.counters[.entriesOutOfOrder] >= 1)
    }


    /// A planned handover: the standby takes over at once, the old active translates on and its new flows still
    /// reach the new active, and the handover completes only once the new active holds the routes.
    @Test func aPlannedHandoverLosesNoFlow() throws {
        let net = Network()
        let a = try net.start(1, peers: [2])
        #expect(net.run(upTo: 1) { a.node.role == .active })
        for i in 0..<100 { _ = a.table.outbound(UInt8(1 + i), 4000) }
        let b = try net.start(2, peers: [1])
        #expect(net.run(upTo: 2) { b.node.synced })
        net.run(for: 0.1)

        #expect(a.node.beginHandover(now: net.now) == nil)
        #expect(a.node.beginHandover(now: net.now) == nil, "asking again changes nothing")
        #expect(net.run(upTo: 0.2) { b.node.role == .active }, "the standby takes over on being told")
        #expect(b.node.term > a.node.term && b.node.counters[.handoversTaken] == 1)
        // The routes are still the old active's: it translates, and its new flows reach the new active.
        #expect(a.node.role == .active && a.table.outbound(201, 5000) == .forward(.outbound))
        let external = try #require(a.table.external(201, 5000))
        #expect(net.run(upTo: 0.5) { b.table.external(201, 5000) != nil })
        #expect(b.table.flowCount == 101)
        #expect(a.node.handover?.state == .underway)
        #expect(b.table.reply(via: external) == .forward(.inbound), "the new active translates it")
        #expect(b.node.counters[ApplyFailure.conflict] == 0)
        // No step-down, no resync of the old active by the new one.
        #expect(a.node.counters[.stepDowns] == 0 && b.node.counters[.resyncsStarted] == 0)
        // Complete once the new active holds the routes (its heartbeats say so).
        #expect(net.run(upTo: 1) { a.node.handover?.state == .complete })
        net.kill(1)
        net.run(for: 0.5)
        #expect(b.node.role == .active && b.table.flowCount == 101)
    }

    @Test func aHandoverNeedsASyncedStandby() throws {
        let net = Network()
        let a = try net.start(1, peers: [2])
        #expect(net.run(upTo: 1) { a.node.role == .active })
        #expect(a.node.beginHandover(now: net.now) == "no synced, healthy standby follows this node")
        let b = try net.start(2, peers: [1])
        #expect(b.node.beginHandover(now: net.now) == "this node is starting, not the active")
        #expect(net.run(upTo: 2) { b.node.synced })
        b.healthy = false
        net.run(for: 0.1)
        #expect(a.node.beginHandover(now: net.now) == "no synced, healthy standby follows this node")
    }

    /// The bulk resync of a million flows while the active keeps making and ending flows: the walk goes a part at
    /// a time, the resync is started once, and the standby ends with exactly the active's table.
    @Test func aResyncOfAMillionFlowsUnderChurnCompletesOnce() throws {
        let flows = 1 << 20
        let config = NatConfiguration(privatePrefixes: [IPv4Prefix("10.0.0.0/8")!],
                                      poolAddresses: [IPv4Address(198, 18, 0, 1), IPv4Address(198, 18, 0, 2)],
                                      maxFlows: flows + 65_536, maxFlowsPerHost: nil, seed: 5)
        let active = LockedNAT(nat: try NAT(configuration: config))
        let standby = LockedNAT(nat: try NAT(configuration: config))
        // A million flows, made through the table's own replica path (fast), then the table goes live.
        active.state.withLock { s in
            var batch: [FlowRecord] = []
            // 1024 mappings of 1024 flows each (one pool address has too few ports for a million mappings).
            for i in 0..<flows {
                let (k, j) = (UInt32(i >> 10), UInt32(i & 1023))
                batch.append(FlowRecord(operation: .upsert, protocolNumber: 17,
                                        internalAddress: IPv4Address(0x0A01_0000 | k), internalPort: 4000,
                                        externalAddress: IPv4Address(198, 18, 0, 2), externalPort: UInt16(1024 + k),
                                        remoteAddress: IPv4Address(0xC613_0000 | j), remotePort: 53))
            }
            let failures = s.nat.apply(batch, now: .seconds(1))
            #expect(failures.isEmpty, "\(failures.count) not applied")
        }
        let net = Network()
        let a = try net.start(1, peers: [2], table: active)
        #expect(net.run(upTo: 1) { a.node.role == .active })
        #expect(a.table.flowCount == flows)
        let b = try net.start(2, peers: [1], table: standby)
        var churn = 0
        let synced = net.run(upTo: 60) {
            // Churn: new flows every step while the resync runs.
            for _ in 0..<20 {
                _ = a.table.outbound(UInt8(1 + churn % 250), UInt16(30_000 + churn / 250))
                churn += 1
            }
            return b.node.synced
        }
        #expect(synced, "synced after \(net.now) s of simulated time")
        #expect(net.run(upTo: 2) { b.table.flowCount == a.table.flowCount })
        #expect(a.node.counters[.resyncsStarted] == 1, "\(a.node.counters)")
        #expect(a.node.counters[.snapshotParts] >= UInt64(flows / NAT.snapshotSlots))
        #expect(Set(b.table.state.withLock { $0.nat.snapshot() }.map(\.description))
                == Set(a.table.state.withLock { $0.nat.snapshot() }.map(\.description)))
    }
}
