import Foundation
import Health
import NatTable
import Prometheus
import Replication
import Synchronization

/// One figure of a status report, as monitoring sees it: a Prometheus name (conventions: `tunnat_` prefix, base
/// units, `_total` for counters), its help, its labels, its value, and the CloudWatch name when it is one of the
/// NAT gateway's metrics (or tunnat's addition to them).
public struct Figure: Equatable, Sendable {
    public enum Kind: Sendable { case counter, gauge }
    public var name: String
    public var kind: Kind
    public var help: String
    public var labels: [String: String]
    public var value: Double
    public var cloudWatch: String?

    /// The figures of `report`: every counter `tunnat status --json` shows, under the names docs/operations.md lists.
    public static func of(_ report: StatusReport) -> [Figure] {
        var f: [Figure] = []
        func counter(_ name: String, _ help: String, labels: [String: String] = [:], _ value: UInt64, cw: String? = nil) {
            f.append(Figure(name: name, kind: .counter, help: help, labels: labels, value: Double(value), cloudWatch: cw))
        }
        func gauge(_ name: String, _ help: String, labels: [String: String] = [:], _ value: Double, cw: String? = nil) {
            f.append(Figure(name: name, kind: .gauge, help: help, labels: labels, value: value, cloudWatch: cw))
        }
        let nat = report.nat
        gauge("tunnat_active_flows", "Flows in the NAT table.", Double(report.flows), cw: "ActiveConnectionCount")
        gauge("tunnat_mappings", "Port mappings in the NAT table.", Double(report.mappings))
        gauge("tunnat_uptime_seconds", "Seconds since the data plane started.", Double(report.uptimeSeconds))
        counter("tunnat_packets_received_total", "Packets the NAT was given, translated or not.", nat.packets)
        let directions: [(String, UInt64, UInt64, String)] = [
            ("outbound", nat.outbound, nat.outboundBytes, "ToDestination"), ("inbound", nat.inbound, nat.inboundBytes, "ToSource"),
            ("hairpin", nat.hairpin, nat.hairpinBytes, ""),
        ]
        for (label, packets, bytes, side) in directions {
            counter("tunnat_packets_translated_total", "Packets translated, by direction (outbound: private to internet).",
                    labels: ["direction": label], packets, cw: side.isEmpty ? nil : "PacketsOut\(side)")
            counter("tunnat_bytes_translated_total", "Bytes of the packets translated, by direction.",
                    labels: ["direction": label], bytes, cw: side.isEmpty ? nil : "BytesOut\(side)")
        }
        let sides: [(String, UInt64, UInt64, String)] = [
            ("source", nat.fromSource, nat.fromSourceBytes, "FromSource"),
            ("destination", nat.fromDestination, nat.fromDestinationBytes, "FromDestination"),
        ]
        for (label, packets, bytes, side) in sides {
            counter("tunnat_packets_received_by_side_total",
                    "Packets received, translated or dropped, by side (source: the private hosts; destination: the internet).",
                    labels: ["side": label], packets, cw: "PacketsIn\(side)")
            counter("tunnat_bytes_received_by_side_total", "Bytes of the packets received, by side.",
                    labels: ["side": label], bytes, cw: "BytesIn\(side)")
        }
        if let nat64 = report.nat64 {
            // NAT64, counted apart as well as in the directions above (outbound: IPv6 to IPv4).
            for (label, packets, bytes) in [("outbound", nat.nat64Outbound, nat.nat64OutboundBytes),
                                            ("inbound", nat.nat64Inbound, nat.nat64InboundBytes)] {
                counter("tunnat_nat64_packets_translated_total", "NAT64 packets translated, by direction (outbound: IPv6 to IPv4).",
                        labels: ["direction": label], packets)
                counter("tunnat_nat64_bytes_translated_total", "Bytes of the NAT64 packets translated, as sent, by direction.",
                        labels: ["direction": label], bytes)
            }
            gauge("tunnat_nat64_hosts", "IPv6 hosts holding NAT64 mappings.", Double(nat64.hosts))
        }
        counter("tunnat_dropped_packets_all_total", "Packets dropped, every reason.", nat.dropped, cw: "PacketsDropCount")
        for reason in DropReason.allCases.sorted(by: { $0.description < $1.description }) {
            counter("tunnat_dropped_packets_total", "Packets dropped, by reason (docs/nat-behaviour.md).",
                    labels: ["reason": reason.description], nat[reason])
        }
        counter("tunnat_port_allocation_errors_total", "New flows refused because no port was free (drop reason ports-exhausted).",
                nat[.portsExhausted], cw: "ErrorPortAllocation")
        counter("tunnat_tcp_connection_attempts_total", "TCP connection attempts: SYNs that open a flow or reuse a closed one (not retransmissions).", nat.tcpAttempts, cw: "ConnectionAttemptCount")
        counter("tunnat_tcp_connections_established_total", "TCP flows that saw a SYN each way.", nat.tcpEstablished,
                cw: "ConnectionEstablishedCount")
        counter("tunnat_idle_timeouts_total", "Flows removed after their idle timeout.", nat.flowsExpired, cw: "IdleTimeoutCount")
        counter("tunnat_flows_created_total", "Flows created.", nat.flowsCreated)
        counter("tunnat_flows_evicted_total", "Unreplied or closing flows removed to make room in a full table.", nat.flowsEvicted)
        counter("tunnat_mappings_created_total", "Port mappings created.", nat.mappingsCreated)
        counter("tunnat_ports_preserved_total", "Mappings that kept the private port.", nat.portsPreserved)
        if let services = report.services {
            counter("tunnat_descriptor_shortages_total", "Accepts (control socket, metrics) that failed for want of a descriptor, each followed by a wait.",
                    services.descriptorShortages)
            counter("tunnat_metrics_connections_refused_total", "Metrics connections closed at the cap of open ones: a new one refused, or a quiet one making room.",
                    services.metricsConnectionsRefused)
        }
        counter("tunnat_fragments_held_total", "Fragments held until their first fragment arrived.", nat.heldFragments)
        counter("tunnat_fragments_released_total", "Held fragments released after their first fragment.", nat.releasedFragments)
        counter("tunnat_inbound_flow_limit_total", "Inbound packets let through a mapping without making a flow (its limit or the table's inbound budget reached).",
                nat.inboundFlowLimit)
        counter("tunnat_tcp_out_of_window_ignored_total", "TCP data and ACKs outside their connection's window: forwarded, tracking unchanged.",
                nat.outOfWindowIgnored)
        for (key, value) in report.io.named.sorted(by: { $0.name < $1.name }) {
            if key == "lock-wait-max-us" {
                gauge("tunnat_io_lock_wait_max_seconds", "The longest a worker waited for the table's lock.", Double(value) / 1e6)
            } else {
                let name = key.replacingOccurrences(of: "-", with: "_")
                counter("tunnat_io_\(name)_total", "The packet I/O's \(key) counter (tunnat status, io).", value)
            }
        }
        for (key, value) in (report.kernel ?? [:]).sorted(by: { $0.key < $1.key }) {
            // tun-tx-dropped: the kernel could not queue a packet to tunnat; tun-rx-*: tunnat's writes into the TUN.
            let parts = key.split(separator: "-")
            guard parts.count == 3 else { continue }
            counter("tunnat_tun_\(parts[2])_total", "The TUN device's own \(parts[2]) counters (tx: kernel to tunnat, rx: tunnat to kernel).",
                    labels: ["side": String(parts[1])], value, cw: key == "tun-tx-dropped" ? "TunDroppedCount" : nil)
        }
        if let r = report.replication {
            for role in Role.allCases {
                gauge("tunnat_role", "1 for this node's replication role.", labels: ["role": role.description], r.role == role ? 1 : 0)
            }
            gauge("tunnat_term", "The replication term this node is in.", Double(r.term))
            gauge("tunnat_replica_synced", "1 when this standby's replica is complete.", r.synced ? 1 : 0)
            gauge("tunnat_peers", "Replication peers configured.", Double(r.peers.count))
            gauge("tunnat_peers_synced", "Peers whose replica of this node's table is complete.",
                  Double(r.peers.filter(\.synced).count), cw: "SyncedPeers")
            gauge("tunnat_replication_pending_records", "Flow records waiting to be sent to the peers (the replication lag).",
                  Double(r.peers.reduce(0) { $0 + $1.pending }), cw: "ReplicationPendingRecords")
            gauge("tunnat_replication_in_flight_batches", "Batches sent to the peers and not yet acknowledged.",
                  Double(r.peers.reduce(0) { $0 + $1.inFlight }))
            for (key, value) in r.counters.named.sorted(by: { $0.name < $1.name }) {
                counter("tunnat_replication_events_total", "Replication counters (tunnat status, replication).", labels: ["event": key], value)
            }
        }
        if let failover = report.failover {
            for (check, verdict) in failover.checks.sorted(by: { $0.key < $1.key }) {
                for v in HealthVerdict.allCases {
                    gauge("tunnat_health_check_verdict", "1 for each health check's current verdict.",
                          labels: ["check": check, "verdict": v.rawValue], verdict == v ? 1 : 0)
                }
            }
            gauge("tunnat_routes_managed", "Managed VPC routes found in the last pass.", Double(failover.routesManaged))
            gauge("tunnat_failover_problem", "1 while the route manager cannot do its job (preflight or last pass failing).",
                  failover.problem == nil ? 0 : 1)
            counter("tunnat_failover_failures_total", "Failover preflights and passes that failed.", UInt64(failover.failures))
            gauge("tunnat_routes_held", "Managed VPC routes pointing at this instance after the last pass.",
                  Double(failover.routesHeld), cw: "RoutesHeld")
        }
        return f
    }
}

