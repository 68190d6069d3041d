import AWS
import Failover
import Foundation
import Logging
import NatTable
import SystemCalls

/// `metrics.cloudwatch`: every `interval`, the figures that have a CloudWatch name go to PutMetricData, as the NAT
/// gateway publishes its own: counters as the amount of the last interval (CloudWatch sums them), gauges as they
/// are, each with the dimension InstanceId (when known), and the interval's peak packets and bytes per second. With
/// `pair`, a node that translates sends each again with the dimension Pair. A failed call is logged with AWS's code
/// and the next interval sends what accumulated since the last call that succeeded: nothing is lost to an outage
/// shorter than the counters' life.
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

    /// The data of one interval for a node: `data` (dimension InstanceId) and the peaks; with a pair and a node that
    /// translates, all of it again under the dimension Pair.
    public static func interval(_ report: StatusReport, sent: [String: Double], peak: PeakRate.Peak,
                                dimensions: [(name: String, value: String)], pair: String?)
        -> (data: [MetricDatum], values: [String: Double]) {
        var (data, values) = Self.data(Figure.of(report), sent: sent, dimensions: dimensions)
        data.append(MetricDatum(name: "PeakPacketsPerSecond", value: peak.packets, unit: "Count/Second", dimensions: dimensions))
        data.append(MetricDatum(name: "PeakBytesPerSecond", value: peak.bytes, unit: "Bytes/Second", dimensions: dimensions))
        if let pair, Service.readiness(report).ready, report.replication.map({ $0.role == .active }) ?? true {
            data += data.map { MetricDatum(name: $0.name, value: $0.value, unit: $0.unit, dimensions: [("Pair", pair)]) }
        }
        return (data, values)
    }

    /// Until `stop`: a call every interval, the peaks sampled every second. The first interval's counters start
    /// from the values at start.
    func run(report: @Sendable () -> StatusReport, stop: StopSignal) {
        let first = report()
        var sent = Self.data(Figure.of(first), sent: [:], dimensions: dimensions).values
        var peaks = PeakRate()
        let interval = UInt64(settings.interval) * 1000
        var due = SystemClock.monotonicNanoseconds() / 1_000_000 + interval
        peaks.sample(milliseconds: due - interval, first.nat)
        // Samples every second; a call when the interval is due by the clock (not by the count of samples, which
        // the time of each report and call would make drift).
        while !stop.sleep(milliseconds: 1000) {
            let now = report()
            let milliseconds = SystemClock.monotonicNanoseconds() / 1_000_000
            peaks.sample(milliseconds: milliseconds, now.nat)
            guard milliseconds >= due else { continue }
            due += interval
            if due <= milliseconds { due = milliseconds + interval }
            let (data, values) = Self.interval(now, sent: sent, peak: peaks.take(), dimensions: dimensions,
                                               pair: settings.pair)
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

/// The highest rate of packets and bytes received (both sides) over one-second samples, since the last `take`: the
/// NAT gateway's PeakPacketsPerSecond and PeakBytesPerSecond. Driven by the caller's clock.
public struct PeakRate: Sendable {
    public struct Peak: Equatable, Sendable {
        public var packets: Double = 0
        public var bytes: Double = 0
    }
    var last: (milliseconds: UInt64, packets: UInt64, bytes: UInt64)?
    var peak = Peak()

    public init() {}

    public mutating func sample(milliseconds: UInt64, _ nat: NatCounters) {
        let packets = nat.fromSource &+ nat.fromDestination
        let bytes = nat.fromSourceBytes &+ nat.fromDestinationBytes
        if let last, milliseconds > last.milliseconds {
            let seconds = Double(milliseconds - last.milliseconds) / 1000
            // A counter that went back (it cannot, short of a new process) counts from zero.
            peak.packets = max(peak.packets, Double(packets >= last.packets ? packets - last.packets : packets) / seconds)
            peak.bytes = max(peak.bytes, Double(bytes >= last.bytes ? bytes - last.bytes : bytes) / seconds)
        }
        last = (milliseconds, packets, bytes)
    }

    /// The peaks since the last take, and a fresh start from the last sample.
    public mutating func take() -> Peak {
        defer { peak = Peak() }
        return peak
    }
}
