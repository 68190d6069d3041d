import Failover
import Logging
import Replication
import Synchronization
import SystemCalls

/// The failover module in `tunnat run`: the route manager (health checks, AWS routes, the pool addresses) on a
/// thread of its own. It is made and preflighted before the data plane starts (identity, credentials, source/dest
/// check off), and a SIGHUP that changes the failover section replaces it (`replace`). Under replication its
/// routes follow this node's role (`follow`).
final class RouteLoop: Component, Sendable {
    let name = "route manager"
    let logger: Logger
    private let state: Mutex<(manager: RouteManager, thread: NamedThread?)>
    /// The replicator whose role the routes follow, once `follow` was called.
    private let replicator = Mutex<Replicator?>(nil)

    init(_ failover: FailoverConfiguration, logger: Logger) throws(LiveDataPlane.Failure) {
        self.logger = logger
        state = Mutex((try Self.make(failover, logger: logger), nil))
    }

    /// A route manager for `failover`, preflighted.
    static func make(_ failover: FailoverConfiguration, logger: Logger) throws(LiveDataPlane.Failure) -> RouteManager {
        do {
            let manager = try RouteService.makeManager(failover, noop: false, logger: logger)
            try manager.preflight()
            return manager
        } catch {
            throw .init(description: "failover: \(error)")
        }
    }

    /// The running route manager (status, the replicator's health question).
    var manager: RouteManager { state.withLock { $0.manager } }

    /// The routes follow `replicator`'s role from now on, this manager's and any that replaces it.
    func follow(_ replicator: Replicator) {
        self.replicator.withLock { $0 = replicator }
        Self.bind(manager, to: replicator, announce: false)
        replicator.setRoleObserver { [weak self] role in self?.manager.roleChanged(to: RouteRole(role)) }
        replicator.setRoutesHeld { [weak self] in self?.manager.holdsEverything ?? false }
    }

    private static func bind(_ manager: RouteManager, to replicator: Replicator, announce: Bool) {
        manager.role = { RouteRole(replicator.routeRole) }
        manager.othersStandDown = { replicator.othersStandDown }
        if announce { manager.roleChanged(to: RouteRole(replicator.routeRole)) }
    }

    func start() throws(LiveDataPlane.Failure) {
        let manager = self.manager
        let thread: NamedThread
        do { thread = try NamedThread("tunnat-routes") { manager.run() } } catch {
            throw .init(description: "route manager: \(error)", errno: error)
        }
        state.withLock { $0.thread = thread }
    }

    func stop() {
        let (manager, thread) = state.withLock { ($0.manager, $0.thread) }
        manager.stop()
        thread?.join()
    }

    /// Replaces the running manager by one for `failover`, made and preflighted first. nil when replaced; else
    /// what went wrong, said whole: whether the running manager was kept, or (its successor's thread could not
    /// start) none is running.
    func replace(with failover: FailoverConfiguration) -> String? {
        let fresh: RouteManager
        do { fresh = try Self.make(failover, logger: logger) } catch {
            return "\(error); the running health checks and routes are kept"
        }
        stop()
        if let replicator = replicator.withLock({ $0 }) { Self.bind(fresh, to: replicator, announce: true) }
        state.withLock { $0 = (fresh, nil) }
        do { try start() } catch {
            return "\(error); the old route manager has stopped and the new one could not start: no route is managed until tunnat restarts"
        }
        return nil
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
