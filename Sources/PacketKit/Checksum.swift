/// The Internet checksum: RFC 1071 (computing it), RFC 1624 (updating it incrementally).
///
/// Sums here are one's-complement sums of 16-bit big-endian words, kept as plain integers in "network value"
/// form: the word `45 00` adds 0x4500. A checksum field holds the complement of the folded sum.
public enum Checksum {
    /// The folded one's-complement sum of `bytes` plus `initial`, not complemented.
    ///
    /// Fast on large buffers: it adds 16 bytes per step into two 64-bit accumulators of 32-bit lanes, so no
    /// carry has to be propagated inside the loop (RFC 1071 section 2(B): the sum is byte-order independent, so
    /// the lanes are loaded in host order and swapped once at the end). An odd final byte is padded with zero.
    @inlinable
    public static func sum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt16 {
        let count = bytes.count
        guard count > 0, let base = bytes.baseAddress else { return fold(UInt64(initial)) }
        var a: UInt64 = 0
        var b: UInt64 = 0
        var i = 0
        while i &+ 16 <= count {
            let w0 = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let w1 = base.loadUnaligned(fromByteOffset: i &+ 8, as: UInt64.self)
            a &+= (w0 & 0xFFFF_FFFF) &+ (w0 >> 32)
            b &+= (w1 & 0xFFFF_FFFF) &+ (w1 >> 32)
            i &+= 16
        }
        while i &+ 4 <= count {
            a &+= UInt64(base.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            i &+= 4
        }
        if i &+ 2 <= count {
            b &+= UInt64(base.loadUnaligned(fromByteOffset: i, as: UInt16.self))
            i &+= 2
        }
        if i < count {
            // The odd byte is the high half of a big-endian word padded with zero.
            #if _endian(little)
            b &+= UInt64(base.load(fromByteOffset: i, as: UInt8.self))
            #else
            b &+= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << 8
            #endif
        }
        // Fold the two accumulators without losing a carry: each is far below 2^63 for any real buffer.
        var host = fold(a &+ b)
        #if _endian(little)
        host = host.byteSwapped
        #endif
        return fold(UInt64(host) &+ UInt64(initial))
    }

    @inlinable
    public static func sum(_ bytes: UnsafeMutableRawBufferPointer, initial: UInt32 = 0) -> UInt16 {
        sum(UnsafeRawBufferPointer(bytes), initial: initial)
    }

    /// Folds a wide one's-complement sum to 16 bits (end-around carry).
    @inlinable
    public static func fold(_ value: UInt64) -> UInt16 {
        var s = (value & 0xFFFF_FFFF) &+ (value >> 32)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        return UInt16(truncatingIfNeeded: s)
    }

    /// The sum of the TCP/UDP pseudo-header (RFC 793 section 3.1, RFC 768): source, destination, zero+protocol,
    /// and the transport length.
    @inlinable
    public static func pseudoHeaderSum(
        source: IPv4Address, destination: IPv4Address, protocol proto: IPProtocol, length: Int
    ) -> UInt32 {
        (source.value >> 16) &+ (source.value & 0xFFFF) &+ (destination.value >> 16)
            &+ (destination.value & 0xFFFF) &+ UInt32(proto.value) &+ UInt32(truncatingIfNeeded: length & 0xFFFF)
    }

    /// The checksum field value for data whose one's-complement sum is `sum`.
    @inlinable public static func finish(_ sum: UInt16) -> UInt16 { ~sum }

    /// RFC 1624 equation 3: the new checksum when one 16-bit word covered by `checksum` changes from `old` to
    /// `new`: HC' = ~(~HC + ~m + m'). It carries an existing error through unchanged.
    ///
    /// Its one flaw: when every word the checksum covers is zero afterwards, the true sum is +0 and only 0xFFFF
    /// complements it, but equation 3 yields 0x0000 (its sum comes out as -0, 0xFFFF). Only ICMP, with no
    /// pseudo-header, can get there (an echo reply with identifier, sequence and data all 0). 0x0000 is therefore
    /// written as 0xFFFF, which verifies wherever 0x0000 would (they are the two zeros of one's complement).
    @inlinable
    public static func update(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        nonZero(~fold(UInt64(~checksum) &+ UInt64(~old) &+ UInt64(new)))
    }

    /// RFC 1624 equation 3 for a 32-bit field (an address): both of its words at once.
    @inlinable
    public static func update(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        nonZero(~fold(
            UInt64(~checksum) &+ UInt64(~UInt16(truncatingIfNeeded: old >> 16)) &+ UInt64(~UInt16(truncatingIfNeeded: old))
                &+ UInt64(new >> 16) &+ UInt64(new & 0xFFFF)))
    }

    @inlinable static func nonZero(_ checksum: UInt16) -> UInt16 { checksum == 0 ? 0xFFFF : checksum }
}
