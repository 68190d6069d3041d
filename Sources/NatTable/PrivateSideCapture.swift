import PacketKit

extension NAT {
    /// Replaying a capture taken on the private side of a NAT (a host's own tcpdump) needs the replies as the
    /// internet would have sent them: to the external endpoint the NAT mapped, not to the private host. This
    /// rewrites such a reply in place, in front of `translate`, which should then turn it back into the packet
    /// that was captured. It reads the table and changes nothing in it.
    ///
    /// Returns false, leaving the packet alone, when it is not a reply to a private host or no mapping exists for
    /// it (then `translate` drops it as not from a private source, which is what a real NAT would see of it).
    public func readdressCapturedReply(_ packet: UnsafeMutableRawBufferPointer) -> Bool {
        guard let ip = try? IPv4Packet(validating: packet, verifyChecksum: false),
            isPrivate(ip.destination.value), !isPrivate(ip.source.value), poolIndex(ip.destination.value) == nil
        else { return false }
        let host = ip.destination
        guard ip.fragmentOffset == 0 else {
            // A later fragment carries no ports; the host's address maps to its paired pool address.
            ip.setDestination(IPv4Address(pool[pairedPoolIndex(host.value)]))
            return true
        }
        guard let transport = try? Transport(ip, verify: false) else { return false }
        if case .icmpError(let icmp) = transport {
            guard let quoted = try? IPv4Packet(quoted: icmp.body), quoted.source == host,
                let cls = Self.protocolClass(quoted.protocol), quoted.payload.count >= 8
            else { return false }
            let l4 = quoted.payload
            let port = cls == .icmp ? l4.loadBE16(at: 4) : l4.loadBE16(at: 0)
            let m = store.findMapping(internal: cls.rawValue, host.value, port)
            guard m != 0 else { return false }
            let map = store.mappings[Int(m)]
            Self.rewriteQuoted(icmp, quoted, cls, sourceSide: true, IPv4Address(map.externalAddress), map.externalPort)
            ip.setDestination(IPv4Address(map.externalAddress))
            return true
        }
        let m = store.findMapping(internal: transport.protocolClass.rawValue, host.value, transport.ports.destination)
        guard m != 0 else { return false }
        let map = store.mappings[Int(m)]
        transport.setDestinationPort(map.externalPort)
        transport.updateChecksum(addressFrom: host, to: IPv4Address(map.externalAddress))
        ip.setDestination(IPv4Address(map.externalAddress))
        return true
    }
}
