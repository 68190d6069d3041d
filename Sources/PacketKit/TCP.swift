/// A TCP segment (RFC 9293 section 3.1):
///
///      0                   1                   2                   3
///      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |          Source Port          |       Destination Port        |   0
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |                        Sequence Number                        |   4
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |                    Acknowledgment Number                      |   8
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |  Data |       |C|E|U|A|P|R|S|F|                               |
///     | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |  12
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |           Checksum            |         Urgent Pointer        |  16
///     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///     |                           [Options]                           |  20
public struct TCPSegment {
    public let buffer: UnsafeMutableRawBufferPointer

    public static let minimumHeaderLength = 20
    public static let checksumOffset = 16

    /// Checks that the fixed header and the options the data offset declares are present.
    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(PacketError) {
        guard bytes.count >= Self.minimumHeaderLength else {
            throw .truncated(needed: Self.minimumHeaderLength, available: bytes.count)
        }
        let headerLength = Int(bytes[12] >> 4) &* 4
        guard headerLength >= Self.minimumHeaderLength else { throw .badHeaderLength(headerLength) }
        guard headerLength <= bytes.count else { throw .truncated(needed: headerLength, available: bytes.count) }
        buffer = bytes
    }

    @inlinable public init(unchecked bytes: UnsafeMutableRawBufferPointer) { buffer = bytes }

    @inlinable public var sourcePort: Port { Port(buffer.loadBE16(at: 0)) }
    @inlinable public var destinationPort: Port { Port(buffer.loadBE16(at: 2)) }
    @inlinable public var sequenceNumber: SequenceNumber { SequenceNumber(buffer.loadBE32(at: 4)) }
    @inlinable public var acknowledgmentNumber: SequenceNumber { SequenceNumber(buffer.loadBE32(at: 8)) }
    @inlinable public var headerLength: Int { Int(buffer[12] >> 4) &* 4 }
    @inlinable public var flags: TCPFlags { TCPFlags(rawValue: buffer[13]) }
    @inlinable public var window: UInt16 { buffer.loadBE16(at: 14) }
    @inlinable public var checksum: UInt16 { buffer.loadBE16(at: Self.checksumOffset) }
    @inlinable public var urgentPointer: UInt16 { buffer.loadBE16(at: 18) }
    @inlinable public var options: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: buffer[Self.minimumHeaderLength..<headerLength])
    }
    @inlinable public var payload: UnsafeMutableRawBufferPointer { buffer.suffix(from: headerLength) }

    /// Whether the checksum verifies against the pseudo-header of `ip`.
    @inlinable public func isChecksumValid(pseudoHeaderSum: UInt32) -> Bool {
        Checksum.sum(buffer, initial: pseudoHeaderSum) == 0xFFFF
    }

    @inlinable public func setSourcePort(_ port: Port) { setWord(port.value, at: 0) }
    @inlinable public func setDestinationPort(_ port: Port) { setWord(port.value, at: 2) }

    /// Fixes the checksum for a pseudo-header address that changed from `old` to `new` (a NAT rewrite).
    @inlinable public func updateChecksum(addressFrom old: IPv4Address, to new: IPv4Address) {
        buffer.storeBE16(Checksum.update(checksum, old: old.value, new: new.value), at: Self.checksumOffset)
    }

    @inlinable func setWord(_ value: UInt16, at offset: Int) {
        let old = buffer.loadBE16(at: offset)
        buffer.storeBE16(value, at: offset)
        buffer.storeBE16(Checksum.update(checksum, old: old, new: value), at: Self.checksumOffset)
    }

    /// Writes a freshly computed checksum over the pseudo-header and the whole segment.
    @inlinable public func fillChecksum(pseudoHeaderSum: UInt32) {
        buffer.storeBE16(0, at: Self.checksumOffset)
        buffer.storeBE16(Checksum.finish(Checksum.sum(buffer, initial: pseudoHeaderSum)), at: Self.checksumOffset)
    }
}

/// The TCP control bits.
public struct TCPFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)
}

/// A TCP sequence number: compared modulo 2^32 (RFC 1982 serial-number arithmetic, RFC 9293 section 3.4).
public struct SequenceNumber: Hashable, Sendable, Comparable {
    public var value: UInt32
    @inlinable public init(_ value: UInt32) { self.value = value }
    /// `a < b` when b lies less than 2^31 ahead of a, so 0xFFFF_FFF0 < 0x10.
    @inlinable public static func < (lhs: SequenceNumber, rhs: SequenceNumber) -> Bool {
        Int32(bitPattern: lhs.value &- rhs.value) < 0
    }
    @inlinable public static func + (lhs: SequenceNumber, rhs: UInt32) -> SequenceNumber {
        SequenceNumber(lhs.value &+ rhs)
    }
}
