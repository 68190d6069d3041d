import Failover
import Foundation
import Health
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
    /// connection attempts and connections established, mappings created, ports preserved; and the packets dropped,
    /// by reason. In JSON: `nat` (by `NatCounters.fields`) and `drops` (every reason, zeros included).
    public var nat: NatCounters
    /// The I/O side: frames read and written, GSO, checksums completed, bad headers, errors.
    public var io: IOCounters
    /// The kernel's own counters of the TUN device, read when the report is made (`kernelCounters`): drops there
    /// happen before tunnat sees a packet, so they are in none of the counts above.
    public var kernel: [String: UInt64]?
    /// This node's role and the replication counters, when replication is configured.
    public var replication: ReplicationStatus?
    /// The health checks' verdicts and the routes held, when failover is configured.
    public var failover: FailoverStatus?
    /// The local services (the control socket, the metrics endpoint); nil in a report of an older tunnat.
    public var services: ServiceFigures?
    public var nat64: Nat64Status?

    public struct ServiceFigures: Codable, Equatable, Sendable {
        /// Accepts that failed for want of a descriptor (EMFILE, ENFILE), and waited before the next.
        public var descriptorShortages: UInt64
        /// Metrics connections closed as they were accepted, at the cap.
        public var metricsConnectionsRefused: UInt64
        /// Metrics requests answered.
        public var metricsRequests: UInt64

        public init(_ counters: LocalServiceCounters) {
            descriptorShortages = counters.descriptorShortages.load(ordering: .relaxed)
            metricsConnectionsRefused = counters.metricsConnectionsRefused.load(ordering: .relaxed)
            metricsRequests = counters.metricsRequests.load(ordering: .relaxed)
        }
    }

    public struct FailoverStatus: Codable, Equatable, Sendable {
        /// Each health check's verdict, by the check's name.
        public var checks: [String: HealthVerdict]
        /// After the last pass: the managed routes found, and those pointing at this instance.
        public var routesManaged: Int
        public var routesHeld: Int
        /// Why routes are not managed as they should be (the preflight or the last pass failing, AWS down); nil
        /// when the last pass succeeded.
        public var problem: String?
        /// Preflights and passes that failed since start.
        public var failures: Int = 0

        public init(checks: [String: HealthVerdict], routesManaged: Int, routesHeld: Int, problem: String? = nil,
                    failures: Int = 0) {
            self.checks = checks
            self.routesManaged = routesManaged
            self.routesHeld = routesHeld
            self.problem = problem
            self.failures = failures
        }

        public init(_ manager: RouteManager) {
            checks = manager.verdicts
            routesManaged = manager.routesManaged
            routesHeld = manager.routesHeld
            problem = manager.problem
            failures = manager.failures
        }

        enum CodingKeys: String, CodingKey { case checks, routesManaged, routesHeld, problem, failures }

        /// A report of an older tunnat has no problem and no failures.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            checks = try c.decode([String: HealthVerdict].self, forKey: .checks)
            routesManaged = try c.decode(Int.self, forKey: .routesManaged)
            routesHeld = try c.decode(Int.self, forKey: .routesHeld)
            problem = try c.decodeIfPresent(String.self, forKey: .problem)
            failures = try c.decodeIfPresent(Int.self, forKey: .failures) ?? 0
        }
    }

    /// NAT64: the prefix, and how many IPv6 hosts hold mappings (each has an alias in 240.0.0.0/4).
    public struct Nat64Status: Codable, Sendable, Equatable {
        public var prefix: String
        public var hosts: Int
    }

    /// What the report needs from the table, copied under the data plane's lock; the report is built after it.
    public struct TableFigures: Sendable {
        public var flows: Int
        public var mappings: Int
        public var counters: NatCounters
        public var io: IOCounters
        public var nat64: Nat64Status?

        public init(flows: Int, mappings: Int, counters: NatCounters, io: IOCounters) {
            self.flows = flows
            self.mappings = mappings
            self.counters = counters
            self.io = io
        }

        public init(_ nat: NAT, io: IOCounters) {
            flows = nat.flowCount
            mappings = nat.mappingCount
            counters = nat.counters
            self.io = io
            nat64 = nat.configuration.nat64.map { Nat64Status(prefix: $0.prefix.description, hosts: nat.nat64HostCount) }
        }
    }

    public init(device: String, queues: Int, offloads: String, output: String, uptimeSeconds: UInt64,
                table: TableFigures, kernel: [String: UInt64]? = nil, replication: ReplicationStatus? = nil,
                failover: FailoverStatus? = nil, services: ServiceFigures? = nil) {
        self.kernel = kernel
        self.services = services
        self.failover = failover
        self.replication = replication
        self.device = device
        self.queues = queues
        self.offloads = offloads
        self.output = output
        self.uptimeSeconds = uptimeSeconds
        flows = table.flows
        mappings = table.mappings
        nat = table.counters
        io = table.io
        nat64 = table.nat64
    }

    enum CodingKeys: String, CodingKey {
        case device, queues, offloads, output, uptimeSeconds, flows, mappings, nat, drops, io, kernel, replication, failover, services, nat64
    }

    /// The JSON `tunnat status --json` prints and the control socket carries: the counters as objects by name,
    /// from the counters' own tables.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(device, forKey: .device)
        try c.encode(queues, forKey: .queues)
        try c.encode(offloads, forKey: .offloads)
        try c.encode(output, forKey: .output)
        try c.encode(uptimeSeconds, forKey: .uptimeSeconds)
        try c.encode(flows, forKey: .flows)
        try c.encode(mappings, forKey: .mappings)
        var natObject = Dictionary(uniqueKeysWithValues: NatCounters.fields.map { ($0.name, nat[keyPath: $0.value]) })
        natObject["dropped"] = nat.dropped
        try c.encode(natObject, forKey: .nat)
        try c.encode(Dictionary(uniqueKeysWithValues: DropReason.allCases.map { ($0.description, nat[$0]) }), forKey: .drops)
        try c.encode(Dictionary(uniqueKeysWithValues: io.named.map { ($0.name, $0.value) }), forKey: .io)
        try c.encodeIfPresent(kernel, forKey: .kernel)
        try c.encodeIfPresent(replication, forKey: .replication)
        try c.encodeIfPresent(failover, forKey: .failover)
        try c.encodeIfPresent(services, forKey: .services)
        try c.encodeIfPresent(nat64, forKey: .nat64)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        device = try c.decode(String.self, forKey: .device)
        queues = try c.decode(Int.self, forKey: .queues)
        offloads = try c.decode(String.self, forKey: .offloads)
        output = try c.decode(String.self, forKey: .output)
        uptimeSeconds = try c.decode(UInt64.self, forKey: .uptimeSeconds)
        flows = try c.decode(Int.self, forKey: .flows)
        mappings = try c.decode(Int.self, forKey: .mappings)
        let natObject = try c.decode([String: UInt64].self, forKey: .nat)
        nat = NatCounters()
        for field in NatCounters.fields { nat[keyPath: field.value] = natObject[field.name] ?? 0 }
        let drops = try c.decode([String: UInt64].self, forKey: .drops)
        for reason in DropReason.allCases { nat[reason] = drops[reason.description] ?? 0 }
        let ioObject = try c.decode([String: UInt64].self, forKey: .io)
        io = IOCounters()
        for field in IOCounters.fields { io[keyPath: field.value] = (ioObject[field.name] ?? 0) * field.scale }
        kernel = try c.decodeIfPresent([String: UInt64].self, forKey: .kernel)
        replication = try c.decodeIfPresent(ReplicationStatus.self, forKey: .replication)
        failover = try c.decodeIfPresent(FailoverStatus.self, forKey: .failover)
        services = try c.decodeIfPresent(ServiceFigures.self, forKey: .services)
        nat64 = try c.decodeIfPresent(Nat64Status.self, forKey: .nat64)
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
        if let nat64 { lines.append("nat64: prefix \(nat64.prefix), \(nat64.hosts) IPv6 host(s)") }
        let rows = NatCounters.fields.map { ($0.name, nat[keyPath: $0.value]) }
        lines.append("packets:")
        for (key, value) in rows[..<4] + [("dropped", nat.dropped)] + rows[4...] {
            lines.append("  \(key.padding(toLength: 20, withPad: " ", startingAt: 0)) \(value)")
        }
        let dropped = DropReason.allCases.map { ($0.description, nat[$0]) }.filter { $0.1 > 0 }.sorted { ($0.1, $1.0) > ($1.1, $0.0) }
        lines.append(dropped.isEmpty ? "drops: none" : "drops by reason:")
        for (reason, count) in dropped {
            lines.append("  \(reason.padding(toLength: 20, withPad: " ", startingAt: 0)) \(count)")
        }
        lines.append("io:")
        for (key, value) in io.named {
            lines.append("  \(key.padding(toLength: 20, withPad: " ", startingAt: 0)) \(value)")
        }
        if let kernel {
            lines.append("kernel (\(device) statistics):")
            for (key, _) in Self.kernelFields {
                lines.append("  \(key.padding(toLength: 20, withPad: " ", startingAt: 0)) \(kernel[key].map(String.init) ?? "unreadable")")
            }
        }
        if let r = replication {
            lines.append("replication: node \(r.node) \(r.role), term \(r.term)"
                + (r.role == .standby ? ", following \(r.leader), replica \(r.synced ? "complete" : "incomplete")" : "")
                + (r.handover == .none ? "" : ", handover \(r.handover)"))
            for p in r.peers {
                lines.append("  peer \(p.endpoint) node \(p.node): \(p.alive ? p.role.map(\.description) ?? "unknown" : "silent")\(p.synced ? " (synced)" : "")"
                    + "\(p.session ? p.wireVersion.map { ", wire format v\($0)" } ?? "" : ", no session")\(p.resyncing ? ", resyncing" : "")"
                    + ", \(p.inFlight) batch(es) in flight, \(p.pending) record(s) pending")
            }
            for (key, value) in r.counters.named.sorted(by: { $0.name < $1.name }) {
                lines.append("  \(key.padding(toLength: 24, withPad: " ", startingAt: 0)) \(value)")
            }
        }
        if let f = failover {
            lines.append("failover: \(f.routesHeld) of \(f.routesManaged) managed route(s) point here"
                + (f.problem.map { "; not managing routes as it should: \($0)" } ?? ""))
            for (name, verdict) in f.checks.sorted(by: { $0.key < $1.key }) { lines.append("  health check \(name): \(verdict)") }
        }
        return lines.joined(separator: "\n")
    }
}
