/// Why a packet was not sent on. Each drop is counted under exactly one of these.
public enum DropReason: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// Shorter than an IPv4 header, or than the length it declares.
    case truncated
    /// Not IPv4 (IPv6, ARP, ...); counted by whoever handed it in.
    case notIPv4
    /// Bad IHL, bad total length.
    case badIPv4Header
    case badIPv4Checksum
    /// TCP/UDP/ICMP header cut short or inconsistent.
    case badTransportHeader
    case badTransportChecksum
    /// A protocol other than TCP, UDP, ICMP.
    case unsupportedProtocol
    /// An ICMP type that is neither a query nor a translated error (redirect, router advertisement, ...).
    case unsupportedICMP
    /// Neither from a private prefix nor to a pool address: never translated.
    case notPrivateSource
    /// Inbound with no mapping for its destination: unsolicited.
    case noMapping
    /// Inbound to a mapping whose filter refuses this remote endpoint (RFC 4787 section 5).
    case filtered
    /// An inbound ICMP query request (an echo request): only replies come in, so no one outside can probe the
    /// hosts behind a mapping.
    case inboundRequest
    /// A TCP segment for no flow that may not open one: an RST, or an inbound segment that is not a SYN.
    case tcpNoFlow
    /// An RST or FIN outside the connection's window (RFC 5961): a blind attempt to end the connection.
    case outOfWindow
    /// An ICMP error about a flow the table does not hold (RFC 5508 REQ-4, REQ-5): dropped, never creating one.
    case icmpErrorNoFlow
    /// An ICMP error about a flow it does not belong to: not addressed to the quoted datagram's sender, or sent by
    /// a private host about another host's flow.
    case icmpErrorForeign
    /// The flow table is at `maxFlows`.
    case tableFull
    /// No free external port for this protocol on the host's pool address.
    case portsExhausted
    /// The private host is at `maxFlowsPerHost`.
    case hostLimit
    /// The private host's source prefix is at `maxFlowsPerPrefix`.
    case prefixLimit
    /// A first fragment too short to hold the ports.
    case fragmentTooShort
    /// A later fragment arrived while the hold buffer was full.
    case fragmentBufferFull
    /// A later fragment from a source that already holds its share of the hold buffer.
    case fragmentQuota
    /// A held fragment whose first fragment never came.
    case fragmentTimeout
    /// A held fragment pushed out, oldest first, to make room for a newer one.
    case fragmentEvicted
    /// This node is a standby: its table is a replica, and only the active node translates.
    case standby
    /// NAT64: an IPv6 header that does not parse (extension header chain too long, cut short, or out of order).
    case badIPv6Header
    /// NAT64: an IPv6 destination outside the NAT64 prefix, or one standing for an IPv4 address that must not be
    /// translated (RFC 6052 section 3.1: the Well-Known Prefix with a non-global address; loopback, multicast).
    case notNAT64Destination
    /// NAT64: `nat64.max_hosts` IPv6 hosts hold mappings already.
    case nat64HostsFull
    /// A source-routed packet (RFC 7915 sections 4.1 and 5.1): an IPv6 routing header with segments left, or an
    /// IPv4 source route option with addresses left.
    case sourceRouted
    /// NAT64: a fragment of an ICMP message, whose checksum only reassembly could translate.
    case icmpFragment
    /// NAT64: an IPv4 UDP fragment without a checksum (RFC 7915 section 4.5: IPv6 needs one).
    case udpZeroChecksumFragment
    /// NAT64: no room in front of the packet for the larger IPv6 header (a caller without headroom).
    case noHeadroom

    public var description: String {
        switch self {
        case .truncated: "truncated"
        case .notIPv4: "not-ipv4"
        case .badIPv4Header: "bad-ipv4-header"
        case .badIPv4Checksum: "bad-ipv4-checksum"
        case .badTransportHeader: "bad-transport-header"
        case .badTransportChecksum: "bad-transport-checksum"
        case .unsupportedProtocol: "unsupported-protocol"
        case .unsupportedICMP: "unsupported-icmp"
        case .notPrivateSource: "not-private-source"
        case .noMapping: "no-mapping"
        case .filtered: "filtered"
        case .inboundRequest: "inbound-request"
        case .tcpNoFlow: "tcp-no-flow"
        case .outOfWindow: "out-of-window"
        case .icmpErrorNoFlow: "icmp-error-no-flow"
        case .icmpErrorForeign: "icmp-error-foreign"
        case .tableFull: "table-full"
        case .portsExhausted: "ports-exhausted"
        case .hostLimit: "host-limit"
        case .prefixLimit: "prefix-limit"
        case .fragmentTooShort: "fragment-too-short"
        case .fragmentBufferFull: "fragment-buffer-full"
        case .fragmentQuota: "fragment-quota"
        case .fragmentTimeout: "fragment-timeout"
        case .fragmentEvicted: "fragment-evicted"
        case .standby: "standby"
        case .badIPv6Header: "bad-ipv6-header"
        case .notNAT64Destination: "not-nat64-destination"
        case .nat64HostsFull: "nat64-hosts-full"
        case .sourceRouted: "source-routed"
        case .icmpFragment: "icmp-fragment"
        case .udpZeroChecksumFragment: "udp-zero-checksum-fragment"
        case .noHeadroom: "no-headroom"
        }
    }
}

