import ArgumentParser
import Failover
import Foundation
import Logging
import NatTable
import PacketKit
import SystemCalls
import TunnatKit

@main
struct Tunnat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tunnat",
        abstract: "A userspace NAT data plane for Linux NAT instances.",
        version: BuildInfo.versionLine,
        subcommands: [RunCommand.self, StatusCommand.self, HandoverCommand.self, RoutingCommand.self, RoutesCommand.self, ReplayCommand.self,
                      DefaultConfigCommand.self, CheckConfigCommand.self, IMDSGuardCommand.self])
}

/// Prints one line to standard error and exits non-zero: the shape of every user-facing failure.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    FileHandle.standardError.write(Data("tunnat: \(message)\n".utf8))
    return ExitCode(code)
}

func loadConfiguration(_ path: String?) throws -> TunnatConfiguration {
    guard let path else { return ConfigFile.defaults() }
    do { return try ConfigFile.load(path: path) } catch { throw fail(error.description, code: 2) }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the NAT data plane on a TUN device until SIGINT or SIGTERM.",
        discussion: """
            Creates the TUN device (tun.name), installs the policy routing that sends private sources and the pool \
            addresses into it (unless --no-routing or tun.routing.install: false), translates, and answers \
            `tunnat status` on control_socket. Needs CAP_NET_ADMIN (and CAP_NET_RAW for raw output), and \
            net.ipv4.ip_forward=1. On exit the device goes; the rules and the blackhole that keep private traffic \
            from leaving untranslated stay unless tun.routing.on_stop is remove (see `tunnat routing remove`).
            """)

    @Option(name: .long, help: "YAML configuration file (default: the embedded one, see `tunnat default-config`).")
    var config: String?

    @Flag(name: .long, help: "Do not install policy routing; route traffic into the device yourself.")
    var noRouting = false

    @Option(name: .long, help: "Log level, overriding log_level: trace, debug, info, notice, warning, error.")
    var logLevel: String?

    func run() throws {
        let configuration = try loadConfiguration(config)
        let logger = try bootstrapLogging(logLevel ?? configuration.logLevel, format: configuration.logFormat)
        do {
            try LiveDataPlane.run(configuration, configPath: config, installRouting: !noRouting, logger: logger)
        } catch {
            throw fail(error.description)
        }
    }
}

/// Log lines go to standard error as `LogOutput` writes them: text (with syslog priority prefixes when that is the
/// journal) or json.
func bootstrapLogging(_ levelName: String, format: String = "text") throws -> Logger {
    guard let level = Logger.Level(rawValue: levelName) else {
        throw fail("--log-level: expected trace, debug, info, notice, warning, error or critical, got '\(levelName)'", code: 2)
    }
    LogOutput.bootstrap(level: level, format: LogOutput.Format(rawValue: format) ?? .text)
    return Logger(label: "tunnat")
}

struct RoutingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routing", abstract: "The policy routing that `tunnat run` leaves in place when it stops.",
        subcommands: [RoutingRemoveCommand.self])
}

struct RoutingRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove tunnat's policy rules and table: the host forwards private traffic untranslated again.",
        discussion: """
            A stop keeps the rules that send private sources to tun.routing.table, and the blackhole there \
            (tun.routing.on_stop: keep, the default), so that nothing leaves untranslated while tunnat is not \
            running. This removes every rule at tun.routing.priority from a private prefix to that table, on any \
            interface, and flushes the table. Refused while the device tun.name exists (tunnat is running). \
            Needs CAP_NET_ADMIN.
            """)

    @Option(name: .long, help: "YAML configuration file (default: the embedded one, see `tunnat default-config`).")
    var config: String?

    func run() throws {
        let configuration = try loadConfiguration(config)
        let tun = configuration.tun
        guard Syscall.interfaceIndex(tun.name) == 0 else {
            throw fail("\(tun.name) exists, so tunnat is running: stop it first (with tun.routing.on_stop: remove it removes its routing itself)")
        }
        let ran: [String]
        do { ran = try PolicyRouting.removeLeftovers(routing: tun.routing, nat: configuration.nat) } catch {
            throw fail(error.description)
        }
        for command in ran { print(command) }
        print(ran.isEmpty ? "no tunnat policy routing found (table \(tun.routing.table), priority \(tun.routing.priority))"
                          : "policy routing removed: with IP forwarding on, the kernel forwards private traffic untranslated")
    }
}

