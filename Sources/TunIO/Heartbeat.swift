import Synchronization

/// How many turns a worker's loop has made: the packet path's liveness, read by the service watchdog. A worker
/// turns at least once a second when idle (its poll(2) times out), so a count that stops moving is a worker that
/// hangs, whatever the other threads do.
public final class Heartbeat: Sendable {
    let turns = Atomic<UInt64>(0)
    public init() {}
    @inline(__always) public func beat() { turns.add(1, ordering: .relaxed) }
    public var count: UInt64 { turns.load(ordering: .relaxed) }
}
