import Yams

/// Where a running data plane publishes its figures (`metrics:`).
public struct MetricsConfiguration: Sendable, Equatable {
    /// The Prometheus endpoint, `ADDRESS:PORT` (`GET /metrics`); empty: no endpoint.
    public var listen = "127.0.0.1:9469"
    /// CloudWatch PutMetricData, when set.
    public var cloudWatch: CloudWatchSettings?

    public init() {}

    /// `listen` split into its address and port; nil when empty.
    public var listenAddress: (host: String, port: Int)? {
        guard !listen.isEmpty, let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...])
        else { return nil }
        return (String(listen[..<colon]), port)
    }

    public func problems() -> [(key: String, problem: String)] {
        var found: [(String, String)] = []
        if !listen.isEmpty {
            let parts = listenAddress
            if parts == nil || !(1...65535).contains(parts!.port) || IPv4Literal.parse(parts!.host) == nil {
                found.append(("listen", "expected an IPv4 ADDRESS:PORT (127.0.0.1:9469), or \"\" for no endpoint, got '\(listen)'"))
            }
        }
        if let cw = cloudWatch {
            if cw.namespace.isEmpty || cw.namespace.hasPrefix("AWS/") || cw.namespace.utf8.count > 255 {
                found.append(("cloudwatch.namespace", "expected 1-255 characters not starting with 'AWS/', got '\(cw.namespace)'"))
            }
            if cw.interval < 10 { found.append(("cloudwatch.interval", "expected at least 10s, got \(cw.interval)s")) }
        }
        return found
    }
}

/// `metrics.cloudwatch`: the same figures as CloudWatch metrics, sent with PutMetricData through the SigV4 client.
public struct CloudWatchSettings: Sendable, Equatable {
    public var namespace = "tunnat"
    /// Seconds between PutMetricData calls.
    public var interval: UInt32 = 60
    /// Default: the region of failover.aws, else the instance's (IMDSv2).
    public var region: String?
    /// Default: https://monitoring.REGION.amazonaws.com (or $AWS_ENDPOINT_URL_CLOUDWATCH, $AWS_ENDPOINT_URL).
    public var endpoint: String?
    /// The pair's name: while this node translates, every figure is sent a second time with the dimension Pair,
    /// so that a pair is one series across a failover. nil: InstanceId only.
    public var pair: String?
    public init() {}
}

/// An IPv4 dotted quad, checked without the NAT's types (the metrics section needs nothing else from them).
enum IPv4Literal {
    static func parse(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { $0.count <= 3 ? UInt8($0) : nil }
        return bytes.count == 4 ? bytes : nil
    }
}

extension ConfigReader {
    func metrics(_ node: Node) throws(ConfigError) -> MetricsConfiguration {
        let m = try mapping(node, key: "metrics", accepted: ["listen", "cloudwatch"])
        var config = MetricsConfiguration()
        if let v = m["listen"] { config.listen = try scalar(v, "metrics.listen", expected: "ADDRESS:PORT or \"\"") }
        if let v = m["cloudwatch"] {
            let c = try mapping(v, key: "metrics.cloudwatch", accepted: ["namespace", "interval", "region", "endpoint", "pair"])
            var cw = CloudWatchSettings()
            if let v = c["namespace"] { cw.namespace = try scalar(v, "metrics.cloudwatch.namespace", expected: "a namespace") }
            if let v = c["interval"] { cw.interval = try duration(v, "metrics.cloudwatch.interval") }
            if let v = c["region"] { cw.region = try scalar(v, "metrics.cloudwatch.region", expected: "a region") }
            if let v = c["endpoint"] { cw.endpoint = try scalar(v, "metrics.cloudwatch.endpoint", expected: "a URL") }
            if let v = c["pair"] {
                let name = try scalar(v, "metrics.cloudwatch.pair", expected: "the pair's name")
                // CloudWatch takes a dimension value of 1 to 1024 characters.
                guard (1...255).contains(name.utf8.count), name.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                    throw fail(v, "metrics.cloudwatch.pair", "expected a name of 1 to 255 printable ASCII characters, got '\(name)'")
                }
                cw.pair = name
            }
            config.cloudWatch = cw
        }
        try validate(config.problems(), prefix: "metrics")
        return config
    }
}
