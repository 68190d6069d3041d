/// Recomputes every checksum a packet carries, from scratch, and says which do not verify: the IPv4 header; for
/// whole datagrams the TCP, UDP or ICMP checksum; for ICMP errors the quoted IP header and, where the quote is
/// whole, the quoted datagram's own checksums. For tests, replay checks and fuzzing: it copies, so it is no
/// data-path function.
public enum ChecksumAudit {
    public static func problems(in packet: [UInt8]) -> [String] {
        var copy = packet
        return copy.withUnsafeMutableBytes { b -> [String] in
            if b.count > 0 && b[0] >> 4 == 6 { return problems6(b) }
            guard let ip = try? IPv4Packet(validating: b, verifyChecksum: false) else { return ["unparseable"] }
            var problems: [String] = []
            if !ip.isHeaderChecksumValid { problems.append("ip header") }
            guard !ip.isFragment else { return problems }
            switch ip.protocol {
            case .tcp:
                if let tcp = try? TCPSegment(validating: ip.payload),
                    !tcp.isChecksumValid(pseudoHeaderSum: ip.pseudoHeaderSum) { problems.append("tcp") }
            case .udp:
                if let udp = try? UDPDatagram(validating: ip.payload),
                    !udp.isChecksumValid(pseudoHeaderSum: ip.pseudoHeaderSum) { problems.append("udp") }
            case .icmp:
                guard let icmp = try? ICMPv4Message(validating: ip.payload) else { break }
                if !icmp.isChecksumValid { problems.append("icmp") }
                if icmp.type.isTranslatedError, let quoted = try? IPv4Packet(quoted: icmp.body) {
                    if !quoted.isHeaderChecksumValid { problems.append("quoted ip header") }
                    if quoted.buffer.count == quoted.totalLength {
                        problems += Self.problems(in: Array(quoted.buffer)).map { "quoted \($0)" }
                    }
                }
            default: break
            }
            return problems
        }
    }

    /// The IPv6 side: the TCP, UDP or ICMPv6 checksum over the IPv6 pseudo-header; for ICMPv6 errors, the
    /// quoted packet's where the quote is whole.
    static func problems6(_ b: UnsafeMutableRawBufferPointer) -> [String] {
        guard let ip = try? IPv6Packet(validating: b, quoted: false) else { return ["unparseable"] }
        guard !ip.isFragment || ip.isAtomicFragment else { return [] }
        let whole = ip.upperLayer
        let field: Int
        switch ip.upperProtocol {
        case IPv6Packet.NextHeader.tcp: field = 16
        case IPv6Packet.NextHeader.udp: field = 6
        case IPv6Packet.NextHeader.icmpv6: field = 2
        default: return []
        }
        guard whole.count >= field + 2 else { return ["short upper layer"] }
        // UDP's own length is the upper-layer length its checksum covers (RFC 8200 section 8.1).
        let upper = ip.upperProtocol == IPv6Packet.NextHeader.udp
            ? whole.prefix(upTo: min(whole.count, max(8, Int(whole.loadBE16(at: 4))))) : whole
        var problems: [String] = []
        let name = [6: "tcp", 17: "udp", 58: "icmpv6"][Int(ip.upperProtocol)]!
        if ip.upperProtocol == IPv6Packet.NextHeader.udp && upper.loadBE16(at: 6) == 0 { problems.append("udp zero") }
        let pseudo = ip.pseudoHeaderSum(protocol: ip.upperProtocol, length: upper.count)
        if Checksum.sum(upper, initial: UInt32(Checksum.fold(pseudo))) != 0xFFFF { problems.append(name) }
        if ip.upperProtocol == IPv6Packet.NextHeader.icmpv6, upper.count >= 8, ICMPv6Type.isError(upper[0]),
           let quoted = try? IPv6Packet(validating: upper.suffix(from: 8), quoted: true),
           quoted.buffer.count == 40 + quoted.payloadLength {
            problems += Self.problems(in: Array(quoted.buffer)).map { "quoted \($0)" }
        }
        return problems
    }
}
