import AWS
import Failover
import Foundation
import Health
import NatTable
import PacketKit
import Replication
import SystemCalls
import Yams

/// Everything a tunnat configuration file sets.
public struct TunnatConfiguration: Sendable, Equatable {
    public var nat: NatConfiguration
    /// Health checks and AWS route management (AWSnycast's configuration); nil: none.
    public var failover: FailoverConfiguration?
    /// State replication to standby peers and the active/standby roles; nil: a single node, always active.
    public var replication: ReplicationConfiguration?
    public var tun = TunConfiguration()
    /// Where `tunnat status` finds a running `tunnat run`.
    public var controlSocket = TunConfiguration.defaultControlSocket
    public var logLevel = "info"
    /// How often `tunnat run` logs a one-line summary of its counters (0: never).
    public var statsInterval: UInt32 = 60
}

/// The live data plane: the TUN device, where translated packets go, and the policy routing that feeds it.
public struct TunConfiguration: Sendable, Equatable {
    public enum Output: String, Sendable, CaseIterable {
        /// Back into the TUN with virtio-net headers: GSO super-packets stay whole (the fast path).
        case tun
        /// Through a raw IP socket (IP_HDRINCL): GSO packets are split and checksums finished first.
        case raw
    }
    public static let defaultControlSocket = "/run/tunnat.sock"

    public var name = "tun0"
    /// Queues, one worker thread each; 0 means one per core.
    public var queues = 0
    public var offloads = true
    /// 0 keeps the kernel's default (1500).
    public var mtu = 0
    public var output = Output.tun
    public var routing = Routing()

    public struct Routing: Sendable, Equatable {
        /// Install the policy routing on start and remove it on exit.
        public var install = true
        /// The routing table that holds `default dev <tun>`.
        public var table = 100
        /// The priority of the `ip rule`s that send private sources to that table.
        public var priority = 100
        /// The interface private traffic arrives on; empty: any interface, the host's own traffic excepted.
        public var interface = ""
        public init() {}
    }

    public init() {}
}

/// A mistake in a configuration file, said in one line: the file, the line, the key, and what is accepted.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let line: Int?
    public let key: String
    public let message: String

    public var description: String {
        let place = line.map { "\(file):\($0)" } ?? file
        return key.isEmpty ? "\(place): \(message)" : "\(place): \(key): \(message)"
    }
}

public enum ConfigFile {
    /// Reads and parses a configuration file.
    public static func load(path: String) throws(ConfigError) -> TunnatConfiguration {
        try parse(try readText(path), file: path)
    }

    static func readText(_ path: String) throws(ConfigError) -> String {
        let bytes: [UInt8]
        do { bytes = try FileBytes.read(path) } catch {
            throw ConfigError(file: path, line: nil, key: "", message: "cannot read: \(String(cString: strerror(error.errno)))")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(file: path, line: nil, key: "", message: "not UTF-8 text")
        }
        return text
    }

    /// The embedded default configuration.
    public static func defaults() -> TunnatConfiguration {
        // The embedded text is covered by a test; failing here is a build defect, not a user error.
        try! parse(DefaultConfiguration.yaml, file: "<embedded default>")
    }

    static func compose(_ text: String, file: String, emptyMessage: String) throws(ConfigError) -> Node {
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ConfigError(file: file, line: nil, key: "", message: emptyMessage)
            }
            return node
        } catch let error as ConfigError {
            throw error
        } catch {
            let oneLine = "\(error)".split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            throw ConfigError(file: file, line: nil, key: "", message: "not valid YAML: \(oneLine.joined(separator: " "))")
        }
    }

    public static func parse(_ text: String, file: String) throws(ConfigError) -> TunnatConfiguration {
        let root = try compose(text, file: file, emptyMessage: "the file is empty; it needs a 'nat' section")
        let reader = Reader(file: file)
        let top = try reader.mapping(root, key: "", accepted: ["nat", "tun", "control_socket", "log_level",
                                                               "stats_interval", "failover", "replication"])
        guard let natNode = top["nat"] else {
            throw ConfigError(file: file, line: nil, key: "nat", message: "missing; the file needs a 'nat' section")
        }
        var config = TunnatConfiguration(nat: try reader.nat(natNode))
        if let node = top["tun"] { config.tun = try reader.tun(node) }
        if let node = top["control_socket"] {
            let path = try reader.scalar(node, "control_socket", expected: "an absolute path")
            guard path.hasPrefix("/"), path.utf8.count < 108 else {
                throw reader.fail(node, "control_socket", "expected an absolute path shorter than 108 bytes, got '\(path)'")
            }
            config.controlSocket = path
        }
        if let node = top["log_level"] {
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            let level = try reader.scalar(node, "log_level", expected: "a log level")
            guard levels.contains(level) else {
                throw reader.fail(node, "log_level", "expected one of \(levels.joined(separator: ", ")), got '\(level)'")
            }
            config.logLevel = level
        }
        if let node = top["stats_interval"] { config.statsInterval = try reader.duration(node, "stats_interval") }
        if let node = top["failover"] { config.failover = try reader.failover(node, key: "failover") }
        if let node = top["replication"] { config.replication = try reader.replication(node) }
        return config
    }
}

