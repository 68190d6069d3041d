/// An IPv4 datagram (RFC 791 section 3.1):
///
///      0                   1                   2                   3
///      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |Version|  IHL  |Type of Service|          Total Length         |   0
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |         Identification        |Flags|      Fragment Offset    |   4
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |  Time to Live |    Protocol   |         Header Checksum       |   8
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |                       Source Address                          |  12
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |                    Destination Address                        |  16
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |                    Options                    |    Padding    |  20
///
/// The view covers exactly `totalLength` bytes: link-layer padding after the datagram is cut off.
public struct IPv4Packet {
    public let buffer: UnsafeMutableRawBufferPointer

    public static let minimumHeaderLength = 20

    /// Checks version, IHL, total length against the buffer and (unless told not to) the header checksum.
    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer, verifyChecksum: Bool = true) throws(PacketError) {
        let headerLength = try Self.checkHeader(bytes)
        let total = Int(bytes.loadBE16(at: 2))
        guard total >= headerLength else { throw .badTotalLength(total) }
        guard total <= bytes.count else { throw .truncated(needed: total, available: bytes.count) }
        if verifyChecksum, Checksum.sum(bytes.prefix(upTo: headerLength)) != 0xFFFF { throw .badChecksum }
        buffer = bytes.prefix(upTo: total)
    }

    /// The datagram quoted inside an ICMP error (RFC 792): the header must be whole, the rest may be cut short,
    /// so the view covers what is there (up to the total length it declares). The checksum is not checked: the
    /// quote is what the sender sent, and RFC 5508 asks only that it be rewritten consistently.
    @inlinable
    public init(quoted bytes: UnsafeMutableRawBufferPointer) throws(PacketError) {
        let headerLength = try Self.checkHeader(bytes)
        let total = Int(bytes.loadBE16(at: 2))
        guard total >= headerLength else { throw .badTotalLength(total) }
        buffer = bytes.prefix(upTo: min(total, bytes.count))
    }

    /// For a buffer this program emitted itself and so knows to be whole.
    @inlinable public init(unchecked bytes: UnsafeMutableRawBufferPointer) { buffer = bytes }

    @inlinable
    static func checkHeader(_ bytes: UnsafeMutableRawBufferPointer) throws(PacketError) -> Int {
        guard bytes.count >= minimumHeaderLength else {
            throw .truncated(needed: minimumHeaderLength, available: bytes.count)
        }
        let version = bytes[0] >> 4
        guard version == 4 else { throw .badVersion(version) }
        let headerLength = Int(bytes[0] & 0x0F) &* 4
        guard headerLength >= minimumHeaderLength else { throw .badHeaderLength(headerLength) }
        guard headerLength <= bytes.count else { throw .truncated(needed: headerLength, available: bytes.count) }
        return headerLength
    }

    // MARK: Fields

    @inlinable public var headerLength: Int { Int(buffer[0] & 0x0F) &* 4 }
    @inlinable public var typeOfService: UInt8 { buffer[1] }
    @inlinable public var totalLength: Int { Int(buffer.loadBE16(at: 2)) }
    @inlinable public var identification: UInt16 { buffer.loadBE16(at: 4) }
    @inlinable public var dontFragment: Bool { buffer[6] & 0x40 != 0 }
    @inlinable public var moreFragments: Bool { buffer[6] & 0x20 != 0 }
    /// The fragment offset in bytes (the field counts 8-byte units).
    @inlinable public var fragmentOffset: Int { Int(buffer.loadBE16(at: 6) & 0x1FFF) &* 8 }
    /// True for every piece of a fragmented datagram, the first one included.
    @inlinable public var isFragment: Bool { buffer.loadBE16(at: 6) & 0x3FFF != 0 }
    @inlinable public var timeToLive: UInt8 { buffer[8] }
    @inlinable public var `protocol`: IPProtocol { IPProtocol(buffer[9]) }
    @inlinable public var headerChecksum: UInt16 { buffer.loadBE16(at: 10) }
    @inlinable public var source: IPv4Address { IPv4Address(buffer.loadBE32(at: 12)) }
    @inlinable public var destination: IPv4Address { IPv4Address(buffer.loadBE32(at: 16)) }
    @inlinable public var options: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: buffer[Self.minimumHeaderLength..<headerLength])
    }
    /// What follows the header: the transport header and data, or a fragment of them.
    @inlinable public var payload: UnsafeMutableRawBufferPointer { buffer.suffix(from: headerLength) }

    /// The length the transport checksum's pseudo-header carries: the payload as the header declares it, even
    /// when a quoted datagram was cut short.
    @inlinable public var declaredPayloadLength: Int { max(0, totalLength &- headerLength) }

    @inlinable public var isHeaderChecksumValid: Bool { Checksum.sum(buffer.prefix(upTo: headerLength)) == 0xFFFF }

    /// The pseudo-header sum for this datagram's transport checksum.
    @inlinable public var pseudoHeaderSum: UInt32 {
        Checksum.pseudoHeaderSum(
            source: source, destination: destination, protocol: self.protocol, length: declaredPayloadLength)
    }

    // MARK: Setters that keep the header checksum right

    @inlinable public func setSource(_ address: IPv4Address) { setAddress(address, at: 12) }
    @inlinable public func setDestination(_ address: IPv4Address) { setAddress(address, at: 16) }

    @inlinable func setAddress(_ address: IPv4Address, at offset: Int) {
        let old = buffer.loadBE32(at: offset)
        buffer.storeBE32(address.value, at: offset)
        buffer.storeBE16(Checksum.update(headerChecksum, old: old, new: address.value), at: 10)
    }

    /// Writes a freshly computed header checksum.
    @inlinable public func fillHeaderChecksum() {
        buffer.storeBE16(0, at: 10)
        buffer.storeBE16(Checksum.finish(Checksum.sum(buffer.prefix(upTo: headerLength))), at: 10)
    }
}
