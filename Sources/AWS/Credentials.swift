import Foundation
import Synchronization
import SystemCalls

/// Where AWS credentials come from, tried in the SDKs' order: the environment (AWS_ACCESS_KEY_ID,
/// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the shared credentials file (AWS_SHARED_CREDENTIALS_FILE or
/// ~/.aws/credentials, profile AWS_PROFILE or "default"), then the instance role through IMDSv2. Role credentials are
/// cached and fetched again five minutes before they expire.
public final class CredentialProvider: Sendable {
    public enum Source: Sendable, Equatable {
        case environment
        case sharedFile(path: String, profile: String)
        case instanceRole
        /// Given when the provider was made (`init(fixed:)`).
        case given
    }

    let imds: InstanceMetadataClient?
    let profile: String?
    private let cached = Mutex<(credentials: AWSCredentials, source: Source, expires: Int?)?>(nil)
    /// Role credentials are renewed this long before they expire.
    static let refreshMarginSeconds = 300

    /// `profile` overrides AWS_PROFILE; without `imds` the instance role is not tried.
    public init(profile: String? = nil, imds: InstanceMetadataClient?) {
        self.profile = profile
        self.imds = imds
    }

    /// Always `credentials`: for tests and tools that have their keys already.
    public init(fixed credentials: AWSCredentials) {
        profile = nil
        imds = nil
        cached.withLock { $0 = (credentials, .given, nil) }
    }

    public func credentials() throws(AWSError) -> AWSCredentials { try resolve().credentials }

    public func resolve() throws(AWSError) -> (credentials: AWSCredentials, source: Source) {
        let now = SystemClock.wallClockSeconds()
        if let c = cached.withLock({ $0 }), c.expires.map({ now < $0 - Self.refreshMarginSeconds }) ?? true {
            return (c.credentials, c.source)
        }
        var tried: [String] = []
        if let key = Environment.value("AWS_ACCESS_KEY_ID"), let secret = Environment.value("AWS_SECRET_ACCESS_KEY") {
            let c = AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: Environment.value("AWS_SESSION_TOKEN"))
            cached.withLock { $0 = (c, .environment, nil) }
            return (c, .environment)
        }
        tried.append("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set")
        let path = Self.sharedCredentialsPath()
        let profileName = profile ?? Environment.value("AWS_PROFILE") ?? "default"
        if let path, let bytes = try? FileBytes.read(path), let text = String(validating: bytes, as: UTF8.self) {
            if let c = Self.parseSharedCredentials(text, profile: profileName) {
                cached.withLock { $0 = (c, .sharedFile(path: path, profile: profileName), nil) }
                return (c, .sharedFile(path: path, profile: profileName))
            }
            tried.append("\(path) has no profile [\(profileName)] with aws_access_key_id and aws_secret_access_key")
        } else {
            tried.append("no credentials file at \(path ?? "~/.aws/credentials")")
        }
        guard let imds else { throw .noCredentials(tried.joined(separator: "; ")) }
        do {
            let (c, expires) = try roleCredentials(imds)
            cached.withLock { $0 = (c, .instanceRole, expires) }
            return (c, .instanceRole)
        } catch {
            tried.append("instance role: \(error)")
            throw .noCredentials(tried.joined(separator: "; "))
        }
    }

    static func sharedCredentialsPath() -> String? {
        if let path = Environment.value("AWS_SHARED_CREDENTIALS_FILE") { return path }
        guard let home = Environment.value("HOME") else { return nil }
        return "\(home)/.aws/credentials"
    }

    /// The INI format of ~/.aws/credentials: `[profile]` sections of `key = value` lines, `#` and `;` comments.
    static func parseSharedCredentials(_ text: String, profile: String) -> AWSCredentials? {
        var section = ""
        var values: [String: String] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = String(raw).trimmed
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast()).trimmed
                continue
            }
            guard section == profile, let eq = line.firstIndex(of: "=") else { continue }
            values[String(line[..<eq]).trimmed.lowercased()] = String(line[line.index(after: eq)...]).trimmed
        }
        guard let key = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] else { return nil }
        return AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: values["aws_session_token"])
    }

    struct RoleDocument: Decodable {
        var Code: String
        var AccessKeyId: String?
        var SecretAccessKey: String?
        var Token: String?
        var Expiration: String?
    }

    /// iam/security-credentials/ lists the role; iam/security-credentials/<role> is a JSON document.
    func roleCredentials(_ imds: InstanceMetadataClient) throws(AWSError) -> (AWSCredentials, Int?) {
        guard let roles = try imds.get("iam/security-credentials/"),
              let role = roles.split(whereSeparator: \.isNewline).first.map({ String($0).trimmed }), !role.isEmpty
        else { throw .metadata("no instance role (iam/security-credentials/ is empty or missing)") }
        let text = try imds.require("iam/security-credentials/\(role)")
        guard let document = try? JSONDecoder().decode(RoleDocument.self, from: Data(text.utf8)) else {
            throw .metadata("iam/security-credentials/\(role) is not the JSON document IMDS serves")
        }
        guard document.Code == "Success", let key = document.AccessKeyId, let secret = document.SecretAccessKey else {
            throw .metadata("role \(role): Code \(document.Code)")
        }
        var expires: Int?
        if let text = document.Expiration {
            guard let date = ISO8601DateFormatter().date(from: text) else {
                throw .metadata("role \(role): Expiration '\(text)' is not an ISO 8601 time")
            }
            expires = Int(date.timeIntervalSince1970)
        }
        return (AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: document.Token), expires)
    }
}
