import NatTable
import PacketKit
import Synchronization
import SystemCalls

// The packet path, one queue, one turn of `iterate()`:
//
//  1. Read a batch: up to `batchSize` frames from the TUN queue into this worker's slots, each a virtio-net header
//     and a packet (io_uring's multishot read fills the slots as frames are queued; else read(2) until EAGAIN).
//  2. Take the table's lock once for the whole batch (`LockedNAT`), noting how long the wait was.
//  3. Per frame (`FrameProcessor.process`): check the virtio-net header and prepare the offloads, translate the
//     packet in place (`NAT.translate`: mapping, filtering, TCP state, checksums), finish partial checksums,
//     compensate the TTL when the kernel will not forward it again; the outcome is send or drop.
//  4. Hand the batch's I/O counters to the table and take the fragments the batch released; leave the lock.
//  5. If the batch made flows and new flows are held (replication's hold), wait until a standby has them.
//  6. Send each frame to send through the output, then the released fragments, then flush: back into the TUN a
//     write per frame (a GSO super-packet stays whole); through a packet or raw socket, queued and sent with
//     sendmmsg(2) (a super-packet split into segments first).
//  7. Give the slots back to the read ring.
//  With nothing to read the turn waits instead (poll(2), or io_uring_enter), at most `idleMilliseconds`, and a wait
//  that ends without a frame retires expired flows, a bounded number at a time.

/// One queue's loop: read a batch (non-blocking reads until the queue is empty or the batch is full), translate
/// it under the lock, write it out; when the queue is empty, wait in poll(2) and retire expired flows.
/// Generic over the output so that the per-packet calls are direct (docs/architecture.md, "The per-packet path").
// @unchecked: a worker, its queue, its output and its buffers belong to the one thread that runs it; only the
// LockedNAT and the stop signal, both Sendable, are shared.
public final class Worker<Queue: PacketQueue, Output: PacketOutput>: @unchecked Sendable {
    public static var batchSize: Int { 64 }
    /// Room in front of each frame for a packet that grows when translated to IPv6 (NAT64).
    static var headroom: Int { Translate64.headroom }
    /// Room for the headroom, a virtio-net header and the largest packet (a 64 KB GSO super-packet).
    static var slotSize: Int { headroom + VirtioNetHeader.size + 65_535 + 1 }
    /// How long an idle worker sleeps before it retires expired flows.
    static var idleMilliseconds: Int32 { 1000 }
    static var idleExpiryBudget: Int { 4096 }

    let queue: Queue
    let output: Output
    let shared: LockedNAT
    /// The NAT's clock: CLOCK_MONOTONIC in the data plane, a variable in tests.
    let clock: @Sendable () -> NatInstant
    let stopSignal: StopSignal
    let virtioHeaders: Bool
    /// Set when new flows must reach a standby before their first packet leaves (replication's hold).
    let gate: ReplicationGate?
    /// Beats once per turn of the loop.
    let heartbeat: Heartbeat?
    let slots: UnsafeMutableRawBufferPointer
    /// Frame i of the batch is `lengths[i]` bytes in slot `slotOf[i]` (slot i, unless the read ring chose).
    let lengths: UnsafeMutablePointer<Int>
    let slotOf: UnsafeMutablePointer<UInt16>
    /// Frame i as translated: where it now begins and ends (NAT64 moves a packet within its slot's headroom).
    let frames: UnsafeMutablePointer<UnsafeMutableRawBufferPointer>
    /// The queue's reads through io_uring, when asked for and the kernel allows it; read(2) and poll(2) otherwise.
    var ring: ReadRing?
    /// Why the read ring was asked for and not made (for the caller to log).
    public let ringRefusal: Errno?
    let outcomes: UnsafeMutablePointer<FrameOutcome>
    var counters = IOCounters()
    /// The last read found the queue empty: the next turn waits in poll(2) instead of asking read(2) again
    /// (at a low rate, that second "nothing to read" would be one more syscall per packet).
    var drained = false

    public init(queue: Queue, virtioHeaders: Bool, output: Output, shared: LockedNAT, stop: StopSignal,
                gate: ReplicationGate? = nil, heartbeat: Heartbeat? = nil, ioUring: Bool = false,
                clock: @escaping @Sendable () -> NatInstant = { NatInstant(nanoseconds: SystemClock.monotonicNanoseconds()) }) {
        self.queue = queue
        self.clock = clock
        self.gate = gate
        self.heartbeat = heartbeat
        self.virtioHeaders = virtioHeaders
        self.output = output
        self.shared = shared
        self.stopSignal = stop
        slots = .allocate(byteCount: Self.batchSize * Self.slotSize, alignment: 64)
        lengths = .allocate(capacity: Self.batchSize)
        slotOf = .allocate(capacity: Self.batchSize)
        for i in 0..<Self.batchSize { slotOf[i] = UInt16(i) }
        frames = .allocate(capacity: Self.batchSize)
        frames.initialize(repeating: UnsafeMutableRawBufferPointer(start: nil, count: 0), count: Self.batchSize)
        outcomes = .allocate(capacity: Self.batchSize)
        outcomes.initialize(repeating: .drop, count: Self.batchSize)
        var ring: ReadRing? = nil
        var refusal: Errno? = nil
        if ioUring, let fd = queue.ringDescriptor {
            // Without virtio-net headers the kernel reads the packet after the header's room, as read(2) does.
            let offset = Self.headroom + (virtioHeaders ? 0 : VirtioNetHeader.size)
            do {
                ring = try ReadRing(fd: fd, stop: stop, base: slots.baseAddress!, stride: Self.slotSize, offset: offset,
                                    length: Self.slotSize - offset, count: Self.batchSize)
            } catch {
                refusal = error
            }
        }
        self.ring = ring
        ringRefusal = refusal
    }

