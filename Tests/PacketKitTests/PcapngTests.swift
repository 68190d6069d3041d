import Foundation
import PacketKit
import Testing

/// Rewrites a little-endian pcapng file from `PcapngWriter` as big-endian, field by field, to test the other
/// byte order. Knows the fields of the blocks the writer makes; any other block's body is left as it is.
func pcapngBigEndian(_ file: [UInt8]) -> [UInt8] {
    func swap(_ bytes: inout [UInt8], _ at: Int, _ width: Int) { bytes[at..<at + width].reverse() }
    func le(_ at: Int, _ width: Int) -> Int { (0..<width).reduce(0) { $0 | Int(file[at + $1]) << (8 * $1) } }
    var out = file
    var offset = 0
    while offset + 12 <= file.count {
        let type = le(offset, 4), length = le(offset + 4, 4)
        for at in [offset, offset + 4, offset + length - 4] { swap(&out, at, 4) }
        switch type {
        case 0x0A0D_0D0A:  // byte-order magic, major, minor, section length
            swap(&out, offset + 8, 4); swap(&out, offset + 12, 2); swap(&out, offset + 14, 2); swap(&out, offset + 16, 8)
        case 1:  // link type, reserved, snapshot length, options (code, length, value of single bytes)
            swap(&out, offset + 8, 2); swap(&out, offset + 10, 2); swap(&out, offset + 12, 4)
            var at = offset + 16
            while at + 4 <= offset + length - 4 {
                let optionLength = le(at + 2, 2)
                swap(&out, at, 2); swap(&out, at + 2, 2)
                at += 4 + (optionLength + 3) / 4 * 4
            }
        case 6:  // interface id, timestamp high, timestamp low, captured length, original length
            for field in 0..<5 { swap(&out, offset + 8 + 4 * field, 4) }
        case 3:  // original length
            swap(&out, offset + 8, 4)
        default: break
        }
        offset += length
    }
    return out
}

/// Every record of a file, or the first error.
func readAll(_ file: [UInt8]) throws(PcapError) -> [PcapRecord] {
    var reader = try PcapReader(bytes: file)
    var records: [PcapRecord] = []
    while let record = try reader.next() { records.append(record) }
    return records
}

