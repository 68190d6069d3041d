import Failover
import Logging
import Replication
import Synchronization
import SystemCalls

/// The failover module in `tunnat run`: the route manager (health checks, AWS routes, the pool addresses) on a
/// thread of its own. Nothing of it stands between the data plane and its packets: the manager is made (identity
/// and credentials) and preflighted (EC2) on that thread, each retried with backoff while AWS is down, throttled
/// or hanging, and `status` says why routes are not managed meanwhile. A SIGHUP that changes the failover section
/// makes and preflights a new manager on a thread of its own too (`replace`), never on the main thread that pings
/// the watchdog. Under replication the routes follow this node's role (`follow`).
final class RouteLoop: Component, Sendable {
    let name = "route manager"
    let logger: Logger
    private let failover: FailoverConfiguration
    /// The manager the thread runs; nil until one could be made. A reload swaps it and stops the old one.
    private let current = Mutex<RouteManager?>(nil)
    private let thread = Mutex<NamedThread?>(nil)
    private let stopping: StopSignal
    /// Why no manager could be made yet.
    private let makeProblem = Mutex<String?>(nil)
    private let makeFailures = Atomic<Int>(0)
    /// Failures of managers a reload replaced: the failure count never goes down.
    private let retiredFailures = Atomic<Int>(0)
    /// The replicator whose role the routes follow, once `follow` was called.
    private let replicator = Mutex<Replicator?>(nil)
    private let reloading = Atomic<Bool>(false)
    /// The thread of the last reload (joined by the next one, and on stop).
    private let reloader = Mutex<NamedThread?>(nil)
    /// Makes a manager (`RouteService.makeManager`; tests give their own).
    private let make: @Sendable (FailoverConfiguration) throws -> RouteManager
    private let retryBase: Double

    init(_ failover: FailoverConfiguration, logger: Logger, retryBase: Double = 1,
         make: (@Sendable (FailoverConfiguration) throws -> RouteManager)? = nil) throws(LiveDataPlane.Failure) {
        self.logger = logger
        self.failover = failover
        if let make {
            self.make = make
        } else {
            self.make = { c in try RouteService.makeManager(c, noop: false, logger: logger) }
        }
        self.retryBase = retryBase
        do { stopping = try StopSignal() } catch { throw .init(description: "route manager: \(error)", errno: error) }
    }

    /// The running route manager; nil until one could be made.
    var manager: RouteManager? { current.withLock { $0 } }

    /// Every health check passes: nil until each has a verdict, or while no manager runs.
    var isHealthy: Bool? { manager?.isHealthy }

    /// For `tunnat status` and the metrics.
    var status: StatusReport.FailoverStatus {
        guard let manager else {
            return StatusReport.FailoverStatus(checks: [:], routesManaged: 0, routesHeld: 0,
                                               problem: makeProblem.withLock { $0 } ?? "starting", failures: makeFailures.load(ordering: .relaxed))
        }
        var s = StatusReport.FailoverStatus(manager)
        s.failures += makeFailures.load(ordering: .relaxed) + retiredFailures.load(ordering: .relaxed)
        return s
    }

    /// The routes follow `replicator`'s role from now on, this manager's and any that replaces it.
    func follow(_ replicator: Replicator) {
        self.replicator.withLock { $0 = replicator }
        if let manager { Self.bind(manager, to: replicator, announce: false) }
        replicator.setRoleObserver { [weak self] role in self?.manager?.roleChanged(to: RouteRole(role)) }
        replicator.setRoutesHeld { [weak self] in self?.manager?.holdsEverything ?? false }
    }

    private static func bind(_ manager: RouteManager, to replicator: Replicator, announce: Bool) {
        manager.role = { RouteRole(replicator.routeRole) }
        manager.othersStandDown = { replicator.othersStandDown }
        if announce { manager.roleChanged(to: RouteRole(replicator.routeRole)) }
    }

    /// A manager made here (not by a reload) is bound to the replicator and told the role it joins.
    private func install(_ fresh: RouteManager) -> RouteManager {
        current.withLock { running in
            if let running { return running }
            if let replicator = replicator.withLock({ $0 }) { Self.bind(fresh, to: replicator, announce: true) }
            running = fresh
            return fresh
        }
    }

    func start() throws(LiveDataPlane.Failure) {
        let started: NamedThread
        do { started = try NamedThread("tunnat-routes") { [self] in loop() } } catch {
            throw .init(description: "route manager: \(error)", errno: error)
        }
        thread.withLock { $0 = started }
    }

    /// Makes a manager (retried with backoff) and runs it; runs the next one when a reload swaps it in.
    private func loop() {
        var attempt = 0
        while !stopping.isStopped {
            let manager: RouteManager
            if let running = current.withLock({ $0 }) {
                manager = running
            } else {
                do {
                    let fresh = try make(failover)
                    fresh.preflightRetryBase = retryBase
                    manager = install(fresh)
                    makeProblem.withLock { $0 = nil }
                } catch {
                    let wait = RouteManager.preflightBackoff(attempt: attempt, base: retryBase, random: Double.random(in: 0...1))
                    attempt += 1
                    makeFailures.add(1, ordering: .relaxed)
                    makeProblem.withLock { $0 = "\(error) (attempt \(attempt); next in \(String(format: "%.1f", wait)) s)" }
                    logger.error("failover: \(error); the data plane goes on, routes are not managed; retry \(attempt) in \(String(format: "%.1f", wait)) s")
                    _ = stopping.sleep(milliseconds: Int32(wait * 1000))
                    continue
                }
            }
            if stopping.isStopped { break }
            manager.run()
        }
    }

    func stop() {
        stopping.stop()
        reloader.withLock { $0 }?.join()
        manager?.stop()
        let joining = thread.withLock { running in
            defer { running = nil }
            return running
        }
        joining?.join()
    }

    /// Replaces the running manager by one for `failover`, made and preflighted first (once, with the EC2 client's
    /// own retries), on a thread of its own; `done` hears nil when replaced, else what went wrong (the running
    /// manager is kept).
    func replace(with failover: FailoverConfiguration, done: @escaping @Sendable (String?) -> Void) {
        guard !reloading.exchange(true, ordering: .acquiringAndReleasing) else {
            return done("a reload of the failover section is still under way; the running route manager is kept")
        }
        let work: @Sendable () -> Void = { [self] in
            defer { reloading.store(false, ordering: .releasing) }
            let fresh: RouteManager
            do {
                fresh = try make(failover)
                try fresh.preflight()
            } catch {
                return done("failover: \(error); the running health checks and routes are kept")
            }
            fresh.preflightRetryBase = retryBase
            // Swapped in first, then told the role: a role change between the two reaches the fresh manager.
            let old = current.withLock { running in
                defer { running = fresh }
                return running
            }
            if let replicator = replicator.withLock({ $0 }) { Self.bind(fresh, to: replicator, announce: true) }
            if let old { retiredFailures.add(old.failures, ordering: .relaxed) }
            // The routes thread returns from the old manager's run and runs the fresh one.
            old?.stop()
            done(nil)
        }
        do {
            let started = try NamedThread("tunnat-reload", work)
            reloader.withLock { $0 }?.join()
            reloader.withLock { $0 = started }
        } catch {
            reloading.store(false, ordering: .releasing)
            done("route manager: \(error); the running route manager is kept")
        }
    }
}

extension RouteRole {
    /// The route manager's view of a replication role.
    init(_ role: Role) {
        switch role {
        case .starting: self = .starting
        case .standby: self = .standby
        case .active: self = .active
        }
    }
}
