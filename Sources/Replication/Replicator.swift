import Logging
import NatTable
import Synchronization
import SystemCalls

/// The loop around `ReplicationNode`, on one thread: it waits on the UDP socket and its wake-up, hands the node
/// every datagram and the time, and sends what the node returns. It also publishes the node's role, status and
/// confirmed serial for other threads (the route manager, `tunnat status`, the workers' hold).
public final class Replicator: ReplicationGate, Sendable {
    public let config: ReplicationConfiguration
    let socket: UDPSocket
    let logger: Logger
    let health: @Sendable () -> Bool?
    /// The node is touched only by the loop's thread; the lock is there for the compiler and is never contended.
    let node: Mutex<ReplicationNode?>
    let stopping = Atomic<Bool>(false)
    /// Wakes the loop: `stop()`, and the hold asking for its batch to be streamed at once.
    let wakeup: Wakeup
    /// Signalled whenever `confirmedSerial` moves; a held worker waits on it and clears it. Another worker held at
    /// the same moment may miss that signal and sees the serial at its next 1 ms timeout: no thread ever spins.
    let confirmed: Wakeup
    let published = Mutex(ReplicationStatus())
    let currentRole = Atomic<UInt8>(Role.starting.rawValue)
    let confirmedSerial = Atomic<UInt64>(.max)
    let heldTimeouts = Atomic<UInt64>(0)
    /// Called on the replicator's thread after each change of role (the route manager's wake-up). Set before `run`.
    let onRoleChange: Mutex<(@Sendable (Role) -> Void)?> = Mutex(nil)

    public var holdMilliseconds: Int { config.holdNewFlowsMilliseconds }

    public init(config: ReplicationConfiguration, key: SyncKey, table: any ReplicaPort,
                health: @escaping @Sendable () -> Bool?, logger: Logger) throws(Errno) {
        self.config = config
        self.logger = logger
        self.health = health
        socket = try UDPSocket(bind: config.listen)
        wakeup = try Wakeup()
        confirmed = try Wakeup()
        let node = ReplicationNode(config: config, key: key, epoch: Self.currentEpoch(), table: table, logger: logger,
                                   now: SystemClock.monotonicSeconds())
        published.withLock { $0 = node.status(now: SystemClock.monotonicSeconds()) }
        self.node = Mutex(node)
    }

    /// The start time in sixteenths of a second since 2024-01-01 (32 bits last 8.5 years): a process cannot
    /// restart within 1/16 s, so each run's epoch is larger than the last one's while the clock is not set back.
    static func currentEpoch() -> UInt32 {
        let (seconds, nanoseconds) = SystemClock.realtime()
        let sixteenths = (seconds - 1_704_067_200) * 16 + nanoseconds / 62_500_000
        return UInt32(clamping: max(sixteenths, 1))
    }

    public var role: Role { Role(rawValue: currentRole.load(ordering: .acquiring)) ?? .starting }
    public var status: ReplicationStatus {
        var s = published.withLock { $0 }
        s.counters["hold-timeouts"] = heldTimeouts.load(ordering: .relaxed)
        return s
    }

    public func setRoleObserver(_ observer: @escaping @Sendable (Role) -> Void) {
        onRoleChange.withLock { $0 = observer }
    }

    public func stop() {
        stopping.store(true, ordering: .releasing)
        wakeup.signal()
    }

    /// Runs until `stop()`.
    public func run() {
        logger.notice("replication: node \(config.node) listening on \(config.listen), peers \(config.peers.map(\.description).joined(separator: ", "))")
        var buffer = [UInt8](repeating: 0, count: 2048)
        var lastStatus = -Double.infinity
        while !stopping.load(ordering: .acquiring) {
            socket.wait(milliseconds: 5, other: wakeup.fd)
            wakeup.drain()
            // The health verdict is read and the role observer called outside the node's lock.
            let healthy = health() ?? false
            let change = node.withLock { node -> Role? in
                guard let node else { return nil }
                while let (length, from) = socket.receive(into: &buffer) {
                    let now = SystemClock.monotonicSeconds()
                    transmit(node.receive(Array(buffer[0..<min(length, buffer.count)]), length: length, from: from, now: now), node)
                }
                let now = SystemClock.monotonicSeconds()
                let (datagrams, change) = node.tick(now: now, healthy: healthy)
                transmit(datagrams, node)
                publish(node, now: now, change: change, lastStatus: &lastStatus)
                return change
            }
            if let change { onRoleChange.withLock { $0 }?(change) }
        }
        node.withLock { node in
            var never = -Double.infinity
            if let node { publish(node, now: SystemClock.monotonicSeconds(), change: nil, lastStatus: &never) }
            node = nil
        }
    }

    func transmit(_ datagrams: [OutgoingDatagram], _ node: ReplicationNode) {
        for d in datagrams { node.sent(d, ok: socket.send(d.bytes, to: d.to)) }
    }

    func publish(_ node: ReplicationNode, now: Double, change: Role?, lastStatus: inout Double) {
        if confirmedSerial.exchange(node.confirmedSerial, ordering: .acquiringAndReleasing) != node.confirmedSerial { confirmed.signal() }
        if let change { currentRole.store(change.rawValue, ordering: .releasing) }
        if change != nil || now - lastStatus >= 0.1 {
            lastStatus = now
            let status = node.status(now: now)
            published.withLock { $0 = status }
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
