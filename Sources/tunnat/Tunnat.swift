import ArgumentParser
import Foundation
import NatTable
import PacketKit
import TunnatKit

@main
struct Tunnat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tunnat",
        abstract: "A userspace NAT data plane for Linux NAT instances.",
        subcommands: [ReplayCommand.self, DefaultConfigCommand.self, CheckConfigCommand.self])
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

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Feed a capture through the NAT and write what it would send.",
        discussion: """
            The capture's timestamps are the clock. Packets from a private prefix are outbound, packets to a pool \
            address inbound; anything else is dropped and counted. The output is a pcap of link type raw IPv4 \
            (228). Input: classic pcap, link types ethernet, raw, linux cooked, ipv4.
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
        let capture: [UInt8]
        do { capture = try FileBytes.read(input) } catch { throw fail(error.description) }
        let result: ReplayResult
        do {
            result = try Replay.run(capture: capture, configuration: configuration.nat,
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
