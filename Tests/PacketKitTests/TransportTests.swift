import PacketKit
import Testing

@Suite struct TCPTests {
    @Test func parsesFieldsAndOptions() throws {
        let packet = PacketBuilder.tcp(from: (IPv4Address(10, 0, 0, 1), 40000), to: (IPv4Address(198, 18, 1, 1), 443),
                                       flags: [.syn, .ece, .cwr], sequence: 0xFFFF_FFF0, window: 29200,
                                       options: [0x02, 0x04, 0x05, 0xB4])
        try withPacket(packet) { b throws in
            let ip = try IPv4Packet(validating: b)
            let tcp = try TCPSegment(validating: ip.payload)
            #expect(tcp.sourcePort == Port(40000) && tcp.destinationPort == Port(443))
            #expect(tcp.flags == [.syn, .ece, .cwr])
            #expect(tcp.headerLength == 24 && Array(tcp.options) == [0x02, 0x04, 0x05, 0xB4])
            #expect(tcp.window == 29200)
            #expect(tcp.isChecksumValid(pseudoHeaderSum: ip.pseudoHeaderSum))
            #expect(tcp.sequenceNumber < tcp.sequenceNumber + 0x20, "wraps around 2^32")
        }
    }

    @Test(arguments: [
        ("short", 19, UInt8(0x50), PacketError.truncated(needed: 20, available: 19)),
        ("data offset 4", 20, UInt8(0x40), .badHeaderLength(16)),
        ("data offset past end", 20, UInt8(0x60), .truncated(needed: 24, available: 20)),
    ])
    func rejectsMalformedHeaders(name: String, length: Int, offsetByte: UInt8, expected: PacketError) {
        var bytes = [UInt8](repeating: 0, count: length)
        if length > 12 { bytes[12] = offsetByte }
        _ = bytes.withUnsafeMutableBytes { b in #expect(throws: expected, "\(name)") { try TCPSegment(validating: b) } }
    }

    @Test func portAndAddressRewritesKeepChecksumValid() throws {
        let packet = PacketBuilder.tcp(from: (IPv4Address(10, 0, 0, 1), 40000), to: (IPv4Address(198, 18, 1, 1), 443),
                                       flags: [.ack], payload: Array("hello".utf8))
        try withPacket(packet) { b throws in
            let ip = try IPv4Packet(validating: b)
            let tcp = try TCPSegment(validating: ip.payload)
            tcp.setSourcePort(Port(1025))
            tcp.updateChecksum(addressFrom: ip.source, to: IPv4Address(198, 18, 0, 1))
            ip.setSource(IPv4Address(198, 18, 0, 1))
            #expect(tcp.isChecksumValid(pseudoHeaderSum: ip.pseudoHeaderSum))
        }
    }
}

@Suite struct UDPTests {
    @Test(arguments: [
        ("short", "0035 0035 00", PacketError.truncated(needed: 8, available: 5)),
        ("length 7", "0035 0035 0007 0000", .badTotalLength(7)),
        ("length past end", "0035 0035 0010 0000", .truncated(needed: 16, available: 8)),
    ])
    func rejectsMalformedHeaders(name: String, hex: String, expected: PacketError) {
        withPacket([UInt8](hex: hex)!) { b in #expect(throws: expected, "\(name)") { try UDPDatagram(validating: b) } }
    }

    @Test func headerOnlyAcceptsFirstFragmentWhoseLengthRunsPastIt() throws {
        try withPacket([UInt8](hex: "007b 0089 0400 0000 0000")!) { b throws in
            #expect(throws: PacketError.truncated(needed: 1024, available: 10)) { try UDPDatagram(validating: b) }
            #expect(try UDPDatagram(headerOnly: b).length == 1024)
        }
    }
}

@Suite struct ICMPv4Tests {
    @Test func echoFieldsAndIdentifierRewrite() throws {
        let packet = PacketBuilder.icmpQuery(from: IPv4Address(10, 0, 0, 1), to: IPv4Address(10, 0, 0, 2),
                                             identifier: 0x1234, sequence: 9)
        try withPacket(packet) { b throws in
            let icmp = try ICMPv4Message(validating: IPv4Packet(validating: b).payload)
            #expect(icmp.type == .echoRequest && icmp.type.isQuery && icmp.type.isQueryRequest)
            #expect(icmp.identifier == Port(0x1234) && icmp.sequenceNumber == 9)
            #expect(icmp.isChecksumValid)
            icmp.setIdentifier(Port(0xFFFE))
            #expect(icmp.isChecksumValid)
        }
    }

    @Test func errorMessagesQuoteTheDatagram() throws {
        let original = PacketBuilder.udp(from: (IPv4Address(198, 18, 0, 1), 33434), to: (IPv4Address(198, 19, 0, 9), 33434))
        let error = PacketBuilder.icmpError(from: IPv4Address(198, 19, 0, 254), to: IPv4Address(198, 18, 0, 1),
                                            type: .destinationUnreachable, code: ICMPv4Type.fragmentationNeededCode,
                                            quoting: original, nextHopMTU: 1280)
        try withPacket(error) { b throws in
            let icmp = try ICMPv4Message(validating: IPv4Packet(validating: b).payload)
            #expect(icmp.type.isTranslatedError && !icmp.type.isQuery)
            #expect(icmp.nextHopMTU == 1280)
            let quoted = try IPv4Packet(quoted: icmp.body)
            #expect(quoted.source == IPv4Address(198, 18, 0, 1) && quoted.protocol == .udp)
        }
    }

    @Test func quotedDatagramMayBeCutShortButItsHeaderMayNot() throws {
        let original = PacketBuilder.tcp(from: (IPv4Address(1, 1, 1, 1), 1), to: (IPv4Address(2, 2, 2, 2), 2), flags: [.syn],
                                         payload: [UInt8](repeating: 7, count: 100))
        try withPacket(Array(original.prefix(28))) { b throws in
            let quoted = try IPv4Packet(quoted: b)
            #expect(quoted.payload.count == 8 && quoted.declaredPayloadLength == 120)
        }
        withPacket(Array(original.prefix(16))) { b in
            #expect(throws: PacketError.truncated(needed: 20, available: 16)) { try IPv4Packet(quoted: b) }
        }
    }

    @Test func truncatedMessageIsRefused() {
        withPacket([8, 0, 0]) { b in
            #expect(throws: PacketError.truncated(needed: 8, available: 3)) { try ICMPv4Message(validating: b) }
        }
    }
}