/// The Prometheus side: a swift-prometheus registry that mirrors the figures of each report it is given. The
/// packet path never touches it: the figures are read from `tunnat status`'s report when scraped, so a scrape
/// costs the packets one short hold of the table's lock, and counters move by what changed since the last scrape.
public final class PrometheusExporter: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// Each counter's value as last mirrored, by name and labels.
    let mirrored = Mutex<[String: Double]>([:])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// Brings the registry up to `figures` and returns the text exposition (format 0.0.4).
    public func render(_ figures: [Figure]) -> [UInt8] {
        mirrored.withLock { last in
            for figure in figures {
                let labels = figure.labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
                // The whole name is tunnat's (Figure.of), so the descriptor carries it as one part.
                let descriptor = MetricNameDescriptor(metricName: figure.name, unitName: "", helpText: figure.help)
                switch figure.kind {
                case .gauge:
                    registry.makeGauge(descriptor: descriptor, labels: labels).set(figure.value)
                case .counter:
                    let key = figure.name + labels.map { "|\($0.0)=\($0.1)" }.joined()
                    let counter = registry.makeCounter(descriptor: descriptor, labels: labels)
                    let delta = figure.value - (last[key] ?? 0)
                    if delta > 0 { counter.increment(by: Int64(delta)) }
                    last[key] = max(figure.value, last[key] ?? 0)
                }
            }
            return registry.emitToBuffer()
        }
    }
}