    deinit {
        // The ring first: the kernel may write into the slots until it is gone.
        ring = nil
        slots.deallocate()
        lengths.deallocate()
        slotOf.deallocate()
        frames.deallocate()
        outcomes.deallocate()
    }

    /// Starts the read ring on the calling thread, the only one that uses it from then on; if the kernel refuses
    /// now, after allowing it at setup, the worker reads with read(2) (counted as a read error).
    public func startRing() {
        guard let ring else { return }
        do { try ring.start() } catch {
            counters.readErrors &+= 1
            self.ring = nil
        }
    }

    /// Whether this worker reads through io_uring.
    public var readsThroughRing: Bool { ring != nil }

    /// Slot i after its headroom: where a frame is read to.
    @inline(__always)
    func slot(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: slots[(i &* Self.slotSize &+ Self.headroom)..<((i &+ 1) &* Self.slotSize)])
    }

    /// Runs until the stop signal is given. Errors other than "nothing to read" are counted, and a queue that
    /// keeps failing is not spun on: the worker waits in poll(2) as if idle.
    public func run() {
        startRing()
        while !stopSignal.isStopped { iterate() }
        shared.state.withLock { $0.io += counters }
        counters = IOCounters()
    }

    /// One turn of the loop: a batch read, translated and written; or, with nothing to read, a wait and expiry.
    /// After a batch that emptied the queue, the turn starts with the wait.
    public func iterate() {
        heartbeat?.beat()
        if drained {
            drained = false
            guard idle() else { return }
        }
        let count = readBatch()
        if count == 0 {
            drained = false
            idle()
            return
        }
        let now = clock()
        let compensate = output.compensatesForwardingHop
        let (released, newFlows, serial) = shared.state.withLock { state in
            counters.noteLockWait(clock().nanoseconds &- now.nanoseconds)
            let before = state.nat.counters.flowsCreated
            for i in 0..<count {
                frames[i] = slot(Int(slotOf[i])).prefix(upTo: lengths[i])
                outcomes[i] = FrameProcessor.process(&frames[i], headroom: Self.headroom, nat: state.nat, now: now,
                                                     compensateHop: compensate, counters: &counters)
            }
            state.io += counters
            counters = IOCounters()
            return (state.nat.takeReleasedFragments(), state.nat.counters.flowsCreated != before, state.nat.changeSerial)
        }
        // The batch made flows: hold it (bounded) until the standbys have them, so that a takeover right after
        // finds every flow whose first packet left. Changes to existing flows are not worth the wait.
        if newFlows, let gate { gate.waitUntilReplicated(serial) }
        for i in 0..<count {
            if case .send(let header) = outcomes[i] {
                output.send(frame: frames[i], header: header, counters: &counters)
            }
        }
        for fragment in released {
            var bytes = fragment.bytes
            if compensate { bytes.withUnsafeMutableBytes { Offload.compensateForwardingHop($0) } }
            bytes.withUnsafeMutableBytes { output.send(packet: $0, counters: &counters) }
        }
        output.flush(counters: &counters)
        ring?.release(ids: slotOf, count: count)
    }

    /// Reads frames until the queue is empty or the batch is full. Without virtio-net headers the packet is read
    /// after a zeroed header, so that every frame has the same layout.
    @inline(__always)
    func readBatch() -> Int {
        if let ring { return takeBatch(ring) }
        var count = 0
        while count < Self.batchSize {
            let s = slot(count)
            let target = virtioHeaders ? s : s.suffix(from: VirtioNetHeader.size)
            do {
                guard let n = try queue.read(into: target) else {
                    drained = true
                    break
                }
                if !virtioHeaders { VirtioNetHeader().write(to: s) }
                let length = virtioHeaders ? n : n &+ VirtioNetHeader.size
                lengths[count] = length
                counters.framesRead &+= 1
                counters.bytesRead &+= UInt64(n)
                count &+= 1
            } catch {
                counters.readErrors &+= 1
                break
            }
        }
        return count
    }

    /// The frames the read ring filled, in the order they were read.
    @inline(__always)
    func takeBatch(_ ring: ReadRing) -> Int {
        let count = ring.take(ids: slotOf, lengths: lengths, max: Self.batchSize, errors: &counters.readErrors)
        if count < Self.batchSize { drained = true }
        for i in 0..<count {
            counters.framesRead &+= 1
            counters.bytesRead &+= UInt64(lengths[i])
            if !virtioHeaders {
                VirtioNetHeader().write(to: slot(Int(slotOf[i])))
                lengths[i] &+= VirtioNetHeader.size
            }
        }
        return count
    }

    /// Waits for the queue (true when it became readable), or retires expired flows when the wait ends without.
    @discardableResult
    func idle() -> Bool {
        // What the last batch wrote is published before sleeping, so that `tunnat status` is current when idle.
        if counters != IOCounters() {
            shared.state.withLock { $0.io += counters }
            counters = IOCounters()
        }
        do {
            if let ring {
                if try ring.wait(milliseconds: Self.idleMilliseconds) { return true }
            } else if try queue.waitReadable(orStop: stopSignal, milliseconds: Self.idleMilliseconds) {
                return true
            }
        } catch {
            counters.readErrors &+= 1
        }
        let now = clock()
        shared.state.withLock { state in
            _ = state.nat.expire(now: now, budget: Self.idleExpiryBudget)
            state.io += counters
        }
        counters = IOCounters()
        return false
    }
}
