/// Builds whole, valid packets: for tests, fuzz seeds and benchmarks, never for the data path. Every byte is
/// written explicitly over a buffer pre-filled with 0xA5, so a field the builder forgot shows up as 0xA5.
public enum PacketBuilder {
    public static let fill: UInt8 = 0xA5

    /// An IPv4 header followed by `transport`, with a correct header checksum. The transport's own checksum is
    /// the caller's (see the protocol builders below).
    public static func ipv4(
        source: IPv4Address, destination: IPv4Address, protocol proto: IPProtocol, transport: [UInt8],
        identification: UInt16 = 1, ttl: UInt8 = 64, dontFragment: Bool = false, moreFragments: Bool = false,
        fragmentOffset: Int = 0, options: [UInt8] = []
    ) -> [UInt8] {
        precondition(options.count % 4 == 0 && options.count <= 40 && fragmentOffset % 8 == 0)
        let headerLength = 20 + options.count
        var bytes = [UInt8](repeating: fill, count: headerLength + transport.count)
        bytes.withUnsafeMutableBytes { b in
            b[0] = 0x40 | UInt8(headerLength / 4)
            b[1] = 0
            b.storeBE16(UInt16(headerLength + transport.count), at: 2)
            b.storeBE16(identification, at: 4)
            b.storeBE16((dontFragment ? 0x4000 : 0) | (moreFragments ? 0x2000 : 0) | UInt16(fragmentOffset / 8), at: 6)
            b[8] = ttl
            b[9] = proto.value
            b.storeBE32(source.value, at: 12)
            b.storeBE32(destination.value, at: 16)
            for (i, byte) in options.enumerated() { b[20 + i] = byte }
            for (i, byte) in transport.enumerated() { b[headerLength + i] = byte }
            IPv4Packet(unchecked: b).fillHeaderChecksum()
        }
        return bytes
    }

    public static func tcp(
        from source: (IPv4Address, UInt16), to destination: (IPv4Address, UInt16), flags: TCPFlags,
        sequence: UInt32 = 1000, acknowledgment: UInt32 = 0, window: UInt16 = 65535, options: [UInt8] = [],
        payload: [UInt8] = [], identification: UInt16 = 1
    ) -> [UInt8] {
        precondition(options.count % 4 == 0)
        var segment = [UInt8](repeating: fill, count: 20 + options.count + payload.count)
        segment.withUnsafeMutableBytes { b in
            b.storeBE16(source.1, at: 0)
            b.storeBE16(destination.1, at: 2)
            b.storeBE32(sequence, at: 4)
            b.storeBE32(acknowledgment, at: 8)
            b[12] = UInt8((20 + options.count) / 4) << 4
            b[13] = flags.rawValue
            b.storeBE16(window, at: 14)
            b.storeBE16(0, at: 18)
            for (i, byte) in options.enumerated() { b[20 + i] = byte }
            for (i, byte) in payload.enumerated() { b[20 + options.count + i] = byte }
            TCPSegment(unchecked: b).fillChecksum(pseudoHeaderSum: Checksum.pseudoHeaderSum(
                source: source.0, destination: destination.0, protocol: .tcp, length: b.count))
        }
        return ipv4(source: source.0, destination: destination.0, protocol: .tcp, transport: segment,
                    identification: identification, dontFragment: true)
    }

    /// With `checksum: false` the UDP checksum is 0, "none" (RFC 768).
    public static func udp(
        from source: (IPv4Address, UInt16), to destination: (IPv4Address, UInt16), payload: [UInt8] = [],
        checksum: Bool = true, identification: UInt16 = 1
    ) -> [UInt8] {
        ipv4(source: source.0, destination: destination.0, protocol: .udp,
             transport: udpDatagram(from: source, to: destination, payload: payload, checksum: checksum),
             identification: identification)
    }

    /// The UDP datagram alone (header and payload), for building fragments.
    public static func udpDatagram(
        from source: (IPv4Address, UInt16), to destination: (IPv4Address, UInt16), payload: [UInt8],
        checksum: Bool = true
    ) -> [UInt8] {
        var datagram = [UInt8](repeating: fill, count: 8 + payload.count)
        datagram.withUnsafeMutableBytes { b in
            b.storeBE16(source.1, at: 0)
            b.storeBE16(destination.1, at: 2)
            b.storeBE16(UInt16(b.count), at: 4)
            b.storeBE16(0, at: 6)
            for (i, byte) in payload.enumerated() { b[8 + i] = byte }
            if checksum {
                UDPDatagram(unchecked: b).fillChecksum(pseudoHeaderSum: Checksum.pseudoHeaderSum(
                    source: source.0, destination: destination.0, protocol: .udp, length: b.count))
            }
        }
        return datagram
    }

    /// An ICMP query (echo or timestamp request/reply).
    public static func icmpQuery(
        from source: IPv4Address, to destination: IPv4Address, type: ICMPv4Type = .echoRequest,
        identifier: UInt16, sequence: UInt16 = 1, payload: [UInt8] = Array(repeating: 0x61, count: 32)
    ) -> [UInt8] {
        ipv4(source: source, destination: destination, protocol: .icmp,
             transport: icmpMessage(type: type, code: 0, word: UInt32(identifier) << 16 | UInt32(sequence),
                                    body: payload))
    }

    /// An ICMP error quoting `quoting` (a whole IPv4 packet), cut to `quoteLength` bytes (RFC 792: the header
    /// and at least 8 bytes; RFC 1812 routers quote up to 576 bytes in all).
    public static func icmpError(
        from source: IPv4Address, to destination: IPv4Address, type: ICMPv4Type, code: UInt8, quoting: [UInt8],
        quoteLength: Int? = nil, nextHopMTU: UInt16 = 0
    ) -> [UInt8] {
        let quote = Array(quoting.prefix(quoteLength ?? min(quoting.count, 548)))
        return ipv4(source: source, destination: destination, protocol: .icmp,
                    transport: icmpMessage(type: type, code: code, word: UInt32(nextHopMTU), body: quote))
    }

    static func icmpMessage(type: ICMPv4Type, code: UInt8, word: UInt32, body: [UInt8]) -> [UInt8] {
        var message = [UInt8](repeating: fill, count: 8 + body.count)
        message.withUnsafeMutableBytes { b in
            b[0] = type.value
            b[1] = code
            b.storeBE32(word, at: 4)
            for (i, byte) in body.enumerated() { b[8 + i] = byte }
            ICMPv4Message(unchecked: b).fillChecksum()
        }
        return message
    }
}

extension Array where Element == UInt8 {
    /// Bytes from grouped hex, as fixtures are written: `"4500 0054 ..."`. Whitespace is ignored.
    public init?(hex: String) {
        let digits = hex.filter { !$0.isWhitespace }
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            guard let byte = UInt8(digits[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        self = bytes
    }
}
