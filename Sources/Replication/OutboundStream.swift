import NatTable

/// What the active sends one standby, as a sans-IO state machine: changes and snapshots go in, acknowledgements
/// come back, and `tick(now:)` says which batches to send. No socket, no clock: `now` is an argument.
///
/// Batches are numbered from 1; at most `window` are unacknowledged at a time; each is sent again after 50 ms,
/// doubling up to 1 s, until acknowledged. A bulk resync walks the table a part at a time (`wantsSnapshot`), each
/// part queued after the changes taken with it, and streams it like changes: its first batch says "reset", the one
/// that carries the walk's last record "end"; once "end" is acknowledged the standby holds the whole table.
/// Changes made during the walk stream on in between: records are idempotent, and each part and each change is
/// queued in the order it was taken from the table, so the standby ends with the table as it is.
public struct OutboundStream: Sendable {
    public static let window = 128
    /// Records waiting beyond this make the standby resync instead (a snapshot is cheaper than an unbounded queue).
    public static let maxPending = 1 << 18
    /// A resync reads the next part of the table only while fewer records than this wait to be sent: the walk
    /// keeps pace with the link, and the queue stays small.
    public static let snapshotBacklog = 4 * window * Batch.recordsPerBatch

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
    /// The walk of the resync under way: where the next part of the table starts; nil when there is none.
    public private(set) var cursor: Int?
    var resetNext = false
    var endRemaining: Int?
    var endNumber: UInt64 = 0

    public init() {}

    public var unacknowledged: Int { inFlight.count }
    public var waiting: Int { pending.count - head }

    /// Starts a bulk resync: what was queued is dropped, and the walk starts at the table's beginning. Batch
    /// numbers go on from where they were, so that a late acknowledgement of the old stream means nothing.
    public mutating func beginResync(now: Double) {
        var out = OutboundStream()
        out.next = next
        out.acked = next - 1
        out.started = true
        out.resyncing = true
        out.resetNext = true
        out.cursor = 0
        out.resyncStarted = now
        self = out
    }

    /// Where the next part of the table should be read from, when the resync wants one now.
    public var wantsSnapshot: Int? { waiting < Self.snapshotBacklog ? cursor : nil }

    /// Queues the changes taken from the table, then the part of the walk read at the same instant (newer than
    /// every one of those changes); `serial` is the newest change's. False when the standby is now more than
    /// `maxPending` records behind and needs a resync instead.
    public mutating func enqueue(_ changes: [FlowRecord], part: SnapshotPart? = nil, serial: UInt64) -> Bool {
        guard started else { return true }
        pending.append(contentsOf: changes)
        if let part, cursor != nil {
            pending.append(contentsOf: part.records)
            cursor = part.next
            // The walk is over: the batch that carries its last record ends the resync.
            if part.next == nil { endRemaining = pending.count - head }
        }
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
        while inFlight.count < Self.window && (head < pending.count || resetNext || endRemaining == 0) {
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
