import PacketKit

/// What a NAT needs to know of a TCP connection to pick its idle timeout (RFC 5382 section 5): has it been
/// opened from both sides, and has either side closed or reset it. One byte per flow, replicated as it is.
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
    /// Made by an outbound segment that was not a SYN: a connection already open when the NAT first saw it (a NAT
    /// restarted, or a table taken over without a replica), as Linux does with `nf_conntrack_tcp_loose`. Until
    /// the other side answers it stays under the short unreplied timer, so that bare ACKs cannot hold ports for
    /// the two hours an established connection gets.
    static let pickedUp: UInt8 = 0x20
    /// Made by an inbound SYN (endpoint-independent filtering): kept through a reuse, so that a replica counts the
    /// flow against the inbound budget as the active does.
    static let createdInbound: UInt8 = 0x40

    static let none = TCPTracker(bits: 0)

    /// The state of a flow created by this packet.
    static func opening(with flags: TCPFlags, outbound: Bool) -> TCPTracker {
        var tracker = TCPTracker(bits: outbound ? 0 : createdInbound)
        if outbound && !flags.contains(.syn) && !flags.contains(.rst) {
            tracker.bits = synOutbound | pickedUp
        }
        tracker.observe(flags, outbound: outbound)
        return tracker
    }

    mutating func observe(_ flags: TCPFlags, outbound: Bool) {
        if flags.contains(.rst) {
            bits |= Self.reset
            return
        }
        // The first answer to a picked-up connection: both sides are there.
        if !outbound && bits & Self.pickedUp != 0 { bits |= Self.synInbound }
        if flags.contains(.syn) {
            // A fresh SYN on a closed or closing 4-tuple is a new connection reusing it (RFC 9293 section 3.10.7.4).
            if !flags.contains(.ack) && bits & (Self.reset | Self.finOutbound | Self.finInbound) != 0 {
                bits &= Self.createdInbound
            }
            bits |= outbound ? Self.synOutbound : Self.synInbound
        }
        if flags.contains(.fin) { bits |= outbound ? Self.finOutbound : Self.finInbound }
    }

    /// Over: reset, or a FIN seen each way. A SYN then opens a new connection on the 4-tuple.
    var isOver: Bool {
        bits & Self.reset != 0 || bits & (Self.finOutbound | Self.finInbound) == Self.finOutbound | Self.finInbound
    }

    /// Established: opened both ways, neither side closed nor reset. Anything else is transitory.
    var isEstablished: Bool {
        bits & (Self.synOutbound | Self.synInbound) == Self.synOutbound | Self.synInbound
            && bits & (Self.finOutbound | Self.finInbound | Self.reset) == 0
    }

    /// Picked up from one side and never answered by the other, other than with an RST (the usual answer to a bare
    /// ACK of a connection that does not exist): it keeps the short timer.
    var isUnreplied: Bool { bits & (Self.pickedUp | Self.synInbound) == Self.pickedUp }

    var timer: TimerClass { isEstablished ? .tcpEstablished : isUnreplied ? .tcpUnreplied : .tcpTransitory }
}

/// Where each side of a TCP connection is in its sequence space, as Linux conntrack tracks it (after Guido van
/// Rooij, "Real stateful TCP packet filtering in IP Filter"), reduced to what the NAT needs it for: telling an RST
/// or FIN of the connection from a blind one (RFC 5961's concern), and keeping blind segments from moving what it
/// knows. Only segments within the window move it; other data and ACKs are forwarded and change nothing.
///
/// Per direction: `end`, the sequence number just past the furthest segment sent (SYN and FIN count one), and
/// `window`, the largest receive window the sender advertised, in bytes (scaled). A side not seen yet is unknown;
/// a table taken over from a replica starts with both unknown and learns them from the next segments.
@usableFromInline struct TCPWindow: Equatable, Sendable {
    var endOutbound: UInt32 = 0
    var endInbound: UInt32 = 0
    var windowOutbound: UInt32 = 0
    var windowInbound: UInt32 = 0
    /// The window scale each side offered in its SYN (RFC 7323 section 2.2): outbound in the low nibble, inbound
    /// in the high one; `noScale` when that SYN carried no option or was not seen.
    var scales: UInt8 = 0xFF
    var seen: UInt8 = 0

    static let noScale: UInt8 = 0xF
    static let seenOutbound: UInt8 = 0x01
    static let seenInbound: UInt8 = 0x02
    static let synOutbound: UInt8 = 0x04
    static let synInbound: UInt8 = 0x08
    /// A segment other than a SYN seen from that side: it is past its handshake.
    static let pastSYNOutbound: UInt8 = 0x10
    static let pastSYNInbound: UInt8 = 0x20
    /// RFC 7323: a shift above 14 is taken as 14.
    static let maxScale: UInt8 = 14
    /// The window assumed for a side whose scale is unknown (a connection picked up mid-stream): the largest
    /// there can be, so that no segment of a real connection is ever refused for a guess.
    static let unknownWindow: UInt32 = 0xFFFF << 14

    static let unknown = TCPWindow()

