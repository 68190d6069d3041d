import NatTable
import PacketKit
import Testing

/// A network-specific prefix (RFC 6052 section 2.2), so that the tests' benchmarking-range servers may be embedded
/// (the Well-Known Prefix must not stand for them: RFC 6052 section 3.1).
let nsp = NAT64Prefix(IPv6Prefix("2001:db8:64::/96")!)!
let host6A = IPv6Address("fd00:1::a")!
let host6B = IPv6Address("fd00:1::b")!
let outsider6 = IPv6Address("fd99::1")!

func makeNAT64(prefix: NAT64Prefix = nsp, maxHosts: Int = 1024, filtering: NatConfiguration.Filtering = .endpointIndependent,
               perHost: Int? = nil, maxFlows: Int = 4096) throws -> NAT {
    try makeNAT(filtering: filtering, maxFlows: maxFlows, perHost: perHost) {
        $0.nat64 = Nat64Configuration(prefix: prefix, privatePrefixes: [IPv6Prefix("fd00:1::/64")!], maxHosts: maxHosts)
    }
}

/// A packet after a translation that may change its family, read back as either.
struct Translated64 {
    var verdict: Verdict
    var bytes: [UInt8]

    var isIPv6: Bool { bytes.first.map { $0 >> 4 == 6 } ?? false }
    func view<R>(_ body: (UnsafeMutableRawBufferPointer) -> R) -> R {
        var copy = bytes
        return copy.withUnsafeMutableBytes(body)
    }
    var v4: (source: IPv4Address, destination: IPv4Address, sourcePort: UInt16, destinationPort: UInt16) {
        view { b in
            let ip = IPv4Packet(unchecked: b)
            let l4 = ip.payload
            let ports = ip.protocol == .icmp ? (l4.loadBE16(at: 4), l4.loadBE16(at: 4)) : (l4.loadBE16(at: 0), l4.loadBE16(at: 2))
            return (ip.source, ip.destination, ports.0, ports.1)
        }
    }
    var v6: (source: IPv6Address, destination: IPv6Address, sourcePort: UInt16, destinationPort: UInt16) {
        view { b in
            let ip = try! IPv6Packet(validating: b)
            let l4 = ip.upperLayer
            let ports = ip.upperProtocol == 58 ? (l4.loadBE16(at: 4), l4.loadBE16(at: 4)) : (l4.loadBE16(at: 0), l4.loadBE16(at: 2))
            return (ip.source, ip.destination, ports.0, ports.1)
        }
    }
}

/// Translates `packet` with `Translate64.headroom` bytes of room in front, as the data path gives, and checks
/// every checksum of what comes out.
@discardableResult
func send64(_ nat: NAT, _ packet: [UInt8], at seconds: UInt64 = 0, sourceLocation: SourceLocation = #_sourceLocation)
    -> Translated64 {
    let room = Translate64.headroom
    var buffer = [UInt8](repeating: 0, count: room + packet.count)
    buffer.replaceSubrange(room..., with: packet)
    var out: [UInt8] = []
    let verdict = buffer.withUnsafeMutableBytes { b -> Verdict in
        var window = UnsafeMutableRawBufferPointer(rebasing: b[room...])
        let v = nat.translate(&window, headroom: room, now: .seconds(seconds))
        out = Array(window)
        return v
    }
    if case .forward = verdict {
        let problems = ChecksumAudit.problems(in: out)
        #expect(problems.isEmpty, "checksums after translation: \(problems)", sourceLocation: sourceLocation)
    }
    return Translated64(verdict: verdict, bytes: out)
}

func udp6(_ from: IPv6Address, _ sport: UInt16, to v4: IPv4Address, _ dport: UInt16, prefix: NAT64Prefix = nsp,
          payload: [UInt8] = [1, 2, 3, 4]) -> [UInt8] {
    PacketBuilder.udp6(from: (from, sport), to: (prefix.embed(v4.value), dport), payload: payload)
}

func tcp6(_ from: IPv6Address, _ sport: UInt16, to v4: IPv4Address, _ dport: UInt16, _ flags: TCPFlags,
          prefix: NAT64Prefix = nsp) -> [UInt8] {
    PacketBuilder.tcp6(from: (from, sport), to: (prefix.embed(v4.value), dport), flags: flags,
                       acknowledgment: flags.contains(.ack) ? 1001 : 0)
}
