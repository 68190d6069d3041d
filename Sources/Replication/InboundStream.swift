import NatTable

/// What a standby receives from its active, as a sans-IO state machine: batches go in, in any order and
/// repeated; they come out for applying strictly in order, and the acknowledgement says how far the replica is.
public struct InboundStream: Sendable {
    /// What one batch came to.
    public enum Outcome: Sendable, Equatable {
        /// Applied, with any buffered batches it unblocked: how many batches.
        case applied(Int)
        /// Already applied (a retransmission whose acknowledgement was lost).
        case duplicate
        /// Before the start of a resync: nothing to apply it to.
        case beforeResync
        /// Ahead of the next one: kept until the gap is filled.
        case outOfOrder
        /// More than `OutboundStream.window` ahead: dropped (the active sends it again).
        case tooFarAhead
        /// The replica refused a record: the stream starts over and needs a resync.
        case conflict
    }

    /// The active this standby follows.
    public let leader: UInt32
    /// The next batch to apply; 0 while waiting for the start of a resync.
    public private(set) var expected: UInt64 = 0
    var buffer: [UInt64: Batch] = [:]
    /// When this standby last asked for a resync.
    public var lastRequest = -Double.infinity

    public init(leader: UInt32 = 0) { self.leader = leader }

    /// The acknowledgement to send: every batch up to it is applied (0: none yet).
    public var acknowledgement: UInt64 { expected > 0 ? expected - 1 : 0 }

    /// Waiting for the start of a resync.
    public var awaitingResync: Bool { expected == 0 }

    /// Takes one batch. A reset batch (the start of a resync) calls `reset` first, which empties the replica;
    /// batches ready in order go to `apply`, which says whether the replica took every record.
    public mutating func receive(_ batch: Batch, reset: () -> Void, apply: (Batch) -> Bool) -> Outcome {
        if batch.flags & Batch.reset != 0, expected == 0 || batch.number >= expected {
            // The start of a bulk resync: everything before it is superseded.
            reset()
            buffer.removeAll()
            expected = batch.number
        }
        if expected == 0 { return .beforeResync }
        if batch.number < expected { return .duplicate }
        if batch.number > expected {
            guard batch.number - expected < UInt64(OutboundStream.window) else { return .tooFarAhead }
            buffer[batch.number] = batch
            return .outOfOrder
        }
        var applied = 0
        var next: Batch? = batch
        while let b = next {
            guard apply(b) else {
                restart()
                return .conflict
            }
            applied += 1
            expected += 1
            next = buffer.removeValue(forKey: expected)
        }
        return .applied(applied)
    }

    /// Forgets everything: the next batch applied is the start of a resync.
    public mutating func restart() {
        expected = 0
        buffer.removeAll()
    }
}
