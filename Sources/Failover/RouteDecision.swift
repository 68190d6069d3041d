import AWS
import Health

/// AWSnycast's decision rules for one managed route in one route table, as a pure function, plus what tunnat adds:
/// nothing happens before the first health verdict, and a route tunnat changed recently is left alone (hold-down).
public enum RouteDecision: Sendable, Equatable {
    case keep(String)
    case create
    case replace(String)
    case delete(String)
    /// A change was due but is held back (hold-down, no verdict yet).
    case wait(String)

    public var changes: Bool {
        switch self {
        case .create, .replace, .delete: true
        case .keep, .wait: false
        }
    }

    /// The route points at the target afterwards: it is created or replaced.
    public var setsTarget: Bool {
        switch self {
        case .create, .replace: true
        case .keep, .wait, .delete: false
        }
    }
}

/// This node's part in an HA group as far as routes go: the replication role, seen from the route manager (which
/// knows nothing of replication; TunnatKit maps one onto the other).
public enum RouteRole: Sendable, Equatable {
    /// Listening for an active peer: touches no route.
    case starting
    /// Follows the active: touches no route.
    case standby
    /// Holds the NAT: takes every managed route and the pool address.
    case active
}

/// How the instance that holds a route is doing, for `if_unhealthy`.
public enum OwnerHealth: Sendable, Equatable {
    case healthy(String)
    case unhealthy(String)
    /// Not known yet (a remote check without a verdict): do not take over.
    case unknown(String)
}

public struct RouteSituation: Sendable {
    /// The route as it is now; nil when the table has no route for the cidr.
    public var current: Route?
    /// The route points at the instance (or ENI) this entry wants.
    public var isOurs: Bool
    /// The local health check's verdict: nil before the first one. No health check at all counts as healthy.
    public var localHealthy: Bool?
    public var localName: String?
    public var spec: ManagedRoute
    /// Seconds since tunnat last changed this route, nil if never.
    public var secondsSinceOurLastChange: Double?
    public var holdDown: Double
    /// With replication, the node's role decides instead of health and hold-down: the active takes every route
    /// it manages, a standby (or a starting node) touches none. nil: AWSnycast's rules.
    public var role: RouteRole?
    /// The active is taking over (it became active and has not yet held every route). Afterwards, a route that
    /// another node took is not taken back: that node became active after this one, and the routes stay with it
    /// until the two hear each other and the older active steps down.
    public var claiming = false

    public init(current: Route?, isOurs: Bool, localHealthy: Bool?, localName: String?, spec: ManagedRoute,
                secondsSinceOurLastChange: Double? = nil, holdDown: Double = 0) {
        self.current = current
        self.isOurs = isOurs
        self.localHealthy = localHealthy
        self.localName = localName
        self.spec = spec
        self.secondsSinceOurLastChange = secondsSinceOurLastChange
        self.holdDown = holdDown
    }
}

extension RouteDecision {
    /// `ownerHealth` is asked only for another instance's active route under if_unhealthy (it may call EC2).
    public static func decide(_ s: RouteSituation, ownerHealth: () -> OwnerHealth) -> RouteDecision {
        if let role = s.role { return ruleOfRole(role, s) }
        let decision = rule(s, ownerHealth: ownerHealth)
        if decision.changes, let since = s.secondsSinceOurLastChange, since < s.holdDown {
            return .wait("hold-down: changed \(Int(since))s ago, \(Int(s.holdDown))s must pass (\(decision))")
        }
        return decision
    }

    /// The role machine already weighed health, peers and eligibility (RoleMachine.swift); the routes follow it.
    /// The active never deletes a route: with the NAT on another node, deleting would cut everyone off.
    static func ruleOfRole(_ role: RouteRole, _ s: RouteSituation) -> RouteDecision {
        guard role == .active else {
            return .keep("this node is \(role == .standby ? "a standby" : "starting"): the active NAT holds the routes")
        }
        guard let route = s.current else { return .create }
        if s.isOurs { return .keep("ours, this node is the active NAT") }
        guard s.claiming else {
            return .keep("held by \(route.target), which took it after this node became active: not taking it back (is another node active?)")
        }
        return .replace("held by \(route.target), and this node is the active NAT")
    }

    static func rule(_ s: RouteSituation, ownerHealth: () -> OwnerHealth) -> RouteDecision {
        let check = s.localName.map { "health check \($0)" } ?? "no health check"
        guard let healthy = s.localHealthy else { return .wait("\(check) has no verdict yet") }
        guard let route = s.current else {
            return healthy ? .create : .keep("no route, and \(check) is failing: not creating one")
        }
        if s.isOurs {
            if healthy { return .keep("ours, \(check) healthy") }
            if s.spec.neverDelete { return .keep("ours, \(check) failing, but never_delete is set") }
            return .delete("\(check) failing")
        }
        guard healthy else { return .keep("held by \(route.target), and \(check) is failing: not taking over") }
        guard s.spec.ifUnhealthy else { return .replace("held by \(route.target)") }
        if route.state == "blackhole" { return .replace("held by \(route.target), which is a blackhole") }
        switch ownerHealth() {
        case .healthy(let why): return .keep("held by \(route.target), which is healthy (\(why)); if_unhealthy is set")
        case .unknown(let why): return .keep("held by \(route.target), whose health is not known yet (\(why))")
        case .unhealthy(let why): return .replace("held by \(route.target), which is unhealthy (\(why))")
        }
    }
}
