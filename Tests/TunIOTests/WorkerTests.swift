import NatTable
import PacketKit
import Synchronization
import SystemCalls
import Testing
@testable import TunIO

/// The worker loop on an in-memory queue (as wireguard-go's `tuntest`): frames in, one `iterate()` at a time,
/// frames out, on a hand-set clock. No device, no sleeps.
@Suite struct WorkerTests {
    final class Gate: ReplicationGate {
        let serials = Mutex<[UInt64]>([])
        var holdMilliseconds: Int { 10 }
        func waitUntilReplicated(_ serial: UInt64) { serials.withLock { $0.append(serial) } }
    }

    func worker(virtioHeaders: Bool, gate: Gate? = nil) throws -> (Worker<MemoryQueue, TunOutput<MemoryQueue>>, MemoryQueue, LockedNAT) {
        let queue = MemoryQueue()
        let table = LockedNAT(nat: try NAT(configuration: NatConfiguration(
            privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: [pool], seed: 1)))
        let worker = Worker(queue: queue, virtioHeaders: virtioHeaders, output: TunOutput(queue: queue, virtioHeaders: virtioHeaders),
                            shared: table, stop: try StopSignal(), gate: gate, clock: { .seconds(1) })
        return (worker, queue, table)
    }

    @Test(arguments: [true, false])
    func aBatchIsTranslatedAndWrittenBackInOrder(virtioHeaders: Bool) throws {
        let (worker, queue, table) = try worker(virtioHeaders: virtioHeaders)
        let packets = (0..<3).map { i in
            PacketBuilder.udp(from: (client, UInt16(5000 + i)), to: (server, 53), payload: payload(20 + i))
        }
        queue.incoming = packets.map { virtioHeaders ? frame(VirtioNetHeader(), $0) : $0 }
        // An unsolicited inbound packet: dropped, never written.
        let stray = PacketBuilder.udp(from: (server, 53), to: (pool, 9), payload: payload(4))
        queue.incoming.append(virtioHeaders ? frame(VirtioNetHeader(), stray) : stray)
        worker.iterate()
        let written = queue.takeWritten().map { virtioHeaders ? Array($0.dropFirst(VirtioNetHeader.size)) : $0 }
        #expect(written.count == 3)
        for (i, packet) in written.enumerated() {
            #expect(Array(packet[12..<16]) == [198, 18, 0, 1], "translated to the pool address")
            #expect(ChecksumAudit.problems(in: packet) == [])
            #expect(packet.count == packets[i].count, "in order")
        }
        // What a batch wrote is published with the next batch, or when the worker goes idle.
        worker.iterate()
        let (flows, io) = table.state.withLock { ($0.nat.flowCount, $0.io) }
        #expect(flows == 3)
        #expect(io.framesRead == 4 && io.packetsWritten == 3)
    }

    /// An empty queue: the worker waits (not at all, here) and retires expired flows.
    @Test func anIdleTurnWritesNothing() throws {
        let (worker, queue, table) = try worker(virtioHeaders: true)
        worker.iterate()
        #expect(queue.takeWritten().isEmpty)
        #expect(table.flowCount == 0)
    }

    /// A batch that created flows is held for replication (the gate hears its serial); one that made none is not.
    @Test func aBatchThatCreatedFlowsIsHeldForTheStandbys() throws {
        let gate = Gate()
        let (worker, queue, table) = try worker(virtioHeaders: true, gate: gate)
        table.setLive(true, clearing: false, now: .seconds(1))
        let packet = PacketBuilder.udp(from: (client, 5000), to: (server, 53), payload: payload(8))
        queue.incoming = [frame(VirtioNetHeader(), packet)]
        worker.iterate()
        let serial = table.state.withLock { $0.nat.changeSerial }
        #expect(gate.serials.withLock { $0 } == [serial])
        queue.incoming = [frame(VirtioNetHeader(), packet)]
        worker.iterate()
        #expect(gate.serials.withLock { $0 } == [serial], "a packet of a known flow is not held")
        #expect(queue.takeWritten().count == 2)
    }
}
