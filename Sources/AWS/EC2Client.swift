import HTTP
import SystemCalls

/// The EC2 Query API (version 2016-11-15, SigV4 service "ec2") over a `QueryClient`: the calls tunnat makes,
/// typed. The route manager sees it as an `EC2API`.
public struct EC2Client: EC2API {
    public static let apiVersion = "2016-11-15"
    public let query: QueryClient
    public var endpoint: String { query.endpoint }
    public var region: String { query.region }

    /// `endpoint` nil: https://ec2.<region>.amazonaws.com.
    public init(region: String, endpoint: String? = nil, credentials: CredentialProvider, retry: RetryPolicy = RetryPolicy(),
                timeoutMilliseconds: Int = 10_000, onRetry: @escaping @Sendable (AWSError, Int, Int) -> Void = { _, _, _ in },
                transport: any HTTPTransport = CurlTransport()) {
        query = QueryClient(service: "ec2", version: Self.apiVersion, region: region,
                            endpoint: endpoint ?? "https://ec2.\(region).amazonaws.com", credentials: credentials,
                            retry: retry, timeoutMilliseconds: timeoutMilliseconds, onRetry: onRetry, transport: transport)
    }

    public init(query: QueryClient) { self.query = query }

    /// One API call by name, retried as the policy says (for calls this type has no method for).
    public func call(_ action: String, _ parameters: [(String, String)] = []) throws(AWSError) -> XMLElement {
        try query.call(action, parameters)
    }
}

/// The EC2 calls the failover module makes: `EC2Client` against EC2 (or an emulator), and a fake in tests, so the
/// route manager's decisions and retries are tested without a server.
public protocol EC2API: Sendable {
    func describeRouteTables(filters: [EC2Filter]) throws(AWSError) -> [RouteTable]
    func createRoute(table: String, cidr: String, networkInterface: String) throws(AWSError)
    func replaceRoute(table: String, cidr: String, networkInterface: String) throws(AWSError)
    func deleteRoute(table: String, cidr: String) throws(AWSError)
    func describeNetworkInterfaces(ids: [String], filters: [EC2Filter]) throws(AWSError) -> [NetworkInterface]
    /// Running instances only: a stopped or terminated instance is absent.
    func describeInstanceStatus(ids: [String]) throws(AWSError) -> [InstanceStatus]
    /// All of `addresses` in one call: EC2 assigns them all or none.
    func assignPrivateIPAddresses(_ addresses: [String], to networkInterface: String, allowReassignment: Bool) throws(AWSError)
    func unassignPrivateIPAddresses(_ addresses: [String], from networkInterface: String) throws(AWSError)
    func describeAddresses(filters: [EC2Filter]) throws(AWSError) -> [ElasticAddress]
}

extension EC2API {
    public func describeNetworkInterfaces(ids: [String]) throws(AWSError) -> [NetworkInterface] {
        try describeNetworkInterfaces(ids: ids, filters: [])
    }

    public func describeNetworkInterfaces(filters: [EC2Filter]) throws(AWSError) -> [NetworkInterface] {
        try describeNetworkInterfaces(ids: [], filters: filters)
    }
}

// MARK: - The calls tunnat makes

public struct EC2Filter: Sendable, Equatable {
    public var name: String
    public var values: [String]
    public init(_ name: String, _ values: [String]) {
        self.name = name
        self.values = values
    }
}

public struct RouteTable: Sendable, Equatable {
    public var id: String
    public var vpcID: String
    public var isMain: Bool
    public var subnetIDs: [String]
    public var tags: [String: String]
    public var routes: [Route]

    public init(id: String, vpcID: String, isMain: Bool = false, subnetIDs: [String] = [], tags: [String: String] = [:],
                routes: [Route] = []) {
        self.id = id
        self.vpcID = vpcID
        self.isMain = isMain
        self.subnetIDs = subnetIDs
        self.tags = tags
        self.routes = routes
    }

    public func route(to cidr: String) -> Route? { routes.first { $0.destination == cidr } }
}