/// Walks the YAML tree, naming each value by its dotted key.
struct Reader {
    let file: String

    func fail(_ node: Node?, _ key: String, _ message: String) -> ConfigError {
        ConfigError(file: file, line: node?.mark.map { $0.line }, key: key, message: message)
    }

    /// A mapping whose keys must all be in `accepted`.
    func mapping(_ node: Node, key: String, accepted: [String]) throws(ConfigError) -> [String: Node] {
        guard case .mapping(let mapping) = node else {
            throw fail(node, key, "expected a mapping with keys \(accepted.joined(separator: ", "))")
        }
        var result: [String: Node] = [:]
        for (k, v) in mapping {
            guard let name = k.string else { throw fail(k, key, "keys must be plain strings") }
            let full = key.isEmpty ? name : "\(key).\(name)"
            guard accepted.contains(name) else {
                throw fail(k, full, "unknown key; accepted here: \(accepted.joined(separator: ", "))")
            }
            guard result[name] == nil else { throw fail(k, full, "given twice") }
            result[name] = v
        }
        return result
    }

    func scalar(_ node: Node, _ key: String, expected: String) throws(ConfigError) -> String {
        guard case .scalar(let scalar) = node else { throw fail(node, key, "expected \(expected)") }
        return scalar.string
    }

    /// A list of scalars; a single scalar counts as a list of one.
    func list(_ node: Node, _ key: String, expected: String) throws(ConfigError) -> [(String, Node)] {
        switch node {
        case .scalar(let scalar): return [(scalar.string, node)]
        case .sequence(let sequence):
            var items: [(String, Node)] = []
            for item in sequence { items.append((try scalar(item, key, expected: "a list of \(expected)"), item)) }
            return items
        default: throw fail(node, key, "expected a list of \(expected)")
        }
    }

    func integer(_ node: Node, _ key: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let text = try scalar(node, key, expected: "a whole number from \(range.lowerBound) to \(range.upperBound)")
        guard let value = Int(text), range.contains(value) else {
            throw fail(node, key, "expected a whole number from \(range.lowerBound) to \(range.upperBound), got '\(text)'")
        }
        return value
    }

    func boolean(_ node: Node, _ key: String) throws(ConfigError) -> Bool {
        let text = try scalar(node, key, expected: "true or false")
        switch text {
        case "true": return true
        case "false": return false
        default: throw fail(node, key, "expected true or false, got '\(text)'")
        }
    }

    /// Seconds: `300`, `300s`, `5m`, `2h4m`, `1h30m15s`.
    func duration(_ node: Node, _ key: String) throws(ConfigError) -> UInt32 {
        let text = try scalar(node, key, expected: "a duration")
        guard let seconds = Self.parseDuration(text) else {
            throw fail(node, key, "expected a duration such as 300, 300s, 5m or 2h4m, got '\(text)'")
        }
        return seconds
    }

    static func parseDuration(_ text: String) -> UInt32? {
        if let plain = UInt32(text) { return plain }
        var total: UInt64 = 0
        var digits = ""
        var lastUnit = 4
        for ch in text {
            if ch.isASCII && ch.isNumber {
                digits.append(ch)
                continue
            }
            let units: [Character: (Int, UInt64)] = ["h": (3, 3600), "m": (2, 60), "s": (1, 1)]
            guard let (rank, scale) = units[ch], rank < lastUnit, let n = UInt64(digits) else { return nil }
            total += n * scale
            lastUnit = rank
            digits = ""
        }
        guard digits.isEmpty, lastUnit < 4, total <= UInt64(UInt32.max) else { return nil }
        return UInt32(total)
    }

