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

/// The CloudWatch Query API (2010-08-01, SigV4 service "monitoring") over a `QueryClient`: signing, retries and
/// errors as for EC2.
public struct CloudWatchClient: Sendable {
    public static let apiVersion = "2010-08-01"
    public let query: QueryClient

    /// `endpoint` nil: https://monitoring.<region>.amazonaws.com.
    public init(region: String, endpoint: String?, credentials: CredentialProvider, retry: RetryPolicy = RetryPolicy(),
                timeoutMilliseconds: Int = 10_000, onRetry: @escaping @Sendable (AWSError, Int, Int) -> Void = { _, _, _ in }) {
        query = QueryClient(service: "monitoring", version: Self.apiVersion, region: region,
                            endpoint: endpoint ?? "https://monitoring.\(region).amazonaws.com", credentials: credentials,
                            retry: retry, timeoutMilliseconds: timeoutMilliseconds, onRetry: onRetry)
    }

    public init(query: QueryClient) { self.query = query }

    /// PutMetricData, in calls of at most 1,000 values (the API's limit per request).
    public func putMetricData(namespace: String, _ data: [MetricDatum]) throws(AWSError) {
        for start in stride(from: 0, to: data.count, by: 1000) {
            _ = try query.call("PutMetricData", Self.parameters(namespace: namespace, data[start..<min(start + 1000, data.count)]))
        }
    }

    /// One PutMetricData request's parameters: `MetricData.member.N.*` with `Dimensions.member.M.*`.
    static func parameters(namespace: String, _ chunk: ArraySlice<MetricDatum>) -> [(String, String)] {
        var parameters = [("Namespace", namespace)]
        for (i, datum) in chunk.enumerated() {
            let p = "MetricData.member.\(i + 1)."
            parameters += [(p + "MetricName", datum.name), (p + "Value", String(datum.value)), (p + "Unit", datum.unit)]
            for (j, dimension) in datum.dimensions.enumerated() {
                parameters += [(p + "Dimensions.member.\(j + 1).Name", dimension.name),
                               (p + "Dimensions.member.\(j + 1).Value", dimension.value)]
            }
        }
        return parameters
    }
}
