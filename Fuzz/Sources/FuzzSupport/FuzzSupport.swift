// What the fuzz targets share: reading control bytes off the front of an input, and fixing up the checksums a
// mutation breaks, so that the engine's parsers see packets that pass their checks and the fuzzer reaches what lies
// behind them. The fix-ups are written out here from RFC 1071 rather than taken from PacketKit, so that a mistake
// in PacketKit's checksum code is not mirrored into the inputs that are meant to test it.
import PacketKit

/// Consumes an input from the front: control bytes first, the rest is the payload.
public struct FuzzInput {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset = 0

    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        bytes = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    }

    public var remaining: Int { bytes.count - offset }
    public var isEmpty: Bool { remaining == 0 }

    /// The next byte, or 0 past the end.
    public mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    /// Up to `count` bytes.
    public mutating func take(_ count: Int) -> [UInt8] {
        let n = max(0, min(count, remaining))
        defer { offset += n }
        return Array(bytes[offset..<(offset + n)])
    }

    public mutating func rest() -> [UInt8] { take(remaining) }
}

/// RFC 1071 one's-complement sum of `bytes` (odd length padded with a zero byte), not complemented.
public func onesComplementSum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt16 {
    var sum = UInt64(initial)
    var i = 0
    while i + 1 < bytes.count {
        sum += UInt64(bytes[i]) << 8 | UInt64(bytes[i + 1])
        i += 2
    }
    if i < bytes.count { sum += UInt64(bytes[i]) << 8 }
    while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
    return UInt16(sum)
}

/// The IHL the packet declares, in bytes, when it is IPv4 with at least that many bytes present; else nil.
public func declaredHeaderLength(_ p: UnsafeMutableRawBufferPointer) -> Int? {
    guard p.count >= 20, p[0] >> 4 == 4 else { return nil }
    let ihl = Int(p[0] & 0x0F) * 4
    return ihl >= 20 && ihl <= p.count ? ihl : nil
}

/// Recomputes the IPv4 header checksum over the header length the packet declares, when the bytes hold that much.
public func fixIPv4HeaderChecksum(_ p: UnsafeMutableRawBufferPointer) {
    guard let ihl = declaredHeaderLength(p) else { return }
    p[10] = 0
    p[11] = 0
    let c = ~onesComplementSum(UnsafeRawBufferPointer(rebasing: p[0..<ihl]))
    p[10] = UInt8(c >> 8)
    p[11] = UInt8(c & 0xFF)
}

/// The TCP/UDP pseudo-header sum of an IPv4 packet for a transport length of `length`.
public func pseudoHeaderSum(_ p: UnsafeMutableRawBufferPointer, length: Int) -> UInt32 {
    var sum: UInt32 = 0
    for i in stride(from: 12, to: 20, by: 2) { sum += UInt32(p[i]) << 8 | UInt32(p[i + 1]) }
    return sum + UInt32(p[9]) + UInt32(length & 0xFFFF)
}

/// The offset of the transport checksum field for TCP (16), UDP (6) and ICMP (2); nil for other protocols.
public func transportChecksumOffset(_ proto: UInt8) -> Int? {
    switch proto {
    case 6: 16
    case 17: 6
    case 1: 2
    default: nil
    }
}

/// Recomputes the TCP, UDP or ICMP checksum of a whole (unfragmented) datagram over the payload its total length
/// declares; for an ICMP error whose quote is whole, the quote's own header and transport checksums first. Returns
/// whether it wrote one. A UDP checksum that computes to 0 is sent as 0xFFFF (RFC 768).
@discardableResult
public func fixTransportChecksum(_ p: UnsafeMutableRawBufferPointer, depth: Int = 0) -> Bool {
    guard let ihl = declaredHeaderLength(p) else { return false }
    let total = Int(p[2]) << 8 | Int(p[3])
    guard total >= ihl, total <= p.count, Int(p[6]) << 8 & 0x3F00 | Int(p[7]) == 0,
          let field = transportChecksumOffset(p[9]), total - ihl >= field + 2 else { return false }
    let l4 = UnsafeMutableRawBufferPointer(rebasing: p[ihl..<total])
    let proto = p[9]
    if proto == 1, depth == 0, [3, 4, 5, 11, 12].contains(l4[0]), l4.count >= 28 {
        // An ICMP error: fix the quoted datagram first, since the outer checksum covers it.
        let quote = UnsafeMutableRawBufferPointer(rebasing: l4[8...])
        fixIPv4HeaderChecksum(quote)
        if let qihl = declaredHeaderLength(quote), Int(quote[2]) << 8 | Int(quote[3]) == quote.count, qihl <= quote.count {
            fixTransportChecksum(quote, depth: depth + 1)
        }
    }
    // UDP sums the datagram its own length field declares; the pseudo-header carries the IP payload length.
    var covered = l4.count
    if proto == 17, case let length = Int(l4[4]) << 8 | Int(l4[5]), length >= 8, length <= l4.count { covered = length }
    l4[field] = 0
    l4[field + 1] = 0
    let initial = proto == 1 ? 0 : pseudoHeaderSum(p, length: l4.count)
    var c = ~onesComplementSum(UnsafeRawBufferPointer(rebasing: l4[0..<covered]), initial: initial)
    if proto == 17 && c == 0 { c = 0xFFFF }
    l4[field] = UInt8(c >> 8)
    l4[field + 1] = UInt8(c & 0xFF)
    return true
}

/// The pcap seeds hold packets between private hosts and the internet with whatever addresses the capture had;
/// these put one into the address plan of the fuzzed NAT.
public enum Readdress {
    /// Sets the 32-bit address at `offset` (12 source, 16 destination).
    public static func set(_ p: UnsafeMutableRawBufferPointer, at offset: Int, _ address: UInt32) {
        guard p.count >= offset + 4 else { return }
        p[offset] = UInt8(address >> 24)
        p[offset + 1] = UInt8(address >> 16 & 0xFF)
        p[offset + 2] = UInt8(address >> 8 & 0xFF)
        p[offset + 3] = UInt8(address & 0xFF)
    }

    public static func get(_ p: UnsafeMutableRawBufferPointer, at offset: Int) -> UInt32 {
        guard p.count >= offset + 4 else { return 0 }
        return UInt32(p[offset]) << 24 | UInt32(p[offset + 1]) << 16 | UInt32(p[offset + 2]) << 8 | UInt32(p[offset + 3])
    }
}

/// Stops the run with `message` when `condition` fails. (`precondition` drops its message in optimized builds;
/// `fatalError` keeps it, so the log says which check failed and on what.)
@inlinable
public func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

/// Bytes as grouped hex, as the tests write fixtures.
public func hex<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
    var out = ""
    for (i, b) in bytes.enumerated() {
        if i > 0 && i % 2 == 0 { out += " " }
        out += String(b, radix: 16).count == 1 ? "0" + String(b, radix: 16) : String(b, radix: 16)
    }
    return out
}