    func nat(_ node: Node) throws(ConfigError) -> NatConfiguration {
        let keys = ["private_prefixes", "pool", "port_range", "filtering", "max_flows", "max_flows_per_host",
                    "verify_checksums", "max_held_fragments", "timeouts", "seed"]
        let section = try mapping(node, key: "nat", accepted: keys)
        var prefixes: [IPv4Prefix] = []
        if let value = section["private_prefixes"] {
            for (text, item) in try list(value, "nat.private_prefixes", expected: "IPv4 prefixes such as 10.0.0.0/8") {
                guard let prefix = IPv4Prefix(text) else {
                    throw fail(item, "nat.private_prefixes",
                               "expected an IPv4 prefix such as 10.0.0.0/8 (host bits clear), got '\(text)'")
                }
                prefixes.append(prefix)
            }
        } else {
            throw fail(node, "nat.private_prefixes", "missing; give the prefixes to translate, such as [10.0.0.0/8]")
        }
        var pool: [IPv4Address] = []
        if let value = section["pool"] {
            for (text, item) in try list(value, "nat.pool", expected: "IPv4 addresses") {
                guard let address = IPv4Address(text) else {
                    throw fail(item, "nat.pool", "expected an IPv4 address such as 198.18.0.1, got '\(text)'")
                }
                pool.append(address)
            }
        } else {
            throw fail(node, "nat.pool", "missing; give the external address(es), such as [198.18.0.1]")
        }
        var config = NatConfiguration(privatePrefixes: prefixes, poolAddresses: pool)
        if let value = section["port_range"] {
            let text = try scalar(value, "nat.port_range", expected: "LOW-HIGH")
            let parts = text.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2, let low = UInt16(parts[0]), let high = UInt16(parts[1]), low >= 1024, low <= high
            else {
                throw fail(value, "nat.port_range", "expected LOW-HIGH with 1024 <= LOW <= HIGH <= 65535, got '\(text)'")
            }
            config.portRange = low...high
        }
        if let value = section["filtering"] {
            let text = try scalar(value, "nat.filtering", expected: "a filtering mode")
            guard let mode = NatConfiguration.Filtering(rawValue: text) else {
                let accepted = NatConfiguration.Filtering.allCases.map(\.rawValue).joined(separator: ", ")
                throw fail(value, "nat.filtering", "expected one of \(accepted), got '\(text)'")
            }
            config.filtering = mode
        }
        if let value = section["max_flows"] { config.maxFlows = try integer(value, "nat.max_flows", 1...(1 << 26)) }
        if let value = section["max_flows_per_host"] {
            if case .scalar(let s) = value, s.string == "unlimited" {
                config.maxFlowsPerHost = nil
            } else {
                config.maxFlowsPerHost = try integer(value, "nat.max_flows_per_host", 1...(1 << 26))
            }
        }
        if let value = section["verify_checksums"] { config.verifyChecksums = try boolean(value, "nat.verify_checksums") }
        if let value = section["max_held_fragments"] {
            config.maxHeldFragments = try integer(value, "nat.max_held_fragments", 0...4096)
        }
        if let value = section["seed"] {
            let text = try scalar(value, "nat.seed", expected: "a whole number")
            guard let seed = UInt64(text) else { throw fail(value, "nat.seed", "expected a whole number, got '\(text)'") }
            config.seed = seed
        }
        if let value = section["timeouts"] {
            let names = ["tcp_established", "tcp_transitory", "udp", "icmp", "fragment"]
            let timeouts = try mapping(value, key: "nat.timeouts", accepted: names)
            if let v = timeouts["tcp_established"] {
                config.timeouts.tcpEstablished = try duration(v, "nat.timeouts.tcp_established")
            }
            if let v = timeouts["tcp_transitory"] {
                config.timeouts.tcpTransitory = try duration(v, "nat.timeouts.tcp_transitory")
            }
            if let v = timeouts["udp"] { config.timeouts.udp = try duration(v, "nat.timeouts.udp") }
            if let v = timeouts["icmp"] { config.timeouts.icmp = try duration(v, "nat.timeouts.icmp") }
            if let v = timeouts["fragment"] { config.timeouts.fragment = try duration(v, "nat.timeouts.fragment") }
        }
        // Rules that involve more than one key (a pool address inside a private prefix, RFC minimums).
        if let problem = config.problems().first {
            let keyNode = section[String(problem.key.split(separator: ".").first ?? "")] ?? node
            throw fail(keyNode, "nat.\(problem.key)", problem.problem)
        }
        return config
    }

