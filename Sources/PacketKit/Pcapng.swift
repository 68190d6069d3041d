/// pcapng files (draft-ietf-opsawg-pcapng): reading, through `PcapReader`, and writing, for tests and fuzz seeds.
///
/// A file is a sequence of blocks: type (32 bits), total length (32 bits, a multiple of 4, at least 12), body,
/// and the total length again. A Section Header Block starts each section and sets its byte order; Interface
/// Description Blocks declare the section's interfaces, numbered from 0; Enhanced and Simple Packet Blocks carry
/// the packets. Other blocks are skipped. Every length is checked against its block and the block against the file
/// before anything is read: nothing is allocated for a declared length, records are slices of the file.

/// One interface of a pcapng section, as its Interface Description Block declared it.
struct PcapngInterface: Sendable {
    var linkType: PcapLinkType
    /// 0 means no limit.
    var snapshotLength: UInt32
    /// if_tsresol: a timestamp counts units of 10^-exponent seconds, or 2^-exponent when `binary`.
    var exponent: UInt8 = 6
    var binary = false

    /// 10^0 ... 10^19, every power of ten a UInt64 holds.
    static let powersOfTen: [UInt64] = (0...19).map { k in (0..<k).reduce(1) { power, _ in power * 10 } }

    var finerThanMicroseconds: Bool { binary ? exponent >= 20 : exponent > 6 }

    /// A timestamp of `units` of this interface's resolution, as seconds and nanoseconds (rounded down).
    func time(_ units: UInt64) -> (seconds: UInt64, nanoseconds: UInt32) {
        if binary {
            guard exponent > 0 else { return (units, 0) }
            let fraction = units & (UInt64(1) << exponent &- 1)
            // fraction * 10^9 / 2^exponent, through 128 bits: the quotient is below 10^9.
            let (high, low) = fraction.multipliedFullWidth(by: 1_000_000_000)
            let nanoseconds = high << (64 &- UInt64(exponent)) | low >> exponent
            return (units >> exponent, UInt32(truncatingIfNeeded: nanoseconds))
        }
        let k = Int(exponent)
        let unit = Self.powersOfTen[k]
        let fraction = units % unit
        let nanoseconds = k <= 9 ? fraction * Self.powersOfTen[9 - k] : fraction / Self.powersOfTen[k - 9]
        return (units / unit, UInt32(truncatingIfNeeded: nanoseconds))
    }
}

/// Where `PcapReader` is in a pcapng file: the current section's byte order and interfaces, the next block.
struct PcapngState: Sendable {
    static let sectionHeader: UInt32 = 0x0A0D_0D0A
    static let interfaceDescription: UInt32 = 1
    static let simplePacket: UInt32 = 3
    static let enhancedPacket: UInt32 = 6
    static let byteOrderMagic: UInt32 = 0x1A2B_3C4D

    var offset = 0
    /// The current section's byte order is not little-endian.
    var swapped = false
    /// The current section's interfaces, by id.
    var interfaces: [PcapngInterface] = []
    /// The file's first interface, whatever section declared it.
    var firstInterface: PcapngInterface?
    /// The last packet's time: a Simple Packet Block has none of its own.
    var lastTimestamp = PcapTimestamp(seconds: 0, nanoseconds: 0)

    /// The least total length of a block of this type: the 12 bytes every block has, and the fixed fields.
    static func minimumLength(_ type: UInt32) -> Int {
        switch type {
        case sectionHeader: 28  // byte-order magic, major and minor version, section length (64 bits)
        case interfaceDescription: 20  // link type, reserved, snapshot length
        case simplePacket: 16  // original length
        case enhancedPacket: 32  // interface id, timestamp (high, low), captured length, original length
        default: 12
        }
    }

    func load16(_ bytes: [UInt8], _ at: Int) -> UInt16 { PcapReader.load16(bytes, at, swapped: swapped) }
    func load32(_ bytes: [UInt8], _ at: Int) -> UInt32 { PcapReader.load32(bytes, at, swapped: swapped) }

    /// The type and total length of the block at `offset`, both total lengths checked against each other and
    /// the block against the file. A Section Header Block sets the byte order first: its own fields are in it.
    mutating func block(in bytes: [UInt8]) throws(PcapError) -> (type: UInt32, length: Int) {
        let available = bytes.count - offset
        guard available >= 12 else { throw .truncatedBlock(offset: offset, available: available) }
        // The section header's type reads the same in both byte orders.
        if PcapReader.load32(bytes, offset, swapped: false) == Self.sectionHeader {
            let magic = PcapReader.load32(bytes, offset + 8, swapped: false)
            switch magic {
            case Self.byteOrderMagic: swapped = false
            case Self.byteOrderMagic.byteSwapped: swapped = true
            default: throw .badByteOrderMagic(offset: offset, magic)
            }
        }
        let type = load32(bytes, offset)
        let length = Int(load32(bytes, offset + 4))
        guard length % 4 == 0 else { throw .blockLengthNotAligned(offset: offset, length: length) }
        let minimum = Self.minimumLength(type)
        guard length >= minimum else {
            throw .blockTooShort(offset: offset, type: type, length: length, minimum: minimum)
        }
        guard length <= available else { throw .blockPastEnd(offset: offset, length: length, available: available) }
        let trailing = Int(load32(bytes, offset + length - 4))
        guard trailing == length else { throw .blockLengthMismatch(offset: offset, length: length, trailing: trailing) }
        return (type, length)
    }

