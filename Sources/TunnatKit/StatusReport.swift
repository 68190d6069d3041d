import Failover
import Foundation
import NatTable
import Replication
import SystemCalls
import TunIO

/// What `tunnat status` shows: a snapshot of a running data plane, sent as one JSON object over the control
/// socket.
public struct StatusReport: Codable, Equatable, Sendable {
    public var device: String
    public var queues: Int
    public var offloads: String
    public var output: String
    public var uptimeSeconds: UInt64
    public var flows: Int
    public var mappings: Int
    /// The NAT's counters: packets, outbound, inbound, hairpin (and their bytes), held and released fragments,
    /// flows created, expired and evicted, inbound packets let in without a flow (inbound-flow-limit), TCP
    /// connection attempts and connections established, mappings created, ports preserved.
    public var nat: [String: UInt64]
    /// Packets dropped, by reason (every reason, zeros included).
    public var drops: [String: UInt64]
    /// The I/O side: frames read and written, GSO, checksums completed, bad headers, errors.
    public var io: [String: UInt64]
    /// The kernel's own counters of the TUN device, read when the report is made (`kernelCounters`): drops there
    /// happen before tunnat sees a packet, so they are in none of the counts above.
    public var kernel: [String: UInt64]?
    /// This node's role and the replication counters, when replication is configured.
    public var replication: ReplicationStatus?
    /// The health checks' verdicts and the routes held, when failover is configured.
    public var failover: FailoverStatus?

    public struct FailoverStatus: Codable, Equatable, Sendable {
        /// Each health check's verdict: healthy, unhealthy or unknown (no verdict yet).
        public var checks: [String: String]
        /// After the last pass: the managed routes found, and those pointing at this instance.
        public var routesManaged: Int
        public var routesHeld: Int

        public init(checks: [String: String], routesManaged: Int, routesHeld: Int) {
            self.checks = checks
            self.routesManaged = routesManaged
            self.routesHeld = routesHeld
        }

        public init(_ manager: RouteManager) {
            checks = manager.verdicts.mapValues { $0.map { $0 ? "healthy" : "unhealthy" } ?? "unknown" }
            routesManaged = manager.routesManaged
            routesHeld = manager.routesHeld
        }
    }

    /// What the report needs from the table, copied under the data plane's lock; the report is built after it.
    public struct TableFigures: Sendable {
        public var flows: Int
        public var mappings: Int
        public var counters: NatCounters
        public var io: IOCounters

        public init(_ nat: NAT, io: IOCounters) {
            flows = nat.flowCount
            mappings = nat.mappingCount
            counters = nat.counters
            self.io = io
        }
    }

    public init(device: String, queues: Int, offloads: String, output: String, uptimeSeconds: UInt64,
                table: TableFigures, kernel: [String: UInt64]? = nil, replication: ReplicationStatus? = nil,
                failover: FailoverStatus? = nil) {
        self.kernel = kernel
        self.failover = failover
        self.replication = replication
        self.device = device
        self.queues = queues
        self.offloads = offloads
        self.output = output
        self.uptimeSeconds = uptimeSeconds
        flows = table.flows
        mappings = table.mappings
        let c = table.counters
        self.nat = ["packets": c.packets, "outbound": c.outbound, "inbound": c.inbound, "hairpin": c.hairpin,
                    "held-fragments": c.heldFragments, "released-fragments": c.releasedFragments,
                    "flows-created": c.flowsCreated, "flows-expired": c.flowsExpired,
                    "mappings-created": c.mappingsCreated, "ports-preserved": c.portsPreserved,
                    "flows-evicted": c.flowsEvicted, "inbound-flow-limit": c.inboundFlowLimit,
                    "dropped": c.dropped, "bytes-outbound": c.outboundBytes, "bytes-inbound": c.inboundBytes,
                    "bytes-hairpin": c.hairpinBytes, "tcp-attempts": c.tcpAttempts, "tcp-established": c.tcpEstablished]
        var drops: [String: UInt64] = [:]
        for reason in DropReason.allCases { drops[reason.description] = c[reason] }
        self.drops = drops
        self.io = Dictionary(uniqueKeysWithValues: table.io.fields)
    }