struct RoutesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routes",
        abstract: "Manage AWS VPC routes to this instance from health checks (AWSnycast's configuration).",
        discussion: """
            --config takes a tunnat configuration with a failover section, or an AWSnycast configuration as it \
            is. Credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), the shared \
            credentials file (AWS_PROFILE), or the instance role; the instance's identity from IMDSv2 unless \
            failover.aws sets it. Refuses to start while source/dest check is on for this instance's interface.
            Exit status with --oneshot: 0 nothing needed changing, 3 routes were changed (with --noop: would be), \
            1 an error, 2 a configuration error.
            """)

    @Option(name: .long, help: "Configuration file: tunnat's (its failover section) or AWSnycast's.")
    var config: String

    @Flag(name: .long, help: "Change nothing; print every change that would be made.")
    var noop = false

    @Flag(name: .long, help: "Probe each health check to a verdict, make one pass over the route tables, and exit.")
    var oneshot = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = "notice"

    func run() throws {
        let failover: FailoverConfiguration
        do { failover = try FailoverConfigFile.load(path: config) } catch { throw fail(error.description, code: 2) }
        let logger = try bootstrapLogging(logLevel)
        let manager: RouteManager
        do { manager = try RouteService.makeManager(failover, noop: noop, logger: logger) } catch {
            throw fail(error.description)
        }
        if oneshot {
            let changes: [RouteChange]
            do { changes = try manager.runOnce() } catch { throw fail(error.description) }
            for change in changes { print(change) }
            print(changes.isEmpty ? "no changes" : "\(changes.count) change(s)\(noop ? " (noop: none made)" : "")")
            if !changes.isEmpty { throw ExitCode(3) }
            return
        }
        do { try RouteService.runUntilSignalled(manager, logger: logger) } catch { throw fail(error.description) }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show a running data plane's flows, packets and drops by reason.")

    @Option(name: .long, help: "The control socket (default: control_socket of --config, else \(TunConfiguration.defaultControlSocket)).")
    var socket: String?

    @Option(name: .long, help: "Configuration file whose control_socket to use.")
    var config: String?

    @Flag(name: .long, help: "Print the report as JSON.")
    var json = false

    @Flag(name: .long, help: """
        Say whether this node is ready and exit 0 only if it is: the active (or a single node, always active), or \
        a standby whose replica is complete. For lifecycle hooks and load balancer checks.
        """)
    var ready = false

    func run() throws {
        let path = try socket ?? loadConfiguration(config).controlSocket
        let bytes: [UInt8]
        do { bytes = try ControlSocket.query(path) } catch { throw fail(error.description) }
        if ready {
            guard let report = StatusReport.decode(bytes) else {
                throw fail("\(path) answered something that is not a tunnat status report")
            }
            let (isReady, why) = Service.readiness(report)
            print(why)
            if !isReady { throw ExitCode(1) }
            return
        }
        if json {
            print(String(decoding: bytes, as: UTF8.self))
            return
        }
        guard let report = StatusReport.decode(bytes) else {
            throw fail("\(path) answered something that is not a tunnat status report")
        }
        print(report.text)
    }
}

