import SystemCalls

/// One health check as configured (AWSnycast's healthcheck keys plus tunnat's `timeout`).
public struct HealthCheckSpec: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case ping, tcp, http, https, command
    }
    public var kind: Kind
    /// Empty only in a remote health check template.
    public var destination = ""
    /// AWSnycast's defaults (healthcheck.Default()): rise 2, fall 3.
    public var rise = 2
    public var fall = 3
    public var every: UInt32 = 5
    /// Per probe; nil: min(every, 5) seconds, at least 1.
    public var timeout: UInt32?
    public var runOnHealthy: [String] = []
    public var runOnUnhealthy: [String] = []

    // tcp, http, https
    public var port: Int?
    public var send = ""
    public var expect = ""
    public var tls = false
    /// A CA certificate: a path, or PEM text.
    public var caCertificate: String?
    public var skipVerify = false
    public var serverName: String?
    // http, https
    public var path = "/"
    public var expectStatus: [Int] = []
    // command
    public var command = ""
    public var arguments: [String] = []

    public init(kind: Kind) { self.kind = kind }

    public var probeTimeoutMilliseconds: Int { Int(timeout ?? max(1, min(every, 5))) * 1000 }

    public func with(destination: String) -> HealthCheckSpec {
        var copy = self
        copy.destination = destination
        return copy
    }

    /// Everything that would make the check misbehave, as (key, what is accepted) pairs (keys relative to the
    /// check; `config.` for the type's own keys); empty when valid. `remote`: a template without a destination.
    public func problems(remote: Bool) -> [(key: String, problem: String)] {
        var found: [(String, String)] = []
        if remote && !destination.isEmpty {
            found.append(("destination", "a remote health check has no destination: it runs against the instance that holds the route"))
        }
        if !remote && destination.isEmpty { found.append(("destination", "missing; expected the IPv4 address to check")) }
        for (key, value) in [("rise", rise), ("fall", fall)] where !(1...1000).contains(value) {
            found.append((key, "expected a whole number from 1 to 1000, got \(value)"))
        }
        if every < 1 { found.append(("every", "expected at least 1 second")) }
        if let timeout, timeout < 1 { found.append(("timeout", "expected at least 1 second")) }
        if let port, !(1...65535).contains(port) {
            found.append(("config.port", "expected a whole number from 1 to 65535, got \(port)"))
        }
        if !path.hasPrefix("/") { found.append(("config.path", "expected a path starting with /, got '\(path)'")) }
        if let bad = expectStatus.first(where: { !(100...599).contains($0) }) {
            found.append(("config.status", "expected HTTP status codes from 100 to 599, got '\(bad)'"))
        }
        if kind == .tcp && port == nil { found.append(("config.port", "missing; a tcp health check needs the port to connect to")) }
        if kind == .command && command.isEmpty {
            found.append(("config.command", "missing; a command health check needs the program to run"))
        }
        return found
    }
}