    /// The kernel's counters in the order `text` shows them, with the sysfs file each comes from. The device's
    /// transmit side is the kernel handing packets to tunnat: `tx_dropped` counts those it could not queue to
    /// tunnat's readers (a queue full); its receive side is tunnat writing packets into the kernel.
    public static let kernelFields: [(key: String, file: String)] = [
        ("tun-tx-dropped", "tx_dropped"), ("tun-rx-dropped", "rx_dropped"),
        ("tun-tx-errors", "tx_errors"), ("tun-rx-errors", "rx_errors"),
    ]

    /// Reads `/sys/class/net/DEVICE/statistics/*` for `kernelFields`; a counter that cannot be read is left out.
    public static func kernelCounters(device: String) -> [String: UInt64] {
        var counters: [String: UInt64] = [:]
        for (key, file) in kernelFields {
            guard let bytes = try? FileBytes.read("/sys/class/net/\(device)/statistics/\(file)"),
                  let value = UInt64(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
            else { continue }
            counters[key] = value
        }
        return counters
    }

    public func json() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return Array((try? encoder.encode(self)) ?? Data())
    }

    public static func decode(_ bytes: [UInt8]) -> StatusReport? {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try? decoder.decode(StatusReport.self, from: Data(bytes))
    }

    /// For people: the device, then the counters, then the drops that happened, largest first.
    public var text: String {
        var lines: [String] = []
        lines.append("device \(device): \(queues) queue(s), offloads \(offloads), output \(output), up \(uptimeSeconds)s")
        lines.append("flows \(flows), mappings \(mappings)")
        let order = ["packets", "outbound", "inbound", "hairpin", "dropped", "bytes-outbound", "bytes-inbound",
                     "bytes-hairpin", "held-fragments", "released-fragments", "flows-created", "flows-expired",
                     "flows-evicted", "inbound-flow-limit", "tcp-attempts", "tcp-established", "mappings-created",
                     "ports-preserved"]
        lines.append("packets:")
        for key in order { lines.append("  \(key.padding(toLength: 20, withPad: " ", startingAt: 0)) \(nat[key] ?? 0)") }
        let dropped = drops.filter { $0.value > 0 }.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
        lines.append(dropped.isEmpty ? "drops: none" : "drops by reason:")
        for (reason, count) in dropped {
            lines.append("  \(reason.padding(toLength: 20, withPad: " ", startingAt: 0)) \(count)")
        }
        lines.append("io:")
        for (key, _) in IOCounters().fields {
            lines.append("  \(key.padding(toLength: 20, withPad: " ", startingAt: 0)) \(io[key] ?? 0)")
        }
        if let kernel {
            lines.append("kernel (\(device) statistics):")
            for (key, _) in Self.kernelFields {
                lines.append("  \(key.padding(toLength: 20, withPad: " ", startingAt: 0)) \(kernel[key].map(String.init) ?? "unreadable")")
            }
        }
        if let r = replication {
            lines.append("replication: node \(r.node) \(r.role), term \(r.term)"
                + (r.role == "standby" ? ", following \(r.leader), replica \(r.synced ? "complete" : "incomplete")" : "")
                + (r.handover.isEmpty ? "" : ", handover \(r.handover)"))
            for p in r.peers {
                lines.append("  peer \(p.endpoint) node \(p.node): \(p.alive ? p.role : "silent")\(p.synced ? " (synced)" : "")"
                    + "\(p.session ? "" : ", no session")\(p.resyncing ? ", resyncing" : "")"
                    + ", \(p.inFlight) batch(es) in flight, \(p.pending) record(s) pending")
            }
            for (key, value) in r.counters.sorted(by: { $0.key < $1.key }) {
                lines.append("  \(key.padding(toLength: 24, withPad: " ", startingAt: 0)) \(value)")
            }
        }
        if let f = failover {
            lines.append("failover: \(f.routesHeld) of \(f.routesManaged) managed route(s) point here")
            for (name, verdict) in f.checks.sorted(by: { $0.key < $1.key }) { lines.append("  health check \(name): \(verdict)") }
        }
        return lines.joined(separator: "\n")
    }
}
