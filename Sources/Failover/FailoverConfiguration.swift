import AWS
import Health

/// The failover section: AWSnycast's configuration (poll_time, healthchecks, remote_healthchecks, routetables) with
/// the same meaning, plus what tunnat adds (the `aws` settings, `hold_down`, `pool_addresses`). TunnatKit parses the
/// YAML into these types; nothing here reads files.
public struct FailoverConfiguration: Sendable, Equatable {
    /// How often the route tables are read and every managed route re-evaluated (AWSnycast's poll_time).
    public var pollTime: UInt32 = 300
    public var healthChecks: [String: HealthCheckSpec] = [:]
    /// Templates without a destination: each runs against the instance that holds a route (its primary private IP).
    public var remoteHealthChecks: [String: HealthCheckSpec] = [:]
    /// By name; evaluated in name order.
    public var routeTables: [String: RouteTableSpec] = [:]
    public var aws = AWSSettings()
    /// The shortest time between two changes tunnat makes to the same route: damps flapping.
    public var holdDown: UInt32 = 30
    /// The NAT's pool addresses as secondary private IPs of the ENI (each one's Elastic IP moves with it): taken
    /// over together, with AllowReassignment, before a route is taken over. Empty: none is moved.
    public var poolAddresses: [String] = []

    public init() {}

    /// Everything that would make the route manager misbehave, as (key, what is accepted) pairs with keys relative
    /// to the section (the health checks' and the aws settings' included); empty when valid.
    public func problems() -> [(key: String, problem: String)] {
        var found: [(String, String)] = []
        if pollTime < 1 { found.append(("poll_time", "expected at least 1 second")) }
        for (key, problem) in aws.problems() { found.append(("aws.\(key)", problem)) }
        for (name, spec) in healthChecks.sorted(by: { $0.key < $1.key }) {
            for (key, problem) in spec.problems(remote: false) { found.append(("healthchecks.\(name).\(key)", problem)) }
        }
        for (name, spec) in remoteHealthChecks.sorted(by: { $0.key < $1.key }) {
            for (key, problem) in spec.problems(remote: true) { found.append(("remote_healthchecks.\(name).\(key)", problem)) }
        }
        return found
    }
}

public struct RouteTableSpec: Sendable, Equatable {
    public var find: RouteTableFinder
    /// Finding nothing is not an error (AWSnycast's no_results_ok on the top-level finder).
    public var noResultsOK = false
    public var manageRoutes: [ManagedRoute]

    public init(find: RouteTableFinder, noResultsOK: Bool = false, manageRoutes: [ManagedRoute]) {
        self.find = find
        self.noResultsOK = noResultsOK
        self.manageRoutes = manageRoutes
    }
}

/// AWSnycast's route table finders, and tunnat's byID; any of them may be negated (`not: true`).
public indirect enum RouteTableFinder: Sendable, Equatable {
    case byTag(key: String, value: String)
    case byTagRegexp(key: String, pattern: String)
    /// One table by its id (rtb-...): what a CloudFormation stack knows of the tables it is given.
    case byID(String)
    case and([RouteTableFinder])
    case or([RouteTableFinder])
    case main
    case subnet(String)
    case hasRouteTo(String)
    case not(RouteTableFinder)

    public func matches(_ table: RouteTable) -> Bool {
        switch self {
        case .byTag(let key, let value): return table.tags[key] == value
        case .byTagRegexp(let key, let pattern):
            guard let tag = table.tags[key] else { return false }
            return (try? Regex(pattern)).map { tag.contains($0) } ?? false
        case .byID(let id): return table.id == id
        case .and(let all): return all.allSatisfy { $0.matches(table) }
        case .or(let any): return any.contains { $0.matches(table) }
        case .main: return table.isMain
        case .subnet(let id): return table.subnetIDs.contains(id)
        case .hasRouteTo(let cidr): return table.route(to: cidr) != nil
        case .not(let inner): return !inner.matches(table)
        }
    }
}

public struct ManagedRoute: Sendable, Equatable {
    /// Normalised: an address without a length gets /32 (as AWSnycast does).
    public var cidr: String
    /// nil: SELF (this instance).
    public var instance: String?
    public var healthCheck: String?
    public var remoteHealthCheck: String?
    public var ifUnhealthy = false
    public var neverDelete = false
    public var runBeforeReplaceRoute: [String] = []
    public var runAfterReplaceRoute: [String] = []
    public var runBeforeDeleteRoute: [String] = []
    public var runAfterDeleteRoute: [String] = []

    public init(cidr: String, instance: String? = nil) {
        self.cidr = cidr
        self.instance = instance
    }
}
