/// An ICMPv4 message (RFC 792):
///
///      0                   1                   2                   3
///      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |     Type      |     Code      |          Checksum             |   0
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |     Identifier (queries)      |    Sequence Number (queries)  |   4
///     |  unused / pointer (12) / next-hop MTU in bytes 6-7 (3, code 4) |
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |  Data; for errors: the IP header + at least 8 bytes of the    |   8
///     |  datagram that caused it                                      |
///
/// The checksum covers the whole message, quote included, with no pseudo-header.
public struct ICMPv4Message {
    public let buffer: UnsafeMutableRawBufferPointer

    public static let headerLength = 8
    public static let checksumOffset = 2

    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(PacketError) {
        guard bytes.count >= Self.headerLength else {
            throw .truncated(needed: Self.headerLength, available: bytes.count)
        }
        buffer = bytes
    }

    @inlinable public init(unchecked bytes: UnsafeMutableRawBufferPointer) { buffer = bytes }

    @inlinable public var type: ICMPv4Type { ICMPv4Type(buffer[0]) }
    @inlinable public var code: UInt8 { buffer[1] }
    @inlinable public var checksum: UInt16 { buffer.loadBE16(at: Self.checksumOffset) }
    /// The query identifier (echo, timestamp, information, address mask): RFC 5508 maps it like a port.
    @inlinable public var identifier: Port { Port(buffer.loadBE16(at: 4)) }
    @inlinable public var sequenceNumber: UInt16 { buffer.loadBE16(at: 6) }
    /// Destination unreachable, fragmentation needed (type 3 code 4): the next-hop MTU (RFC 1191 section 4).
    @inlinable public var nextHopMTU: UInt16 { buffer.loadBE16(at: 6) }
    /// Parameter problem (type 12): the octet in the quoted datagram where the problem was found.
    @inlinable public var pointer: UInt8 { buffer[4] }
    /// For queries, the data; for errors, the quoted datagram.
    @inlinable public var body: UnsafeMutableRawBufferPointer { buffer.suffix(from: Self.headerLength) }

    @inlinable public var isChecksumValid: Bool { Checksum.sum(buffer) == 0xFFFF }

    @inlinable public func setIdentifier(_ id: Port) { setWord(id.value, at: 4) }

    /// Replaces a 16-bit word anywhere in the message (also inside the quote) and fixes the checksum.
    @inlinable public func setWord(_ value: UInt16, at offset: Int) {
        let old = buffer.loadBE16(at: offset)
        buffer.storeBE16(value, at: offset)
        adjustChecksum(old: old, new: value)
    }

    /// Fixes the checksum for a word of the message that the caller changed from `old` to `new` itself (for
    /// example through a view of the quoted datagram).
    @inlinable public func adjustChecksum(old: UInt16, new: UInt16) {
        buffer.storeBE16(Checksum.update(checksum, old: old, new: new), at: Self.checksumOffset)
    }

    @inlinable public func adjustChecksum(old: UInt32, new: UInt32) {
        buffer.storeBE16(Checksum.update(checksum, old: old, new: new), at: Self.checksumOffset)
    }

    @inlinable public func fillChecksum() {
        buffer.storeBE16(0, at: Self.checksumOffset)
        buffer.storeBE16(Checksum.finish(Checksum.sum(buffer)), at: Self.checksumOffset)
    }
}

/// ICMPv4 message types (IANA "ICMP Type Numbers") and the two families RFC 5508 treats differently.
public struct ICMPv4Type: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt8
    @inlinable public init(_ value: UInt8) { self.value = value }

    public static let echoReply = ICMPv4Type(0)
    public static let destinationUnreachable = ICMPv4Type(3)
    public static let redirect = ICMPv4Type(5)
    public static let echoRequest = ICMPv4Type(8)
    public static let timeExceeded = ICMPv4Type(11)
    public static let parameterProblem = ICMPv4Type(12)
    public static let timestampRequest = ICMPv4Type(13)
    public static let timestampReply = ICMPv4Type(14)

    /// Destination unreachable code 4: fragmentation needed and DF set (RFC 792, RFC 1191).
    public static let fragmentationNeededCode: UInt8 = 4

    /// Query messages carry an identifier that a NAT maps (RFC 5508 section 3.1). Echo and timestamp only:
    /// information and address-mask requests are deprecated (RFC 6918).
    @inlinable public var isQuery: Bool {
        self == .echoRequest || self == .echoReply || self == .timestampRequest || self == .timestampReply
    }
    @inlinable public var isQueryRequest: Bool { self == .echoRequest || self == .timestampRequest }

    /// Error messages that quote the datagram that caused them and that a NAT translates (RFC 5508 section 4).
    @inlinable public var isTranslatedError: Bool {
        self == .destinationUnreachable || self == .timeExceeded || self == .parameterProblem
    }

    public var description: String {
        switch self {
        case .echoReply: "echo-reply"
        case .destinationUnreachable: "destination-unreachable"
        case .redirect: "redirect"
        case .echoRequest: "echo-request"
        case .timeExceeded: "time-exceeded"
        case .parameterProblem: "parameter-problem"
        case .timestampRequest: "timestamp-request"
        case .timestampReply: "timestamp-reply"
        default: "type-\(value)"
        }
    }
}