struct HandoverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handover",
        abstract: "Hand the active role to a synced standby, then stop this node.",
        discussion: """
            The planned way to take an active NAT out of service (as SIGTERM does): a synced standby is told to \
            take over; this node translates until the standby holds the routes, the pool address and every flow, \
            then stops. Without a synced standby nothing is handed over and the node stops all the same. Prints \
            the outcome; exits 0 when the handover completed, 1 otherwise.
            """)

    @Option(name: .long, help: "The control socket (default: control_socket of --config, else \(TunConfiguration.defaultControlSocket)).")
    var socket: String?

    @Option(name: .long, help: "Configuration file whose control_socket to use.")
    var config: String?

    func run() throws {
        let path = try socket ?? loadConfiguration(config).controlSocket
        let bytes: [UInt8]
        do { bytes = try ControlSocket.query(path, request: "handover", timeout: 700) } catch { throw fail(error.description) }
        let outcome = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        print(outcome)
        if outcome != "handover complete" { throw ExitCode(1) }
    }
}

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Feed a capture through the NAT and write what it would send.",
        discussion: """
            The capture's timestamps are the clock. Packets from a private prefix are outbound, packets to a pool \
            address inbound; anything else is dropped and counted. The output is a pcap of link type raw IPv4 \
            (228), or raw (101) when nat.nat64 is configured. Input: classic pcap or pcapng, link types ethernet, \
            raw, linux cooked (v1 and v2), ipv4, ipv6.
            """)

    @Option(name: .long, help: "YAML configuration file (default: the embedded one, see `tunnat default-config`).")
    var config: String?

    @Flag(name: .long, help: """
        The capture was taken on the private side (a host's own capture): readdress each reply to the external \
        endpoint the NAT mapped before translating it, as the internet would have sent it.
        """)
    var privateSide = false

    @Flag(name: .long, help: "List every packet: what came in and what the NAT sent, or why it dropped it.")
    var list = false

    @Argument(help: "Input capture.") var input: String
    @Argument(help: "Output capture.") var output: String

    func run() throws {
        let configuration = try loadConfiguration(config)
        // A replay is reproducible: the same capture gives the same ports, unless the file fixes another seed.
        var nat = configuration.nat
        if !configuration.seedConfigured { nat.seed = Replay.defaultSeed }
        let capture: [UInt8]
        do { capture = try FileBytes.read(input) } catch { throw fail(error.description) }
        let result: ReplayResult
        do {
            result = try Replay.run(capture: capture, configuration: nat,
                                    options: ReplayOptions(privateSideCapture: privateSide, keepInputs: list))
        } catch {
            throw fail("\(input): \(error)")
        }
        do { try FileBytes.write(result.pcap, to: output) } catch { throw fail(error.description) }
        if list { for outcome in result.outcomes { print(outcome.listing) } }
        print(result.summary)
        print("wrote \(output)")
    }
}

struct DefaultConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "default-config", abstract: "Print the embedded default configuration.")
    func run() { print(DefaultConfiguration.yaml) }
}

struct IMDSGuardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imds-guard",
        abstract: "Print the nftables ruleset that lets only root and tunnat's user reach the instance metadata service.",
        discussion: """
            The instance role's credentials are in the instance metadata service; the guard keeps every other local \
            user from them. Load it with `tunnat imds-guard | nft -f -` (the image and the AWS user data do, at \
            boot); loading it again replaces it.
            """)
    @Option(name: .long, help: "A user, besides root, that may reach it (a name or a uid; repeat for more). Default: tunnat.")
    var user: [String] = []

    func run() throws {
        var uids: [UInt32] = []
        for name in user.isEmpty ? ["tunnat"] : user {
            guard let uid = Syscall.userID(name) else { throw fail("imds-guard --user \(name): no such user") }
            uids.append(uid)
        }
        print(IMDSGuard.ruleset(admitting: uids), terminator: "")
    }
}

struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Check a configuration file and say what it sets.")
    @Argument(help: "YAML configuration file.") var file: String
    func run() throws {
        let nat = try loadConfiguration(file).nat
        print("\(file): ok")
        print("  private prefixes: \(nat.privatePrefixes.map(\.description).joined(separator: ", "))")
        print("  pool: \(nat.poolAddresses.map(\.description).joined(separator: ", "))")
        print("  ports: \(nat.portRange.lowerBound)-\(nat.portRange.upperBound), filtering: \(nat.filtering.rawValue)")
        print("  max flows: \(nat.maxFlows), per host: \(nat.maxFlowsPerHost.map(String.init) ?? "unlimited")")
        let t = nat.timeouts
        print("  timeouts (s): tcp established \(t.tcpEstablished), tcp transitory \(t.tcpTransitory), udp \(t.udp), icmp \(t.icmp), fragment \(t.fragment)")
    }
}
