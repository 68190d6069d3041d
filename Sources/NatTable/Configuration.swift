import PacketKit

/// What a NAT translates, to what, and for how long it remembers.
public struct NatConfiguration: Sendable, Equatable {
    /// Sources that are translated; any other source is never translated (dropped and counted).
    public var privatePrefixes: [IPv4Prefix]
    /// External addresses. An internal host always gets the same one ("paired" pooling, RFC 4787 REQ-2).
    public var poolAddresses: [IPv4Address]
    /// Where ports for internal ports 1024-65535 come from (RFC 4787 REQ-3a). Internal ports below 1024 get
    /// external ports below 1024.
    public var portRange: ClosedRange<UInt16>
    public var filtering: Filtering
    public var timeouts: Timeouts
    /// The most flows held at once; new flows past it are refused, existing ones keep working.
    public var maxFlows: Int
    /// The most flows one private host may hold; nil for no limit. A host at its limit cannot take the ports of
    /// its pool address from the others.
    public var maxFlowsPerHost: Int?
    /// The most flows the private sources of one prefix (`limitPrefixLength` long) may hold together; nil for no
    /// limit. A host that forges sources escapes `maxFlowsPerHost` with each new one, never this.
    public var maxFlowsPerPrefix: Int?
    /// The length of `maxFlowsPerPrefix`'s prefixes.
    public var limitPrefixLength: Int
    /// The most flows inbound packets may create in the whole table (they never count against a host or prefix).
    /// Past it, such packets are still let in by their mapping but leave no state (`inboundFlowLimit`).
    public var maxInboundFlows: Int
    /// Destination ports of request/response protocols: a UDP flow to one that has seen no more than one
    /// exchange lives `Timeouts.udpRequestResponse` (RFC 4787 REQ-5a allows it for well-known ports).
    public var requestResponsePorts: [UInt16]
    /// The most flows of one mapping that inbound packets may create (endpoint-independent filtering: remote
    /// endpoints the internal one never sent to). Past it, such packets are still let in by the mapping but
    /// leave no state (counted as `inboundFlowLimit`), so spoofed sources cannot fill the table.
    public var maxInboundFlowsPerMapping: Int
    /// Verify TCP, UDP and ICMP checksums of whole datagrams and drop those that fail, as the kernel's conntrack
    /// does by default (`nf_conntrack_checksum=1`). Translation itself never needs it: it updates incrementally.
    public var verifyChecksums: Bool
    /// Fragments of a datagram whose first fragment has not been seen yet are held, up to this many in all.
    public var maxHeldFragments: Int
    /// Seeds port randomisation (RFC 6056) and the hash tables' keys. A live NAT takes it from the kernel's random
    /// source (getrandom), new each run; a replay fixes it, so the same capture gives the same output.
    public var seed: UInt64
    /// Stateful NAT64 for IPv6-only hosts, on the same pool and table; nil for none.
    public var nat64: Nat64Configuration?

    public enum Filtering: String, Sendable, CaseIterable {
        /// RFC 4787 section 5: any remote endpoint may send to a mapping.
        case endpointIndependent = "endpoint-independent"
        /// Only remote addresses the internal endpoint has sent to.
        case addressDependent = "address-dependent"
        /// Only remote address-and-port pairs the internal endpoint has sent to.
        case addressAndPortDependent = "address-and-port-dependent"
    }

    /// Idle timeouts, in seconds.
    public struct Timeouts: Sendable, Equatable {
        /// RFC 5382 REQ-5: the established idle timeout MUST NOT be less than 2 hours 4 minutes.
        public static let rfc5382Established: UInt32 = 7440
        /// RFC 5382 REQ-5: the transitory idle timeout (opening, closing, reset) MUST NOT be less than 4 minutes.
        public static let rfc5382Transitory: UInt32 = 240
        /// RFC 4787 REQ-5: a UDP mapping MUST NOT expire in less than 2 minutes; 5 minutes is RECOMMENDED.
        public static let rfc4787UDP: UInt32 = 300
        /// RFC 5508 REQ-2: an ICMP query session MUST NOT expire in less than 60 seconds.
        public static let rfc5508ICMP: UInt32 = 60
        /// Linux `ipfrag_time`: how long fragments wait for the rest of their datagram.
        public static let linuxFragment: UInt32 = 30

