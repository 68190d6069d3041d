/// Classic pcap files (the libpcap format, draft-ietf-opsawg-pcap): reading and writing.
///
/// Reading accepts microsecond (magic 0xA1B2C3D4) and nanosecond (0xA1B23C4D) files in either byte order.
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

    public var isSupported: Bool { [.ethernet, .raw, .linuxCooked, .ipv4].contains(self) }

    public var description: String {
        switch self {
        case .ethernet: "ethernet (1)"
        case .raw: "raw (101)"
        case .linuxCooked: "linux-cooked (113)"
        case .ipv4: "ipv4 (228)"
        default: "link type \(value)"
        }
    }
}

public enum PcapError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncatedFileHeader(available: Int)
    case badMagic(UInt32)
    case unsupportedLinkType(UInt32)
    case truncatedRecordHeader(offset: Int, available: Int)
    case truncatedRecord(offset: Int, needed: Int, available: Int)
    case recordTooLong(offset: Int, length: Int)

    public var description: String {
        switch self {
        case .truncatedFileHeader(let available):
            "pcap file header needs 24 bytes, the file has \(available)"
        case .badMagic(let magic):
            "not a classic pcap file at offset 0: magic 0x\(String(magic, radix: 16)); accepted: 0xa1b2c3d4 or 0xa1b23c4d in either byte order (pcapng is not read)"
        case .unsupportedLinkType(let type):
            "pcap link type \(type) at offset 20 is not supported; accepted: 1 (ethernet), 101 (raw), 113 (linux cooked), 228 (ipv4)"
        case .truncatedRecordHeader(let offset, let available):
            "record header at offset \(offset) is cut short: 16 bytes needed, \(available) left"
        case .truncatedRecord(let offset, let needed, let available):
            "record at offset \(offset) is cut short: \(needed) bytes of packet data declared, \(available) left"
        case .recordTooLong(let offset, let length):
            "record at offset \(offset) declares \(length) bytes of packet data, more than the 262144 a pcap record may hold"
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
}

public struct PcapReader: Sendable {
    public let linkType: PcapLinkType
    public let nanosecondResolution: Bool
    public let snapshotLength: UInt32
    let bytes: [UInt8]
    let swapped: Bool
    var offset = 24

    /// libpcap's largest record (MAXIMUM_SNAPLEN).
    public static let maximumRecordLength = 262_144

    public init(bytes: [UInt8]) throws(PcapError) {
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
            originalLength: original, offset: offset, data: bytes[start..<start + captured])
        offset = start + captured
        return record
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
    /// Something other than IPv4 (ARP, IPv6, ...): passed over, with the ethertype or version that said so.
    case notIPv4(UInt16)
    /// The link-layer header itself is cut short or garbled.
    case badLinkHeader
}

extension PcapLinkType {
    /// Finds the IPv4 datagram in a frame of this link type. Ethernet 802.1Q / 802.1ad VLAN tags are skipped.
    public func payload(of frame: ArraySlice<UInt8>) -> LinkPayload {
        let start = frame.startIndex
        switch self {
        case .raw, .ipv4:
            guard let first = frame.first else { return .badLinkHeader }
            let version = first >> 4
            return version == 4 ? .ipv4(start..<frame.endIndex) : .notIPv4(UInt16(version))
        case .ethernet:
            var at = start + 12
            while true {
                guard at + 2 <= frame.endIndex else { return .badLinkHeader }
                let type = UInt16(frame[at]) << 8 | UInt16(frame[at + 1])
                switch type {
                case 0x8100, 0x88A8, 0x9100: at += 4  // VLAN tag: TPID + TCI, then the inner ethertype
                case 0x0800: return .ipv4(at + 2..<frame.endIndex)
                default: return .notIPv4(type)
                }
            }
        case .linuxCooked:
            guard frame.count >= 16 else { return .badLinkHeader }
            let type = UInt16(frame[start + 14]) << 8 | UInt16(frame[start + 15])
            return type == 0x0800 ? .ipv4(start + 16..<frame.endIndex) : .notIPv4(type)
        default:
            return .badLinkHeader
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
