/// A UDP datagram (RFC 768):
///
///      0      7 8     15 16    23 24    31
///     +--------+--------+--------+--------+
///     |     Source      |   Destination   |   0
///     |      Port       |      Port       |
///     +--------+--------+--------+--------+
///     |                 |                 |   4
///     |     Length      |    Checksum     |
///     +--------+--------+--------+--------+
///
/// A checksum of zero means the sender computed none (RFC 768): it stays zero through every rewrite, and a
/// computed checksum that comes out zero is sent as 0xFFFF.
public struct UDPDatagram {
    public let buffer: UnsafeMutableRawBufferPointer

    public static let headerLength = 8
    public static let checksumOffset = 6

    /// A whole datagram: the length field must be at least 8 and fit the buffer; the view covers that length.
    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(PacketError) {
        guard bytes.count >= Self.headerLength else {
            throw .truncated(needed: Self.headerLength, available: bytes.count)
        }
        let length = Int(bytes.loadBE16(at: 4))
        guard length >= Self.headerLength else { throw .badTotalLength(length) }
        guard length <= bytes.count else { throw .truncated(needed: length, available: bytes.count) }
        buffer = bytes.prefix(upTo: length)
    }

    /// Only the 8-byte header is known to be there: the first fragment of a datagram, or a quote in an ICMP error.
    @inlinable
    public init(headerOnly bytes: UnsafeMutableRawBufferPointer) throws(PacketError) {
        guard bytes.count >= Self.headerLength else {
            throw .truncated(needed: Self.headerLength, available: bytes.count)
        }
        buffer = bytes
    }

    @inlinable public init(unchecked bytes: UnsafeMutableRawBufferPointer) { buffer = bytes }

    @inlinable public var sourcePort: Port { Port(buffer.loadBE16(at: 0)) }
    @inlinable public var destinationPort: Port { Port(buffer.loadBE16(at: 2)) }
    @inlinable public var length: Int { Int(buffer.loadBE16(at: 4)) }
    @inlinable public var checksum: UInt16 { buffer.loadBE16(at: Self.checksumOffset) }
    @inlinable public var hasChecksum: Bool { checksum != 0 }
    @inlinable public var payload: UnsafeMutableRawBufferPointer { buffer.suffix(from: Self.headerLength) }

    /// True when there is no checksum to verify, or it verifies.
    @inlinable public func isChecksumValid(pseudoHeaderSum: UInt32) -> Bool {
        !hasChecksum || Checksum.sum(buffer, initial: pseudoHeaderSum) == 0xFFFF
    }

    @inlinable public func setSourcePort(_ port: Port) { setWord(port.value, at: 0) }
    @inlinable public func setDestinationPort(_ port: Port) { setWord(port.value, at: 2) }

    @inlinable public func updateChecksum(addressFrom old: IPv4Address, to new: IPv4Address) {
        guard hasChecksum else { return }
        storeChecksum(Checksum.update(checksum, old: old.value, new: new.value))
    }

    @inlinable func setWord(_ value: UInt16, at offset: Int) {
        let old = buffer.loadBE16(at: offset)
        buffer.storeBE16(value, at: offset)
        guard hasChecksum else { return }
        storeChecksum(Checksum.update(checksum, old: old, new: value))
    }

    @inlinable func storeChecksum(_ value: UInt16) {
        buffer.storeBE16(value == 0 ? 0xFFFF : value, at: Self.checksumOffset)
    }

    /// Writes a freshly computed checksum (0xFFFF where it computes to zero).
    @inlinable public func fillChecksum(pseudoHeaderSum: UInt32) {
        buffer.storeBE16(0, at: Self.checksumOffset)
        storeChecksum(Checksum.finish(Checksum.sum(buffer, initial: pseudoHeaderSum)))
    }
}
