import NatTable
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
