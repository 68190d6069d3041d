import AWS
import Failover
import Foundation
import Logging
import SystemCalls

/// `metrics.cloudwatch`: every `interval`, the figures that have a CloudWatch name go to PutMetricData, as the NAT
/// gateway publishes its own: counters as the amount of the last interval (CloudWatch sums them), gauges as they
/// are, each with the dimension InstanceId (when known). A failed call is logged with AWS's code and the next
/// interval sends what accumulated since the last call that succeeded: nothing is lost to an outage shorter
/// than the counters' life.
public final class CloudWatchPublisher: Sendable {
    let client: CloudWatchClient
    let settings: CloudWatchSettings
    let dimensions: [(name: String, value: String)]
    let logger: Logger

    init(client: CloudWatchClient, settings: CloudWatchSettings, instanceID: String, logger: Logger) {
        self.client = client
        self.settings = settings
        dimensions = instanceID.isEmpty ? [] : [("InstanceId", instanceID)]
        self.logger = logger
    }

    /// Region and credentials as the failover module finds them (its aws settings, then IMDSv2); the endpoint from
    /// the settings, else $AWS_ENDPOINT_URL_CLOUDWATCH or $AWS_ENDPOINT_URL, else AWS's.
    static func make(_ settings: CloudWatchSettings, failover: AWSSettings?, logger: Logger) throws(FailoverError) -> CloudWatchPublisher {
        let aws = failover ?? AWSSettings()
        let metadataEndpoint = aws.metadataEndpoint ?? Environment.value("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            ?? InstanceMetadataClient.defaultEndpoint
        let imds = InstanceMetadataClient(endpoint: metadataEndpoint)
        var identity = aws.identity
        if settings.region == nil && identity.region.isEmpty || identity.instanceID.isEmpty {
            if let completed = try? identity.completed(from: imds) { identity = completed }
        }
        guard let region = settings.region ?? (identity.region.isEmpty ? nil : identity.region) else {
            throw FailoverError("no region: set metrics.cloudwatch.region (the instance metadata service did not answer)")
        }
        let credentials = CredentialProvider(profile: aws.profile, imds: imds)
        do { _ = try credentials.resolve() } catch { throw FailoverError("\(error)") }
        let endpoint = settings.endpoint ?? Environment.value("AWS_ENDPOINT_URL_CLOUDWATCH") ?? Environment.value("AWS_ENDPOINT_URL")
        let client = CloudWatchClient(region: region, endpoint: endpoint, credentials: credentials, retry: aws.retry,
                                      timeoutMilliseconds: Int(aws.timeoutSeconds) * 1000)
        logger.info("metrics to CloudWatch", metadata: [
            "namespace": "\(settings.namespace)", "region": "\(region)", "every": "\(settings.interval)s",
            "endpoint": "\(client.query.endpoint)",
        ])
        return CloudWatchPublisher(client: client, settings: settings, instanceID: identity.instanceID, logger: logger)
    }

    /// The data for one call: each CloudWatch figure, counters as their increase since `sent` (the values of the
    /// last call that succeeded). Figures of one CloudWatch name are summed (the directions of a counter).
    public static func data(_ figures: [Figure], sent: [String: Double], dimensions: [(name: String, value: String)])
        -> (data: [MetricDatum], values: [String: Double]) {
        var values: [String: Double] = [:]
        var order: [String] = []
        var units: [String: String] = [:]
        var counters = Set<String>()
        for figure in figures {
            guard let name = figure.cloudWatch else { continue }
            if values[name] == nil { order.append(name) }
            values[name, default: 0] += figure.value
            units[name] = figure.name.contains("bytes") ? "Bytes" : "Count"
            if figure.kind == .counter { counters.insert(name) }
        }
        let data = order.map { name in
            let value = counters.contains(name) ? max(0, values[name]! - (sent[name] ?? 0)) : values[name]!
            return MetricDatum(name: name, value: value, unit: units[name]!, dimensions: dimensions)
        }
        return (data, values)
    }

    /// Until `stop`: a call every interval. The first interval's counters start from the values at start.
    func run(report: @Sendable () -> StatusReport, stop: StopSignal) {
        var sent = Self.data(Figure.of(report()), sent: [:], dimensions: dimensions).values
        while !stop.sleep(milliseconds: Int32(clamping: Int(settings.interval) * 1000)) {
            let (data, values) = Self.data(Figure.of(report()), sent: sent, dimensions: dimensions)
            do {
                try client.putMetricData(namespace: settings.namespace, data)
                sent = values
                logger.debug("PutMetricData: \(data.count) value(s) to \(settings.namespace)")
            } catch {
                logger.warning("CloudWatch PutMetricData: \(error); the next call sends what accumulated")
            }
        }
    }
}
