/// What a NAT needs to know of a UDP flow to decide how long it lives and whether it may be evicted, in the byte a
/// TCP flow keeps its `TCPTracker` in. Replicated as it is.
///
/// A flow is *assured* once its creator sends again after an answer: more than one exchange, a stream (Linux
/// conntrack's `IPS_ASSURED` for UDP). Until then it is a single exchange or none, and:
/// - it may be evicted to make room, as conntrack drops unassured entries first when its table is full: a flood
///   of one-off datagrams, or an outsider's datagrams to a mapping, cannot hold what the streams need;
/// - sent to a well-known request/response port (DNS, NTP), it lives `Timeouts.udpRequestResponse` rather than the
///   full UDP timeout (RFC 4787 REQ-5a), so a resolver's one query per source port does not pile up.
///
/// 0 is a state this NAT never makes: a record from a peer that does not track UDP. Such a flow is taken as
/// assured, which is what every UDP flow was before.
@usableFromInline struct UDPTracker: Equatable, Sendable {
    var bits: UInt8

    static let createdOutbound: UInt8 = 0x01
    static let createdInbound: UInt8 = 0x02
    /// A datagram went the other way from the creator's.
    static let answered: UInt8 = 0x04
    /// The creator sent again after an answer.
    static let assured: UInt8 = 0x08
    /// Made by an outbound datagram to one of `NatConfiguration.requestResponsePorts`.
    static let requestResponse: UInt8 = 0x10

    static func opening(outbound: Bool, requestResponse: Bool) -> UDPTracker {
        UDPTracker(bits: (outbound ? createdOutbound : createdInbound) | (requestResponse ? Self.requestResponse : 0))
    }

    mutating func observe(outbound: Bool) {
        guard bits & (Self.createdOutbound | Self.createdInbound) != 0 else { return }
        if outbound == (bits & Self.createdOutbound != 0) {
            if bits & Self.answered != 0 { bits |= Self.assured }
        } else {
            bits |= Self.answered
        }
    }

    var isAssured: Bool { bits & Self.assured != 0 || bits & (Self.createdOutbound | Self.createdInbound) == 0 }

    var timer: TimerClass { isAssured ? .udp : bits & Self.requestResponse != 0 ? .udpShort : .udpUnassured }
}