/// 32-bit fields, little-endian.
func le32s(_ values: [UInt32]) -> [UInt8] {
    values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

/// A little-endian 32-bit field written over `file` at `at`.
func patch32(_ file: [UInt8], at: Int, _ value: UInt32) -> [UInt8] {
    var out = file
    for i in 0..<4 { out[at + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    return out
}

extension PcapTests {
    static let ethernetFrame: [UInt8] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]
        + PacketBuilder.udp(from: (IPv4Address(10, 0, 0, 1), 4000), to: (IPv4Address(198, 19, 0, 7), 53), payload: [1, 2, 3])
    static let packet6 = PacketBuilder.udp6(from: (IPv6Address("fd00:1::a")!, 4000),
                                            to: (IPv6Address("2001:db8:64::c613:7")!, 53))

    /// Two interfaces of different link types and resolutions, an Enhanced Packet Block on each, a Simple Packet
    /// Block, and blocks of other types that are skipped.
    static func twoInterfaces() -> PcapngWriter {
        var writer = PcapngWriter()
        writer.appendBlock(type: 0x0BAD_0000, body: [1, 2, 3, 4, 5])  // unknown: skipped
        #expect(writer.addInterface(linkType: .ethernet, snapshotLength: 1500) == 0)
        #expect(writer.addInterface(linkType: .raw, nanosecondResolution: true) == 1)
        writer.append(ethernetFrame, interface: 0, timestamp: PcapTimestamp(seconds: 1_700_000_000, nanoseconds: 123_456_789))
        writer.appendBlock(type: 5, body: [UInt8](repeating: 0, count: 12))  // interface statistics: skipped
        writer.append(packet6, interface: 1, timestamp: PcapTimestamp(seconds: 1_700_000_001, nanoseconds: 123_456_789),
                      originalLength: 1000)
        writer.appendSimple(ethernetFrame)
        return writer
    }

    @Test(arguments: [false, true])
    func pcapngReadsBackInBothByteOrders(bigEndian: Bool) throws {
        let little = Self.twoInterfaces().bytes
        let file = bigEndian ? pcapngBigEndian(little) : little
        if bigEndian { #expect(file != little) }
        var reader = try PcapReader(bytes: file)
        #expect(reader.isPcapng)
        #expect(reader.linkType == .ethernet && !reader.nanosecondResolution && reader.snapshotLength == 1500)
        var records: [PcapRecord] = []
        while let record = try reader.next() { records.append(record) }
        try #require(records.count == 3)
        #expect(records.map(\.linkType) == [.ethernet, .raw, .ethernet])
        #expect(Array(records[0].data) == Self.ethernetFrame && Array(records[1].data) == Self.packet6)
        // Microseconds on interface 0 (the default), nanoseconds on interface 1 (if_tsresol 9).
        #expect(records[0].timestamp == PcapTimestamp(seconds: 1_700_000_000, nanoseconds: 123_456_000))
        #expect(records[1].timestamp == PcapTimestamp(seconds: 1_700_000_001, nanoseconds: 123_456_789))
        #expect(records[1].originalLength == 1000)
        // The simple packet: interface 0, the previous packet's time.
        #expect(Array(records[2].data) == Self.ethernetFrame && records[2].originalLength == Self.ethernetFrame.count)
        #expect(records[2].timestamp == records[1].timestamp)
        // Offsets: section header 28, unknown block 20, interfaces 20 and 32: the first packet block at 100.
        #expect(records[0].offset == 100)
        #expect(records[0].linkType.payload(of: records[0].data) == .ipv4(142..<records[0].data.endIndex))
        #expect(records[1].linkType.payload(of: records[1].data) == .ipv6(records[1].data.indices))
    }

    /// A little-endian section, then a big-endian one: each has its own interfaces, numbered from 0.
    @Test func severalSectionsInEitherByteOrder() throws {
        var first = PcapngWriter()
        first.addInterface(linkType: .ethernet)
        first.addInterface(linkType: .linuxCooked)
        first.append(Self.ethernetFrame, interface: 0, timestamp: PcapTimestamp(seconds: 10, nanoseconds: 0))
        var second = PcapngWriter()
        second.addInterface(linkType: .ipv6, nanosecondResolution: true)
        second.append(Self.packet6, interface: 0, timestamp: PcapTimestamp(seconds: 11, nanoseconds: 5))
        var third = PcapngWriter()
        third.addInterface(linkType: .ipv4)
        let v4 = Array(Self.ethernetFrame.dropFirst(14))
        third.append(v4, timestamp: PcapTimestamp(seconds: 12, nanoseconds: 0))

        let file = first.bytes + pcapngBigEndian(second.bytes) + third.bytes
        let records = try readAll(file)
        #expect(records.map(\.linkType) == [.ethernet, .ipv6, .ipv4])
        #expect(records.map { Array($0.data) } == [Self.ethernetFrame, Self.packet6, v4])
        #expect(records[1].timestamp == PcapTimestamp(seconds: 11, nanoseconds: 5))
        #expect(try PcapReader(bytes: file).linkType == .ethernet)

        // Interface 1 of the first section is not declared in the second.
        second.append(Self.packet6, interface: 1, timestamp: PcapTimestamp(seconds: 12, nanoseconds: 0))
        let stale = first.bytes + second.bytes
        #expect(throws: PcapError.undeclaredInterface(offset: first.bytes.count + 28 + 32 + (32 + Self.packet6.count),
                                                       interface: 1, declared: 1)) { try readAll(stale) }
    }

    /// A Simple Packet Block's captured length is its original length cut to interface 0's snapshot length; the
    /// block must hold that many bytes.
    @Test func simplePacketLengths() throws {
        var writer = PcapngWriter()
        writer.addInterface(linkType: .ethernet, snapshotLength: 20)
        writer.addInterface(linkType: .raw)  // not the one simple packets are on
        writer.appendSimple(Self.ethernetFrame.prefix(20), originalLength: Self.ethernetFrame.count)
        writer.appendSimple(Self.ethernetFrame.prefix(10))
        let records = try readAll(writer.bytes)
        #expect(records.map { Array($0.data) } == [Array(Self.ethernetFrame.prefix(20)), Array(Self.ethernetFrame.prefix(10))])
        #expect(records.map(\.originalLength) == [Self.ethernetFrame.count, 10])
        #expect(records.map(\.linkType) == [.ethernet, .ethernet])
        #expect(records[0].timestamp == PcapTimestamp(seconds: 0, nanoseconds: 0), "no packet before it: time 0")

        var unlimited = PcapngWriter()
        unlimited.addInterface(linkType: .ethernet, snapshotLength: 0)
        unlimited.appendSimple(Self.ethernetFrame.prefix(20), originalLength: Self.ethernetFrame.count)
        #expect(throws: PcapError.capturedLengthPastBlock(offset: 48, captured: Self.ethernetFrame.count, room: 20)) {
            try readAll(unlimited.bytes)
        }
    }

    /// if_tsresol beyond micro- and nanoseconds: milliseconds, picoseconds, powers of 2, whole seconds.
    @Test(arguments: [
        (UInt8(3), UInt64(5123), PcapTimestamp(seconds: 5, nanoseconds: 123_000_000)),
        (12, 5_000_000_123_456, PcapTimestamp(seconds: 5, nanoseconds: 123)),
        (0, 7, PcapTimestamp(seconds: 7, nanoseconds: 0)),
        (0x80, 7, PcapTimestamp(seconds: 7, nanoseconds: 0)),
        (0x80 | 20, 5 << 20 | 1 << 19, PcapTimestamp(seconds: 5, nanoseconds: 500_000_000)),
        (0x80 | 63, 1 << 62 | 1 << 61, PcapTimestamp(seconds: 0, nanoseconds: 750_000_000)),
        (19, 10_000_000_000_000_000_000, PcapTimestamp(seconds: 1, nanoseconds: 0)),
    ] as [(UInt8, UInt64, PcapTimestamp)])
    func timestampResolutions(tsresol: UInt8, units: UInt64, expected: PcapTimestamp) throws {
        var writer = PcapngWriter()
        writer.appendBlock(type: 1, body: [1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 0, tsresol, 0, 0, 0])
        let body = le32s([0, UInt32(units >> 32), UInt32(units & 0xFFFF_FFFF), 1, 1]) + [0x45]
        writer.appendBlock(type: 6, body: body)
        let records = try readAll(writer.bytes)
        #expect(records.count == 1 && records.first?.timestamp == expected)
    }

    @Test func cookedV2AndIPv6CapturesAreRead() throws {
        // What `tcpdump -i any` writes on current libpcap: classic pcap, link type 276.
        var writer = PcapWriter(linkType: .linuxCookedV2, nanosecondResolution: false)
        let header: (UInt16) -> [UInt8] = { [UInt8($0 >> 8), UInt8($0 & 0xFF), 0, 0, 0, 0, 0, 2, 0, 1, 4, 6,
                                             2, 0, 0, 0, 0, 1, 0, 0] }
        writer.append(header(0x86DD) + Self.packet6, timestamp: PcapTimestamp(seconds: 1, nanoseconds: 0))
        writer.append(header(0x0800) + Self.ethernetFrame.dropFirst(14), timestamp: PcapTimestamp(seconds: 2, nanoseconds: 0))
        var reader = try PcapReader(bytes: writer.bytes)
        #expect(reader.linkType == .linuxCookedV2 && !reader.isPcapng)
        #expect(PcapLinkType.linuxCookedV2.description == "linux-cooked-v2 (276)")
        let first = try #require(try reader.next())
        guard case .ipv6(let range) = first.linkType.payload(of: first.data) else {
            Issue.record("not IPv6: \(first.linkType.payload(of: first.data))")
            return
        }
        #expect(Array(first.data[range]) == Self.packet6)
        let second = try #require(try reader.next())
        #expect(second.linkType.payload(of: second.data) == .ipv4(second.data.startIndex + 20..<second.data.endIndex))

        // LINKTYPE_IPV6, and IPv6 behind Ethernet.
        var raw6 = PcapWriter(linkType: .ipv6)
        raw6.append(Self.packet6, timestamp: PcapTimestamp(seconds: 1, nanoseconds: 0))
        let record = try #require(try readAll(raw6.bytes).first)
        #expect(record.linkType == .ipv6 && record.linkType.payload(of: record.data) == .ipv6(record.data.indices))
        let frame = Array(Self.ethernetFrame.prefix(12)) + [0x86, 0xDD] + Self.packet6
        #expect(PcapLinkType.ethernet.payload(of: frame[...]) == .ipv6(14..<frame.count))
    }

    /// Every sample capture reads the same as classic pcap and as pcapng.
    @Test func sampleCapturesReadTheSameAsPcapng() throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: pcapDirectory) where name.hasSuffix(".pcap") {
            let classic = try sampleCapture(name)
            let reader = try PcapReader(bytes: classic)
            let records = try readAll(classic)
            var writer = PcapngWriter()
            writer.addInterface(linkType: reader.linkType, snapshotLength: reader.snapshotLength,
                                nanosecondResolution: reader.nanosecondResolution)
            for record in records {
                writer.append(record.data, timestamp: record.timestamp, originalLength: record.originalLength)
            }
            let again = try readAll(writer.bytes)
            #expect(again.count == records.count, "\(name)")
            for (a, b) in zip(records, again) {
                #expect(a.data.elementsEqual(b.data) && a.timestamp == b.timestamp && a.originalLength == b.originalLength
                            && a.linkType == b.linkType, "\(name)")
            }
        }
    }

    /// Hostile files: each gets its own error, naming the offset; none crashes or allocates what it declares.
    @Test func pcapngErrorsNameTheByteOffset() throws {
        var writer = PcapngWriter()
        writer.addInterface(linkType: .ethernet)
        writer.append(Self.ethernetFrame, timestamp: PcapTimestamp(seconds: 1, nanoseconds: 0))
        writer.append(Self.ethernetFrame, timestamp: PcapTimestamp(seconds: 2, nanoseconds: 0))
        let good = writer.bytes
        let first = 48  // section header 28, interface 20
        let blockLength = 32 + (Self.ethernetFrame.count + 3) / 4 * 4
        let second = first + blockLength
        #expect(try readAll(good).count == 2)

        // Block lengths: below 12 (and below what the type needs), not a multiple of 4, past the end, repeated
        // differently at the end.
        var unknown = PcapngWriter()
        unknown.appendBlock(type: 0x0BAD, body: [])
        let short = good + patch32(Array(unknown.bytes.suffix(12)), at: 4, 8)
        #expect(throws: PcapError.blockTooShort(offset: good.count, type: 0x0BAD, length: 8, minimum: 12)) { try readAll(short) }
        #expect(throws: PcapError.blockTooShort(offset: second, type: 6, length: 28, minimum: 32)) {
            try readAll(patch32(good, at: second + 4, 28))
        }
        #expect(throws: PcapError.blockLengthNotAligned(offset: second, length: blockLength + 2)) {
            try readAll(patch32(good, at: second + 4, UInt32(blockLength + 2)))
        }
        #expect(throws: PcapError.blockPastEnd(offset: second, length: blockLength + 4, available: blockLength)) {
            try readAll(patch32(good, at: second + 4, UInt32(blockLength + 4)))
        }
        #expect(throws: PcapError.blockLengthMismatch(offset: second, length: blockLength, trailing: 12)) {
            try readAll(patch32(good, at: second + blockLength - 4, 12))
        }
        #expect(throws: PcapError.truncatedBlock(offset: good.count, available: 8)) { try readAll(good + [0, 0, 0, 6, 0, 0, 0, 12]) }
        // The first packet's framing is checked when the reader is made (it reads up to the first packet).
        #expect(throws: PcapError.blockPastEnd(offset: first, length: 1 << 30, available: good.count - first)) {
            try PcapReader(bytes: patch32(good, at: first + 4, 1 << 30))
        }

        // Captured length past its block (and far past the file), an interface never declared.
        let room = blockLength - 32
        #expect(throws: PcapError.capturedLengthPastBlock(offset: second, captured: room + 1, room: room)) {
            try readAll(patch32(good, at: second + 20, UInt32(room + 1)))
        }
        #expect(throws: PcapError.capturedLengthPastBlock(offset: second, captured: Int(UInt32.max), room: room)) {
            try readAll(patch32(good, at: second + 20, UInt32.max))
        }
        var undeclared = writer
        undeclared.append(Self.ethernetFrame, interface: 7, timestamp: PcapTimestamp(seconds: 3, nanoseconds: 0))
        #expect(throws: PcapError.undeclaredInterface(offset: good.count, interface: 7, declared: 1)) { try readAll(undeclared.bytes) }
        var simpleFirst = PcapngWriter()
        simpleFirst.appendSimple([0x45])
        #expect(throws: PcapError.undeclaredInterface(offset: 28, interface: 0, declared: 0)) { try readAll(simpleFirst.bytes) }

        // An error is where the reader stays: asking again gives it again.
        var reader = try PcapReader(bytes: patch32(good, at: second + 20, UInt32(room + 1)))
        _ = try reader.next()
        for _ in 0..<2 {
            #expect(throws: PcapError.capturedLengthPastBlock(offset: second, captured: room + 1, room: room)) { try reader.next() }
        }

        // Section header: byte-order magic, version.
        #expect(throws: PcapError.badByteOrderMagic(offset: 0, 0x1A2B_3C00)) { try PcapReader(bytes: { var b = good; b[8] = 0; return b }()) }
        #expect(throws: PcapError.unsupportedVersion(offset: 0, major: 2, minor: 0)) { try PcapReader(bytes: { var b = good; b[12] = 2; return b }()) }
        let secondSection = good + pcapngBigEndian(PcapngWriter().bytes).enumerated().map { $0.offset == 8 ? 0x1B : $0.element }
        #expect(throws: PcapError.badByteOrderMagic(offset: good.count, 0x4D3C_2B1B)) { try readAll(secondSection) }
        #expect(throws: PcapError.truncatedBlock(offset: 0, available: 10)) { try PcapReader(bytes: Array(good.prefix(10))) }

        // Interfaces: a link type not read, options that run past the block or have the wrong length, a
        // resolution that cannot be converted, too many interfaces.
        var link = PcapngWriter()
        link.addInterface(linkType: PcapLinkType(147))
        #expect(throws: PcapError.unsupportedLinkType(147, offset: 36)) { try PcapReader(bytes: link.bytes) }
        #expect("\(PcapError.unsupportedLinkType(147, offset: 36))".contains("147 at offset 36"))
        link = writer
        link.addInterface(linkType: PcapLinkType(147))  // after the packets: found by `next`
        #expect(throws: PcapError.unsupportedLinkType(147, offset: good.count + 8)) { try readAll(link.bytes) }
        for (option, expected) in [
            ([9, 0, 100, 0, 6, 0, 0, 0], PcapError.optionPastBlock(offset: 44, code: 9, length: 100)),
            ([2, 0, 5, 0, 0, 0, 0, 0], .optionPastBlock(offset: 44, code: 2, length: 5)),
            ([9, 0, 2, 0, 6, 0, 0, 0], .badOptionLength(offset: 44, code: 9, length: 2, expected: 1)),
            ([9, 0, 1, 0, 20, 0, 0, 0], .badTimestampResolution(offset: 44, 20)),
            ([9, 0, 1, 0, 0xC0, 0, 0, 0], .badTimestampResolution(offset: 44, 0xC0)),
        ] as [([UInt8], PcapError)] {
            var bad = PcapngWriter()
            bad.appendBlock(type: 1, body: [1, 0, 0, 0, 0, 0, 0, 0] + option)
            #expect(throws: expected) { try PcapReader(bytes: bad.bytes) }
        }
        var crowded = PcapngWriter()
        for _ in 0..<PcapReader.maximumInterfaces { crowded.addInterface(linkType: .raw) }
        #expect(try readAll(crowded.bytes).isEmpty)
        let last = crowded.bytes.count
        crowded.addInterface(linkType: .raw)
        #expect(throws: PcapError.tooManyInterfaces(offset: last)) { try PcapReader(bytes: crowded.bytes) }

        // A packet longer than a pcap record may be, a timestamp past 32 bits of seconds.
        var huge = PcapngWriter()
        huge.addInterface(linkType: .raw)
        huge.append([UInt8](repeating: 0x45, count: PcapReader.maximumRecordLength + 1), timestamp: PcapTimestamp(seconds: 1, nanoseconds: 0))
        #expect(throws: PcapError.recordTooLong(offset: 48, length: PcapReader.maximumRecordLength + 1)) { try readAll(huge.bytes) }
        var late = PcapngWriter()
        late.addInterface(linkType: .raw)
        let units = (UInt64(UInt32.max) + 1) * 1_000_000
        late.appendBlock(type: 6, body: le32s([0, UInt32(units >> 32), UInt32(units & 0xFFFF_FFFF), 1, 1]) + [0x45])
        #expect(throws: PcapError.timestampOutOfRange(offset: 48)) { try readAll(late.bytes) }

        #expect("\(PcapError.blockLengthMismatch(offset: 96, length: 80, trailing: 12))".contains("offset 96"))
        #expect("\(PcapError.undeclaredInterface(offset: 96, interface: 7, declared: 1))".contains("offset 96"))
    }

    /// Classic pcap is still told from pcapng by its first 4 bytes, and anything else is neither.
    @Test func formatIsDetectedByTheFirstFourBytes() throws {
        #expect(try !PcapReader(bytes: PcapWriter().bytes).isPcapng)
        #expect(try PcapReader(bytes: PcapngWriter().bytes).isPcapng)
        #expect(try PcapReader(bytes: PcapngWriter().bytes).linkType == .raw, "no interface: raw")
        #expect(throws: PcapError.badMagic(0x0A0D_0D0B)) { try PcapReader(bytes: [0x0B, 0x0D, 0x0D, 0x0A] + [UInt8](repeating: 0, count: 24)) }
        #expect("\(PcapError.badMagic(0))".contains("pcapng"))
    }
}
