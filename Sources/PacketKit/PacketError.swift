/// Why a buffer is not a packet we can work with. Each case names what was wrong, with the numbers that show it,
/// so that a drop counter or an error line can say more than "malformed".
public enum PacketError: Error, Equatable, Hashable, Sendable {
    /// The buffer ends before a field the header declares: `needed` bytes, only `available` present.
    case truncated(needed: Int, available: Int)
    /// IPv4 version nibble other than 4.
    case badVersion(UInt8)
    /// IPv4 IHL below 5 words, or pointing past the buffer; TCP data offset below 5 words, or past the segment.
    case badHeaderLength(Int)
    /// IPv4 total length smaller than its own header, or UDP length smaller than 8.
    case badTotalLength(Int)
    /// A checksum that does not verify.
    case badChecksum
    /// A protocol field PacketKit was asked to parse as something it is not (for example an ICMP error type
    /// that does not quote a datagram).
    case unsupported(UInt8)
}
