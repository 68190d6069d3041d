@testable import Failover
import Dispatch
import Glibc
import class Foundation.NSLock
import class Foundation.Thread
import struct Foundation.Date
import Logging
import NatTable
import PacketKit
import Testing

/// A NAT behind a lock, as the data plane's workers share it.
final class LockedNAT: NatAccess, @unchecked Sendable {
    let nat: NAT
    let lock = NSLock()
    init(pool: IPv4Address = IPv4Address(198, 18, 0, 1)) throws {
        nat = try NAT(configuration: NatConfiguration(privatePrefixes: [IPv4Prefix("10.0.0.0/8")!],
                                                      poolAddresses: [pool], seed: 5))
    }
    func withNAT<R>(_ body: (NAT) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(nat)
    }
    /// Sends a UDP packet from a private host through the table; the verdict.
    func outbound(_ host: UInt8, _ port: UInt16) -> Verdict {
        var bytes = PacketBuilder.udp(from: (IPv4Address(10, 0, 0, host), port), to: (IPv4Address(198, 19, 0, 1), 53),
                                      payload: [1])
        return withNAT { nat in bytes.withUnsafeMutableBytes { nat.translate($0, now: .seconds(1)) } }
    }
    /// A reply from the server to the external endpoint of (host, port), translated or not.
    func reply(to host: UInt8, _ port: UInt16, via external: (address: IPv4Address, port: Port)) -> Verdict {
        var bytes = PacketBuilder.udp(from: (IPv4Address(198, 19, 0, 1), 53), to: (external.address, external.port.value),
                                      payload: [2])
        return withNAT { nat in bytes.withUnsafeMutableBytes { nat.translate($0, now: .seconds(2)) } }
    }
    var flows: Int { withNAT { $0.flowCount } }
}

/// Runs a replicator on its own thread until stopped.
final class Node: @unchecked Sendable {
    let replicator: Replicator
    let table: LockedNAT
    let done = DispatchGroup()
    init(_ config: ReplicationConfiguration, key: SyncKey, healthy: Bool = true) throws {
        table = try LockedNAT()
        var logger = Logger(label: "test-\(config.node)")
        logger.logLevel = .warning
        replicator = try Replicator(config: config, key: key, table: table, health: { healthy }, logger: logger)
        done.enter()
        Thread { [replicator, done] in
            replicator.run()
            done.leave()
        }.start()
    }
    func kill() {
        replicator.stop()
        done.wait()
    }
}

/// Waits (up to `seconds`) for `condition`; whether it came true.
func eventually(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.01)
    }
    return condition()
}

/// A UDP port on 127.0.0.1 that nothing holds right now.
func freePort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var sa = UDPEndpoint(address: 0x7F00_0001, port: 0).sockaddr
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            _ = bind(fd, $0, length)
            _ = getsockname(fd, $0, &length)
        }
    }
    return UInt16(bigEndian: sa.sin_port)
}

@Suite(.serialized) struct ReplicatorTests {
    let key = SyncKey(Array("0123456789abcdef0123456789abcdef-test-key".utf8))!

    func config(_ node: UInt32, _ me: UInt16, _ peer: UInt16) -> ReplicationConfiguration {
        var c = ReplicationConfiguration(node: node, listen: UDPEndpoint(address: 0x7F00_0001, port: me),
                                         peers: [UDPEndpoint(address: 0x7F00_0001, port: peer)], keyFile: "")
        c.heartbeatMilliseconds = 20
        c.peerTimeoutMilliseconds = 200
        c.startupWaitMilliseconds = 300
        return c
    }

    @Test func aStandbyReplicatesTakesOverAndTheOldActiveRejoinsAsStandby() throws {
        let (pa, pb) = (freePort(), freePort())
        let a = try Node(config(1, pa, pb), key: key)
        #expect(eventually { a.replicator.role == .active }, "a lone node cold-starts")
        for i in 0..<300 { #expect(a.table.outbound(UInt8(1 + i % 200), UInt16(1000 + i)) == .forward(.outbound)) }

        let b = try Node(config(2, pb, pa), key: key)
        #expect(eventually { b.replicator.status.synced }, "the bulk resync completes")
        #expect(b.replicator.role == .standby)
        #expect(b.table.flows == 300)
        // Changes after the resync stream across.
        for i in 0..<500 { _ = a.table.outbound(50, UInt16(20000 + i)) }
        #expect(eventually { b.table.flows == 800 })
        #expect(b.table.outbound(9, 9) == .drop(.standby), "a standby translates nothing")

        let external = try #require(a.table.withNAT {
            $0.externalEndpoint(protocol: .udp, address: IPv4Address(10, 0, 0, 50), port: Port(20123))
        })
        a.kill()
        #expect(eventually { b.replicator.role == .active }, "the standby takes over")
        #expect(b.replicator.status.counters["takeovers"] == 1)
        #expect(b.table.reply(to: 50, 20123, via: external) == .forward(.inbound), "a replicated flow still works")

