import Failover
import NatTable
import Replication
import SystemCalls
import Yams

/// Everything a tunnat configuration file sets.
public struct TunnatConfiguration: Sendable, Equatable {
    /// Its seed is `nat.seed` if the file gives one, else new from getrandom each time the file is read.
    public var nat: NatConfiguration
    /// Whether the file fixed `nat.seed` (a replay then uses it; otherwise a replay fixes its own).
    public var seedConfigured = false
    /// Health checks and AWS route management (AWSnycast's configuration); nil: none.
    public var failover: FailoverConfiguration?
    /// State replication to standby peers and the active/standby roles; nil: a single node, always active.
    public var replication: ReplicationConfiguration?
    public var tun = TunConfiguration()
    /// Where `tunnat status` finds a running `tunnat run`.
    public var controlSocket = TunConfiguration.defaultControlSocket
    public var logLevel = "info"
    /// text (one line per event; with syslog priority prefixes when standard error is the journal) or json.
    public var logFormat = "text"
    /// The Prometheus endpoint and CloudWatch.
    public var metrics = MetricsConfiguration()
    /// How often `tunnat run` logs a one-line summary of its counters (0: never).
    public var statsInterval: UInt32 = 60
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
            throw ConfigError(file: path, line: nil, key: "", message: "cannot read: \(error.reason)")
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

    /// The YAML tree of `text`: the one parse of a file.
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
        return try parse(root, reader: ConfigReader(file: file))
    }

    static let sections = ["nat", "tun", "control_socket", "log_level", "log_format", "stats_interval", "metrics", "failover",
                           "replication"]
    static let logFormats = ["text", "json"]
    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    static func parse(_ root: Node, reader: ConfigReader) throws(ConfigError) -> TunnatConfiguration {
        let top = try reader.mapping(root, key: "", accepted: sections)
        guard let natNode = top["nat"] else {
            throw ConfigError(file: reader.file, line: nil, key: "nat", message: "missing; the file needs a 'nat' section")
        }
        let (nat, seedConfigured) = try reader.nat(natNode)
        var config = TunnatConfiguration(nat: nat, seedConfigured: seedConfigured)
        if let node = top["tun"] { config.tun = try reader.tun(node) }
        if let node = top["control_socket"] {
            config.controlSocket = try reader.scalar(node, "control_socket", expected: "an absolute path")
        }
        if let node = top["log_level"] { config.logLevel = try reader.scalar(node, "log_level", expected: "a log level") }
        if let node = top["log_format"] { config.logFormat = try reader.scalar(node, "log_format", expected: "text or json") }
        if let node = top["metrics"] { config.metrics = try reader.metrics(node) }
        if let node = top["stats_interval"] { config.statsInterval = try reader.duration(node, "stats_interval") }
        // After nat: the pool addresses failover moves are nat.pool's (`all` stands for them all).
        if let node = top["failover"] { config.failover = try reader.failover(node, key: "failover", pool: nat.poolAddresses) }
        if let node = top["replication"] { config.replication = try reader.replication(node) }
        try reader.validate(config.problems(), prefix: "")
        return config
    }
}

extension TunnatConfiguration {
    /// The top level's own rules (each section checks its own).
    public func problems() -> [(key: String, problem: String)] {
        var found: [(String, String)] = []
        if !controlSocket.hasPrefix("/") || controlSocket.utf8.count >= 108 {
            found.append(("control_socket", "expected an absolute path shorter than 108 bytes, got '\(controlSocket)'"))
        }
        if !ConfigFile.logLevels.contains(logLevel) {
            found.append(("log_level", "expected one of \(ConfigFile.logLevels.joined(separator: ", ")), got '\(logLevel)'"))
        }
        if !ConfigFile.logFormats.contains(logFormat) {
            found.append(("log_format", "expected text or json, got '\(logFormat)'"))
        }
        if nat.nat64 != nil && tun.output == .raw {
            found.append(("tun.output", "nat.nat64 needs tun or packet (a raw IPv4 socket cannot send IPv6 to the hosts)"))
        }
        return found
    }
}
