import NatTable
import PacketKit
import Testing
import Replication
import SystemCalls
import TunnatKit

@Suite struct ConfigFileTests {
    @Test func embeddedDefaultParsesToTheRFCDefaults() throws {
        let nat = ConfigFile.defaults().nat
        #expect(nat.privatePrefixes == [IPv4Prefix("10.0.0.0/8")!])
        #expect(nat.poolAddresses == [IPv4Address(198, 18, 0, 1)])
        #expect(nat.portRange == 1024...65535 && nat.filtering == .endpointIndependent)
        #expect(nat.maxFlows == 1_048_576 && nat.maxFlowsPerHost == 16_384 && nat.verifyChecksums)
        #expect(nat.maxInboundFlowsPerMapping == 16)
        #expect(nat.timeouts == NatConfiguration.Timeouts())
    }

    /// Without `nat.seed`, every reading of a file draws a new seed from getrandom: ports and hash keys differ
    /// from run to run and from deployment to deployment. With it, the seed is the one given.
    @Test func theSeedIsNewEachRunUnlessFixed() throws {
        let seeds = try (0..<8).map { _ in try ConfigFile.parse(Self.base, file: "t.yaml") }
        #expect(Set(seeds.map(\.nat.seed)).count == 8)
        #expect(seeds.allSatisfy { !$0.seedConfigured })
        let fixed = try ConfigFile.parse("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  seed: 99\n",
                                         file: "t.yaml")
        #expect(fixed.nat.seed == 99 && fixed.seedConfigured)
        // What peers must agree on comes from the shared configuration, not the seed.
        #expect(Set(seeds.map(\.nat.pairingKey)).count == 1)
    }

    @Test func everyKeyIsRead() throws {
        let config = try ConfigFile.parse("""
            nat:
              private_prefixes: [10.0.0.0/8, 172.16.0.0/12]
              pool: 198.18.0.1
              port_range: 20000-29999
              filtering: address-dependent
              max_flows: 1000
              max_flows_per_host: 50
              max_inbound_flows_per_mapping: 3
              verify_checksums: false
              max_held_fragments: 8
              seed: 7
              timeouts: {tcp_established: 3h, tcp_transitory: 300, tcp_unreplied: 20s, udp: 2m30s, icmp: 90s, fragment: 15}
            """, file: "t.yaml").nat
        #expect(config.privatePrefixes.count == 2 && config.poolAddresses == [IPv4Address(198, 18, 0, 1)])
        #expect(config.portRange == 20000...29999 && config.filtering == .addressDependent)
        #expect(config.maxFlows == 1000 && config.maxFlowsPerHost == 50 && !config.verifyChecksums)
        #expect(config.maxHeldFragments == 8 && config.seed == 7 && config.maxInboundFlowsPerMapping == 3)
        #expect(config.timeouts.tcpUnreplied == 20)
        #expect(config.timeouts.tcpEstablished == 10800 && config.timeouts.tcpTransitory == 300)
        #expect(config.timeouts.udp == 150 && config.timeouts.icmp == 90 && config.timeouts.fragment == 15)
    }

    static let base = "nat:\n  {private_prefixes: [10.0.0.0/8], pool: [198.18.0.1]}\n"

    @Test func dataPlaneKeysAreRead() throws {
        let config = try ConfigFile.parse(Self.base + """
            tun:
              name: nat0
              queues: 3
              offloads: false
              mtu: 9000
              output: raw
              routing: {install: false, table: 42, priority: 1000, interface: eth1, on_stop: remove}
            control_socket: /run/x/t.sock
            log_level: debug
            stats_interval: 5m
            """, file: "t.yaml")
        #expect(config.tun.name == "nat0" && config.tun.queues == 3 && !config.tun.offloads && config.tun.mtu == 9000)
        #expect(config.tun.output == .raw)
        #expect(!config.tun.routing.install && config.tun.routing.table == 42 && config.tun.routing.priority == 1000)
        #expect(config.tun.routing.interface == "eth1" && config.tun.routing.onStop == .remove)
        #expect(config.controlSocket == "/run/x/t.sock" && config.logLevel == "debug" && config.statsInterval == 300)
        let defaults = ConfigFile.defaults()
        #expect(defaults.tun == TunConfiguration() && defaults.controlSocket == "/run/tunnat.sock")
    }

