import PacketKit

/// One line naming a packet the way tcpdump would: protocol, endpoints, and what kind of ICMP message.
public enum PacketSummary {
    public static func describe(_ packet: [UInt8]) -> String {
        var copy = packet
        return copy.withUnsafeMutableBytes { b -> String in
            guard let ip = try? IPv4Packet(validating: b, verifyChecksum: false) else {
                return "(\(packet.count) bytes, not a valid IPv4 datagram)"
            }
            let fragment = ip.isFragment ? " frag id=\(ip.identification) off=\(ip.fragmentOffset)" : ""
            guard ip.fragmentOffset == 0 else { return "\(ip.protocol) \(ip.source) > \(ip.destination)\(fragment)" }
            let l4 = ip.payload
            switch ip.protocol {
            // The guard binds to each pattern: `case .tcp, .udp where ...` would apply it to .udp alone.
            case .tcp where l4.count >= 4, .udp where l4.count >= 4:
                return "\(ip.protocol) \(ip.source):\(l4.loadBE16(at: 0)) > \(ip.destination):\(l4.loadBE16(at: 2))\(fragment)"
            case .icmp where l4.count >= 8:
                let icmp = ICMPv4Message(unchecked: l4)
                if icmp.type.isQuery {
                    return "icmp \(ip.source) > \(ip.destination) \(icmp.type) id=\(icmp.identifier)\(fragment)"
                }
                let quote = Array(icmp.body)
                return "icmp \(ip.source) > \(ip.destination) \(icmp.type) code=\(icmp.code) quoting [\(describe(quote))]"
            default:
                return "\(ip.protocol) \(ip.source) > \(ip.destination)\(fragment)"
            }
        }
    }
}
