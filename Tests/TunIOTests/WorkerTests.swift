import NatTable
import PacketKit
import Synchronization
import SystemCalls
import Testing
@testable import TunIO

/// The worker loop on an in-memory queue (as wireguard-go's `tuntest`): frames in, one `iterate()` at a time,
/// frames out, on a hand-set clock. No device, no sleeps.
@Suite struct WorkerTests {
    /// Records each hold, and how many frames had been written when it began.
    // @unchecked: the test drives the worker on its own thread; the queue is read only from there.
    final class Gate: ReplicationGate, @unchecked Sendable {
        let serials = Mutex<[UInt64]>([])
        let writtenWhenHeld = Mutex<[Int]>([])
        var queue: MemoryQueue?
        var holdMilliseconds: Int { 10 }
        func waitUntilReplicated(_ serial: UInt64) {
            serials.withLock { $0.append(serial) }
            let written = queue?.written.count ?? -1
            writtenWhenHeld.withLock { $0.append(written) }
        }
    }

    /// The hand-set clock, in seconds.
    final class ManualClock: Sendable {
        let seconds = Atomic<UInt64>(1)
        var value: UInt64 { seconds.load(ordering: .relaxed) }
        func set(_ value: UInt64) { seconds.store(value, ordering: .relaxed) }
    }
    let now = ManualClock()

    func worker(virtioHeaders: Bool, gate: Gate? = nil) throws -> (Worker<MemoryQueue, TunOutput<MemoryQueue>>, MemoryQueue, LockedNAT) {
        let queue = MemoryQueue()
        gate?.queue = queue
        let now = self.now
        let table = LockedNAT(nat: try NAT(configuration: NatConfiguration(
            privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: [pool], seed: 1)))
        let worker = Worker(queue: queue, virtioHeaders: virtioHeaders, output: TunOutput(queue: queue, virtioHeaders: virtioHeaders),
                            shared: table, stop: try StopSignal(), gate: gate,
                            clock: { .seconds(now.value) })
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

    /// An empty queue: the worker waits (not at all, here), writes nothing, and retires flows past their timeout.
    @Test func anIdleTurnRetiresExpiredFlows() throws {
        let (worker, queue, table) = try worker(virtioHeaders: true)
        queue.incoming = [frame(VirtioNetHeader(), PacketBuilder.udp(from: (client, 5000), to: (server, 9000), payload: payload(8)))]
        worker.iterate()
        #expect(queue.takeWritten().count == 1 && table.flowCount == 1)
        now.set(UInt64(NatConfiguration.Timeouts.rfc4787UDP))
        worker.iterate()
        #expect(table.flowCount == 1, "not before its timeout")
        now.set(2 + UInt64(NatConfiguration.Timeouts.rfc4787UDP))
        worker.iterate()
        #expect(queue.takeWritten().isEmpty)
        #expect(table.flowCount == 0, "retired when idle")
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
        #expect(gate.writtenWhenHeld.withLock { $0 } == [0], "held before anything of the batch is written")
        queue.incoming = [frame(VirtioNetHeader(), packet)]
        worker.iterate()
        #expect(gate.serials.withLock { $0 } == [serial], "a packet of a known flow is not held")
        #expect(queue.takeWritten().count == 2)
    }
}