    /// Fail closed unless the file says otherwise: a stop keeps the rules and the blackhole.
    @Test(arguments: [("", TunConfiguration.Routing.OnStop.keep), ("tun:\n  routing:\n    on_stop: keep\n", .keep),
                      ("tun:\n  routing:\n    on_stop: remove\n", .remove)])
    func onStopKeepsTheFenceByDefault(text: String, expected: TunConfiguration.Routing.OnStop) throws {
        #expect(try ConfigFile.parse(Self.base + text, file: "t.yaml").tun.routing.onStop == expected)
        #expect(ConfigFile.defaults().tun.routing.onStop == .keep)
    }

    /// Each mistake gets one line naming the file, the line, the key and what is accepted.
    @Test(arguments: [
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  colour: blue\n",
         "t.yaml:4: nat.colour: unknown key; accepted here: private_prefixes, pool"),
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  port_range: 80-90\n",
         "t.yaml:4: nat.port_range: expected LOW-HIGH with 1024 <= LOW <= HIGH <= 65535, got '80-90'"),
        ("nat:\n  private_prefixes: [10.0.0.1/8]\n  pool: [198.18.0.1]\n",
         "nat.private_prefixes: expected an IPv4 prefix such as 10.0.0.0/8 (host bits clear), got '10.0.0.1/8'"),
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.300]\n",
         "nat.pool: expected an IPv4 address such as 198.18.0.1, got '198.18.0.300'"),
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [10.9.9.9]\n",
         "nat.pool: 10.9.9.9 lies inside a private prefix"),
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  filtering: strict\n",
         "nat.filtering: expected one of endpoint-independent, address-dependent, address-and-port-dependent, got 'strict'"),
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  timeouts:\n    udp: 1m\n",
         "nat.timeouts.udp: must be at least 120 s (2m, RFC 4787 REQ-5)"),
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  timeouts:\n    tcp_established: 1h\n",
         "nat.timeouts.tcp_established: must be at least 7440 s (2h4m, RFC 5382 REQ-5)"),
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  timeouts:\n    icmp: soon\n",
         "nat.timeouts.icmp: expected a duration such as 300, 300s, 5m or 2h4m, got 'soon'"),
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  max_flows: lots\n",
         "nat.max_flows: expected a whole number, got 'lots'"),
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  verify_checksums: yes please\n",
         "nat.verify_checksums: expected true or false, got 'yes please'"),
        ("nat:\n  pool: [198.18.0.1]\n", "nat.private_prefixes: missing"),
        ("colour: blue\nnat: {}\n", "t.yaml:1: colour: unknown key; accepted here: nat, tun, control_socket"),
        ("tun: {}\n", "t.yaml: nat: missing"),
        (Self.base + "tun:\n  output: fast\n", "t.yaml:4: tun.output: expected tun, raw or packet, got 'fast'"),
        (Self.base + "tun:\n  queues: 100\n", "t.yaml:4: tun.queues: expected a whole number from 0 to 64, got 100"),
        (Self.base + "tun:\n  name: a/b\n", "t.yaml:4: tun.name: expected an interface name of 1 to 15 characters"),
        (Self.base + "tun:\n  mtu: 100\n", "t.yaml:4: tun.mtu: expected 0 (the kernel's default) or 576 to 65535"),
        (Self.base + "tun:\n  routing:\n    table: 254\n", "t.yaml:5: tun.routing.table: tables 253-255 are the kernel's"),
        (Self.base + "tun:\n  routing:\n    via: eth0\n",
         "t.yaml:5: tun.routing.via: unknown key; accepted here: install, table, priority, interface, on_stop"),
        (Self.base + "tun:\n  routing:\n    on_stop: delete\n", "t.yaml:5: tun.routing.on_stop: expected keep or remove, got 'delete'"),
        (Self.base + "tun:\n  routing:\n    on_stop: [keep]\n", "t.yaml:5: tun.routing.on_stop: expected keep or remove"),
        (Self.base + "control_socket: tunnat.sock\n", "t.yaml:3: control_socket: expected an absolute path"),
        (Self.base + "log_level: loud\n", "t.yaml:3: log_level: expected one of trace, debug, info"),
        (Self.base + "replication:\n  peers: [10.0.1.10:7800]\n  key_file: /k\n",
         "t.yaml:4: replication.listen: missing; give this node's address and UDP port"),
        (Self.base + "replication:\n  listen: 0.0.0.0:7800\n  peers: [10.0.1.10:7800]\n  key_file: /k\n",
         "t.yaml:4: replication.listen: expected ADDRESS:PORT with a specific IPv4 address"),
        (Self.base + "replication:\n  listen: 10.0.0.10:7800\n  peers: [10.0.0.10:7800]\n  key_file: /k\n",
         "t.yaml:5: replication.peers: '10.0.0.10:7800' is this node's own address or given twice"),
        (Self.base + "replication:\n  listen: 10.0.0.10:7800\n  peers: [nat-b]\n  key_file: /k\n",
         "t.yaml:5: replication.peers: expected ADDRESS:PORT"),
        (Self.base + "replication:\n  listen: 10.0.0.10:7800\n  peers: [10.0.1.10:7800]\n",
         "t.yaml:4: replication.key_file: missing"),
        (Self.base + "replication:\n  listen: 10.0.0.10:7800\n  peers: [10.0.1.10:7800]\n  key_file: k\n",
         "replication.key_file: expected an absolute path, got 'k'"),
        (Self.base + "replication:\n  listen: 10.0.0.10:7800\n  peers: [10.0.1.10:7800]\n  key_file: /k\n  peer_timeout_ms: 100\n",
         "replication.peer_timeout_ms: must be at least 3 heartbeats (300 ms), got 100"),
        // Both once trapped on an overflow instead (found writing the config fuzz target, Fuzz/Sources/FuzzConfig).
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  timeouts:\n    udp: 99999999999999999h\n",
         "nat.timeouts.udp: expected a duration such as 300, 300s, 5m or 2h4m, got '99999999999999999h'"),
        (Self.base + "replication:\n  listen: 10.0.0.10:7800\n  peers: [10.0.1.10:7800]\n  key_file: /k\n  heartbeat_ms: 9223372036854775807\n",
         "replication.heartbeat_ms: expected a whole number from 10 to 10000, got 9223372036854775807"),
        // NAT64: each key named, with what it accepts.
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  nat64: {prefix: '2001:db8::/33', private_prefixes: ['fd00::/64']}\n",
         "nat.nat64.prefix: expected 64:ff9b::/96 or a network-specific prefix of length 32, 40, 48, 56, 64 or 96"),
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  nat64: {prefix: '64:ff9b::/96'}\n",
         "nat.nat64.private_prefixes: missing"),
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  nat64: {private_prefixes: ['fd00::1/64']}\n",
         "nat.nat64.private_prefixes: expected an IPv6 prefix such as fd00:1::/64 (host bits clear), got 'fd00::1/64'"),
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  nat64: {private_prefixes: ['fd00::/64'], max_hosts: 0}\n",
         "nat.nat64.max_hosts: expected a whole number from 1 to 16777216, got 0"),
        ("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  nat64: {private_prefixes: ['fd00::/64']}\ntun:\n  output: raw\n",
         "tun.output: nat.nat64 needs tun or packet"),
        ("", "t.yaml: the file is empty"),
        ("nat: [\n", "t.yaml: not valid YAML"),
    ])
    func mistakesGetOneClearLine(text: String, expected: String) {
        do {
            _ = try ConfigFile.parse(text, file: "t.yaml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
            #expect(error.description.hasPrefix("t.yaml"))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func replicationKeysAreRead() throws {
        let text = Self.base + """
            replication:
              listen: 10.0.0.10:7800
              peers: [10.0.1.10:7800, 10.0.2.10:7801]
              key_file: /etc/tunnat/sync.key
              heartbeat_ms: 50
              peer_timeout_ms: 400
              startup_wait_ms: 1000
              hold_new_flows_ms: 20

            """
        let r = try #require(try ConfigFile.parse(text, file: "t.yaml").replication)
        #expect(r.listen.description == "10.0.0.10:7800" && r.peers.map(\.endpoint.description) == ["10.0.1.10:7800", "10.0.2.10:7801"])
        #expect(r.peers.map(\.node) == [0x0A00_010A, 0x0A00_020A], "a peer by address alone has its address as id")
        #expect(r.node == 0x0A00_000A, "the listen address by default")
        #expect(r.keyFile == "/etc/tunnat/sync.key" && r.heartbeatMilliseconds == 50 && r.peerTimeoutMilliseconds == 400)
        #expect(r.startupWaitMilliseconds == 1000 && r.holdNewFlowsMilliseconds == 20)
        let withID = try ConfigFile.parse(text + "  node_id: 7\n", file: "t.yaml")
        #expect(withID.replication?.node == 7)
        #expect(try ConfigFile.parse(Self.base, file: "t.yaml").replication == nil)
    }

    @Test func peersWithIdsAndASecondKeyAreRead() throws {
        let text = Self.base + """
            replication:
              node_id: 1
              listen: 10.0.0.10:7800
              peers:
                - {node_id: 2, address: 10.0.1.10:7800}
              key_file: /etc/tunnat/sync-2.key
              key_id: 2
              accept_key_file: /etc/tunnat/sync-1.key
              accept_key_id: 1

            """
        let r = try #require(try ConfigFile.parse(text, file: "t.yaml").replication)
        #expect(r.peers == [ReplicationPeer(node: 2, endpoint: UDPEndpoint("10.0.1.10:7800")!)])
        #expect(r.keyID == 2 && r.acceptKeyFile == "/etc/tunnat/sync-1.key" && r.acceptKeyID == 1)
    }

    @Test(arguments: [
        ("  node_id: 2\n  peers:\n    - {node_id: 2, address: 10.0.1.10:7800}\n",
         "replication.peers: node id 2 (10.0.1.10:7800) is this node's own id or another peer's"),
        ("  peers:\n    - {address: 10.0.1.10:7800, port: 1}\n", "replication.peers.port: unknown key; accepted here: node_id, address"),
        ("  peers:\n    - {node_id: 3}\n", "replication.peers.address: missing"),
        ("  peers: [10.0.1.10:7800]\n  key_id: 0\n", "replication.key_id: expected a whole number from 1 to 255, got 0"),
        ("  peers: [10.0.1.10:7800]\n  accept_key_file: /k2\n", "replication.accept_key_id: missing"),
        ("  peers: [10.0.1.10:7800]\n  accept_key_file: /k2\n  accept_key_id: 1\n", "replication.accept_key_id: must differ from key_id (1)"),
    ])
    func replicationIdMistakesAreNamed(lines: String, expected: String) {
        let text = Self.base + "replication:\n  listen: 10.0.0.10:7800\n  key_file: /k\n" + lines
        do {
            _ = try ConfigFile.parse(text, file: "t.yaml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }

    @Test func unreadableFileSaysWhy() {
        let error = #expect(throws: ConfigError.self) { try ConfigFile.load(path: "/nonexistent/t.yaml") }
        #expect(error?.description == "/nonexistent/t.yaml: cannot read: No such file or directory")
    }
}
