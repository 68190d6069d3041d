/// An IPv6 address, held as two 64-bit halves in host order (so `64:ff9b::1` is `high 0x0064_ff9b_0000_0000`,
/// `low 1`): compared, hashed and masked a word at a time.
public struct IPv6Address: Hashable, Comparable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    public var high: UInt64
    public var low: UInt64

    @inlinable public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The address stored at `offset` of a packet.
    @inlinable public init(_ bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        high = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        low = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset &+ 8, as: UInt64.self))
    }

    @inlinable public func store(to bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeBytes(of: high.bigEndian, toByteOffset: offset, as: UInt64.self)
        bytes.storeBytes(of: low.bigEndian, toByteOffset: offset &+ 8, as: UInt64.self)
    }

    /// Byte `i` (0 is the most significant).
    @inlinable public func byte(_ i: Int) -> UInt8 {
        i < 8 ? UInt8(truncatingIfNeeded: high >> (56 - 8 * i)) : UInt8(truncatingIfNeeded: low >> (56 - 8 * (i - 8)))
    }

    /// The address with byte `i` replaced.
    @inlinable public func setting(byte i: Int, to value: UInt8) -> IPv6Address {
        var a = self
        if i < 8 {
            let shift = UInt64(56 - 8 * i)
            a.high = a.high & ~(0xFF << shift) | UInt64(value) << shift
        } else {
            let shift = UInt64(56 - 8 * (i - 8))
            a.low = a.low & ~(0xFF << shift) | UInt64(value) << shift
        }
        return a
    }

    /// The one's-complement sum of its eight 16-bit words (what it adds to a pseudo-header), unfolded.
    @inlinable public var wordSum: UInt64 {
        (high >> 48) &+ (high >> 32 & 0xFFFF) &+ (high >> 16 & 0xFFFF) &+ (high & 0xFFFF)
            &+ (low >> 48) &+ (low >> 32 & 0xFFFF) &+ (low >> 16 & 0xFFFF) &+ (low & 0xFFFF)
    }

    @inlinable public static func < (a: IPv6Address, b: IPv6Address) -> Bool {
        a.high != b.high ? a.high < b.high : a.low < b.low
    }

    /// Parses RFC 4291 section 2.2 text: eight groups of one to four hex digits, one `::` for a run of zero
    /// groups, and an optional dotted-quad IPv4 address as the last 32 bits (`::ffff:192.0.2.1`). No zone, no
    /// brackets.
    public init?(_ text: String) {
        guard !text.isEmpty, text.count <= 45, text.allSatisfy(\.isASCII) else { return nil }
        var groups: [UInt16] = []
        var tail: [UInt16] = []
        var sawGap = false
        // Split at "::" by hand: PacketKit does not link Foundation.
        let chars = Array(text)
        var halves: [String] = []
        var start = 0, i = 0
        while i < chars.count {
            if chars[i] == ":" && i + 1 < chars.count && chars[i + 1] == ":" {
                halves.append(String(chars[start..<i]))
                i += 2
                start = i
            } else {
                i += 1
            }
        }
        halves.append(String(chars[start...]))
        guard halves.count <= 2 else { return nil }
        func parse(_ part: String, into out: inout [UInt16], last: Bool) -> Bool {
            guard !part.isEmpty else { return true }
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, piece) in pieces.enumerated() {
                if last && i == pieces.count - 1 && piece.contains(".") {
                    guard let v4 = IPv4Address(String(piece)) else { return false }
                    out.append(UInt16(v4.value >> 16))
                    out.append(UInt16(v4.value & 0xFFFF))
                    continue
                }
                guard (1...4).contains(piece.count), let value = UInt16(piece, radix: 16),
                      piece.allSatisfy(\.isHexDigit) else { return false }
                out.append(value)
            }
            return true
        }
        if halves.count == 2 {
            sawGap = true
            guard parse(halves[0], into: &groups, last: false), parse(halves[1], into: &tail, last: true) else {
                return nil
            }
            guard groups.count + tail.count <= 7 else { return nil }
            groups += [UInt16](repeating: 0, count: 8 - groups.count - tail.count) + tail
        } else {
            guard parse(halves[0], into: &groups, last: true) else { return nil }
        }
        guard groups.count == 8 || (sawGap && groups.count == 8) else { return nil }
        high = groups[0..<4].reduce(0) { $0 << 16 | UInt64($1) }
        low = groups[4..<8].reduce(0) { $0 << 16 | UInt64($1) }
    }

    /// RFC 5952 text: lower case, leading zeros dropped, the longest run of two or more zero groups (the first
    /// of equals) as `::`.
    public var description: String {
        let groups = (0..<8).map { i -> UInt16 in
            let word = i < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> (48 - 16 * UInt64(i % 4)))
        }
        var bestStart = -1, bestLength = 1
        var i = 0
        while i < 8 {
            guard groups[i] == 0 else { i += 1; continue }
            var j = i
            while j < 8 && groups[j] == 0 { j += 1 }
            if j - i > bestLength { bestStart = i; bestLength = j - i }
            i = j
        }
        func hex(_ range: Range<Int>) -> String { range.map { String(groups[$0], radix: 16) }.joined(separator: ":") }
        guard bestStart >= 0 else { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }
}

/// An IPv6 prefix in CIDR form (`fd00::/8`), kept with its host bits cleared.
public struct IPv6Prefix: Hashable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    public let network: IPv6Address
    public let length: Int
    @usableFromInline let maskHigh: UInt64
    @usableFromInline let maskLow: UInt64

    public init?(network: IPv6Address, length: Int) {
        guard (0...128).contains(length) else { return nil }
        self.length = length
        maskHigh = length >= 64 ? .max : (length == 0 ? 0 : ~UInt64(0) << (64 - length))
        maskLow = length <= 64 ? 0 : ~UInt64(0) << (128 - length)
        self.network = IPv6Address(high: network.high & maskHigh, low: network.low & maskLow)
    }

    /// Parses `address/len`; a bare address means `/128`. Host bits set are rejected, as for IPv4.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let address = IPv6Address(String(parts[0])) else { return nil }
        var length = 128
        if parts.count == 2 {
            guard (1...3).contains(parts[1].count), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
                  let parsed = Int(parts[1]), parsed <= 128 else { return nil }
            length = parsed
        }
        self.init(network: address, length: length)
        guard self.network == address else { return nil }
    }

    @inlinable public func contains(_ address: IPv6Address) -> Bool {
        address.high & maskHigh == network.high && address.low & maskLow == network.low
    }

    public var description: String { "\(network)/\(length)" }
}