    /// Reads blocks up to the next packet block, which it leaves unread and returns the type and length of; nil
    /// at the end of the file.
    mutating func readMetadata(in bytes: [UInt8]) throws(PcapError) -> (type: UInt32, length: Int)? {
        while offset < bytes.count {
            let (type, length) = try block(in: bytes)
            switch type {
            case Self.enhancedPacket, Self.simplePacket: return (type, length)
            case Self.sectionHeader: try section(in: bytes)
            case Self.interfaceDescription: try interface(length: length, in: bytes)
            default: break  // name resolution, statistics, custom, ...: nothing a replay uses
            }
            offset += length
        }
        return nil
    }

    /// The next packet, or nil at the end of the file.
    mutating func next(in bytes: [UInt8]) throws(PcapError) -> PcapRecord? {
        guard let block = try readMetadata(in: bytes) else { return nil }
        let record = block.type == Self.enhancedPacket
            ? try enhancedPacket(length: block.length, in: bytes) : try simplePacket(length: block.length, in: bytes)
        offset += block.length
        return record
    }

    /// A Section Header Block (its byte order already taken): a new section, with no interfaces yet.
    mutating func section(in bytes: [UInt8]) throws(PcapError) {
        let major = load16(bytes, offset + 12), minor = load16(bytes, offset + 14)
        guard major == 1 else { throw .unsupportedVersion(offset: offset, major: major, minor: minor) }
        interfaces.removeAll()
    }

    /// An Interface Description Block: link type, snapshot length, and the if_tsresol option (code 9) if any.
    mutating func interface(length: Int, in bytes: [UInt8]) throws(PcapError) {
        guard interfaces.count < PcapReader.maximumInterfaces else { throw .tooManyInterfaces(offset: offset) }
        let link = UInt32(load16(bytes, offset + 8))
        var interface = PcapngInterface(linkType: PcapLinkType(link), snapshotLength: load32(bytes, offset + 12))
        guard interface.linkType.isSupported else { throw .unsupportedLinkType(link, offset: offset + 8) }
        // Options: code (16 bits), length (16 bits), value padded to 32 bits; opt_endofopt (0) may end them.
        var at = offset + 16
        let end = offset + length - 4
        while end - at >= 4 {
            let code = load16(bytes, at)
            let optionLength = Int(load16(bytes, at + 2))
            if code == 0 { break }
            let padded = (optionLength + 3) & ~3
            guard padded <= end - at - 4 else { throw .optionPastBlock(offset: at, code: code, length: optionLength) }
            if code == 9 {
                guard optionLength == 1 else {
                    throw .badOptionLength(offset: at, code: code, length: optionLength, expected: 1)
                }
                let value = bytes[at + 4]
                interface.binary = value & 0x80 != 0
                interface.exponent = value & 0x7F
                guard interface.exponent <= (interface.binary ? 63 : 19) else {
                    throw .badTimestampResolution(offset: at, value)
                }
            }
            at += 4 + padded
        }
        interfaces.append(interface)
        if firstInterface == nil { firstInterface = interface }
    }

    /// An Enhanced Packet Block: interface id, timestamp, captured and original length, data, options.
    mutating func enhancedPacket(length: Int, in bytes: [UInt8]) throws(PcapError) -> PcapRecord {
        let id = load32(bytes, offset + 8)
        guard id < interfaces.count else {
            throw .undeclaredInterface(offset: offset, interface: id, declared: interfaces.count)
        }
        let interface = interfaces[Int(id)]
        let units = UInt64(load32(bytes, offset + 12)) << 32 | UInt64(load32(bytes, offset + 16))
        let captured = Int(load32(bytes, offset + 20))
        let original = Int(load32(bytes, offset + 24))
        let room = length - 32
        guard (captured + 3) & ~3 <= room else {
            throw .capturedLengthPastBlock(offset: offset, captured: captured, room: room)
        }
        guard captured <= PcapReader.maximumRecordLength else {
            throw .recordTooLong(offset: offset, length: captured)
        }
        let (seconds, nanoseconds) = interface.time(units)
        guard seconds <= UInt64(UInt32.max) else { throw .timestampOutOfRange(offset: offset) }
        lastTimestamp = PcapTimestamp(seconds: UInt32(seconds), nanoseconds: nanoseconds)
        let start = offset + 28
        return PcapRecord(timestamp: lastTimestamp, originalLength: original, offset: offset,
                          data: bytes[start..<start + captured], linkType: interface.linkType)
    }

