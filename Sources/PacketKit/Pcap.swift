/// Capture files: classic pcap (the libpcap format, draft-ietf-opsawg-pcap), read and written here, and pcapng
/// (draft-ietf-opsawg-pcapng), read and written in Pcapng.swift.
///
/// Reading accepts classic microsecond (magic 0xA1B2C3D4) and nanosecond (0xA1B23C4D) files in either byte order,
/// and pcapng files (which start with 0x0A0D0D0A); `PcapReader` tells them apart by their first 4 bytes.
/// Records are read from a byte array the caller loaded (PacketKit does no I/O); every error names the byte
/// offset at which the file stopped making sense.

/// The link types tunnat reads (tcpdump.org "LINK-LAYER HEADER TYPES").
public struct PcapLinkType: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt32
    public init(_ value: UInt32) { self.value = value }
    public static let ethernet = PcapLinkType(1)
    /// LINKTYPE_RAW: the packet starts with an IPv4 or IPv6 header.
    public static let raw = PcapLinkType(101)
    /// LINKTYPE_LINUX_SLL: Linux "cooked" capture, 16-byte header.
    public static let linuxCooked = PcapLinkType(113)
    /// LINKTYPE_IPV4: raw IPv4 only.
    public static let ipv4 = PcapLinkType(228)
    /// LINKTYPE_IPV6: raw IPv6 only.
    public static let ipv6 = PcapLinkType(229)
    /// LINKTYPE_LINUX_SLL2: Linux "cooked" capture v2, 20-byte header (`tcpdump -i any` on current libpcap).
    public static let linuxCookedV2 = PcapLinkType(276)

    public var isSupported: Bool { [.ethernet, .raw, .linuxCooked, .ipv4, .ipv6, .linuxCookedV2].contains(self) }

    public var description: String {
        switch self {
        case .ethernet: "ethernet (1)"
        case .raw: "raw (101)"
        case .linuxCooked: "linux-cooked (113)"
        case .ipv4: "ipv4 (228)"
        case .ipv6: "ipv6 (229)"
        case .linuxCookedV2: "linux-cooked-v2 (276)"
        default: "link type \(value)"
        }
    }
}

