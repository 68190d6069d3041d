/// Recomputes every checksum a packet carries, from scratch, and says which do not verify: the IPv4 header; for
/// whole datagrams the TCP, UDP or ICMP checksum; for ICMP errors the quoted IP header and, where the quote is
/// whole, the quoted datagram's own checksums. For tests, replay checks and fuzzing: it copies, so it is no
/// data-path function.
public enum ChecksumAudit {
    public static func problems(in packet: [UInt8]) -> [String] {
        var copy = packet
        return copy.withUnsafeMutableBytes { b -> [String] in
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
}