        public var tcpEstablished: UInt32 = rfc5382Established
        public var tcpTransitory: UInt32 = rfc5382Transitory
        public var udp: UInt32 = rfc4787UDP
        /// A TCP connection picked up mid-stream (no SYN seen) that the other side has not answered yet. Shorter
        /// than RFC 5382's transitory timeout on purpose: no handshake was seen, so nothing says a connection is
        /// there at all, and a bare ACK must not hold a port for long.
        public static let defaultUnreplied: UInt32 = 30

        /// A single UDP request and answer to a `requestResponsePorts` port (DNS, NTP). Linux conntrack gives
        /// every UDP flow that has not become a stream 30 s.
        public static let defaultRequestResponse: UInt32 = 30

        public var icmp: UInt32 = rfc5508ICMP
        public var udpRequestResponse: UInt32 = defaultRequestResponse
        public var fragment: UInt32 = linuxFragment
        public var tcpUnreplied: UInt32 = defaultUnreplied

        public init() {}
    }

    public static let defaultMaxFlows = 1_048_576
    /// A quarter of one pool address's ports for one protocol: a host can use many, never all of them.
    public static let defaultMaxFlowsPerHost = 16_384
    public static let defaultMaxInboundFlowsPerMapping = 16
    /// Half of one pool address's ports for one protocol, for a /24: forged sources of one subnet cannot take a
    /// pool address's ports from the rest.
    public static let defaultMaxFlowsPerPrefix = 32_768
    public static let defaultLimitPrefixLength = 24
    /// An eighth of the default table.
    public static let defaultMaxInboundFlows = 131_072
    /// DNS and NTP.
    public static let defaultRequestResponsePorts: [UInt16] = [53, 123]
    public static let defaultPortRange: ClosedRange<UInt16> = 1024...65535
    /// RFC 4787 REQ-3a: internal ports 0-1023 are mapped within 0-1023 (0 itself is never handed out).
    public static let lowPortRange: ClosedRange<UInt16> = 1...1023
    /// The pool is indexed by one byte in each mapping.
    public static let maxPoolAddresses = 256

    public init(
        privatePrefixes: [IPv4Prefix], poolAddresses: [IPv4Address],
        portRange: ClosedRange<UInt16> = defaultPortRange, filtering: Filtering = .endpointIndependent,
        timeouts: Timeouts = Timeouts(), maxFlows: Int = defaultMaxFlows,
        maxFlowsPerHost: Int? = defaultMaxFlowsPerHost,
        maxInboundFlowsPerMapping: Int = defaultMaxInboundFlowsPerMapping,
        maxFlowsPerPrefix: Int? = defaultMaxFlowsPerPrefix, limitPrefixLength: Int = defaultLimitPrefixLength,
        maxInboundFlows: Int = defaultMaxInboundFlows, requestResponsePorts: [UInt16] = defaultRequestResponsePorts,
        verifyChecksums: Bool = true, maxHeldFragments: Int = 64, seed: UInt64
    ) {
        self.maxFlowsPerPrefix = maxFlowsPerPrefix
        self.limitPrefixLength = limitPrefixLength
        self.maxInboundFlows = maxInboundFlows
        self.requestResponsePorts = requestResponsePorts
        self.privatePrefixes = privatePrefixes
        self.poolAddresses = poolAddresses
        self.portRange = portRange
        self.filtering = filtering
        self.timeouts = timeouts
        self.maxFlows = maxFlows
        self.maxFlowsPerHost = maxFlowsPerHost
        self.maxInboundFlowsPerMapping = maxInboundFlowsPerMapping
        self.verifyChecksums = verifyChecksums
        self.maxHeldFragments = maxHeldFragments
        self.seed = seed
    }

