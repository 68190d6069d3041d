import NatTable
import PacketKit
import SystemCalls
import Yams

extension ConfigReader {
    /// The `nat` section, and whether it fixed the seed (when it does not, the seed comes from getrandom).
    func nat(_ node: Node) throws(ConfigError) -> (NatConfiguration, seedConfigured: Bool) {
        let keys = ["private_prefixes", "pool", "port_range", "filtering", "max_flows", "max_flows_per_host",
                    "max_flows_per_prefix", "limit_prefix_length", "max_inbound_flows", "max_inbound_flows_per_mapping",
                    "request_response_ports", "verify_checksums", "max_held_fragments", "timeouts", "seed", "nat64"]
        let section = try mapping(node, key: "nat", accepted: keys)
        guard let prefixesNode = section["private_prefixes"] else {
            throw fail(node, "nat.private_prefixes", "missing; give the prefixes to translate, such as [10.0.0.0/8]")
        }
        let prefixes = try values(prefixesNode, "nat.private_prefixes", expected: "IPv4 prefixes such as 10.0.0.0/8",
                                  invalid: { "expected an IPv4 prefix such as 10.0.0.0/8 (host bits clear), got '\($0)'" },
                                  parse: IPv4Prefix.init)
        guard let poolNode = section["pool"] else {
            throw fail(node, "nat.pool", "missing; give the external address(es), such as [198.18.0.1]")
        }
        let pool = try values(poolNode, "nat.pool", expected: "IPv4 addresses",
                              invalid: { "expected an IPv4 address such as 198.18.0.1, got '\($0)'" }, parse: IPv4Address.init)
        var config = NatConfiguration(privatePrefixes: prefixes, poolAddresses: pool, seed: SystemRandom.uint64())
        if let value = section["port_range"] {
            let text = try scalar(value, "nat.port_range", expected: "LOW-HIGH")
            let parts = text.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2, let low = UInt16(parts[0]), let high = UInt16(parts[1]), low <= high else {
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
        if let value = section["max_flows"] { config.maxFlows = try integer(value, "nat.max_flows") }
        if let value = section["max_flows_per_host"] {
            if case .scalar(let s) = value, s.string == "unlimited" {
                config.maxFlowsPerHost = nil
            } else {
                config.maxFlowsPerHost = try integer(value, "nat.max_flows_per_host")
            }
        }
        if let value = section["max_flows_per_prefix"] {
            if case .scalar(let s) = value, s.string == "unlimited" {
                config.maxFlowsPerPrefix = nil
            } else {
                config.maxFlowsPerPrefix = try integer(value, "nat.max_flows_per_prefix")
            }
        }
        if let value = section["limit_prefix_length"] {
            config.limitPrefixLength = try integer(value, "nat.limit_prefix_length")
        }
        if let value = section["max_inbound_flows"] { config.maxInboundFlows = try integer(value, "nat.max_inbound_flows") }
        if let value = section["request_response_ports"] {
            config.requestResponsePorts = try values(
                value, "nat.request_response_ports", expected: "UDP ports such as [53, 123]",
                invalid: { "expected a port from 1 to 65535, got '\($0)'" },
                parse: { UInt16($0).flatMap { $0 == 0 ? nil : $0 } })
        }
        if let value = section["max_inbound_flows_per_mapping"] {
            config.maxInboundFlowsPerMapping = try integer(value, "nat.max_inbound_flows_per_mapping")
        }
        if let value = section["verify_checksums"] { config.verifyChecksums = try boolean(value, "nat.verify_checksums") }
        if let value = section["max_held_fragments"] { config.maxHeldFragments = try integer(value, "nat.max_held_fragments") }
        if let value = section["seed"] {
            let text = try scalar(value, "nat.seed", expected: "a whole number")
            guard let seed = UInt64(text) else { throw fail(value, "nat.seed", "expected a whole number, got '\(text)'") }
            config.seed = seed
        }
        if let value = section["timeouts"] {
            let names = ["tcp_established", "tcp_transitory", "tcp_unreplied", "udp", "udp_request_response", "icmp",
                         "fragment"]
            let timeouts = try mapping(value, key: "nat.timeouts", accepted: names)
            if let v = timeouts["tcp_established"] {
                config.timeouts.tcpEstablished = try duration(v, "nat.timeouts.tcp_established")
            }
            if let v = timeouts["tcp_transitory"] {
                config.timeouts.tcpTransitory = try duration(v, "nat.timeouts.tcp_transitory")
            }
            if let v = timeouts["tcp_unreplied"] {
                config.timeouts.tcpUnreplied = try duration(v, "nat.timeouts.tcp_unreplied")
            }
            if let v = timeouts["udp"] { config.timeouts.udp = try duration(v, "nat.timeouts.udp") }
            if let v = timeouts["udp_request_response"] {
                config.timeouts.udpRequestResponse = try duration(v, "nat.timeouts.udp_request_response")
            }
            if let v = timeouts["icmp"] { config.timeouts.icmp = try duration(v, "nat.timeouts.icmp") }
            if let v = timeouts["fragment"] { config.timeouts.fragment = try duration(v, "nat.timeouts.fragment") }
        }
        if let value = section["nat64"] { config.nat64 = try nat64(value) }
        // Ranges, RFC minimums and rules that involve more than one key are the table's own.
        try validate(config.problems(), prefix: "nat")
        return (config, section["seed"] != nil)
    }

    /// `nat.nat64`: stateful NAT64 for IPv6-only hosts.
    func nat64(_ node: Node) throws(ConfigError) -> Nat64Configuration {
        let section = try mapping(node, key: "nat.nat64", accepted: ["prefix", "private_prefixes", "max_hosts"])
        guard let prefixesNode = section["private_prefixes"] else {
            throw fail(node, "nat.nat64.private_prefixes", "missing; give the IPv6 sources to translate, such as [fd00:1::/64]")
        }
        let prefixes = try values(prefixesNode, "nat.nat64.private_prefixes", expected: "IPv6 prefixes such as fd00:1::/64",
                                  invalid: { "expected an IPv6 prefix such as fd00:1::/64 (host bits clear), got '\($0)'" },
                                  parse: IPv6Prefix.init)
        var config = Nat64Configuration(privatePrefixes: prefixes)
        if let value = section["prefix"] {
            let text = try scalar(value, "nat.nat64.prefix", expected: "an IPv6 prefix")
            guard let parsed = IPv6Prefix(text), let prefix = NAT64Prefix(parsed) else {
                throw fail(value, "nat.nat64.prefix",
                           "expected 64:ff9b::/96 or a network-specific prefix of length 32, 40, 48, 56, 64 or 96 with bits 64-71 zero (RFC 6052), got '\(text)'")
            }
            config.prefix = prefix
        }
        if let value = section["max_hosts"] { config.maxHosts = try integer(value, "nat.nat64.max_hosts") }
        return config
    }
}
