/// An IPv4 address, held as its 32-bit value in host order (so `10.0.0.1` is `0x0A00_0001`).
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    public var value: UInt32

    @inlinable public init(_ value: UInt32) { self.value = value }

    @inlinable public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad text, exactly four decimal octets of at most three digits, no leading `+` or spaces.
    public init?(_ text: String) {
        var octets: [UInt32] = []
        for part in text.split(separator: ".", omittingEmptySubsequences: false) {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), let octet = UInt32(part), octet <= 255,
                part.allSatisfy({ $0.isNumber })
            else { return nil }
            octets.append(octet)
        }
        guard octets.count == 4 else { return nil }
        value = octets[0] << 24 | octets[1] << 16 | octets[2] << 8 | octets[3]
    }

    public var description: String {
        "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    }

    @inlinable public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }

    /// The two 16-bit words this address contributes to a one's-complement sum.
    @inlinable var words: (UInt16, UInt16) { (UInt16(truncatingIfNeeded: value >> 16), UInt16(truncatingIfNeeded: value)) }
}

/// An IPv4 prefix in CIDR form (`10.0.0.0/8`). The address is kept with its host bits cleared.
public struct IPv4Prefix: Hashable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    public let network: IPv4Address
    public let length: Int

    public init?(network: IPv4Address, length: Int) {
        guard (0...32).contains(length) else { return nil }
        self.length = length
        self.network = IPv4Address(network.value & Self.mask(length))
    }

    /// Parses `a.b.c.d/len`; a bare address means `/32`. Host bits set (`10.0.0.1/8`) are rejected, because a
    /// config that says that almost always means something else than `10.0.0.0/8`.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let address = IPv4Address(String(parts[0])) else { return nil }
        var length = 32
        if parts.count == 2 {
            guard (1...2).contains(parts[1].count), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
                let parsed = Int(parts[1]), parsed <= 32
            else { return nil }
            length = parsed
        }
        guard address.value & ~Self.mask(length) == 0 else { return nil }
        self.init(network: address, length: length)
    }

    @inlinable public static func mask(_ length: Int) -> UInt32 { length == 0 ? 0 : ~UInt32(0) << (32 - length) }

    @inlinable public func contains(_ address: IPv4Address) -> Bool {
        address.value & Self.mask(length) == network.value
    }

    public var description: String { "\(network)/\(length)" }
}

/// A TCP or UDP port, or an ICMP query identifier where it plays the part of one (RFC 5508 section 3.1).
public struct Port: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt16
    @inlinable public init(_ value: UInt16) { self.value = value }
    @inlinable public static func < (lhs: Port, rhs: Port) -> Bool { lhs.value < rhs.value }
    public var description: String { String(value) }
}

/// The IPv4 protocol field (IANA "Assigned Internet Protocol Numbers").
public struct IPProtocol: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt8
    @inlinable public init(_ value: UInt8) { self.value = value }
    public static let icmp = IPProtocol(1)
    public static let tcp = IPProtocol(6)
    public static let udp = IPProtocol(17)
    public var description: String {
        switch self {
        case .icmp: "icmp"
        case .tcp: "tcp"
        case .udp: "udp"
        default: "proto-\(value)"
        }
    }
}