    /// Learns from a segment sent in direction `outbound`. `length` is the segment's data length.
    @inline(__always)
    mutating func observe(_ segment: TCPSegment, length: Int, outbound: Bool) {
        let flags = segment.flags
        let syn = flags.contains(.syn)
        if syn {
            let offered = Self.windowScale(segment.options) ?? Self.noScale
            scales = outbound ? (scales & 0xF0) | offered : (scales & 0x0F) | offered << 4
            seen |= outbound ? Self.synOutbound : Self.synInbound
        }
        var end = segment.sequenceNumber.value &+ UInt32(truncatingIfNeeded: length)
        if syn { end &+= 1 }
        if flags.contains(.fin) { end &+= 1 }
        // Windows in SYNs are never scaled (RFC 7323 section 2.2).
        let window = syn ? UInt32(segment.window) : UInt32(segment.window) << UInt32(scale(outbound: outbound))
        let mask = outbound ? Self.seenOutbound : Self.seenInbound
        if !syn { seen |= outbound ? Self.pastSYNOutbound : Self.pastSYNInbound }
        if outbound {
            if seen & mask == 0 || Int32(bitPattern: end &- endOutbound) > 0 { endOutbound = end }
            windowOutbound = max(windowOutbound, window)
        } else {
            if seen & mask == 0 || Int32(bitPattern: end &- endInbound) > 0 { endInbound = end }
            windowInbound = max(windowInbound, window)
        }
        seen |= mask
    }

    enum Restart { case nothing, sender, everything }

    /// What a SYN (without RST or FIN) starts afresh. Its sender's side, when that side has sent nothing past a SYN
    /// (a new attempt from the same port picks a new initial sequence number); everything, when the connection is
    /// over and the SYN has no ACK (the 4-tuple reused, as conntrack does for a SYN in TIME_WAIT). A SYN-ACK must
    /// acknowledge the receiver's SYN where that was seen: a blind one restarts nothing. Anything else is an
    /// ordinary segment, checked against the window.
    func restart(for segment: TCPSegment, outbound: Bool, over: Bool) -> Restart {
        let sender = outbound ? Self.seenOutbound | Self.pastSYNOutbound : Self.seenInbound | Self.pastSYNInbound
        let fresh = seen & sender != sender
        guard segment.flags.contains(.ack) else { return over ? .everything : fresh ? .sender : .nothing }
        let receiverSYN = outbound ? Self.synInbound : Self.synOutbound
        if seen & receiverSYN != 0 && segment.acknowledgmentNumber.value != (outbound ? endInbound : endOutbound) {
            return .nothing
        }
        return fresh || over ? .sender : .nothing
    }

    /// Forgets what a side sent before its SYN, or both sides (`everything`). The SYN is then observed as the
    /// start of the new sequence space.
    mutating func restart(outbound: Bool, everything: Bool) {
        if everything {
            self = .unknown
            return
        }
        seen &= outbound ? ~(Self.seenOutbound | Self.synOutbound | Self.pastSYNOutbound)
                         : ~(Self.seenInbound | Self.synInbound | Self.pastSYNInbound)
        if outbound {
            endOutbound = 0
            windowOutbound = 0
            scales |= 0x0F
        } else {
            endInbound = 0
            windowInbound = 0
            scales |= 0xF0
        }
    }

    /// The shift that applies to windows sent in this direction: the offered one if both SYNs offered one, 0 if
    /// both SYNs were seen and one did not, the largest when the handshake was not seen.
    @inline(__always) func scale(outbound: Bool) -> UInt8 {
        guard seen & (Self.synOutbound | Self.synInbound) == Self.synOutbound | Self.synInbound else {
            return Self.maxScale
        }
        let out = scales & 0x0F
        let inb = scales >> 4
        guard out != Self.noScale && inb != Self.noScale else { return 0 }
        return outbound ? out : inb
    }

    /// Whether a segment sent in direction `outbound` lies where the receiver could accept it: within the
    /// receiver's largest window either side of the sender's furthest sequence number (the receiver's RCV.NXT is
    /// at most that far behind, RFC 5961 section 3.2). The first segment from a side whose peer's SYN was seen must
    /// acknowledge what that peer sent: exactly its SYN while it has sent nothing more (an RST answering a SYN,
    /// RFC 9293 section 3.10.7.3; the ACK completing a handshake after a SYN that left no state), else, other than
    /// an RST, within 64 KiB of its furthest sequence number. Nothing known of either side (a table taken over), or only a mid-stream segment from the
    /// receiver (a connection picked up: the RST that answers it takes its sequence number from an acknowledgment
    /// the NAT does not keep): accepted, the tracking starts there.
    @inline(__always)
    func accepts(_ segment: TCPSegment, outbound: Bool) -> Bool {
        let sender = outbound ? Self.seenOutbound : Self.seenInbound
        let receiver = outbound ? Self.seenInbound : Self.seenOutbound
        let receiverSYN = outbound ? Self.synInbound : Self.synOutbound
        let receiverEnd = outbound ? endInbound : endOutbound
        guard seen & sender != 0 else {
            if seen & receiver == 0 || seen & receiverSYN == 0 { return true }
            let flags = segment.flags
            guard flags.contains(.ack) else { return false }
            let behind = receiverEnd &- segment.acknowledgmentNumber.value
            let receiverPastSYN = seen & (outbound ? Self.pastSYNInbound : Self.pastSYNOutbound) != 0
            return behind == 0 || (receiverPastSYN && !flags.contains(.rst) && behind <= 0xFFFF)
        }
        let senderEnd = outbound ? endOutbound : endInbound
        var window = seen & receiver != 0 ? (outbound ? windowInbound : windowOutbound) : Self.unknownWindow
        window = min(max(window, 1), Self.unknownWindow)
        let low = senderEnd &- window
        return segment.sequenceNumber.value &- low <= 2 &* window
    }

    /// The shift of a window scale option (kind 3, length 3), if the options hold one.
    static func windowScale(_ options: UnsafeMutableRawBufferPointer) -> UInt8? {
        var i = 0
        while i < options.count {
            let kind = options[i]
            if kind == 0 { return nil }
            if kind == 1 {
                i += 1
                continue
            }
            guard i + 1 < options.count else { return nil }
            let length = Int(options[i + 1])
            guard length >= 2, i + length <= options.count else { return nil }
            if kind == 3 && length == 3 { return min(options[i + 2], maxScale) }
            i += length
        }
        return nil
    }
}