/// What the table did, counted. Plain integers: one table belongs to one worker.
///
/// Every packet is counted once when it arrives: outbound, inbound, hairpin, held, or under a drop reason other
/// than `fragmentTimeout` and `fragmentEvicted`. A held fragment is counted a second time when it leaves: as
/// released, or as one of those two drops. So `outbound + inbound + hairpin + heldFragments + arrivalDrops ==
/// packets`.
public struct NatCounters: Sendable, Equatable {
    public var packets: UInt64 = 0
    public var outbound: UInt64 = 0
    public var inbound: UInt64 = 0
    public var hairpin: UInt64 = 0
    public var heldFragments: UInt64 = 0
    public var releasedFragments: UInt64 = 0
    public var flowsCreated: UInt64 = 0
    public var flowsExpired: UInt64 = 0
    public var mappingsCreated: UInt64 = 0
    public var portsPreserved: UInt64 = 0
    /// Unreplied and transitory flows removed, oldest first, to make room for a new flow in a full table.
    public var flowsEvicted: UInt64 = 0
    /// Inbound packets let in by an endpoint-independent mapping without creating a flow, because the mapping
    /// already had `maxInboundFlowsPerMapping` flows made from outside, or the table `maxInboundFlows`.
    public var inboundFlowLimit: UInt64 = 0
    /// TCP data and ACKs outside their connection's window: forwarded, but they moved nothing (RFC 5961).
    public var outOfWindowIgnored: UInt64 = 0
    /// Bytes of the packets translated in each direction (IPv4 total length; a GSO super-packet counts whole).
    public var outboundBytes: UInt64 = 0
    public var inboundBytes: UInt64 = 0
    public var hairpinBytes: UInt64 = 0
    /// TCP connection attempts (a SYN that opens a flow, or opens a new connection on a closed flow's 4-tuple), and
    /// connections that became established (a SYN seen each way): the NAT gateway's ConnectionAttemptCount and
    /// ConnectionEstablishedCount.
    public var tcpAttempts: UInt64 = 0
    public var tcpEstablished: UInt64 = 0
    /// Packets (and their bytes) received from each side, translated or dropped: from the private hosts (outbound
    /// and hairpin; the NAT gateway's PacketsInFromSource, BytesInFromSource) and from the internet to a pool
    /// address (PacketsInFromDestination, BytesInFromDestination). A packet that is not valid IPv4, or whose source
    /// is neither private nor bound for the pool, has no side and is counted under its drop reason only.
    public var fromSource: UInt64 = 0
    public var fromSourceBytes: UInt64 = 0
    public var fromDestination: UInt64 = 0
    public var fromDestinationBytes: UInt64 = 0
    /// NAT64, counted apart as well as in the directions above: IPv6 packets translated to IPv4 (from an
    /// IPv6-only host), and packets translated to IPv6 (to one), with their bytes as sent.
    public var nat64Outbound: UInt64 = 0
    public var nat64OutboundBytes: UInt64 = 0
    public var nat64Inbound: UInt64 = 0
    public var nat64InboundBytes: UInt64 = 0
    /// A replica's: NAT64 records it skipped because it cannot hold their IPv6 hosts (no `nat.nat64`, or a
    /// smaller `max_hosts` than the active's). Configure both peers alike.
    public var nat64RecordsSkipped: UInt64 = 0
    var drops = [UInt64](repeating: 0, count: DropReason.allCases.count)

    public init() {}

    public subscript(reason: DropReason) -> UInt64 {
        get { drops[Int(reason.rawValue)] }
        set { drops[Int(reason.rawValue)] = newValue }
    }

    /// Every drop, held fragments that timed out included.
    public var dropped: UInt64 { drops.reduce(0, +) }
    /// Drops decided when a packet arrived: `dropped` less the held fragments that timed out or were evicted.
    public var arrivalDrops: UInt64 { dropped - self[.fragmentTimeout] - self[.fragmentEvicted] }

    /// The one table of names: each counter as `tunnat status`, its JSON and the metrics name it, in the order the
    /// status shows them (the drops go by `DropReason.description`).
    public static let fields: [(name: String, value: WritableKeyPath<NatCounters, UInt64> & Sendable)] = [
        ("packets", \.packets), ("outbound", \.outbound), ("inbound", \.inbound), ("hairpin", \.hairpin),
        ("bytes-outbound", \.outboundBytes), ("bytes-inbound", \.inboundBytes), ("bytes-hairpin", \.hairpinBytes),
        ("held-fragments", \.heldFragments), ("released-fragments", \.releasedFragments),
        ("flows-created", \.flowsCreated), ("flows-expired", \.flowsExpired), ("flows-evicted", \.flowsEvicted),
        ("inbound-flow-limit", \.inboundFlowLimit), ("out-of-window-ignored", \.outOfWindowIgnored), ("tcp-attempts", \.tcpAttempts), ("tcp-established", \.tcpEstablished),
        ("mappings-created", \.mappingsCreated), ("ports-preserved", \.portsPreserved),
        ("from-source", \.fromSource), ("bytes-from-source", \.fromSourceBytes),
        ("from-destination", \.fromDestination), ("bytes-from-destination", \.fromDestinationBytes),
        ("nat64-outbound", \.nat64Outbound), ("bytes-nat64-outbound", \.nat64OutboundBytes),
        ("nat64-inbound", \.nat64Inbound), ("bytes-nat64-inbound", \.nat64InboundBytes),
        ("nat64-records-skipped", \.nat64RecordsSkipped),
    ]
}