    /// Everything that would make the table misbehave, as (key, what is accepted) pairs; empty when valid.
    public func problems() -> [(key: String, problem: String)] {
        var found: [(String, String)] = []
        if privatePrefixes.isEmpty { found.append(("private_prefixes", "at least one prefix is required")) }
        if poolAddresses.isEmpty { found.append(("pool", "at least one address is required")) }
        if poolAddresses.count > Self.maxPoolAddresses {
            found.append(("pool", "at most \(Self.maxPoolAddresses) addresses are accepted"))
        }
        if Set(poolAddresses).count != poolAddresses.count { found.append(("pool", "addresses must be distinct")) }
        for address in poolAddresses where privatePrefixes.contains(where: { $0.contains(address) }) {
            found.append(("pool", "\(address) lies inside a private prefix; pool addresses must be outside them"))
        }
        if portRange.lowerBound < 1024 {
            found.append(("port_range", "expected LOW-HIGH with 1024 <= LOW <= HIGH <= 65535, got '\(portRange.lowerBound)-\(portRange.upperBound)' (ports below 1024 are mapped within 1-1023)"))
        }
        if !(1...(1 << 26)).contains(maxFlows) {
            found.append(("max_flows", "expected a whole number from 1 to 67108864, got \(maxFlows)"))
        }
        if let perHost = maxFlowsPerHost, !(1...(1 << 26)).contains(perHost) {
            found.append(("max_flows_per_host", "expected unlimited or a whole number from 1 to 67108864, got \(perHost)"))
        }
        if let perPrefix = maxFlowsPerPrefix, !(1...(1 << 26)).contains(perPrefix) {
            found.append(("max_flows_per_prefix", "expected unlimited or a whole number from 1 to 67108864, got \(perPrefix)"))
        }
        if !(8...32).contains(limitPrefixLength) {
            found.append(("limit_prefix_length", "expected a prefix length from 8 to 32, got \(limitPrefixLength)"))
        }
        if !(0...(1 << 26)).contains(maxInboundFlows) {
            found.append(("max_inbound_flows", "expected a whole number from 0 to 67108864, got \(maxInboundFlows)"))
        }
        if requestResponsePorts.contains(0) || requestResponsePorts.count > 64 {
            found.append(("request_response_ports", "expected at most 64 ports from 1 to 65535"))
        }
        if !(10...timeouts.udp).contains(timeouts.udpRequestResponse) {
            found.append(("timeouts.udp_request_response", "must be from 10 s up to timeouts.udp (\(timeouts.udp) s)"))
        }
        if !(0...65535).contains(maxInboundFlowsPerMapping) {
            found.append(("max_inbound_flows_per_mapping", "expected a whole number from 0 to 65535, got \(maxInboundFlowsPerMapping)"))
        }
        if timeouts.tcpEstablished < Timeouts.rfc5382Established {
            found.append(("timeouts.tcp_established", "must be at least 7440 s (2h4m, RFC 5382 REQ-5)"))
        }
        if timeouts.tcpTransitory < Timeouts.rfc5382Transitory {
            found.append(("timeouts.tcp_transitory", "must be at least 240 s (4m, RFC 5382 REQ-5)"))
        }
        if timeouts.udp < 120 { found.append(("timeouts.udp", "must be at least 120 s (2m, RFC 4787 REQ-5)")) }
        if timeouts.icmp < Timeouts.rfc5508ICMP {
            found.append(("timeouts.icmp", "must be at least 60 s (RFC 5508 REQ-2)"))
        }
        if !(5...timeouts.tcpTransitory).contains(timeouts.tcpUnreplied) {
            found.append(("timeouts.tcp_unreplied", "must be from 5 s up to timeouts.tcp_transitory (\(timeouts.tcpTransitory) s)"))
        }
        if !(1...120).contains(timeouts.fragment) { found.append(("timeouts.fragment", "must be 1 to 120 s")) }
        if !(0...4096).contains(maxHeldFragments) {
            found.append(("max_held_fragments", "expected a whole number from 0 to 4096, got \(maxHeldFragments)"))
        }
        if let nat64 { found += nat64.problems(ipv4: privatePrefixes) }
        return found
    }

    /// The key of the "paired" pooling hash (RFC 4787 REQ-2): which pool address a private host gets. Peers must
    /// agree on it (a standby that takes over gives a host's new mappings the address its replicated ones have),
    /// so it comes from what they share, the configured pool and prefixes, never from the per-run seed.
    public var pairingKey: UInt64 {
        var mixer = SplitMix64(seed: 0x7061_6972)
        var key: UInt64 = 0
        for value in poolAddresses.map({ UInt64($0.value) }) + privatePrefixes.map({ UInt64($0.network.value) << 8 | UInt64($0.length) }) {
            mixer.state ^= value
            key = mixer.next()
        }
        return key
    }
}
