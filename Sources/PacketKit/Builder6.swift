/// IPv6 packets for tests, fuzz seeds and benchmarks (never the data path), as `PacketBuilder` builds IPv4 ones.
extension PacketBuilder {
    /// An IPv6 header, the extension headers given (each whole, its next-header byte filled in here), then
    /// `upper` (whose checksum is the caller's; see below).
    public static func ipv6(
        source: IPv6Address, destination: IPv6Address, nextHeader: UInt8, upper: [UInt8], hopLimit: UInt8 = 64,
        trafficClass: UInt8 = 0, flowLabel: UInt32 = 0, extensions: [(type: UInt8, bytes: [UInt8])] = []
    ) -> [UInt8] {
        var chain: [UInt8] = []
        for (i, e) in extensions.enumerated() {
            var header = e.bytes
            header[0] = i + 1 < extensions.count ? extensions[i + 1].type : nextHeader
            chain += header
        }
        var bytes = [UInt8](repeating: fill, count: 40 + chain.count + upper.count)
        bytes.withUnsafeMutableBytes { b in
            b.storeBE32(0x6000_0000 | UInt32(trafficClass) << 20 | flowLabel & 0xF_FFFF, at: 0)
            b.storeBE16(UInt16(chain.count + upper.count), at: 4)
            b[6] = extensions.first?.type ?? nextHeader
            b[7] = hopLimit
            source.store(to: b, at: 8)
            destination.store(to: b, at: 24)
            for (i, byte) in (chain + upper).enumerated() { b[40 + i] = byte }
        }
        return bytes
    }

    /// A fragment header (RFC 8200 section 4.5) for `ipv6(extensions:)`.
    public static func fragmentHeader(offset: Int, more: Bool, identification: UInt32) -> (type: UInt8, bytes: [UInt8]) {
        var b: [UInt8] = [0, 0]
        b.appendBE(UInt16(offset) | (more ? 1 : 0))
        b.appendBE(identification)
        return (IPv6Packet.NextHeader.fragment, b)
    }

    /// Writes the checksum at `field` of an upper-layer message over the IPv6 pseudo-header.
    public static func fillChecksum6(_ upper: inout [UInt8], field: Int, source: IPv6Address, destination: IPv6Address,
                                     nextHeader: UInt8, length: Int? = nil) {
        upper.withUnsafeMutableBytes { b in
            b.storeBE16(0, at: field)
            let pseudo = source.wordSum &+ destination.wordSum &+ UInt64(length ?? b.count) &+ UInt64(nextHeader)
            var value = Checksum.finish(Checksum.sum(b, initial: UInt32(Checksum.fold(pseudo))))
            if nextHeader == IPv6Packet.NextHeader.udp && value == 0 { value = 0xFFFF }
            b.storeBE16(value, at: field)
        }
    }

    public static func tcp6(
        from source: (IPv6Address, UInt16), to destination: (IPv6Address, UInt16), flags: TCPFlags,
        sequence: UInt32 = 1000, acknowledgment: UInt32 = 0, payload: [UInt8] = [], hopLimit: UInt8 = 64
    ) -> [UInt8] {
        var segment = [UInt8](repeating: 0, count: 20 + payload.count)
        segment.withUnsafeMutableBytes { b in
            b.storeBE16(source.1, at: 0)
            b.storeBE16(destination.1, at: 2)
            b.storeBE32(sequence, at: 4)
            b.storeBE32(acknowledgment, at: 8)
            b[12] = 5 << 4
            b[13] = flags.rawValue
            b.storeBE16(65535, at: 14)
            for (i, byte) in payload.enumerated() { b[20 + i] = byte }
        }
        fillChecksum6(&segment, field: 16, source: source.0, destination: destination.0, nextHeader: 6)
        return ipv6(source: source.0, destination: destination.0, nextHeader: 6, upper: segment, hopLimit: hopLimit)
    }

    public static func udp6(
        from source: (IPv6Address, UInt16), to destination: (IPv6Address, UInt16), payload: [UInt8] = [1, 2, 3, 4],
        hopLimit: UInt8 = 64, extensions: [(type: UInt8, bytes: [UInt8])] = []
    ) -> [UInt8] {
        var datagram = udp6Datagram(from: source, to: destination, payload: payload)
        fillChecksum6(&datagram, field: 6, source: source.0, destination: destination.0, nextHeader: 17)
        return ipv6(source: source.0, destination: destination.0, nextHeader: 17, upper: datagram, hopLimit: hopLimit,
                    extensions: extensions)
    }

    /// A UDP header and payload with a zero checksum (fill it with `fillChecksum6`).
    public static func udp6Datagram(from source: (IPv6Address, UInt16), to destination: (IPv6Address, UInt16),
                                    payload: [UInt8]) -> [UInt8] {
        var d: [UInt8] = []
        d.appendBE(source.1)
        d.appendBE(destination.1)
        d.appendBE(UInt16(8 + payload.count))
        d.appendBE(UInt16(0))
        return d + payload
    }

    /// An ICMPv6 message: type, code, the 32-bit word after the checksum, then `body`.
    public static func icmpv6(
        from source: IPv6Address, to destination: IPv6Address, type: UInt8, code: UInt8 = 0, word: UInt32,
        body: [UInt8], hopLimit: UInt8 = 64
    ) -> [UInt8] {
        var message: [UInt8] = [type, code, 0, 0]
        message.appendBE(word)
        message += body
        fillChecksum6(&message, field: 2, source: source, destination: destination, nextHeader: 58)
        return ipv6(source: source, destination: destination, nextHeader: 58, upper: message, hopLimit: hopLimit)
    }

    public static func echo6(from source: IPv6Address, to destination: IPv6Address, reply: Bool = false,
                             identifier: UInt16, sequence: UInt16 = 1,
                             payload: [UInt8] = Array(repeating: 0x61, count: 32)) -> [UInt8] {
        icmpv6(from: source, to: destination, type: reply ? ICMPv6Type.echoReply : ICMPv6Type.echoRequest,
               word: UInt32(identifier) << 16 | UInt32(sequence), body: payload)
    }
}
