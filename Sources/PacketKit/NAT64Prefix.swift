/// The prefix that IPv4 addresses are embedded in to stand for IPv4 hosts on the IPv6 side (RFC 6052 section 2):
/// the Well-Known Prefix `64:ff9b::/96`, or a network-specific prefix of length 32, 40, 48, 56, 64 or 96.
///
/// RFC 6052 section 2.2, the layout (bits 64 to 71, the "u" octet, are always zero; the suffix is zero):
///
///     +--+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
///     |PL| 0-------------32--40--48--56--64--72--80--88--96--104---------|
///     +--+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
///     |32|     prefix    |v4(32)         | u | suffix                    |
///     |40|     prefix        |v4(24)     | u |(8)| suffix                |
///     |48|     prefix            |v4(16) | u | (16)  | suffix            |
///     |56|     prefix                |(8)| u |  v4(24)   | suffix        |
///     |64|     prefix                    | u |   v4(32)      | suffix    |
///     |96|     prefix                                    |    v4(32)     |
///     +--+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
public struct NAT64Prefix: Hashable, Sendable, CustomStringConvertible {
    public static let allowedLengths = [32, 40, 48, 56, 64, 96]
    public static let wellKnown = NAT64Prefix(IPv6Prefix("64:ff9b::/96")!)!

    public let prefix: IPv6Prefix
    /// The byte positions the four IPv4 bytes go to, most significant first.
    @usableFromInline let positions: (Int, Int, Int, Int)

    public init?(_ prefix: IPv6Prefix) {
        guard Self.allowedLengths.contains(prefix.length) else { return nil }
        // The u octet of a /96 is inside the prefix: RFC 6052 asks that it be zero there too.
        guard prefix.length < 96 || prefix.network.byte(8) == 0 else { return nil }
        self.prefix = prefix
        var p: [Int] = []
        var i = prefix.length / 8
        while p.count < 4 {
            if i != 8 { p.append(i) }
            i += 1
        }
        positions = (p[0], p[1], p[2], p[3])
    }

    public var isWellKnown: Bool { self == Self.wellKnown }

    public static func == (a: NAT64Prefix, b: NAT64Prefix) -> Bool { a.prefix == b.prefix }
    public func hash(into hasher: inout Hasher) { hasher.combine(prefix) }

    /// The IPv6 address that stands for `v4`.
    @inlinable public func embed(_ v4: UInt32) -> IPv6Address {
        prefix.network.setting(byte: positions.0, to: UInt8(truncatingIfNeeded: v4 >> 24))
            .setting(byte: positions.1, to: UInt8(truncatingIfNeeded: v4 >> 16))
            .setting(byte: positions.2, to: UInt8(truncatingIfNeeded: v4 >> 8))
            .setting(byte: positions.3, to: UInt8(truncatingIfNeeded: v4))
    }

    /// The IPv4 address an address in this prefix stands for, or nil when it is not in the prefix. The u octet
    /// and the suffix are not looked at (RFC 6052 section 2.2 has translators ignore them).
    @inlinable public func extract(_ address: IPv6Address) -> UInt32? {
        guard prefix.contains(address) else { return nil }
        return UInt32(address.byte(positions.0)) << 24 | UInt32(address.byte(positions.1)) << 16
            | UInt32(address.byte(positions.2)) << 8 | UInt32(address.byte(positions.3))
    }

    public var description: String { prefix.description }

    /// IPv4 addresses that are not global (RFC 6890's registry: RFC 1918, loopback, link-local, shared address
    /// space, documentation, benchmarking, multicast, reserved). RFC 6052 section 3.1: the Well-Known Prefix
    /// must not stand for them, and a translator drops packets in which it does.
    public static let nonGlobal: [IPv4Prefix] = [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    ].map { IPv4Prefix($0)! }

    /// IPv4 addresses no prefix may stand for: "this network", loopback, multicast, reserved and broadcast.
    public static let neverTranslated: [IPv4Prefix] = ["0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"]
        .map { IPv4Prefix($0)! }

    /// Whether this prefix may stand for `v4`.
    @inlinable public func mayEmbed(_ v4: UInt32) -> Bool {
        let address = IPv4Address(v4)
        for p in Self.neverTranslated where p.contains(address) { return false }
        guard isWellKnown else { return true }
        for p in Self.nonGlobal where p.contains(address) { return false }
        return true
    }
}