public enum PcapError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncatedFileHeader(available: Int)
    case badMagic(UInt32)
    /// A link type tunnat cannot read, at the offset of the field that declares it (20 in a classic file's
    /// header, the Interface Description Block's field in pcapng).
    case unsupportedLinkType(UInt32, offset: Int = 20)
    case truncatedRecordHeader(offset: Int, available: Int)
    case truncatedRecord(offset: Int, needed: Int, available: Int)
    case recordTooLong(offset: Int, length: Int)

    // pcapng (Pcapng.swift). `offset` is where the block (or option) starts.

    /// A Section Header Block's byte-order magic is neither 0x1A2B3C4D nor its byte swap.
    case badByteOrderMagic(offset: Int, UInt32)
    /// A section of a major version other than 1.
    case unsupportedVersion(offset: Int, major: UInt16, minor: UInt16)
    /// Fewer than the 12 bytes every block has (type, total length, total length again) left where a block starts.
    case truncatedBlock(offset: Int, available: Int)
    /// A block's total length is below what its type needs (12 for any block).
    case blockTooShort(offset: Int, type: UInt32, length: Int, minimum: Int)
    case blockLengthNotAligned(offset: Int, length: Int)
    case blockPastEnd(offset: Int, length: Int, available: Int)
    /// The total length repeated at a block's end is not the one at its start.
    case blockLengthMismatch(offset: Int, length: Int, trailing: Int)
    /// A packet block's captured length (padded to 32 bits) does not fit in the block.
    case capturedLengthPastBlock(offset: Int, captured: Int, room: Int)
    /// A packet block names an interface its section has not declared (before it).
    case undeclaredInterface(offset: Int, interface: UInt32, declared: Int)
    /// More interfaces in one section than `PcapReader.maximumInterfaces`.
    case tooManyInterfaces(offset: Int)
    case optionPastBlock(offset: Int, code: UInt16, length: Int)
    case badOptionLength(offset: Int, code: UInt16, length: Int, expected: Int)
    /// An if_tsresol value whose unit cannot be converted (10^-k with k above 19, or 2^-k with k above 63).
    case badTimestampResolution(offset: Int, UInt8)
    /// A packet's time is past what a pcap timestamp holds (32 bits of seconds: the year 2106).
    case timestampOutOfRange(offset: Int)

    public var description: String {
        switch self {
        case .truncatedFileHeader(let available):
            "pcap file header needs 24 bytes, the file has \(available)"
        case .badMagic(let magic):
            "not a pcap or pcapng file at offset 0: magic 0x\(String(magic, radix: 16)); accepted: 0xa1b2c3d4 or 0xa1b23c4d in either byte order (classic pcap), 0x0a0d0d0a (pcapng)"
        case .unsupportedLinkType(let type, let offset):
            "pcap link type \(type) at offset \(offset) is not supported; accepted: 1 (ethernet), 101 (raw), 113 (linux cooked), 228 (ipv4), 229 (ipv6), 276 (linux cooked v2)"
        case .truncatedRecordHeader(let offset, let available):
            "record header at offset \(offset) is cut short: 16 bytes needed, \(available) left"
        case .truncatedRecord(let offset, let needed, let available):
            "record at offset \(offset) is cut short: \(needed) bytes of packet data declared, \(available) left"
        case .recordTooLong(let offset, let length):
            "record at offset \(offset) declares \(length) bytes of packet data, more than the 262144 a pcap record may hold"
        case .badByteOrderMagic(let offset, let magic):
            "pcapng section header at offset \(offset): byte-order magic 0x\(String(magic, radix: 16)), expected 0x1a2b3c4d in either byte order"
        case .unsupportedVersion(let offset, let major, let minor):
            "pcapng section header at offset \(offset) is version \(major).\(minor); only major version 1 is read"
        case .truncatedBlock(let offset, let available):
            "pcapng block at offset \(offset) is cut short: a block has at least 12 bytes, \(available) left"
        case .blockTooShort(let offset, let type, let length, let minimum):
            "pcapng block of type 0x\(String(type, radix: 16)) at offset \(offset) declares a total length of \(length), less than the \(minimum) that type needs"
        case .blockLengthNotAligned(let offset, let length):
            "pcapng block at offset \(offset) declares a total length of \(length), not a multiple of 4"
        case .blockPastEnd(let offset, let length, let available):
            "pcapng block at offset \(offset) declares a total length of \(length), the file has \(available) bytes left"
        case .blockLengthMismatch(let offset, let length, let trailing):
            "pcapng block at offset \(offset) declares a total length of \(length) at its start and \(trailing) at its end"
        case .capturedLengthPastBlock(let offset, let captured, let room):
            "pcapng packet block at offset \(offset) declares \(captured) captured bytes, the block holds \(room)"
        case .undeclaredInterface(let offset, let interface, let declared):
            "pcapng packet block at offset \(offset) names interface \(interface), its section has declared \(declared)"
        case .tooManyInterfaces(let offset):
            "pcapng interface description block at offset \(offset) is past the \(PcapReader.maximumInterfaces) interfaces a section may declare"
        case .optionPastBlock(let offset, let code, let length):
            "pcapng option at offset \(offset) (code \(code), length \(length)) runs past the end of its block"
        case .badOptionLength(let offset, let code, let length, let expected):
            "pcapng option at offset \(offset) (code \(code)) has length \(length), expected \(expected)"
        case .badTimestampResolution(let offset, let value):
            "pcapng if_tsresol at offset \(offset) is 0x\(String(value, radix: 16)); accepted: 10^-k seconds for k up to 19, 2^-k for k up to 63"
        case .timestampOutOfRange(let offset):
            "pcapng packet block at offset \(offset) has a timestamp past 2106 (more than 32 bits of seconds)"
        }
    }
}

/// A point in time as pcap stores it.
public struct PcapTimestamp: Hashable, Comparable, Sendable {
    public var seconds: UInt32
    public var nanoseconds: UInt32
    public init(seconds: UInt32, nanoseconds: UInt32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }
    public static func < (a: PcapTimestamp, b: PcapTimestamp) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }
}

public struct PcapRecord: Sendable {
    public var timestamp: PcapTimestamp
    /// The packet's length on the wire; more than `data.count` when the capture was cut at the snapshot length.
    public var originalLength: Int
    /// Where this record's header starts in the file.
    public var offset: Int
    /// The captured bytes, link-layer header included.
    public var data: ArraySlice<UInt8>
    /// The link layer `data` starts with: the file's (classic pcap) or the packet's interface's (pcapng).
    public var linkType: PcapLinkType
}

