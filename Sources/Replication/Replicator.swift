import Logging
import NatTable
import Synchronization
import SystemCalls

/// The loop around `ReplicationNode`, on one thread: it waits on the sync link (`SyncLink`) and its wake-up, hands the node
/// a bounded number of datagrams and then the time, and sends what the node returns. It also publishes the node's
/// role, status and confirmed serial for other threads (the route manager, `tunnat status`, the workers' hold),
/// and carries out a planned handover when asked (`handOver`).
///
/// The kernel drops datagrams from any address but the peers' before they reach this loop (a socket filter), and
/// the node is stepped after at most `receiveBudget` datagrams, so that a flood cannot delay heartbeats or role
/// decisions by more than one budget's work.
public final class Replicator: ReplicationGate, Sendable {
    /// Datagrams handled between two ticks of the node at most.
    static let receiveBudget = 256

    public let config: ReplicationConfiguration
    let link: any SyncLink
    let clock: any MonotonicClock
    let logger: Logger
    let health: @Sendable () -> Bool?
    /// The node is touched only by the loop's thread; the lock is there for the compiler and is never contended.
    let node: Mutex<ReplicationNode?>
    let stopping = Atomic<Bool>(false)
    /// Wakes the loop: `stop()`, a handover, and the hold asking for its batch to be streamed at once.
    let wakeup: Wakeup
    /// Signalled whenever `confirmedSerial` moves; a held worker waits on it and clears it. Another worker held at
    /// the same moment may miss that signal and sees the serial at its next 1 ms timeout: no thread ever spins.
    let confirmed: Wakeup
    let published = Mutex(ReplicationStatus())
    let currentRole = Atomic<UInt8>(Role.starting.rawValue)
    let confirmedSerial = Atomic<UInt64>(.max)
    let heldTimeouts = Atomic<UInt64>(0)
    let handoverWanted = Atomic<Bool>(false)
    /// A handover has begun: the route manager must leave the routes to the new active from now on.
    let handingOver = Atomic<Bool>(false)
    /// Why the last handover asked for could not begin; empty if it began.
    let handoverRefusal = Mutex("")
    /// Signalled when a handover asked for is refused, completes or fails.
    let handoverSettled: Wakeup
    /// Called on the replicator's thread after each change of role (the route manager's wake-up). Set before `run`.
    let onRoleChange = LockedCallback<Role, Void>()
    /// Whether this node holds every managed route and the pool address (the route manager); nil: no route manager.
    let routesHeld = LockedCallback<Void, Bool>()
    /// The worst time the table's lock was held for replication (the port reports it), for the status.
    let holdReport: @Sendable () -> UInt64

    public var holdMilliseconds: Int { config.holdNewFlowsMilliseconds }

    /// `link` nil: the UDP socket on `config.listen`, admitting the peers only. `clock`: the node's time.
    public init(config: ReplicationConfiguration, keyring: SyncKeyring, table: any ReplicaPort,
                health: @escaping @Sendable () -> Bool?, holdReport: @escaping @Sendable () -> UInt64 = { 0 },
                link: (any SyncLink)? = nil, clock: any MonotonicClock = SystemMonotonicClock(), logger: Logger) throws(Errno) {
        self.config = config
        self.logger = logger
        self.health = health
        self.holdReport = holdReport
        self.clock = clock
        if let link { self.link = link } else { self.link = try UDPSyncLink(listen: config.listen, peers: config.peers.map(\.endpoint)) }
        wakeup = try Wakeup()
        confirmed = try Wakeup()
        handoverSettled = try Wakeup()
        let node = ReplicationNode(config: config, keyring: keyring, run: SystemRandom.uint64(),
                                   random: { SystemRandom.uint64() }, table: table, logger: logger,
                                   now: clock.seconds())
        published.withLock { $0 = node.status(now: clock.seconds()) }
        self.node = Mutex(node)
    }

    public var role: Role { Role(rawValue: currentRole.load(ordering: .acquiring)) ?? .starting }

    /// The role as far as the routes go: a node handing over leaves them to the new active.
    public var routeRole: Role { handingOver.load(ordering: .acquiring) ? .standby : role }

    /// Every peer is heard (an authenticated heartbeat within the peer timeout) and none of them is active.
    public var othersStandDown: Bool {
        let peers = published.withLock { $0.peers }
        return !peers.isEmpty && peers.allSatisfy { $0.alive && $0.role != .active }
    }

    public var status: ReplicationStatus {
        var s = published.withLock { $0 }
        s.counters[.holdTimeouts] = heldTimeouts.load(ordering: .relaxed)
        s.counters.tableHoldMaxMicroseconds = holdReport() / 1000
        return s
    }

    public func setRoleObserver(_ observer: @escaping @Sendable (Role) -> Void) {
        onRoleChange.set(observer)
    }

    public func setRoutesHeld(_ held: @escaping @Sendable () -> Bool) {
        routesHeld.set(held)
    }

    public func stop() {
        stopping.store(true, ordering: .releasing)
        wakeup.signal()
    }

    /// What a planned handover came to.
    public enum HandoverResult: Sendable, Equatable {
        /// The new active holds the routes and every flow.
        case complete
        /// None could begin (not the active, or no synced standby): the reason.
        case notPossible(String)
        case failed(String)
    }

