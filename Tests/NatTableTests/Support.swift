import NatTable
import PacketKit
import Testing

let pool1 = IPv4Address(198, 18, 0, 1)
let pool2 = IPv4Address(198, 18, 0, 2)
let hostA = IPv4Address(10, 0, 0, 1)
let hostB = IPv4Address(10, 0, 0, 2)
let server = IPv4Address(198, 19, 0, 10)
let server2 = IPv4Address(198, 19, 0, 20)
let router = IPv4Address(198, 19, 0, 254)

func makeNAT(
    pool: [IPv4Address] = [pool1], ports: ClosedRange<UInt16> = 1024...65535,
    filtering: NatConfiguration.Filtering = .endpointIndependent, maxFlows: Int = 4096, perHost: Int? = nil,
    seed: UInt64 = 42, configure: (inout NatConfiguration) -> Void = { _ in }
) throws -> NAT {
    var configuration = NatConfiguration(
        privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: pool, portRange: ports, filtering: filtering,
        maxFlows: maxFlows, maxFlowsPerHost: perHost, seed: seed)
    configure(&configuration)
    return try NAT(configuration: configuration)
}

/// A packet after translation, with its fields read back through the views.
struct Translated {
    var verdict: Verdict
    var bytes: [UInt8]

    func view<R>(_ body: (UnsafeMutableRawBufferPointer) -> R) -> R {
        var copy = bytes
        return copy.withUnsafeMutableBytes(body)
    }
    var source: IPv4Address { view { IPv4Packet(unchecked: $0).source } }
    var destination: IPv4Address { view { IPv4Packet(unchecked: $0).destination } }
    /// Source and destination port (or the ICMP identifier twice).
    var ports: (UInt16, UInt16) {
        view { b in
            let ip = IPv4Packet(unchecked: b)
            let l4 = ip.payload
            if ip.protocol == .icmp { return (l4.loadBE16(at: 4), l4.loadBE16(at: 4)) }
            return (l4.loadBE16(at: 0), l4.loadBE16(at: 2))
        }
    }
    var sourcePort: UInt16 { ports.0 }
    var destinationPort: UInt16 { ports.1 }
}

@discardableResult
func send(_ nat: NAT, _ packet: [UInt8], at seconds: UInt64 = 0, sourceLocation: SourceLocation = #_sourceLocation)
    -> Translated {
    var bytes = packet
    let verdict = bytes.withUnsafeMutableBytes { nat.translate($0, now: .seconds(seconds)) }
    if case .forward = verdict {
        let problems = ChecksumAudit.problems(in: bytes)
        #expect(problems.isEmpty, "checksums after translation: \(problems)", sourceLocation: sourceLocation)
    }
    return Translated(verdict: verdict, bytes: bytes)
}

func udp(_ from: IPv4Address, _ sport: UInt16, _ to: IPv4Address, _ dport: UInt16, payload: [UInt8] = [1, 2, 3, 4])
    -> [UInt8] {
    PacketBuilder.udp(from: (from, sport), to: (to, dport), payload: payload)
}

/// A segment with the builder's sequence number (1000) on both sides: one with ACK acknowledges the other side's
/// SYN (1001), as a real stack's SYN-ACK must for the NAT to follow the handshake.
func tcp(_ from: IPv4Address, _ sport: UInt16, _ to: IPv4Address, _ dport: UInt16, _ flags: TCPFlags,
         payload: [UInt8] = []) -> [UInt8] {
    PacketBuilder.tcp(from: (from, sport), to: (to, dport), flags: flags, acknowledgment: flags.contains(.ack) ? 1001 : 0,
                      payload: payload)
}

func ping(_ from: IPv4Address, _ to: IPv4Address, id: UInt16, reply: Bool = false) -> [UInt8] {
    PacketBuilder.icmpQuery(from: from, to: to, type: reply ? .echoReply : .echoRequest, identifier: id)
}

/// A UDP flow that became a stream (assured: the host sent again after an answer), never evicted. Returns its
/// external port.
@discardableResult
func stream(_ nat: NAT, _ host: IPv4Address, _ port: UInt16, _ remote: IPv4Address = server, _ remotePort: UInt16 = 9000,
            at seconds: UInt64 = 0) -> UInt16 {
    let out = send(nat, udp(host, port, remote, remotePort), at: seconds)
    send(nat, udp(remote, remotePort, nat.configuration.poolAddresses[0], out.sourcePort), at: seconds)
    send(nat, udp(host, port, remote, remotePort), at: seconds)
    return out.sourcePort
}