public struct Route: Sendable, Equatable {
    public var destination: String
    public var instanceID: String?
    public var networkInterfaceID: String?
    /// Any other target (igw-, nat-, pcx-, local, ...), for messages.
    public var otherTarget: String?
    /// "active" or "blackhole".
    public var state: String

    public init(destination: String, instanceID: String? = nil, networkInterfaceID: String? = nil,
                otherTarget: String? = nil, state: String = "active") {
        self.destination = destination
        self.instanceID = instanceID
        self.networkInterfaceID = networkInterfaceID
        self.otherTarget = otherTarget
        self.state = state
    }

    public var target: String { networkInterfaceID ?? instanceID ?? otherTarget ?? "?" }
}

public struct NetworkInterface: Sendable, Equatable {
    public var id: String
    public var instanceID: String?
    public var macAddress: String
    public var vpcID: String
    public var subnetID: String
    public var primaryPrivateIP: String
    public var privateIPs: [String]
    public var sourceDestCheck: Bool

    public init(id: String, instanceID: String?, macAddress: String = "", vpcID: String, subnetID: String = "",
                primaryPrivateIP: String, privateIPs: [String] = [], sourceDestCheck: Bool = false) {
        self.id = id
        self.instanceID = instanceID
        self.macAddress = macAddress
        self.vpcID = vpcID
        self.subnetID = subnetID
        self.primaryPrivateIP = primaryPrivateIP
        self.privateIPs = privateIPs
        self.sourceDestCheck = sourceDestCheck
    }
}

public struct InstanceStatus: Sendable, Equatable {
    public var instanceID: String
    public var state: String
    /// "ok", "impaired", "initializing", "insufficient-data", "not-applicable".
    public var instanceStatus: String
    public var systemStatus: String
    public var isImpaired: Bool { instanceStatus == "impaired" || systemStatus == "impaired" }

    public init(instanceID: String, state: String = "running", instanceStatus: String = "ok", systemStatus: String = "ok") {
        self.instanceID = instanceID
        self.state = state
        self.instanceStatus = instanceStatus
        self.systemStatus = systemStatus
    }
}

public struct ElasticAddress: Sendable, Equatable {
    public var publicIP: String
    public var allocationID: String?
    public var networkInterfaceID: String?
    public var privateIP: String?

    public init(publicIP: String, allocationID: String? = nil, networkInterfaceID: String? = nil, privateIP: String? = nil) {
        self.publicIP = publicIP
        self.allocationID = allocationID
        self.networkInterfaceID = networkInterfaceID
        self.privateIP = privateIP
    }
}

extension EC2Client {
    static func filterParameters(_ filters: [EC2Filter]) -> [(String, String)] {
        var p: [(String, String)] = []
        for (i, f) in filters.enumerated() {
            p.append(("Filter.\(i + 1).Name", f.name))
            p += QueryClient.numbered("Filter.\(i + 1).Value", f.values)
        }
        return p
    }

    public func describeRouteTables(filters: [EC2Filter]) throws(AWSError) -> [RouteTable] {
        try query.paged("DescribeRouteTables", Self.filterParameters(filters), set: "routeTableSet").map { item in
            RouteTable(
                id: item.value("routeTableId") ?? "", vpcID: item.value("vpcId") ?? "",
                isMain: item.items("associationSet").contains { $0.value("main") == "true" },
                subnetIDs: item.items("associationSet").compactMap { $0.value("subnetId") },
                tags: Dictionary(item.items("tagSet").map { ($0.value("key") ?? "", $0.value("value") ?? "") },
                                 uniquingKeysWith: { a, _ in a }),
                routes: item.items("routeSet").compactMap { r in
                    // IPv4 or IPv6 (NAT64's route); prefix lists are left out.
                    guard let destination = r.value("destinationCidrBlock") ?? r.value("destinationIpv6CidrBlock")
                    else { return nil }
                    let other = ["gatewayId", "natGatewayId", "vpcPeeringConnectionId", "transitGatewayId"]
                        .lazy.compactMap { r.value($0) }.first
                    return Route(destination: destination, instanceID: r.value("instanceId"),
                                 networkInterfaceID: r.value("networkInterfaceId"), otherTarget: other,
                                 state: r.value("state") ?? "active")
                })
        }
    }

