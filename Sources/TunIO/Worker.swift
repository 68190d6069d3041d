import NatTable
import PacketKit
import Synchronization
import SystemCalls

/// The NAT and the I/O counters, shared by the workers of all queues (and by replication, through `ReplicaPort`)
/// behind one lock. A worker takes the lock once per batch of up to `Worker.batchSize` packets, not once per packet.
public final class LockedNAT: Sendable {
    public struct State: ~Copyable {
        public var nat: NAT
        public var io = IOCounters()
    }
    /// Guards the NAT and the counters; the NAT never leaves it.
    public let state: Mutex<State>
    /// The longest replication held the lock in one call (nanoseconds): what a packet may wait behind it.
    let longestHold = Atomic<UInt64>(0)

    public init(nat: consuming sending NAT) {
        state = Mutex(State(nat: nat))
    }

    public var replicationHoldMaxNanoseconds: UInt64 { longestHold.load(ordering: .relaxed) }

    /// Runs `body` under the lock for replication, timing how long the lock was held.
    func held<T>(_ body: (inout State) -> sending T) -> sending T {
        state.withLock { state in
            let start = SystemClock.monotonicNanoseconds()
            let result = body(&state)
            longestHold.max(SystemClock.monotonicNanoseconds() &- start, ordering: .relaxed)
            return result
        }
    }
}

extension LockedNAT: ReplicaPort {
    public func takeChanges(snapshotFrom cursors: [Int]) -> TableChanges {
        held { $0.nat.takeChanges(snapshotFrom: cursors) }
    }

    public func apply(_ records: [FlowRecord], now: NatInstant) -> [ApplyFailure] {
        held { $0.nat.apply(records, now: now) }
    }

    @discardableResult
    public func setLive(_ live: Bool, clearing: Bool, now: NatInstant) -> (wasLive: Bool, flows: Int) {
        held { $0.nat.setLive(live, clearing: clearing, now: now) }
    }

    public func removeAll() { held { $0.nat.removeAll() } }

    public var flowCount: Int { state.withLock { $0.nat.flowCount } }
}

/// How many turns a worker's loop has made: the packet path's liveness, read by the service watchdog. A worker
/// turns at least once a second when idle (its poll(2) times out), so a count that stops moving is a worker that
/// hangs, whatever the other threads do.
public final class Heartbeat: Sendable {
    let turns = Atomic<UInt64>(0)
    public init() {}
    @inline(__always) public func beat() { turns.add(1, ordering: .relaxed) }
    public var count: UInt64 { turns.load(ordering: .relaxed) }
}

/// What one frame came to.
public enum FrameOutcome: Equatable {
    case send(VirtioNetHeader)
    case drop
}

/// The per-frame work between read and write, separate from the loop so that tests can drive it without a
/// kernel: virtio-net header in, translation, partial checksum moved, TTL compensated, header out.
public enum FrameProcessor {
    /// `frame` is a virtio-net header followed by the packet (a zeroed header when the device has none).
    @inline(__always)
    public static func process(
        _ frame: UnsafeMutableRawBufferPointer, nat: NAT, now: NatInstant, compensateHop: Bool,
        counters: inout IOCounters
    ) -> FrameOutcome {
        guard frame.count >= VirtioNetHeader.size else {
            counters.badVirtioHeader &+= 1
            return .drop
        }
        let header = VirtioNetHeader(frame)
        let packet = frame.suffix(from: VirtioNetHeader.size)
        let prepared: PreparedFrame
        do throws(OffloadError) {
            prepared = try Offload.prepare(packet, header)
        } catch {
            // Counted here and in the NAT, so that the NAT's packet total stays the number of packets seen.
            if error == .unsupportedGSO { counters.unsupportedGSO &+= 1 } else { counters.badVirtioHeader &+= 1 }
            nat.countDrop(.badTransportHeader)
            return .drop
        }
        if header.isGSO { counters.gsoFramesRead &+= 1 }
        if prepared.header.flags != header.flags { counters.checksumsCompleted &+= 1 }
        guard case .forward = nat.translate(packet, now: now, transportChecksumTrusted: prepared.checksumTrusted)
        else { return .drop }
        Offload.finish(packet, prepared)
        if compensateHop { Offload.compensateForwardingHop(packet) }
        return .send(prepared.header)
    }
}

/// One queue's loop: read a batch (non-blocking reads until the queue is empty or the batch is full), translate
/// it under the lock, write it out; when the queue is empty, wait in poll(2) and retire expired flows.
/// Generic over the output so that the per-packet calls are direct (docs/architecture.md, "The per-packet path").
// @unchecked: a worker, its queue, its output and its buffers belong to the one thread that runs it; only the
// LockedNAT and the stop signal, both Sendable, are shared.
public final class Worker<Queue: PacketQueue, Output: PacketOutput>: @unchecked Sendable {
    public static var batchSize: Int { 64 }
    /// Room for a virtio-net header and the largest IPv4 packet (a 64 KB GSO super-packet).
    static var slotSize: Int { VirtioNetHeader.size + 65_535 + 1 }
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
        outcomes = .allocate(capacity: Self.batchSize)
        outcomes.initialize(repeating: .drop, count: Self.batchSize)
        var ring: ReadRing? = nil
        var refusal: Errno? = nil
        if ioUring, let fd = queue.ringDescriptor {
            // Without virtio-net headers the kernel reads the packet after the header's room, as read(2) does.
            let offset = virtioHeaders ? 0 : VirtioNetHeader.size
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

    @inline(__always)
    func slot(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: slots[(i &* Self.slotSize)..<((i &+ 1) &* Self.slotSize)])
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
                let frame = slot(Int(slotOf[i])).prefix(upTo: lengths[i])
                outcomes[i] = FrameProcessor.process(frame, nat: state.nat, now: now,
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
                output.send(frame: slot(Int(slotOf[i])).prefix(upTo: lengths[i]), header: header, counters: &counters)
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