    func replication(_ node: Node) throws(ConfigError) -> ReplicationConfiguration {
        let keys = ["node_id", "listen", "peers", "key_file", "heartbeat_ms", "peer_timeout_ms", "startup_wait_ms",
                    "hold_new_flows_ms"]
        let section = try mapping(node, key: "replication", accepted: keys)
        func endpoint(_ text: String, _ item: Node, _ key: String) throws(ConfigError) -> UDPEndpoint {
            guard let e = UDPEndpoint(text), e.address != 0 else {
                throw fail(item, key, "expected ADDRESS:PORT with a specific IPv4 address, such as 10.0.1.10:7800, got '\(text)'")
            }
            return e
        }
        guard let listenNode = section["listen"] else {
            throw fail(node, "replication.listen", "missing; give this node's address and UDP port, such as 10.0.1.10:7800")
        }
        let listen = try endpoint(try scalar(listenNode, "replication.listen", expected: "ADDRESS:PORT"), listenNode,
                                  "replication.listen")
        guard let peersNode = section["peers"] else {
            throw fail(node, "replication.peers", "missing; give the other nodes' ADDRESS:PORT, such as [10.0.2.10:7800]")
        }
        var peers: [UDPEndpoint] = []
        for (text, item) in try list(peersNode, "replication.peers", expected: "ADDRESS:PORT") {
            let peer = try endpoint(text, item, "replication.peers")
            guard peer != listen, !peers.contains(peer) else {
                throw fail(item, "replication.peers", "'\(text)' is this node's own address or given twice")
            }
            peers.append(peer)
        }
        guard !peers.isEmpty else { throw fail(peersNode, "replication.peers", "expected at least one peer") }
        guard let keyNode = section["key_file"] else {
            throw fail(node, "replication.key_file", "missing; give a file holding at least 32 bytes of shared secret")
        }
        let keyFile = try scalar(keyNode, "replication.key_file", expected: "an absolute path")
        guard keyFile.hasPrefix("/") else {
            throw fail(keyNode, "replication.key_file", "expected an absolute path, got '\(keyFile)'")
        }
        var config = ReplicationConfiguration(node: listen.address, listen: listen, peers: peers, keyFile: keyFile)
        if let v = section["node_id"] { config.node = UInt32(try integer(v, "replication.node_id", 1...Int(UInt32.max))) }
        if let v = section["heartbeat_ms"] { config.heartbeatMilliseconds = try integer(v, "replication.heartbeat_ms", 10...10_000) }
        if let v = section["peer_timeout_ms"] {
            config.peerTimeoutMilliseconds = try integer(v, "replication.peer_timeout_ms", 50...600_000)
        }
        if let v = section["startup_wait_ms"] {
            config.startupWaitMilliseconds = try integer(v, "replication.startup_wait_ms", 0...600_000)
        }
        if let v = section["hold_new_flows_ms"] {
            config.holdNewFlowsMilliseconds = try integer(v, "replication.hold_new_flows_ms", 0...1000)
        }
        guard config.peerTimeoutMilliseconds >= 3 * config.heartbeatMilliseconds else {
            throw fail(section["peer_timeout_ms"] ?? node, "replication.peer_timeout_ms",
                       "must be at least 3 heartbeats (\(3 * config.heartbeatMilliseconds) ms), got \(config.peerTimeoutMilliseconds)")
        }
        return config
    }

    func tun(_ node: Node) throws(ConfigError) -> TunConfiguration {
        let section = try mapping(node, key: "tun", accepted: ["name", "queues", "offloads", "mtu", "output", "routing"])
        var tun = TunConfiguration()
        if let value = section["name"] {
            let name = try scalar(value, "tun.name", expected: "an interface name")
            guard !name.isEmpty, name.utf8.count <= 15, name.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "/" })
            else { throw fail(value, "tun.name", "expected an interface name of 1 to 15 characters without '/' or spaces, got '\(name)'") }
            tun.name = name
        }
        if let value = section["queues"] { tun.queues = try integer(value, "tun.queues", 0...64) }
        if let value = section["offloads"] { tun.offloads = try boolean(value, "tun.offloads") }
        if let value = section["mtu"] {
            let mtu = try integer(value, "tun.mtu", 0...65535)
            guard mtu == 0 || mtu >= 576 else {
                throw fail(value, "tun.mtu", "expected 0 (the kernel's default) or 576 to 65535, got '\(mtu)'")
            }
            tun.mtu = mtu
        }
        if let value = section["output"] {
            let text = try scalar(value, "tun.output", expected: "tun or raw")
            guard let output = TunConfiguration.Output(rawValue: text) else {
                throw fail(value, "tun.output", "expected tun or raw, got '\(text)'")
            }
            tun.output = output
        }
        if let value = section["routing"] {
            let routing = try mapping(value, key: "tun.routing", accepted: ["install", "table", "priority", "interface"])
            if let v = routing["install"] { tun.routing.install = try boolean(v, "tun.routing.install") }
            if let v = routing["table"] { tun.routing.table = try integer(v, "tun.routing.table", 1...0x7FFF_FFFF) }
            if let v = routing["priority"] { tun.routing.priority = try integer(v, "tun.routing.priority", 2...32765) }
            if let v = routing["interface"] {
                tun.routing.interface = try scalar(v, "tun.routing.interface", expected: "an interface name or \"\"")
            }
            if [253, 254, 255].contains(tun.routing.table) {
                throw fail(routing["table"], "tun.routing.table",
                           "tables 253-255 are the kernel's default, main and local tables; pick another, such as 100")
            }
        }
        return tun
    }
}
