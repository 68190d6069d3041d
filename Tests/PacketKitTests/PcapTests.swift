import Foundation
import PacketKit
import Testing

let pcapDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../../shared/testdata/pcaps").standardized.path

func sampleCapture(_ name: String) throws -> [UInt8] {
    let path = "\(pcapDirectory)/\(name)"
    return try #require(FileManager.default.contents(atPath: path).map { [UInt8]($0) }, "missing \(path): the golden tests read the captures in ../shared/testdata/pcaps, the project's shared folder checked out beside this repository (scripts/test.sh says so before it starts)")
}

/// Rewrites a little-endian pcap as big-endian, field by field, to test the other byte order.
func byteSwapped(_ file: [UInt8]) -> [UInt8] {
    func swap(_ bytes: inout [UInt8], _ at: Int, _ width: Int) { bytes[at..<at + width].reverse() }
    var out = file
    swap(&out, 0, 4); swap(&out, 4, 2); swap(&out, 6, 2)
    for at in stride(from: 8, to: 24, by: 4) { swap(&out, at, 4) }
    var offset = 24
    while offset + 16 <= out.count {
        let captured = Int(file[offset + 8]) | Int(file[offset + 9]) << 8 | Int(file[offset + 10]) << 16
        for at in stride(from: offset, to: offset + 16, by: 4) { swap(&out, at, 4) }
        offset += 16 + captured
    }
    return out
}

@Suite struct PcapTests {
    @Test(arguments: [false, true])
    func writerOutputReadsBackInBothByteOrders(nanoseconds: Bool) throws {
        var writer = PcapWriter(linkType: .ipv4, nanosecondResolution: nanoseconds)
        let packets = (0..<5).map { i in
            PacketBuilder.udp(from: (IPv4Address(10, 0, 0, 1), UInt16(1000 + i)), to: (IPv4Address(10, 0, 0, 2), 53))
        }
        for (i, packet) in packets.enumerated() {
            writer.append(packet, timestamp: PcapTimestamp(seconds: 1_700_000_000 + UInt32(i), nanoseconds: 123_456_000))
        }
        for file in [writer.bytes, byteSwapped(writer.bytes)] {
            var reader = try PcapReader(bytes: file)
            #expect(reader.linkType == .ipv4 && reader.nanosecondResolution == nanoseconds)
            var read: [PcapRecord] = []
            while let record = try reader.next() { read.append(record) }
            #expect(read.map { Array($0.data) } == packets)
            #expect(read[3].timestamp == PcapTimestamp(seconds: 1_700_000_003, nanoseconds: 123_456_000))
        }
    }

