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
}
