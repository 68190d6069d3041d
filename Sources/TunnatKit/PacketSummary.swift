import PacketKit

/// One line naming a packet the way tcpdump would: protocol, endpoints, and what kind of ICMP message.
public enum PacketSummary {
    public static func describe(_ packet: [UInt8]) -> String {
        var copy = packet
        return copy.withUnsafeMutableBytes { b -> String in
            if b.count > 0 && b[0] >> 4 == 6 { return describe6(b) }
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

    /// An IPv6 packet (NAT64): `udp [fd00:1::a]:4000 > [2001:db8:64::c613:7]:53`, ICMPv6 by type and code.
    static func describe6(_ b: UnsafeMutableRawBufferPointer) -> String {
        guard let ip = try? IPv6Packet(validating: b) else { return "(\(b.count) bytes, not a valid IPv6 packet)" }
        let fragment = ip.isFragment ? " frag id=\(ip.fragmentIdentification) off=\(ip.fragmentOffset)" : ""
        let proto = ip.upperProtocol
        let name = proto == IPv6Packet.NextHeader.icmpv6 ? "icmp6" : "\(IPProtocol(proto))"
        let l4 = ip.upperLayer
        guard ip.fragmentOffset == 0 else { return "\(name) \(ip.source) > \(ip.destination)\(fragment)" }
        switch proto {
        case IPv6Packet.NextHeader.tcp where l4.count >= 4, IPv6Packet.NextHeader.udp where l4.count >= 4:
            return "\(name) [\(ip.source)]:\(l4.loadBE16(at: 0)) > [\(ip.destination)]:\(l4.loadBE16(at: 2))\(fragment)"
        case IPv6Packet.NextHeader.icmpv6 where l4.count >= 2:
            return "\(name) \(ip.source) > \(ip.destination) type=\(l4[0]) code=\(l4[1])\(fragment)"
        default:
            return "\(name) \(ip.source) > \(ip.destination)\(fragment)"
        }
    }
}