    @Test func readsEverySampleCapture() throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: pcapDirectory) where name.hasSuffix(".pcap") {
            var reader = try PcapReader(bytes: try sampleCapture(name))
            var count = 0
            while let record = try reader.next() {
                guard case .ipv4(let range) = reader.linkType.payload(of: record.data) else {
                    Issue.record("\(name): record \(count) is not IPv4")
                    continue
                }
                #expect(record.data[range.lowerBound] >> 4 == 4)
                count += 1
            }
            #expect(count > 0, "\(name)")
        }
    }

    @Test(arguments: [
        (PcapLinkType.ethernet, "0000 0000 0001 0000 0000 0002 0800 45", LinkPayload.ipv4(14..<15)),
        (.ethernet, "0000 0000 0001 0000 0000 0002 8100 0064 0800 45", .ipv4(18..<19)),
        (.ethernet, "0000 0000 0001 0000 0000 0002 88a8 0064 8100 0065 0800 45", .ipv4(22..<23)),
        (.ethernet, "0000 0000 0001 0000 0000 0002 0806 0001", .notIPv4(0x0806)),
        (.ethernet, "0000 0000 0001 0000 0000 0002 86dd 60", .ipv6(14..<15)),
        (.ethernet, "0000 0000 0001 0000 0000 0002 8100 0064 86dd 60", .ipv6(18..<19)),
        (.ethernet, "0000 0000 0001 0000", .badLinkHeader),
        (.ethernet, "0000 0000 0001 0000 0000 0002 8100 00", .badLinkHeader),
        (.linuxCooked, "0000 0001 0006 0000 0000 0000 0000 0800 45", .ipv4(16..<17)),
        (.linuxCooked, "0000 0001 0006 0000 0000 0000 0000 86dd 60", .ipv6(16..<17)),
        (.linuxCooked, "0000 0001", .badLinkHeader),
        // Cooked v2: protocol type, reserved, interface index, ARPHRD type, packet type, address length, address.
        (.linuxCookedV2, "0800 0000 0000 0002 0001 00 06 0200 0000 0001 0000 45", .ipv4(20..<21)),
        (.linuxCookedV2, "86dd 0000 0000 0002 0001 04 06 0200 0000 0001 0000 60", .ipv6(20..<21)),
        (.linuxCookedV2, "0806 0000 0000 0002 0001 00 06 0200 0000 0001 0000 0001", .notIPv4(0x0806)),
        (.linuxCookedV2, "0800 0000 0000 0002 0001 00 06 0200 0000 0001 00", .badLinkHeader),
        (.raw, "45", .ipv4(0..<1)),
        (.raw, "60", .ipv6(0..<1)),
        (.raw, "10", .notIPv4(1)),
        (.ipv4, "45", .ipv4(0..<1)),
        (.ipv4, "60", .notIPv4(6)),
        (.ipv6, "60", .ipv6(0..<1)),
        (.ipv6, "45", .notIPv4(4)),
        (.raw, "", .badLinkHeader),
    ])
    func linkLayers(type: PcapLinkType, hex: String, expected: LinkPayload) {
        let frame = [UInt8](hex: hex)!
        #expect(type.payload(of: frame[...]) == expected)
    }

    @Test func errorsNameTheByteOffset() throws {
        var writer = PcapWriter(linkType: .ethernet, nanosecondResolution: false)
        writer.append([UInt8](repeating: 1, count: 60), timestamp: PcapTimestamp(seconds: 1, nanoseconds: 0))
        writer.append([UInt8](repeating: 2, count: 60), timestamp: PcapTimestamp(seconds: 2, nanoseconds: 0))
        let whole = writer.bytes

        #expect(throws: PcapError.truncatedFileHeader(available: 10)) { try PcapReader(bytes: Array(whole.prefix(10))) }
        var badMagic = whole
        badMagic[0] = 0
        #expect(throws: PcapError.badMagic(0xA1B2_C300)) { try PcapReader(bytes: badMagic) }
        var badLink = whole
        badLink[20] = 147
        #expect(throws: PcapError.unsupportedLinkType(147, offset: 20)) { try PcapReader(bytes: badLink) }
        #expect("\(PcapError.unsupportedLinkType(147))".contains("147 at offset 20"))

        var cutRecord = try PcapReader(bytes: Array(whole.dropLast(10)))
        _ = try cutRecord.next()
        #expect(throws: PcapError.truncatedRecord(offset: 100, needed: 60, available: 50)) { try cutRecord.next() }
        var cutHeader = try PcapReader(bytes: Array(whole.prefix(108)))
        _ = try cutHeader.next()
        #expect(throws: PcapError.truncatedRecordHeader(offset: 100, available: 8)) { try cutHeader.next() }
        var huge = whole
        huge[32...35] = [0, 0, 0x10, 0]  // captured length 1 MiB
        var hugeReader = try PcapReader(bytes: huge)
        #expect(throws: PcapError.recordTooLong(offset: 24, length: 1 << 20)) { try hugeReader.next() }
        #expect("\(PcapError.truncatedRecord(offset: 100, needed: 60, available: 50))".contains("offset 100"))
    }
}
