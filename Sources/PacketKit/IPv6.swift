/// An IPv6 packet (RFC 8200 section 3) and the chain of extension headers in front of its upper-layer header:
///
///      0                   1                   2                   3
///      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |Version| Traffic Class |           Flow Label                  |   0
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |         Payload Length        |  Next Header  |   Hop Limit   |   4
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |                  Source Address (16 bytes)                    |   8
///     |               Destination Address (16 bytes)                  |  24
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// The walk is bounded: at most `maxExtensionHeaders` headers, each inside the packet, so a hostile chain costs
/// a few loads. Hop-by-hop and destination options and a routing header with no segments left are skipped (RFC
/// 7915 section 5.1: not translated, the packet is); a routing header with segments left is source routing and
/// refused; a second fragment header, or one after the upper layer should have begun, is refused.
public struct IPv6Packet {
    public let buffer: UnsafeMutableRawBufferPointer
    /// The upper-layer protocol (TCP 6, UDP 17, ICMPv6 58, or whatever ended the walk) and where it starts.
    public let upperProtocol: UInt8
    public let upperOffset: Int
    /// Where the fragment header is, or -1.
    public let fragmentHeaderOffset: Int

    public static let headerLength = 40
    public static let maxExtensionHeaders = 8
    public static let fragmentHeaderLength = 8

    public enum NextHeader {
        public static let hopByHop: UInt8 = 0
        public static let tcp: UInt8 = 6
        public static let udp: UInt8 = 17
        public static let routing: UInt8 = 43
        public static let fragment: UInt8 = 44
        public static let icmpv6: UInt8 = 58
        public static let noNextHeader: UInt8 = 59
        public static let destinationOptions: UInt8 = 60
    }

    /// `quoted`: the packet inside an ICMPv6 error, which may be cut short after its headers (RFC 4443 section
    /// 2.4 (c)); its payload length is then what it declares, not what is there.
    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer, quoted: Bool = false) throws(PacketError) {
        guard bytes.count >= Self.headerLength else {
            throw .truncated(needed: Self.headerLength, available: bytes.count)
        }
        let version = bytes[0] >> 4
        guard version == 6 else { throw .badVersion(version) }
        let declared = Int(bytes.loadBE16(at: 4))
        // A payload length of 0 with a hop-by-hop header is a jumbogram (RFC 2675): never on a link tunnat serves.
        let total = Self.headerLength &+ declared
        if quoted {
            buffer = bytes.prefix(upTo: min(total, bytes.count))
        } else {
            guard total <= bytes.count else { throw .truncated(needed: total, available: bytes.count) }
            buffer = bytes.prefix(upTo: total)
        }
        var next = bytes[6]
        var offset = Self.headerLength
        var fragment = -1
        var walked = 0
        walk: while true {
            switch next {
            case NextHeader.hopByHop, NextHeader.destinationOptions, NextHeader.routing, NextHeader.fragment:
                guard walked < Self.maxExtensionHeaders else { throw .badHeaderLength(offset) }
                walked &+= 1
                guard offset &+ 8 <= buffer.count else { throw .truncated(needed: offset &+ 8, available: buffer.count) }
                // Hop-by-hop options may only come first (RFC 8200 section 4.3).
                if next == NextHeader.hopByHop && offset != Self.headerLength { throw .unsupported(next) }
                let length: Int
                if next == NextHeader.fragment {
                    guard fragment < 0 else { throw .unsupported(next) }
                    fragment = offset
                    length = Self.fragmentHeaderLength
                } else {
                    length = (Int(buffer[offset &+ 1]) &+ 1) &* 8
                    if next == NextHeader.routing && buffer[offset &+ 3] != 0 { throw .unsupported(next) }
                }
                guard offset &+ length <= buffer.count else {
                    throw .truncated(needed: offset &+ length, available: buffer.count)
                }
                next = buffer[offset]
                offset &+= length
                // Only the first fragment holds the rest of the chain; later ones carry data.
                if fragment >= 0 && buffer.loadBE16(at: fragment &+ 2) & 0xFFF8 != 0 { break walk }
            default:
                break walk
            }
        }
        upperProtocol = next
        upperOffset = offset
        fragmentHeaderOffset = fragment
    }

    // MARK: Fields

    @inlinable public var trafficClass: UInt8 { UInt8(truncatingIfNeeded: buffer.loadBE16(at: 0) >> 4) }
    @inlinable public var flowLabel: UInt32 { buffer.loadBE32(at: 0) & 0xF_FFFF }
    @inlinable public var payloadLength: Int { Int(buffer.loadBE16(at: 4)) }
    @inlinable public var hopLimit: UInt8 { buffer[7] }
    @inlinable public var source: IPv6Address { IPv6Address(buffer, at: 8) }
    @inlinable public var destination: IPv6Address { IPv6Address(buffer, at: 24) }

    /// The upper-layer header and data (of this fragment).
    @inlinable public var upperLayer: UnsafeMutableRawBufferPointer { buffer.suffix(from: upperOffset) }
    /// The upper-layer length as the header declares it (payload less extension headers).
    @inlinable public var declaredUpperLength: Int { max(0, Self.headerLength &+ payloadLength &- upperOffset) }

    @inlinable public var isFragment: Bool { fragmentHeaderOffset >= 0 }
    /// The fragment offset in bytes; 0 when not a fragment.
    @inlinable public var fragmentOffset: Int {
        fragmentHeaderOffset < 0 ? 0 : Int(buffer.loadBE16(at: fragmentHeaderOffset &+ 2) & 0xFFF8)
    }
    @inlinable public var moreFragments: Bool {
        fragmentHeaderOffset >= 0 && buffer[fragmentHeaderOffset &+ 3] & 1 != 0
    }
    @inlinable public var fragmentIdentification: UInt32 {
        fragmentHeaderOffset < 0 ? 0 : buffer.loadBE32(at: fragmentHeaderOffset &+ 4)
    }
    /// A fragment header that says offset 0 and no more fragments (RFC 8200 section 4.5's "atomic fragment").
    @inlinable public var isAtomicFragment: Bool { isFragment && fragmentOffset == 0 && !moreFragments }

    /// The pseudo-header sum (RFC 8200 section 8.1) for an upper-layer checksum, unfolded.
    @inlinable public func pseudoHeaderSum(protocol proto: UInt8, length: Int) -> UInt64 {
        source.wordSum &+ destination.wordSum &+ UInt64(length >> 16) &+ UInt64(length & 0xFFFF) &+ UInt64(proto)
    }
}

/// ICMPv6 message types (RFC 4443, IANA "ICMPv6 Parameters") that translation deals with.
public enum ICMPv6Type {
    public static let destinationUnreachable: UInt8 = 1
    public static let packetTooBig: UInt8 = 2
    public static let timeExceeded: UInt8 = 3
    public static let parameterProblem: UInt8 = 4
    public static let echoRequest: UInt8 = 128
    public static let echoReply: UInt8 = 129

    @inlinable public static func isError(_ type: UInt8) -> Bool { type < 128 }
}
