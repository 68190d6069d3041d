// libFuzzer target: NAT64. The IPv6 parser (extension header chains, fragments, quoted packets), RFC 7915's
// header translation both ways (ICMP errors with their inner packets included), and the NAT64 path of
// `NAT.translate` with headroom, on two NATs whose state carries over from input to input.
//
// The input is one control byte, then the packet:
//   bit  0     which of two NATs (a network-specific prefix with endpoint-independent filtering and checksums
//              verified; the Well-Known Prefix with address-and-port-dependent filtering, tiny limits, nothing
//              verified)
//   bits 1-2   addressing: 0 as is; 1 an IPv6 packet from a private host (source in fd00:1::/120, destination
//              put in the prefix); 2 an IPv4 packet to a pool address; 3 an IPv4 reply to a flow an IPv6 host made
//              recently (addresses and ports set from it)
//   bit  3     recompute the transport checksum (TCP, UDP, ICMPv6 over the IPv6 pseudo-header; IPv4's as
//              fuzz-translate does)
//   bits 4-5   time passing before it: 0, 1, 61 or 400 seconds
//   bits 6-7   which host or flow
// Every input is also parsed on its own, as an IPv6 packet and as a quoted one.
//
// Checked on every input, besides "no crash" and ASan: a forwarded packet parses as what it now is (IPv4 with a
// valid header checksum, or IPv6), stays inside the buffer given (headroom included), and a forwarded packet
// whose every checksum verified before translation verifies after it.
import CFuzzerDriver
import FuzzSupport
import NatTable
import PacketKit

final class Engine {
    let nat: NAT
    let prefix: NAT64Prefix
    /// Recent IPv4 flows of IPv6 hosts: (protocol, external port, remote address, remote port).
    var recent: [(UInt8, UInt16, UInt32, UInt16)] = []

    init(_ configuration: NatConfiguration) {
        nat = try! NAT(configuration: configuration)
        prefix = configuration.nat64!.prefix
    }
}

func makeEngines() -> [Engine] {
    var a = NatConfiguration(privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: [IPv4Address(198, 18, 0, 1)],
                             filtering: .endpointIndependent, maxFlows: 512, maxHeldFragments: 8, seed: 7)
    a.nat64 = Nat64Configuration(prefix: NAT64Prefix(IPv6Prefix("2001:db8:64::/96")!)!,
                                 privatePrefixes: [IPv6Prefix("fd00:1::/64")!], maxHosts: 64)
    var b = NatConfiguration(privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: [IPv4Address(192, 0, 2, 1)],
                             portRange: 1024...1031, filtering: .addressAndPortDependent, maxFlows: 16,
                             maxFlowsPerHost: 4, verifyChecksums: false, maxHeldFragments: 2, seed: 8)
    b.nat64 = Nat64Configuration(prefix: .wellKnown, privatePrefixes: [IPv6Prefix("fd00:1::/64")!], maxHosts: 4)
    return [Engine(a), Engine(b)]
}

nonisolated(unsafe) var engines = makeEngines()
nonisolated(unsafe) var clockSeconds: UInt64 = 1000
/// Servers the IPv6 hosts talk to: global addresses (the Well-Known Prefix takes no others).
let servers: [UInt32] = [0x5DB8_D822, 0x0808_0808, 0x01_01_01_01, 0xC633_6402]

/// Fixes the upper-layer checksum of an IPv6 packet (first fragment or whole) over its pseudo-header.
func fixIPv6Checksum(_ p: UnsafeMutableRawBufferPointer) {
    guard let ip = try? IPv6Packet(validating: p), ip.fragmentOffset == 0 else { return }
    let field: Int
    switch ip.upperProtocol {
    case 6: field = 16
    case 17: field = 6
    case 58: field = 2
    default: return
    }
    var upper = ip.upperLayer
    guard upper.count >= field + 2, !ip.isFragment || ip.isAtomicFragment else { return }
    // UDP's checksum covers what its length field says (RFC 8200 section 8.1).
    if ip.upperProtocol == 17 { upper = upper.prefix(upTo: min(upper.count, max(8, Int(upper.loadBE16(at: 4))))) }
    upper.storeBE16(0, at: field)
    let pseudo = ip.pseudoHeaderSum(protocol: ip.upperProtocol, length: upper.count)
    var value = Checksum.finish(Checksum.sum(upper, initial: UInt32(Checksum.fold(pseudo))))
    if ip.upperProtocol == 17 && value == 0 { value = 0xFFFF }
    upper.storeBE16(value, at: field)
}