        // The old active comes back empty: it follows, resyncs, and stays a standby.
        let a2 = try Node(config(1, pa, pb), key: key)
        #expect(eventually { a2.replicator.status.synced })
        #expect(a2.table.flows == 800)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(a2.replicator.role == .standby && b.replicator.role == .active)
        #expect(a2.replicator.status.counters["cold-starts"] == nil && a2.replicator.status.counters["takeovers"] == nil)
        a2.kill()
        b.kill()
    }

    /// With the hold on, a new flow's packet is released only once the standby holds the flow.
    @Test func theHoldReleasesOnceTheStandbyHasTheFlow() throws {
        let (pa, pb) = (freePort(), freePort())
        var ca = config(1, pa, pb)
        ca.holdNewFlowsMilliseconds = 500
        let a = try Node(ca, key: key)
        #expect(eventually { a.replicator.role == .active })
        let b = try Node(config(2, pb, pa), key: key)
        #expect(eventually { b.replicator.status.synced })
        for i in 0..<20 {
            #expect(a.table.outbound(UInt8(100 + i), 3000) == .forward(.outbound))
            a.replicator.waitUntilReplicated(a.table.withNAT { $0.changeSerial })
            #expect(b.table.flows == i + 1, "the standby has flow \(i + 1) when the hold ends")
        }
        #expect(a.replicator.status.counters["hold-timeouts"] == 0)
        b.kill()
        // Without a standby there is nothing to wait for.
        #expect(eventually { a.replicator.status.peers.first?.alive == false })
        _ = a.table.outbound(7, 7)
        a.replicator.waitUntilReplicated(a.table.withNAT { $0.changeSerial })
        #expect(eventually { a.replicator.status.counters["hold-timeouts"] == 0 })
        a.kill()
    }

    /// The test plays an active peer over a socket of its own: real messages are applied; forged, replayed,
    /// truncated and version-mismatched ones are counted and never applied.
    @Test func forgedAndReplayedMessagesAreRejected() throws {
        let (pa, pp) = (freePort(), freePort())
        let peer = try UDPSocket(bind: UDPEndpoint(address: 0x7F00_0001, port: pp))
        let aEndpoint = UDPEndpoint(address: 0x7F00_0001, port: pa)
        // The test sends one heartbeat only: a long peer timeout keeps it the leader throughout.
        var c = config(1, pa, pp)
        c.peerTimeoutMilliseconds = 60_000
        let a = try Node(c, key: key)
        defer { a.kill() }
        var sequence: UInt64 = 0
        func sealed(_ kind: SyncMessage.Kind, _ payload: [UInt8], key: SyncKey? = nil, version: UInt8? = nil) -> [UInt8] {
            sequence += 1
            var d = (key ?? self.key).seal(SyncMessage(kind: kind, sender: 9, epoch: 7, sequence: sequence,
                                                       acknowledgement: 0, payload: payload))
            if let version { d[4] = version }
            return d
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
        for _ in 0..<5 { _ = peer.send(sealed(.heartbeat, heartbeat, key: wrongKey), to: aEndpoint) }
        #expect(eventually { (a.replicator.status.counters["rejected-badMAC"] ?? 0) >= 5 })
        #expect(a.replicator.role == .starting)

        // The real one is: node 1 follows it and asks for a resync.
        let beat = sealed(.heartbeat, heartbeat)
        _ = peer.send(beat, to: aEndpoint)
        #expect(eventually { a.replicator.role == .standby })
        let entries = sealed(.entries, Batch.encode(number: 1, flags: Batch.reset | Batch.end, records: [record(1)][...]))
        _ = peer.send(entries, to: aEndpoint)
        #expect(eventually { a.replicator.status.synced })
        #expect(a.table.flows == 1)

        // Replays of both, and forged, truncated and wrong-version entries that would add flows.
        _ = peer.send(beat, to: aEndpoint)
        _ = peer.send(entries, to: aEndpoint)
        let more = Batch.encode(number: 2, flags: 0, records: [record(2)][...])
        _ = peer.send(sealed(.entries, more, key: wrongKey), to: aEndpoint)
        let good = sealed(.entries, Batch.encode(number: 2, flags: 0, records: [record(3)][...]))
        _ = peer.send(Array(good.dropLast(1)), to: aEndpoint)
        _ = peer.send(sealed(.entries, more, version: 2), to: aEndpoint)
        var tampered = sealed(.entries, more)
        tampered[36 + 12 + 7] ^= 1  // a byte of the record's address
        _ = peer.send(tampered, to: aEndpoint)
        #expect(eventually {
            let c = a.replicator.status.counters
            return c["rejected-replayed"] == 2 && c["rejected-badMAC"] == 7 && c["rejected-truncated"] == 1
                && c["rejected-badVersion"] == 1
        }, "\(a.replicator.status.counters)")
        #expect(a.table.flows == 1, "nothing rejected was applied")
        #expect(a.table.withNAT { $0.externalEndpoint(protocol: .udp, address: IPv4Address(10, 0, 0, 1), port: Port(4000)) } != nil)

        // And the real next batch still is.
        _ = peer.send(good, to: aEndpoint)
        #expect(eventually { a.table.flows == 2 })
    }
}
