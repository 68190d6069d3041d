import AWS
import Synchronization

/// An in-memory EC2 for tests of what calls it (the route manager): route tables, network interfaces with their
/// private addresses, Elastic IPs and instance statuses, changed by the calls as EC2 changes them and answering
/// with EC2's error codes where EC2 would (RouteAlreadyExists, InvalidRoute.NotFound,
/// InvalidParameterValue for an address another interface holds without AllowReassignment). Every call is recorded,
/// and `failNext` makes chosen calls fail, as a throttled or failing API does.
public final class FakeEC2: EC2API {
    public struct State: Sendable {
        public var routeTables: [RouteTable] = []
        public var interfaces: [NetworkInterface] = []
        public var addresses: [ElasticAddress] = []
        /// Running instances; an instance absent here is stopped or terminated.
        public var statuses: [InstanceStatus] = []
        /// Each call's action and its main arguments, in order.
        public var calls: [String] = []
        /// Errors to throw, by action, first in first out: one for each coming call of that action.
        public var failures: [String: [AWSError]] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Reads or changes the state under its lock.
    public func with<T>(_ body: (inout State) -> T) -> T { state.withLock { body(&$0) } }

    public var calls: [String] { with { $0.calls } }
    /// The calls that change something (neither Describe* nor a failed one).
    public var changes: [String] { calls.filter { !$0.hasPrefix("Describe") && !$0.hasSuffix("(failed)") } }

    /// The next `count` calls of `action` fail with `error`.
    public func failNext(_ action: String, _ error: AWSError, count: Int = 1) {
        with { $0.failures[action, default: []] += Array(repeating: error, count: count) }
    }

    public func route(_ table: String, _ cidr: String) -> Route? {
        with { s in s.routeTables.first { $0.id == table }?.route(to: cidr) }
    }

    /// The interface that lists `address`, if any.
    public func holder(of address: String) -> String? {
        with { s in s.interfaces.first { $0.privateIPs.contains(address) }?.id }
    }

    // MARK: - EC2API

    /// Records the call; throws a scripted failure for it, if one is due.
    private func begin(_ s: inout State, _ action: String, _ detail: String) throws(AWSError) {
        if var queue = s.failures[action], !queue.isEmpty {
            let error = queue.removeFirst()
            s.failures[action] = queue
            s.calls.append("\(action) \(detail) (failed)")
            throw error
        }
        s.calls.append(detail.isEmpty ? action : "\(action) \(detail)")
    }

    private func locked<T>(_ action: String, _ detail: String, _ body: (inout State) throws(AWSError) -> T) throws(AWSError) -> T {
        try state.withLock { (s: inout State) throws(AWSError) -> T in
            try begin(&s, action, detail)
            do throws(AWSError) { return try body(&s) } catch {
                s.calls[s.calls.count - 1] += " (failed)"
                throw error
            }
        }
    }

    public func describeRouteTables(filters: [EC2Filter]) throws(AWSError) -> [RouteTable] {
        try locked("DescribeRouteTables", "") { s in
            s.routeTables.filter { table in filters.allSatisfy { f in f.name != "vpc-id" || f.values.contains(table.vpcID) } }
        }
    }

    public func createRoute(table: String, cidr: String, networkInterface: String) throws(AWSError) {
        try locked("CreateRoute", "\(table) \(cidr) \(networkInterface)") { (s: inout State) throws(AWSError) in
            let t = try Self.table(table, in: s, action: "CreateRoute")
            guard s.routeTables[t].route(to: cidr) == nil else {
                throw .api(action: "CreateRoute", status: 400, code: "RouteAlreadyExists",
                           message: "The route identified by \(cidr) already exists.")
            }
            s.routeTables[t].routes.append(Route(destination: cidr, networkInterfaceID: networkInterface))
        }
    }

    public func replaceRoute(table: String, cidr: String, networkInterface: String) throws(AWSError) {
        try locked("ReplaceRoute", "\(table) \(cidr) \(networkInterface)") { (s: inout State) throws(AWSError) in
            let t = try Self.table(table, in: s, action: "ReplaceRoute")
            guard let r = s.routeTables[t].routes.firstIndex(where: { $0.destination == cidr }) else {
                throw .api(action: "ReplaceRoute", status: 400, code: "InvalidRoute.NotFound",
                           message: "no route with destination-cidr-block \(cidr) in route table \(table)")
            }
            s.routeTables[t].routes[r] = Route(destination: cidr, networkInterfaceID: networkInterface)
        }
    }