@_cdecl("fuzz_nat64_main")
func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    fuzz_run(argc, argv)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let control = input.byte()
    var packet = input.rest()
    let pick = Int(control >> 6)

    // The parser on its own, both ways it is used.
    packet.withUnsafeMutableBytes { p in
        if let ip = try? IPv6Packet(validating: p) {
            require(ip.upperOffset <= ip.buffer.count, "upper layer past the packet")
            _ = ip.declaredUpperLength
        }
        if let q = try? IPv6Packet(validating: p, quoted: true) { require(q.upperOffset <= q.buffer.count, "quoted") }
    }

    let engine = engines[Int(control & 1)]
    let nat = engine.nat
    clockSeconds += [0, 1, 61, 400][Int(control >> 4 & 3)]
    if clockSeconds > 1 << 31 {
        engines = makeEngines()
        clockSeconds = 1000
    }
    packet.withUnsafeMutableBytes { p in
        guard p.count >= 40 else { return }
        switch control >> 1 & 3 {
        case 1 where p[0] >> 4 == 6:
            IPv6Address(high: 0xfd00_0001_0000_0000, low: UInt64(pick)).store(to: p, at: 8)
            engine.prefix.embed(servers[pick]).store(to: p, at: 24)
        case 2 where p[0] >> 4 == 4:
            Readdress.set(p, at: 16, nat.configuration.poolAddresses[0].value)
        case 3 where p[0] >> 4 == 4 && !engine.recent.isEmpty:
            let (proto, port, remote, remotePort) = engine.recent[pick % engine.recent.count]
            guard let ihl = declaredHeaderLength(p), p.count >= ihl + 8 else { break }
            p[9] = proto
            Readdress.set(p, at: 12, remote)
            Readdress.set(p, at: 16, nat.configuration.poolAddresses[0].value)
            if proto == 1 {
                p[ihl + 4] = UInt8(port >> 8); p[ihl + 5] = UInt8(port & 0xFF)
            } else {
                p[ihl] = UInt8(remotePort >> 8); p[ihl + 1] = UInt8(remotePort & 0xFF)
                p[ihl + 2] = UInt8(port >> 8); p[ihl + 3] = UInt8(port & 0xFF)
            }
        default: break
        }
        if control & 0x08 != 0 {
            if p[0] >> 4 == 6 { fixIPv6Checksum(p) } else { _ = fixTransportChecksum(p) }
        }
        if p[0] >> 4 == 4 { fixIPv4HeaderChecksum(p) }
    }
    // A UDP length other than the upper layer's is malformed, and IPv4 and IPv6 read it differently (IPv4's
    // pseudo-header takes the IP payload's length here, IPv6's the UDP length): no checksum promise for it.
    let consistentUDP: Bool = packet.withUnsafeMutableBytes { p in
        if let ip = try? IPv4Packet(validating: p, verifyChecksum: false) {
            guard ip.protocol == .udp, !ip.isFragment else { return true }
            return ip.payload.count >= 8 && Int(ip.payload.loadBE16(at: 4)) == ip.payload.count
        }
        guard let ip = try? IPv6Packet(validating: p), ip.upperProtocol == 17, ip.fragmentOffset == 0 else { return true }
        return ip.upperLayer.count >= 8 && Int(ip.upperLayer.loadBE16(at: 4)) == ip.upperLayer.count
    }
    let clean = consistentUDP && ChecksumAudit.problems(in: packet).isEmpty
    let arrivedAs6 = packet.first.map { $0 >> 4 == 6 } ?? false

    let room = Translate64.headroom
    var buffer = [UInt8](repeating: 0xEE, count: room) + packet
    buffer.withUnsafeMutableBytes { b in
        var window = b.suffix(from: room)
        let verdict = nat.translate(&window, headroom: room, now: .seconds(clockSeconds))
        guard case .forward = verdict else { return }
        let start = window.baseAddress! - b.baseAddress!
        require(start >= 0 && start + window.count <= b.count, "the packet left its buffer: \(start) + \(window.count)")
        let out = Array(window)
        if out.first.map({ $0 >> 4 == 6 }) ?? false {
            var copy = out
            copy.withUnsafeMutableBytes { c in require((try? IPv6Packet(validating: c)) != nil, "forwarded IPv6 does not parse") }
        } else {
            var copy = out
            copy.withUnsafeMutableBytes { c in
                require((try? IPv4Packet(validating: c)) != nil, "forwarded IPv4 does not parse: \(hex(out.prefix(40)))")
            }
        }
        if clean {
            let problems = ChecksumAudit.problems(in: out)
            require(problems.isEmpty, "checksums \(problems) after translating \(hex(packet.prefix(80)))")
        }
        // Remember what an IPv6 host opened, for replies.
        if arrivedAs6, out.count >= 28, out[0] >> 4 == 4 {
            let ihl = Int(out[0] & 0x0F) * 4
            guard out.count >= ihl + 8 else { return }
            let proto = out[9]
            let port = proto == 1 ? UInt16(out[ihl + 4]) << 8 | UInt16(out[ihl + 5]) : UInt16(out[ihl]) << 8 | UInt16(out[ihl + 1])
            let remote = UInt32(out[16]) << 24 | UInt32(out[17]) << 16 | UInt32(out[18]) << 8 | UInt32(out[19])
            let remotePort = UInt16(out[ihl + 2]) << 8 | UInt16(out[ihl + 3])
            if engine.recent.count < 16 { engine.recent.append((proto, port, remote, remotePort)) } else {
                engine.recent[Int(clockSeconds) % 16] = (proto, port, remote, remotePort)
            }
        }
    }
    for fragment in nat.takeReleasedFragments() {
        var copy = fragment.bytes
        copy.withUnsafeMutableBytes { c in
            let ok = c.count > 0 && (c[0] >> 4 == 6 ? (try? IPv6Packet(validating: c)) != nil
                                                      : (try? IPv4Packet(validating: c)) != nil)
            require(ok, "a released fragment does not parse")
        }
    }
    return 0
}