/// Reads the records of a classic pcap or a pcapng file, told apart by the first 4 bytes.
public struct PcapReader: Sendable {
    /// The file's link type (classic pcap), or its first interface's (pcapng: the first Interface Description
    /// Block before the first packet; raw when there is none, as in a file with no packets). A record's own link
    /// type is `PcapRecord.linkType`.
    public let linkType: PcapLinkType
    /// True when timestamps are finer than microseconds (pcapng: on the first interface).
    public let nanosecondResolution: Bool
    /// The file's snapshot length (pcapng: the first interface's; 0 means none).
    public let snapshotLength: UInt32
    let bytes: [UInt8]
    let swapped: Bool
    var offset = 24
    /// nil for a classic pcap file.
    var pcapng: PcapngState?

    /// libpcap's largest record (MAXIMUM_SNAPLEN).
    public static let maximumRecordLength = 262_144
    /// The most interfaces one pcapng section may declare (a packet names one by a 32-bit id; the interfaces
    /// are kept while the section is read).
    public static let maximumInterfaces = 65_536

    /// True for a pcapng file.
    public var isPcapng: Bool { pcapng != nil }

    public init(bytes: [UInt8]) throws(PcapError) {
        if bytes.count >= 4 && Self.load32(bytes, 0, swapped: false) == PcapngState.sectionHeader {
            var state = PcapngState()
            _ = try state.readMetadata(in: bytes)
            let first = state.firstInterface
            linkType = first?.linkType ?? .raw
            nanosecondResolution = first?.finerThanMicroseconds ?? false
            snapshotLength = first?.snapshotLength ?? 0
            (self.bytes, swapped, pcapng) = (bytes, false, state)
            return
        }
        guard bytes.count >= 24 else { throw .truncatedFileHeader(available: bytes.count) }
        self.bytes = bytes
        let magic = Self.load32(bytes, 0, swapped: false)
        switch magic {
        case 0xA1B2_C3D4: (swapped, nanosecondResolution) = (false, false)
        case 0xA1B2_3C4D: (swapped, nanosecondResolution) = (false, true)
        case 0xD4C3_B2A1: (swapped, nanosecondResolution) = (true, false)
        case 0x4D3C_B2A1: (swapped, nanosecondResolution) = (true, true)
        default: throw .badMagic(magic)
        }
        snapshotLength = Self.load32(bytes, 16, swapped: swapped)
        // The link type is the low 16 bits; the upper bits may carry FCS information (pcap draft section 4).
        let link = Self.load32(bytes, 20, swapped: swapped) & 0xFFFF
        linkType = PcapLinkType(link)
        guard linkType.isSupported else { throw .unsupportedLinkType(link) }
    }

    /// The next record, or nil at a clean end of file.
    public mutating func next() throws(PcapError) -> PcapRecord? {
        if pcapng != nil { return try pcapng!.next(in: bytes) }
        let available = bytes.count - offset
        if available == 0 { return nil }
        guard available >= 16 else { throw .truncatedRecordHeader(offset: offset, available: available) }
        let seconds = Self.load32(bytes, offset, swapped: swapped)
        let fraction = Self.load32(bytes, offset + 4, swapped: swapped)
        let captured = Int(Self.load32(bytes, offset + 8, swapped: swapped))
        let original = Int(Self.load32(bytes, offset + 12, swapped: swapped))
        guard captured <= Self.maximumRecordLength else { throw .recordTooLong(offset: offset, length: captured) }
        guard captured <= available - 16 else {
            throw .truncatedRecord(offset: offset, needed: captured, available: available - 16)
        }
        let start = offset + 16
        let record = PcapRecord(
            timestamp: PcapTimestamp(
                seconds: seconds, nanoseconds: nanosecondResolution ? fraction : fraction &* 1000),
            originalLength: original, offset: offset, data: bytes[start..<start + captured], linkType: linkType)
        offset = start + captured
        return record
    }

    static func load16(_ bytes: [UInt8], _ at: Int, swapped: Bool) -> UInt16 {
        let little = UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8
        return swapped ? little.byteSwapped : little
    }

    static func load32(_ bytes: [UInt8], _ at: Int, swapped: Bool) -> UInt32 {
        let little = UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16
            | UInt32(bytes[at + 3]) << 24
        // "Native" here means the order the magic number was written in; files are written little-endian by
        // every common tool, and `swapped` covers the other order.
        return swapped ? little.byteSwapped : little
    }
}