    public func createRoute(table: String, cidr: String, networkInterface: String) throws(AWSError) {
        _ = try query.call("CreateRoute", [("RouteTableId", table), (Self.destinationKey(cidr), cidr),
                                     ("NetworkInterfaceId", networkInterface)])
    }

    public func replaceRoute(table: String, cidr: String, networkInterface: String) throws(AWSError) {
        _ = try query.call("ReplaceRoute", [("RouteTableId", table), (Self.destinationKey(cidr), cidr),
                                      ("NetworkInterfaceId", networkInterface)])
    }

    public func deleteRoute(table: String, cidr: String) throws(AWSError) {
        _ = try query.call("DeleteRoute", [("RouteTableId", table), (Self.destinationKey(cidr), cidr)])
    }

    /// The parameter that names a route's destination: DestinationIpv6CidrBlock for an IPv6 prefix (NAT64's
    /// 64:ff9b::/96), DestinationCidrBlock otherwise.
    static func destinationKey(_ cidr: String) -> String {
        cidr.contains(":") ? "DestinationIpv6CidrBlock" : "DestinationCidrBlock"
    }

    public func describeNetworkInterfaces(ids: [String], filters: [EC2Filter]) throws(AWSError) -> [NetworkInterface] {
        let p = Self.filterParameters(filters) + QueryClient.numbered("NetworkInterfaceId", ids)
        return try query.paged("DescribeNetworkInterfaces", p, set: "networkInterfaceSet").map { item in
            NetworkInterface(
                id: item.value("networkInterfaceId") ?? "", instanceID: item.child("attachment")?.value("instanceId"),
                macAddress: item.value("macAddress") ?? "", vpcID: item.value("vpcId") ?? "",
                subnetID: item.value("subnetId") ?? "", primaryPrivateIP: item.value("privateIpAddress") ?? "",
                privateIPs: item.items("privateIpAddressesSet").compactMap { $0.value("privateIpAddress") },
                sourceDestCheck: item.value("sourceDestCheck") != "false")
        }
    }

    /// Running instances only (IncludeAllInstances=false): a stopped or terminated instance is simply absent.
    public func describeInstanceStatus(ids: [String]) throws(AWSError) -> [InstanceStatus] {
        let p = [("IncludeAllInstances", "false")] + QueryClient.numbered("InstanceId", ids)
        return try query.paged("DescribeInstanceStatus", p, set: "instanceStatusSet").map { item in
            InstanceStatus(instanceID: item.value("instanceId") ?? "",
                           state: item.child("instanceState")?.value("name") ?? "",
                           instanceStatus: item.child("instanceStatus")?.value("status") ?? "",
                           systemStatus: item.child("systemStatus")?.value("status") ?? "")
        }
    }

    /// All of `addresses` in one call: EC2 assigns them all or none. With `allowReassignment` an address another
    /// ENI holds is moved here, and the Elastic IP associated with it follows it.
    public func assignPrivateIPAddresses(_ addresses: [String], to networkInterface: String,
                                         allowReassignment: Bool) throws(AWSError) {
        _ = try query.call("AssignPrivateIpAddresses", [("NetworkInterfaceId", networkInterface)]
                     + QueryClient.numbered("PrivateIpAddress", addresses)
                     + [("AllowReassignment", allowReassignment ? "true" : "false")])
    }

    /// All of `addresses` in one call.
    public func unassignPrivateIPAddresses(_ addresses: [String], from networkInterface: String) throws(AWSError) {
        _ = try query.call("UnassignPrivateIpAddresses", [("NetworkInterfaceId", networkInterface)]
                     + QueryClient.numbered("PrivateIpAddress", addresses))
    }

    public func describeAddresses(filters: [EC2Filter]) throws(AWSError) -> [ElasticAddress] {
        try query.call("DescribeAddresses", Self.filterParameters(filters)).items("addressesSet").map { item in
            ElasticAddress(publicIP: item.value("publicIp") ?? "", allocationID: item.value("allocationId"),
                           networkInterfaceID: item.value("networkInterfaceId"), privateIP: item.value("privateIpAddress"))
        }
    }
}

