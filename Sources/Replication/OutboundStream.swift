import NatTable

/// What the active sends one standby, as a sans-IO state machine: changes and snapshots go in, acknowledgements
/// come back, and `tick(now:)` says which batches to send. No socket, no clock: `now` is an argument.
///
/// Batches are numbered from 1; at most `window` are unacknowledged at a time; each is sent again after 50 ms,
/// doubling up to 1 s, until acknowledged. A bulk resync is a snapshot streamed like changes: its first batch says
/// "reset", its last "end"; once "end" is acknowledged the standby holds the whole table.
public struct OutboundStream: Sendable {
    public static let window = 128
    /// Records waiting beyond this make the standby resync instead (a snapshot is cheaper than an unbounded queue).
    public static let maxPending = 1 << 18

    struct InFlight: Sendable {
        var number: UInt64
        var payload: [UInt8]
        /// The change serial this batch completes (0: none).
        var serial: UInt64
        var sentAt: Double
        var sends: Int
    }

    /// What `tick` decided: payloads of `entries` messages, in order.
    public struct Sends: Sendable, Equatable {
        public var batches: [[UInt8]] = []
        public var recordsSent = 0
        public var retransmits = 0
    }

    /// The standby gets changes (from its first resync on).
    public private(set) var started = false
    var next: UInt64 = 1
    var acked: UInt64 = 0
    /// Every change up to this serial is acknowledged.
    public private(set) var ackedSerial: UInt64 = 0
    var inFlight: [InFlight] = []
    var pending: [FlowRecord] = []
    var head = 0
    /// The change serial of the newest record in `pending`.
    var pendingSerial: UInt64 = 0
    /// A resync is due (a new follower, a request, an overflow, a standby too far behind).
    public var wantsResync = false
    /// A resync is under way: not yet acknowledged to its end.
    public private(set) var resyncing = false
    /// When the current resync began (a repeated request soon after is the same request).
    public private(set) var resyncStarted = -Double.infinity
    var resetNext = false
    var endRemaining: Int?
    var endNumber: UInt64 = 0

    public init() {}

    public var unacknowledged: Int { inFlight.count }
    public var waiting: Int { pending.count - head }

    /// Starts a bulk resync from `snapshot`, taken when the newest change was `serial`. Batch numbers go on from
    /// where they were, so that a late acknowledgement of the old stream means nothing.
    public mutating func beginResync(snapshot: [FlowRecord], serial: UInt64, now: Double) {
        var out = OutboundStream()
        out.next = next
        out.acked = next - 1
        out.started = true
        out.resyncing = true
        out.resetNext = true
        out.endRemaining = snapshot.count
        out.pending = snapshot
        out.pendingSerial = serial
        out.resyncStarted = now
        self = out
    }

    /// Queues changes (the newest with `serial`); false when the standby is now more than `maxPending` records
    /// behind and needs a resync instead.
    public mutating func enqueue(_ changes: [FlowRecord], serial: UInt64) -> Bool {
        guard started, !changes.isEmpty else { return true }
        pending.append(contentsOf: changes)
        pendingSerial = serial
        return pending.count - head <= Self.maxPending
    }

    /// The standby holds every batch up to `number`. True when this completed a resync.
    public mutating func acknowledge(_ number: UInt64) -> Bool {
        guard number > acked else { return false }
        acked = min(number, next - 1)
        while let first = inFlight.first, first.number <= acked {
            ackedSerial = max(ackedSerial, first.serial)
            inFlight.removeFirst()
        }
        if resyncing, endNumber != 0, acked >= endNumber {
            resyncing = false
            return true
        }
        return false
    }

    /// New batches while the window has room, then the retransmissions that are due.
    public mutating func tick(now: Double) -> Sends {
        var sends = Sends()
        while inFlight.count < Self.window && (head < pending.count || resetNext) {
            let take = min(Batch.recordsPerBatch, pending.count - head)
            var flags: UInt8 = 0
            if resetNext { flags |= Batch.reset }
            resetNext = false
            if let remaining = endRemaining, remaining <= take {
                flags |= Batch.end
                endRemaining = nil
                endNumber = next
            } else if let remaining = endRemaining {
                endRemaining = remaining - take
            }
            let payload = Batch.encode(number: next, flags: flags, records: pending[head..<(head + take)])
            head += take
            let drained = head == pending.count
            if drained {
                pending.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 4096 && head * 2 > pending.count {
                pending.removeFirst(head)
                head = 0
            }
            // The serial this batch completes: all changes taken so far, once the queue behind it is empty.
            inFlight.append(InFlight(number: next, payload: payload, serial: drained ? pendingSerial : 0, sentAt: now, sends: 1))
            next += 1
            sends.recordsSent += take
            sends.batches.append(payload)
        }
        for i in inFlight.indices {
            let f = inFlight[i]
            let timeout = min(0.05 * Double(1 << min(f.sends - 1, 5)), 1.0)
            guard now - f.sentAt >= timeout else { continue }
            inFlight[i].sentAt = now
            inFlight[i].sends += 1
            sends.retransmits += 1
            sends.batches.append(f.payload)
        }
        return sends
    }
}