    public func deleteRoute(table: String, cidr: String) throws(AWSError) {
        try locked("DeleteRoute", "\(table) \(cidr)") { (s: inout State) throws(AWSError) in
            let t = try Self.table(table, in: s, action: "DeleteRoute")
            guard let r = s.routeTables[t].routes.firstIndex(where: { $0.destination == cidr }) else {
                throw .api(action: "DeleteRoute", status: 400, code: "InvalidRoute.NotFound",
                           message: "no route with destination-cidr-block \(cidr) in route table \(table)")
            }
            s.routeTables[t].routes.remove(at: r)
        }
    }

    public func describeNetworkInterfaces(ids: [String], filters: [EC2Filter]) throws(AWSError) -> [NetworkInterface] {
        try locked("DescribeNetworkInterfaces", "") { s in
            s.interfaces.filter { eni in
                (ids.isEmpty || ids.contains(eni.id)) && filters.allSatisfy { f in
                    switch f.name {
                    case "vpc-id": f.values.contains(eni.vpcID)
                    case "network-interface-id": f.values.contains(eni.id)
                    case "attachment.instance-id": eni.instanceID.map(f.values.contains) ?? false
                    default: true
                    }
                }
            }
        }
    }

    public func describeInstanceStatus(ids: [String]) throws(AWSError) -> [InstanceStatus] {
        try locked("DescribeInstanceStatus", ids.joined(separator: ",")) { s in
            s.statuses.filter { ids.contains($0.instanceID) }
        }
    }

    public func assignPrivateIPAddresses(_ addresses: [String], to networkInterface: String,
                                         allowReassignment: Bool) throws(AWSError) {
        let detail = "\(addresses.joined(separator: ",")) \(networkInterface)"
        try locked("AssignPrivateIpAddresses", detail) { (s: inout State) throws(AWSError) in
            guard let target = s.interfaces.firstIndex(where: { $0.id == networkInterface }) else {
                throw .api(action: "AssignPrivateIpAddresses", status: 400, code: "InvalidNetworkInterfaceID.NotFound",
                           message: "The networkInterface ID '\(networkInterface)' does not exist")
            }
            // All or none, as EC2 does.
            for address in addresses {
                if let other = s.interfaces.first(where: { $0.id != networkInterface && $0.privateIPs.contains(address) }),
                   !allowReassignment {
                    throw .api(action: "AssignPrivateIpAddresses", status: 400, code: "InvalidParameterValue",
                               message: "Address \(address) is in use by \(other.id)")
                }
            }
            for address in addresses {
                for i in s.interfaces.indices where i != target { s.interfaces[i].privateIPs.removeAll { $0 == address } }
                if !s.interfaces[target].privateIPs.contains(address) { s.interfaces[target].privateIPs.append(address) }
                for a in s.addresses.indices where s.addresses[a].privateIP == address {
                    s.addresses[a].networkInterfaceID = networkInterface
                }
            }
        }
    }

    public func unassignPrivateIPAddresses(_ addresses: [String], from networkInterface: String) throws(AWSError) {
        let detail = "\(addresses.joined(separator: ",")) \(networkInterface)"
        try locked("UnassignPrivateIpAddresses", detail) { (s: inout State) throws(AWSError) in
            guard let eni = s.interfaces.firstIndex(where: { $0.id == networkInterface }) else {
                throw .api(action: "UnassignPrivateIpAddresses", status: 400, code: "InvalidNetworkInterfaceID.NotFound",
                           message: "The networkInterface ID '\(networkInterface)' does not exist")
            }
            for address in addresses where !s.interfaces[eni].privateIPs.contains(address) {
                throw .api(action: "UnassignPrivateIpAddresses", status: 400, code: "InvalidParameterValue",
                           message: "Some of the specified addresses are not assigned to interface \(networkInterface)")
            }
            s.interfaces[eni].privateIPs.removeAll { addresses.contains($0) }
        }
    }

    public func describeAddresses(filters: [EC2Filter]) throws(AWSError) -> [ElasticAddress] {
        try locked("DescribeAddresses", "") { s in
            s.addresses.filter { a in
                filters.allSatisfy { f in f.name != "private-ip-address" || a.privateIP.map(f.values.contains) ?? false }
            }
        }
    }

    private static func table(_ id: String, in s: State, action: String) throws(AWSError) -> Int {
        guard let t = s.routeTables.firstIndex(where: { $0.id == id }) else {
            throw .api(action: action, status: 400, code: "InvalidRouteTableID.NotFound",
                       message: "The routeTable ID '\(id)' does not exist")
        }
        return t
    }
}