/// What a captured frame carries, once its link-layer header is taken off.
public enum LinkPayload: Equatable, Sendable {
    /// An IPv4 datagram at this range of the frame.
    case ipv4(Range<Int>)
    /// An IPv6 packet at this range of the frame.
    case ipv6(Range<Int>)
    /// Neither (ARP, ...), or a version the link type does not carry (IPv6 on link type 228): passed over, with
    /// the ethertype or version that said so.
    case notIPv4(UInt16)
    /// The link-layer header itself is cut short or garbled.
    case badLinkHeader
}

extension PcapLinkType {
    /// Finds the IPv4 or IPv6 packet in a frame of this link type. Ethernet 802.1Q / 802.1ad VLAN tags are
    /// skipped. An ethertype is believed as is: the version nibble is the IP layer's to check.
    public func payload(of frame: ArraySlice<UInt8>) -> LinkPayload {
        let start = frame.startIndex
        switch self {
        case .raw, .ipv4, .ipv6:
            guard let first = frame.first else { return .badLinkHeader }
            let version = first >> 4
            let whole = start..<frame.endIndex
            switch version {
            case 4 where self != .ipv6: return .ipv4(whole)
            case 6 where self != .ipv4: return .ipv6(whole)
            default: return .notIPv4(UInt16(version))
            }
        case .ethernet:
            var at = start + 12
            while true {
                guard at + 2 <= frame.endIndex else { return .badLinkHeader }
                let type = UInt16(frame[at]) << 8 | UInt16(frame[at + 1])
                switch type {
                case 0x8100, 0x88A8, 0x9100: at += 4  // VLAN tag: TPID + TCI, then the inner ethertype
                default: return Self.payload(ethertype: type, at: at + 2..<frame.endIndex)
                }
            }
        case .linuxCooked:
            // Packet type, ARPHRD type, address length, 8 bytes of address, then the protocol type.
            guard frame.count >= 16 else { return .badLinkHeader }
            let type = UInt16(frame[start + 14]) << 8 | UInt16(frame[start + 15])
            return Self.payload(ethertype: type, at: start + 16..<frame.endIndex)
        case .linuxCookedV2:
            // The protocol type first, then reserved, interface index, ARPHRD type, packet type, address length
            // and 8 bytes of address.
            guard frame.count >= 20 else { return .badLinkHeader }
            let type = UInt16(frame[start]) << 8 | UInt16(frame[start + 1])
            return Self.payload(ethertype: type, at: start + 20..<frame.endIndex)
        default:
            return .badLinkHeader
        }
    }

    static func payload(ethertype: UInt16, at range: Range<Int>) -> LinkPayload {
        switch ethertype {
        case 0x0800: .ipv4(range)
        case 0x86DD: .ipv6(range)
        default: .notIPv4(ethertype)
        }
    }
}

/// Builds a classic pcap file in memory, little-endian.
public struct PcapWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    public let nanosecondResolution: Bool

    public init(linkType: PcapLinkType = .ipv4, nanosecondResolution: Bool = true, snapshotLength: UInt32 = 262_144) {
        self.nanosecondResolution = nanosecondResolution
        append32(nanosecondResolution ? 0xA1B2_3C4D : 0xA1B2_C3D4)
        append16(2)  // version 2.4
        append16(4)
        append32(0)  // reserved (formerly thiszone)
        append32(0)  // reserved (formerly sigfigs)
        append32(snapshotLength)
        append32(linkType.value)
    }

    public mutating func append<Bytes: Collection<UInt8>>(
        _ packet: Bytes, timestamp: PcapTimestamp, originalLength: Int? = nil
    ) {
        append32(timestamp.seconds)
        append32(nanosecondResolution ? timestamp.nanoseconds : timestamp.nanoseconds / 1000)
        append32(UInt32(packet.count))
        append32(UInt32(originalLength ?? packet.count))
        bytes.append(contentsOf: packet)
    }

    mutating func append16(_ v: UInt16) { bytes.append(UInt8(v & 0xFF)); bytes.append(UInt8(v >> 8)) }
    mutating func append32(_ v: UInt32) {
        append16(UInt16(truncatingIfNeeded: v))
        append16(UInt16(truncatingIfNeeded: v >> 16))
    }
}
