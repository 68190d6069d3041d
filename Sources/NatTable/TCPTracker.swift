import PacketKit

/// What a NAT needs to know of a TCP connection to pick its idle timeout (RFC 5382 section 5): has it been
/// opened from both sides, and has either side closed or reset it. One byte per flow.
///
/// RFC 5382 REQ-2 asks for every valid RFC 793 sequence, simultaneous open included: a SYN seen in each direction
/// (SYN/SYN-ACK, or two SYNs crossing) makes the connection established, whatever order they came in.
@usableFromInline struct TCPTracker: Equatable, Sendable {
    var bits: UInt8

    static let synOutbound: UInt8 = 0x01
    static let synInbound: UInt8 = 0x02
    static let finOutbound: UInt8 = 0x04
    static let finInbound: UInt8 = 0x08
    static let reset: UInt8 = 0x10

    static let none = TCPTracker(bits: 0)

    /// The state of a flow created by this packet. An outbound segment that is not a SYN picks up a connection
    /// already open (a NAT restarted, or a table taken over), as Linux does with `nf_conntrack_tcp_loose`.
    static func opening(with flags: TCPFlags, outbound: Bool) -> TCPTracker {
        var tracker = TCPTracker.none
        if outbound && !flags.contains(.syn) && !flags.contains(.rst) {
            tracker.bits = synOutbound | synInbound
        }
        tracker.observe(flags, outbound: outbound)
        return tracker
    }

    mutating func observe(_ flags: TCPFlags, outbound: Bool) {
        if flags.contains(.rst) {
            bits |= Self.reset
            return
        }
        if flags.contains(.syn) {
            // A fresh SYN on a closed or closing 4-tuple is a new connection reusing it (RFC 9293 section 3.10.7.4).
            if !flags.contains(.ack) && bits & (Self.reset | Self.finOutbound | Self.finInbound) != 0 { bits = 0 }
            bits |= outbound ? Self.synOutbound : Self.synInbound
        }
        if flags.contains(.fin) { bits |= outbound ? Self.finOutbound : Self.finInbound }
    }

    /// Established: opened both ways, neither side closed nor reset. Anything else is transitory.
    var isEstablished: Bool {
        bits & (Self.synOutbound | Self.synInbound) == Self.synOutbound | Self.synInbound
            && bits & (Self.finOutbound | Self.finInbound | Self.reset) == 0
    }

    var timer: TimerClass { isEstablished ? .tcpEstablished : .tcpTransitory }
}
