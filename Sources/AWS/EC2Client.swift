import HTTP
import SystemCalls

/// The EC2 Query API (and CloudWatch's, which has the same shape: `cloudWatch(...)`): every call is a POST of a form body (`Action=...&Version=2016-11-15&...`), signed with SigV4,
/// answered with XML. Errors come back as `AWSError.api` with AWS's code and message; throttling, 5xx and lost
/// connections are retried under `retry`.
public final class EC2Client: Sendable {
    public static let apiVersion = "2016-11-15"
    public let endpoint: String
    public let region: String
    let credentials: CredentialProvider
    let retry: RetryPolicy
    let onRetry: @Sendable (AWSError, Int, Int) -> Void
    let timeoutMilliseconds: Int
    /// The SigV4 service name and the API version of the Query API spoken: ec2 and 2016-11-15 unless made by
    /// `cloudWatch(...)`.
    let service: String
    let version: String

    /// `endpoint` nil: https://ec2.<region>.amazonaws.com.
    public init(region: String, endpoint: String? = nil, credentials: CredentialProvider, retry: RetryPolicy = RetryPolicy(),
                timeoutMilliseconds: Int = 10_000, onRetry: @escaping @Sendable (AWSError, Int, Int) -> Void = { _, _, _ in },
                service: String = "ec2", apiVersion: String = EC2Client.apiVersion) {
        self.service = service
        self.version = apiVersion
        self.region = region
        var e = endpoint ?? "https://ec2.\(region).amazonaws.com"
        while e.hasSuffix("/") { e.removeLast() }
        self.endpoint = e
        self.credentials = credentials
        self.retry = retry
        self.onRetry = onRetry
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// One API call, retried as the policy says; returns the response document's root element.
    public func call(_ action: String, _ parameters: [(String, String)] = []) throws(AWSError) -> XMLElement {
        try retry.run(onRetry: onRetry) { () throws(AWSError) -> XMLElement in try callOnce(action, parameters) }
    }

    func callOnce(_ action: String, _ parameters: [(String, String)]) throws(AWSError) -> XMLElement {
        let body = Self.formBody([("Action", action), ("Version", version)] + parameters)
        let (host, path) = Self.hostAndPath(endpoint)
        var signable = SignableRequest(method: "POST", path: path, headers: [
            ("Host", host), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
        ], body: Array(body.utf8))
        SigV4.sign(&signable, credentials: try credentials.credentials(),
                   options: SigV4.Options(region: region, service: service), time: SystemClock.wallClockSeconds())
        var request = HTTPRequest(method: "POST", url: endpoint + path, headers: signable.headers, body: signable.body)
        request.timeoutMilliseconds = timeoutMilliseconds
        let response: HTTPResponse
        do { response = try HTTPClient.perform(request) } catch {
            throw .transport(action: action, code: error.code, message: error.message)
        }
        let document: XMLElement
        do { document = try XML.parse(response.body) } catch {
            let start = String(response.text.prefix(120))
            throw response.status == 200 ? .badResponse(action: action, "\(error)")
                : .api(action: action, status: response.status, code: "HTTP\(response.status)", message: start)
        }
        guard response.status == 200 else {
            // <Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors>...</Response>
            let error = document.first("Error")
            throw .api(action: action, status: response.status, code: error?.value("Code") ?? "HTTP\(response.status)",
                       message: error?.value("Message") ?? "")
        }
        return document
    }

    /// "https://host:port/path" -> ("host:port", "/path"); the Host header is what curl will send.
    static func hostAndPath(_ url: String) -> (String, String) {
        var rest = Substring(url)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var host = String(rest[..<slash])
        if url.hasPrefix("https://"), host.hasSuffix(":443") { host.removeLast(4) }
        if url.hasPrefix("http://"), host.hasSuffix(":80") { host.removeLast(3) }
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        return (host, path)
    }

    static func formBody(_ parameters: [(String, String)]) -> String {
        parameters.map { "\(SigV4.encode($0.0, keepSlash: false))=\(SigV4.encode($0.1, keepSlash: false))" }
            .joined(separator: "&")
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
}

public struct InstanceStatus: Sendable, Equatable {
    public var instanceID: String
    public var state: String
    /// "ok", "impaired", "initializing", "insufficient-data", "not-applicable".
    public var instanceStatus: String
    public var systemStatus: String
    public var isImpaired: Bool { instanceStatus == "impaired" || systemStatus == "impaired" }
}

public struct ElasticAddress: Sendable, Equatable {
    public var publicIP: String
    public var allocationID: String?
    public var networkInterfaceID: String?
    public var privateIP: String?
}

extension EC2Client {
    static func filterParameters(_ filters: [EC2Filter]) -> [(String, String)] {
        var p: [(String, String)] = []
        for (i, f) in filters.enumerated() {
            p.append(("Filter.\(i + 1).Name", f.name))
            p += numbered("Filter.\(i + 1).Value", f.values)
        }
        return p
    }

    /// The Query API's form of a list: `name.1`, `name.2`, ... (numbered from 1).
    static func numbered(_ name: String, _ values: [String]) -> [(String, String)] {
        values.enumerated().map { ("\(name).\($0.offset + 1)", $0.element) }
    }

    /// Follows NextToken until the listing is complete.
    func paged(_ action: String, _ parameters: [(String, String)], set: String) throws(AWSError) -> [XMLElement] {
        var items: [XMLElement] = []
        var token: String?
        for _ in 0..<1000 {
            var p = parameters
            if let token { p.append(("NextToken", token)) }
            let document = try call(action, p)
            items += document.items(set)
            token = document.value("nextToken")
            if token?.isEmpty ?? true { return items }
        }
        throw .badResponse(action: action, "more than 1000 pages")
    }

    public func describeRouteTables(filters: [EC2Filter] = []) throws(AWSError) -> [RouteTable] {
        try paged("DescribeRouteTables", Self.filterParameters(filters), set: "routeTableSet").map { item in
            RouteTable(
                id: item.value("routeTableId") ?? "", vpcID: item.value("vpcId") ?? "",
                isMain: item.items("associationSet").contains { $0.value("main") == "true" },
                subnetIDs: item.items("associationSet").compactMap { $0.value("subnetId") },
                tags: Dictionary(item.items("tagSet").map { ($0.value("key") ?? "", $0.value("value") ?? "") },
                                 uniquingKeysWith: { a, _ in a }),
                routes: item.items("routeSet").compactMap { r in
                    guard let destination = r.value("destinationCidrBlock") else { return nil }  // IPv6, prefix lists
                    let other = ["gatewayId", "natGatewayId", "vpcPeeringConnectionId", "transitGatewayId"]
                        .lazy.compactMap { r.value($0) }.first
                    return Route(destination: destination, instanceID: r.value("instanceId"),
                                 networkInterfaceID: r.value("networkInterfaceId"), otherTarget: other,
                                 state: r.value("state") ?? "active")
                })
        }
    }

    public func createRoute(table: String, cidr: String, networkInterface: String) throws(AWSError) {
        _ = try call("CreateRoute", [("RouteTableId", table), ("DestinationCidrBlock", cidr),
                                     ("NetworkInterfaceId", networkInterface)])
    }

    public func replaceRoute(table: String, cidr: String, networkInterface: String) throws(AWSError) {
        _ = try call("ReplaceRoute", [("RouteTableId", table), ("DestinationCidrBlock", cidr),
                                      ("NetworkInterfaceId", networkInterface)])
    }

    public func deleteRoute(table: String, cidr: String) throws(AWSError) {
        _ = try call("DeleteRoute", [("RouteTableId", table), ("DestinationCidrBlock", cidr)])
    }

    public func describeNetworkInterfaces(ids: [String] = [], filters: [EC2Filter] = []) throws(AWSError) -> [NetworkInterface] {
        let p = Self.filterParameters(filters) + Self.numbered("NetworkInterfaceId", ids)
        return try paged("DescribeNetworkInterfaces", p, set: "networkInterfaceSet").map { item in
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
        let p = [("IncludeAllInstances", "false")] + Self.numbered("InstanceId", ids)
        return try paged("DescribeInstanceStatus", p, set: "instanceStatusSet").map { item in
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
        _ = try call("AssignPrivateIpAddresses", [("NetworkInterfaceId", networkInterface)]
                     + Self.numbered("PrivateIpAddress", addresses)
                     + [("AllowReassignment", allowReassignment ? "true" : "false")])
    }

    /// All of `addresses` in one call.
    public func unassignPrivateIPAddresses(_ addresses: [String], from networkInterface: String) throws(AWSError) {
        _ = try call("UnassignPrivateIpAddresses", [("NetworkInterfaceId", networkInterface)]
                     + Self.numbered("PrivateIpAddress", addresses))
    }

    public func describeAddresses(filters: [EC2Filter] = []) throws(AWSError) -> [ElasticAddress] {
        try call("DescribeAddresses", Self.filterParameters(filters)).items("addressesSet").map { item in
            ElasticAddress(publicIP: item.value("publicIp") ?? "", allocationID: item.value("allocationId"),
                           networkInterfaceID: item.value("networkInterfaceId"), privateIP: item.value("privateIpAddress"))
        }
    }
}

// MARK: - CloudWatch

/// One value for CloudWatch PutMetricData.
public struct MetricDatum: Sendable, Equatable {
    public var name: String
    public var value: Double
    /// Count, Bytes, Seconds or None.
    public var unit: String
    public var dimensions: [(name: String, value: String)]

    public init(name: String, value: Double, unit: String, dimensions: [(name: String, value: String)] = []) {
        self.name = name
        self.value = value
        self.unit = unit
        self.dimensions = dimensions
    }

    public static func == (a: MetricDatum, b: MetricDatum) -> Bool {
        a.name == b.name && a.value == b.value && a.unit == b.unit
            && a.dimensions.map(\.name) == b.dimensions.map(\.name) && a.dimensions.map(\.value) == b.dimensions.map(\.value)
    }
}

extension EC2Client {
    /// The CloudWatch Query API (2010-08-01, SigV4 service "monitoring") through the same client: signing, retries
    /// and errors as for EC2. `endpoint` nil: https://monitoring.<region>.amazonaws.com.
    public static func cloudWatch(region: String, endpoint: String?, credentials: CredentialProvider,
                                  retry: RetryPolicy = RetryPolicy(), timeoutMilliseconds: Int = 10_000,
                                  onRetry: @escaping @Sendable (AWSError, Int, Int) -> Void = { _, _, _ in }) -> EC2Client {
        EC2Client(region: region, endpoint: endpoint ?? "https://monitoring.\(region).amazonaws.com", credentials: credentials,
                  retry: retry, timeoutMilliseconds: timeoutMilliseconds, onRetry: onRetry, service: "monitoring",
                  apiVersion: "2010-08-01")
    }

    /// PutMetricData, in calls of at most 1,000 values (the API's limit per request).
    public func putMetricData(namespace: String, _ data: [MetricDatum]) throws(AWSError) {
        var start = 0
        while start < data.count {
            let chunk = data[start..<min(start + 1000, data.count)]
            var parameters = [("Namespace", namespace)]
            for (i, datum) in chunk.enumerated() {
                let p = "MetricData.member.\(i + 1)."
                parameters += [(p + "MetricName", datum.name), (p + "Value", String(datum.value)), (p + "Unit", datum.unit)]
                for (j, dimension) in datum.dimensions.enumerated() {
                    parameters += [(p + "Dimensions.member.\(j + 1).Name", dimension.name),
                                   (p + "Dimensions.member.\(j + 1).Value", dimension.value)]
                }
            }
            _ = try call("PutMetricData", parameters)
            start += 1000
        }
    }
}