    /// Hands this node's role to a synced standby and returns once it holds the routes and every flow, or why
    /// not. Called on stopping (SIGTERM) and by `tunnat handover`; the data plane translates throughout. The node
    /// gives up after `ReplicationNode.handoverTimeout`; this waits that long and 5 s more at most.
    public func handOver() -> HandoverResult {
        handoverRefusal.withLock { $0 = "" }
        handoverSettled.drain()
        handoverWanted.store(true, ordering: .releasing)
        wakeup.signal()
        let timeout = ReplicationNode.handoverTimeout(config) + 5
        let deadline = SystemClock.monotonicSeconds() + timeout
        while true {
            let refusal = handoverRefusal.withLock { $0 }
            if !refusal.isEmpty { return .notPossible(refusal) }
            switch published.withLock({ $0.handover }) {
            case .complete: return .complete
            case .failed(let why): return .failed("failed: \(why)")
            case .none, .underway: break
            }
            let left = deadline - SystemClock.monotonicSeconds()
            if left <= 0 { return .failed("no answer within \(Int(timeout)) s") }
            _ = handoverSettled.wait(milliseconds: Int32(min(left * 1000 + 1, 1000)))
        }
    }

    /// Runs until `stop()`.
    public func run() {
        logger.notice("replication: node \(config.node) listening on \(config.listen), peers \(config.peers.map(\.description).joined(separator: ", "))")
        var lastStatus = -Double.infinity
        while !stopping.load(ordering: .acquiring) { step(waitMilliseconds: 5, lastStatus: &lastStatus) }
        node.withLock { node in
            var never = -Double.infinity
            if let node { publish(node, now: clock.seconds(), change: nil, lastStatus: &never) }
            node = nil
        }
    }

    /// One turn of the loop: waits up to `waitMilliseconds` for a datagram or the wake-up, hands the node at most
    /// `receiveBudget` datagrams and then the time, sends what it returns, and publishes its role and status.
    /// `run` turns it until stopped; a test turns it by hand.
    func step(waitMilliseconds: Int32, lastStatus: inout Double) {
        link.wait(milliseconds: waitMilliseconds, other: wakeup.fd)
        wakeup.drain()
        // The health verdict and route state are read, and the role observer called, outside the node's lock.
        let healthy = health() ?? false
        let held = routesHeld(()) ?? true
        let change = node.withLock { node -> Role? in
            guard let node else { return nil }
            var handled = 0
            while handled < Self.receiveBudget {
                let got = link.receive(limit: 64)
                guard !got.isEmpty else { break }
                handled += got.count
                let now = clock.seconds()
                for d in got { transmit(node.receive(d.bytes, length: d.length, from: d.source, now: now), node) }
            }
            let now = clock.seconds()
            if handoverWanted.exchange(false, ordering: .acquiringAndReleasing) {
                if let refusal = node.beginHandover(now: now) {
                    handoverRefusal.withLock { $0 = refusal }
                    handoverSettled.signal()
                } else {
                    handingOver.store(true, ordering: .releasing)
                }
            }
            let (datagrams, change) = node.tick(now: now, healthy: healthy, routesHeld: held)
            transmit(datagrams, node)
            publish(node, now: now, change: change, lastStatus: &lastStatus)
            return change
        }
        if let change { _ = onRoleChange(change) }
    }

    func transmit(_ datagrams: [OutgoingDatagram], _ node: ReplicationNode) {
        for d in datagrams { node.sent(d, ok: link.send(d.bytes, to: d.to)) }
    }

    func publish(_ node: ReplicationNode, now: Double, change: Role?, lastStatus: inout Double) {
        if confirmedSerial.exchange(node.confirmedSerial, ordering: .acquiringAndReleasing) != node.confirmedSerial { confirmed.signal() }
        if let change { currentRole.store(change.rawValue, ordering: .releasing) }
        let settled = node.handover.map { $0.state != .underway } ?? false
        if change != nil || now - lastStatus >= 0.1 || settled {
            lastStatus = now
            let status = node.status(now: now)
            published.withLock { $0 = status }
            if settled { handoverSettled.signal() }
        }
    }

    // MARK: - The hold

    /// Holds the calling worker until every standby in sync has the changes up to `serial`, or the hold is over.
    public func waitUntilReplicated(_ serial: UInt64) {
        guard holdMilliseconds > 0, confirmedSerial.load(ordering: .acquiring) < serial else { return }
        wakeup.signal()
        let deadline = SystemClock.monotonicSeconds() + Double(holdMilliseconds) / 1000
        while confirmedSerial.load(ordering: .acquiring) < serial {
            let left = deadline - SystemClock.monotonicSeconds()
            if left <= 0 {
                heldTimeouts.add(1, ordering: .relaxed)
                return
            }
            confirmed.wait(milliseconds: 1)
        }
    }
}

/// A closure set from any thread and called on another; nil until set.
///
/// The closure is kept inside a struct. Stored directly in a generic container (`Mutex<(() -> Bool)?>`), a closure is
/// re-wrapped in a pair of reabstraction thunks each time `withLock` hands it out by `inout`, and the wrapped copy is
/// written back: the chain, and the stack of every call, grew by two frames on each read, without bound.
final class LockedCallback<Argument, Result>: Sendable {
    struct Stored: Sendable { let call: @Sendable (Argument) -> Result }
    let stored = Mutex<Stored?>(nil)

    func set(_ call: @escaping @Sendable (Argument) -> Result) {
        stored.withLock { $0 = Stored(call: call) }
    }

    /// The closure's answer, or nil if none is set. It is called outside the lock.
    func callAsFunction(_ argument: Argument) -> Result? {
        stored.withLock { $0 }?.call(argument)
    }
}
