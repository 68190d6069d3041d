import Foundation
import HTTP
import Synchronization
import SystemCalls

/// The EC2 instance metadata service, version 2 only: a session token is PUT for (with the TTL header
/// X-aws-ec2-metadata-token-ttl-seconds), then every GET carries it in X-aws-ec2-metadata-token. A 401 means the
/// token expired or is missing; the client fetches a new one once and asks again. Requests never go through a proxy.
public final class InstanceMetadataClient: InstanceMetadataSource {
    public static let defaultEndpoint = "http://169.254.169.254"
    public let endpoint: String
    /// Six hours, the longest IMDSv2 allows.
    let tokenTTLSeconds = 21_600
    private let token = Mutex<(value: String, expires: Double)?>(nil)

    public init(endpoint: String = InstanceMetadataClient.defaultEndpoint) {
        var e = endpoint
        while e.hasSuffix("/") { e.removeLast() }
        self.endpoint = e
    }

    /// GET /latest/meta-data/<path>; nil when the service says 404 (the item does not exist on this instance).
    public func get(_ path: String) throws(AWSError) -> String? {
        for attempt in 0..<2 {
            let value = try sessionToken(renew: attempt > 0)
            var request = HTTPRequest(method: "GET", url: "\(endpoint)/latest/meta-data/\(path)",
                                      headers: [("X-aws-ec2-metadata-token", value)])
            configure(&request)
            let response: HTTPResponse
            do { response = try HTTPClient.perform(request) } catch {
                throw .metadata("GET \(path): \(error.message) at \(endpoint)")
            }
            switch response.status {
            case 200: return response.text
            case 404: return nil
            case 401: continue
            default: throw .metadata("GET \(path): HTTP \(response.status) from \(endpoint)")
            }
        }
        throw .metadata("GET \(path): 401 twice with a fresh token from \(endpoint)")
    }

    /// Like `get`, but a missing item is an error that names it.
    public func require(_ path: String) throws(AWSError) -> String {
        guard let value = try get(path) else { throw .metadata("\(path) is not in the instance metadata") }
        return value.trimmed
    }

    private func configure(_ request: inout HTTPRequest) {
        request.useProxy = false
        request.connectTimeoutMilliseconds = 1_000
        request.timeoutMilliseconds = 3_000
    }

    private func sessionToken(renew: Bool) throws(AWSError) -> String {
        let now = SystemClock.monotonicSeconds()
        if !renew, let cached = token.withLock({ $0 }), cached.expires > now { return cached.value }
        var request = HTTPRequest(method: "PUT", url: "\(endpoint)/latest/api/token",
                                  headers: [("X-aws-ec2-metadata-token-ttl-seconds", "\(tokenTTLSeconds)")])
        configure(&request)
        let response: HTTPResponse
        do { response = try HTTPClient.perform(request) } catch {
            throw .metadata("no IMDSv2 token: \(error.message) at \(endpoint) (not on EC2? set the aws.* values in the config)")
        }
        guard response.status == 200, !response.body.isEmpty else {
            throw .metadata("no IMDSv2 token: HTTP \(response.status) from PUT \(endpoint)/latest/api/token")
        }
        let value = response.text.trimmed
        // Renew a minute early so that a token never expires between our check and the service's.
        token.withLock { $0 = (value, now + Double(tokenTTLSeconds) - 60) }
        return value
    }
}

/// What tunnat needs to know about the instance it runs on. Each value comes from the config if set there, else
/// from IMDSv2.
public struct InstanceIdentity: Sendable, Equatable, CustomStringConvertible {
    public var instanceID: String
    public var region: String
    public var availabilityZone: String
    public var mac: String
    public var vpcID: String
    public var subnetID: String
    /// The ENI with `mac` (the one that routes point to and the pool address is assigned to).
    public var interfaceID: String
    public var privateIP: String

    public init(instanceID: String = "", region: String = "", availabilityZone: String = "", mac: String = "",
                vpcID: String = "", subnetID: String = "", interfaceID: String = "", privateIP: String = "") {
        self.instanceID = instanceID
        self.region = region
        self.availabilityZone = availabilityZone
        self.mac = mac
        self.vpcID = vpcID
        self.subnetID = subnetID
        self.interfaceID = interfaceID
        self.privateIP = privateIP
    }

    public var description: String {
        "instance \(instanceID) in \(region)/\(availabilityZone), vpc \(vpcID), subnet \(subnetID), eni \(interfaceID) (\(mac), \(privateIP))"
    }

    /// Fills every empty field from the metadata service; fields already set are kept (config overrides).
    public func completed(from imds: InstanceMetadataClient) throws(AWSError) -> InstanceIdentity {
        var id = self
        if id.instanceID.isEmpty { id.instanceID = try imds.require("instance-id") }
        if id.availabilityZone.isEmpty { id.availabilityZone = try imds.require("placement/availability-zone") }
        if id.region.isEmpty {
            if let region = try imds.get("placement/region") { id.region = region.trimmed }
            else { id.region = String(id.availabilityZone.dropLast()) }
        }
        if id.mac.isEmpty { id.mac = try imds.require("mac") }
        let base = "network/interfaces/macs/\(id.mac)"
        if id.vpcID.isEmpty { id.vpcID = try imds.require("\(base)/vpc-id") }
        if id.subnetID.isEmpty { id.subnetID = try imds.require("\(base)/subnet-id") }
        if id.interfaceID.isEmpty { id.interfaceID = try imds.require("\(base)/interface-id") }
        if id.privateIP.isEmpty { id.privateIP = try imds.require("\(base)/local-ipv4s").split(separator: "\n").first.map(String.init) ?? "" }
        return id
    }

    /// The fields that must be set in the config when there is no metadata service.
    public var missingFields: [String] {
        var missing: [String] = []
        if instanceID.isEmpty { missing.append("instance_id") }
        if region.isEmpty { missing.append("region") }
        if vpcID.isEmpty { missing.append("vpc_id") }
        if interfaceID.isEmpty { missing.append("interface_id") }
        return missing
    }
}

/// Reads the instance metadata: `InstanceMetadataClient` (IMDSv2) in the program, a fake in tests.
public protocol InstanceMetadataSource: Sendable {
    /// The value at `path` (below /latest/meta-data/), nil when the service says 404.
    func get(_ path: String) throws(AWSError) -> String?
}