    /// A Simple Packet Block: interface 0, no timestamp (the last packet's is used), the original length, data.
    /// The captured length is the original length cut to the interface's snapshot length; the block must hold
    /// it (as libpcap requires).
    mutating func simplePacket(length: Int, in bytes: [UInt8]) throws(PcapError) -> PcapRecord {
        guard let interface = interfaces.first else {
            throw .undeclaredInterface(offset: offset, interface: 0, declared: 0)
        }
        let original = Int(load32(bytes, offset + 8))
        var captured = original
        if interface.snapshotLength != 0 { captured = min(captured, Int(interface.snapshotLength)) }
        let room = length - 16
        guard (captured + 3) & ~3 <= room else {
            throw .capturedLengthPastBlock(offset: offset, captured: captured, room: room)
        }
        guard captured <= PcapReader.maximumRecordLength else {
            throw .recordTooLong(offset: offset, length: captured)
        }
        let start = offset + 12
        return PcapRecord(timestamp: lastTimestamp, originalLength: original, offset: offset,
                          data: bytes[start..<start + captured], linkType: interface.linkType)
    }
}

/// Builds a pcapng file in memory, little-endian: a Section Header Block, then interfaces and packets as they are
/// added. For tests and fuzz seeds (`tunnat replay` writes classic pcap). It writes what it is told: a packet may
/// name an interface never added, to test a reader's checks.
public struct PcapngWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    /// The current section's interfaces, by id: true for nanosecond timestamps.
    var nanosecondInterfaces: [Bool] = []

    public init() { startSection() }

    /// Starts another section: its interfaces are numbered from 0 again.
    public mutating func startSection() {
        nanosecondInterfaces.removeAll()
        var body = Self.le32(PcapngState.byteOrderMagic) + Self.le16(1) + Self.le16(0)  // version 1.0
        body += Self.le32(UInt32.max) + Self.le32(UInt32.max)  // section length -1: not given
        appendBlock(type: PcapngState.sectionHeader, body: body)
    }

    /// Adds an Interface Description Block and returns the interface's id. Timestamps are in microseconds (the
    /// default resolution), or in nanoseconds through an if_tsresol option of 9.
    @discardableResult
    public mutating func addInterface(linkType: PcapLinkType, snapshotLength: UInt32 = 262_144,
                                      nanosecondResolution: Bool = false) -> UInt32 {
        var body = Self.le16(UInt16(truncatingIfNeeded: linkType.value)) + Self.le16(0) + Self.le32(snapshotLength)
        if nanosecondResolution {
            body += Self.le16(9) + Self.le16(1) + [9, 0, 0, 0]  // if_tsresol: 10^-9
            body += Self.le16(0) + Self.le16(0)  // opt_endofopt
        }
        appendBlock(type: PcapngState.interfaceDescription, body: body)
        nanosecondInterfaces.append(nanosecondResolution)
        return UInt32(nanosecondInterfaces.count - 1)
    }

    /// Appends an Enhanced Packet Block, its timestamp in the interface's resolution.
    public mutating func append<Bytes: Collection<UInt8>>(
        _ packet: Bytes, interface: UInt32 = 0, timestamp: PcapTimestamp, originalLength: Int? = nil
    ) {
        let nanoseconds = Int(interface) < nanosecondInterfaces.count && nanosecondInterfaces[Int(interface)]
        let units = nanoseconds
            ? UInt64(timestamp.seconds) * 1_000_000_000 + UInt64(timestamp.nanoseconds)
            : UInt64(timestamp.seconds) * 1_000_000 + UInt64(timestamp.nanoseconds / 1000)
        var body = Self.le32(interface) + Self.le32(UInt32(truncatingIfNeeded: units >> 32))
        body += Self.le32(UInt32(truncatingIfNeeded: units)) + Self.le32(UInt32(packet.count))
        body += Self.le32(UInt32(originalLength ?? packet.count))
        body.append(contentsOf: packet)
        appendBlock(type: PcapngState.enhancedPacket, body: body)
    }

    /// Appends a Simple Packet Block (interface 0, no timestamp).
    public mutating func appendSimple<Bytes: Collection<UInt8>>(_ packet: Bytes, originalLength: Int? = nil) {
        appendBlock(type: PcapngState.simplePacket, body: Self.le32(UInt32(originalLength ?? packet.count)) + packet)
    }

    /// Appends a block of any type around `body`, padded to 32 bits.
    public mutating func appendBlock(type: UInt32, body: [UInt8]) {
        let padding = (4 - body.count % 4) % 4
        let length = UInt32(12 + body.count + padding)
        bytes += Self.le32(type) + Self.le32(length) + body + [UInt8](repeating: 0, count: padding) + Self.le32(length)
    }

    static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    static func le32(_ v: UInt32) -> [UInt8] {
        le16(UInt16(truncatingIfNeeded: v)) + le16(UInt16(truncatingIfNeeded: v >> 16))
    }
}
