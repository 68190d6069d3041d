// libFuzzer target: the NAT engine (`NAT.translate`) and the PacketKit views it rests on, on IPv4 packets.
//
// The input is two control bytes, then the packet:
//   byte 0, bits 0-1  which of four NATs (filtering modes, pool sizes, limits, checksum verification on or off)
//           bits 2-3  addressing: 0 as is; 1 from a private host (source put in 10.0.0.0/28); 2 from the internet
//                     to a pool address; 3 a reply to a flow the NAT made recently (addresses and ports, and for an
//                     ICMP error the quoted datagram, set from it)
//           bit  4    recompute the transport checksum (TCP/UDP/ICMP, an ICMP error's quote too)
//           bit  5    first readdress it as `tunnat replay` does a captured reply (readdressCapturedReply)
//           bits 6-7  time passing before it: 0, 1, 61 or 400 seconds
//   byte 1            which private host, pool address or recent flow
// The IPv4 header checksum is always recomputed after mutation (over the IHL the packet declares), or the fuzzer
// would spend its time on `badIPv4Checksum`. The NATs' state carries over from input to input, so sequences of
// packets (handshakes, fragments, replies, expiry, exhaustion) are explored too; `-runs=N` replays are therefore
// deterministic only from a fresh process.
//
// Checked on every input, besides "no crash": a forwarded packet (and a released fragment) still parses with a
// valid header checksum, and a forwarded packet whose every checksum verified before translation verifies after it.
import CFuzzerDriver
import FuzzSupport
import NatTable
import PacketKit

/// One NAT under test and the flows it made recently, for replies (mode 3) and for ICMP errors about them.
final class Engine {
    struct Flow {
        var proto: UInt8
        var internalAddress: UInt32
        var internalPort: UInt16
        var externalAddress: UInt32
        var externalPort: UInt16
        var remoteAddress: UInt32
        var remotePort: UInt16
    }

    let nat: NAT
    let recording: Bool
    var recent: [Flow] = []
    var next = 0
    /// Where the walk over the table (a resync's snapshot parts) goes on; nil: none under way.
    var walk: Int?

    init(_ configuration: NatConfiguration, recording: Bool = false) {
        nat = try! NAT(configuration: configuration)
        self.recording = recording
        if recording { nat.recordChanges(true) }
    }

    func remember(_ flow: Flow) {
        if recent.count < 16 { recent.append(flow) } else { recent[next] = flow }
        next = (next + 1) % 16
    }
}

let privateNet = IPv4Prefix("10.0.0.0/8")!

func makeEngines() -> [Engine] {
    var timeouts = NatConfiguration.Timeouts()
    timeouts.fragment = 2
    return [
        // As the old single target: address-dependent filtering, checksums verified, a small port range.
        Engine(NatConfiguration(
            privatePrefixes: [privateNet], poolAddresses: [IPv4Address(198, 18, 0, 1), IPv4Address(198, 18, 0, 2)],
            portRange: 40000...40063, filtering: .addressDependent, maxFlows: 256, maxFlowsPerHost: 32,
            maxHeldFragments: 8, seed: 4)),
        // Endpoint-independent, nothing verified (mutated transport checksums still reach translation), big table.
        Engine(NatConfiguration(
            privatePrefixes: [privateNet, IPv4Prefix("192.168.0.0/16")!],
            poolAddresses: [IPv4Address(198, 18, 0, 1), IPv4Address(198, 18, 0, 2), IPv4Address(198, 18, 0, 3)],
            filtering: .endpointIndependent, maxFlows: 4096, verifyChecksums: false, maxHeldFragments: 64, seed: 1)),
        // Address-and-port-dependent, nothing verified, everything tiny: ports, flows, per host, fragments.
        Engine(NatConfiguration(
            privatePrefixes: [privateNet], poolAddresses: [IPv4Address(198, 18, 0, 1)], portRange: 1024...1027,
            filtering: .addressAndPortDependent, timeouts: timeouts, maxFlows: 8, maxFlowsPerHost: 2,
            verifyChecksums: false, maxHeldFragments: 1, seed: 2)),
        // Endpoint-independent with the replication change feed recording (taken after every packet).
        Engine(NatConfiguration(
            privatePrefixes: [privateNet], poolAddresses: [IPv4Address(198, 18, 0, 1)], filtering: .endpointIndependent,
            maxFlows: 64, seed: 3), recording: true),
    ]
}

nonisolated(unsafe) var engines = makeEngines()
nonisolated(unsafe) var clockSeconds: UInt64 = 1000

/// The transport ports at `at` (TCP/UDP: source, destination; ICMP query: the identifier for both), if present.
func ports(_ p: UnsafeMutableRawBufferPointer, proto: UInt8, at l4: Int) -> (UInt16, UInt16)? {
    switch proto {
    case 6, 17:
        guard p.count >= l4 + 4 else { return nil }
        return (UInt16(p[l4]) << 8 | UInt16(p[l4 + 1]), UInt16(p[l4 + 2]) << 8 | UInt16(p[l4 + 3]))
    case 1:
        guard p.count >= l4 + 6 else { return nil }
        let id = UInt16(p[l4 + 4]) << 8 | UInt16(p[l4 + 5])
        return (id, id)
    default: return nil
    }
}

/// Sets the ports at `l4` (TCP/UDP: source and destination; ICMP: `source` is the identifier).
func setPorts(_ p: UnsafeMutableRawBufferPointer, proto: UInt8, at l4: Int, source: UInt16, destination: UInt16) {
    switch proto {
    case 6, 17:
        guard p.count >= l4 + 4 else { return }
        p[l4] = UInt8(source >> 8); p[l4 + 1] = UInt8(source & 0xFF)
        p[l4 + 2] = UInt8(destination >> 8); p[l4 + 3] = UInt8(destination & 0xFF)
    case 1:
        guard p.count >= l4 + 6 else { return }
        p[l4 + 4] = UInt8(source >> 8); p[l4 + 5] = UInt8(source & 0xFF)
    default: break
    }
}

/// ICMP types whose body quotes a datagram (unreachable, source quench, redirect, time exceeded, parameter problem).
func isICMPError(_ p: UnsafeMutableRawBufferPointer, ihl: Int) -> Bool {
    p[9] == 1 && p.count >= ihl + 8 + 20 && [3, 4, 5, 11, 12].contains(p[ihl])
}

/// Rewrites the datagram an ICMP error quotes to be a packet of `flow`, as the side that sent it saw it.
func setQuote(_ p: UnsafeMutableRawBufferPointer, ihl: Int, flow: Engine.Flow, sentByUs: Bool) {
    let quote = UnsafeMutableRawBufferPointer(rebasing: p[(ihl + 8)...])
    guard let qihl = declaredHeaderLength(quote) else { return }
    quote[9] = flow.proto
    if sentByUs {
        // A packet the NAT sent out: from the external endpoint to the remote one.
        Readdress.set(quote, at: 12, flow.externalAddress)
        Readdress.set(quote, at: 16, flow.remoteAddress)
        setPorts(quote, proto: flow.proto, at: qihl, source: flow.externalPort, destination: flow.remotePort)
    } else {
        // A packet the NAT brought in: from the remote endpoint to the internal one.
        Readdress.set(quote, at: 12, flow.remoteAddress)
        Readdress.set(quote, at: 16, flow.internalAddress)
        setPorts(quote, proto: flow.proto, at: qihl, source: flow.proto == 1 ? flow.internalPort : flow.remotePort,
                 destination: flow.internalPort)
    }
    fixIPv4HeaderChecksum(quote)
}

/// The process's entry point (SwiftPM links `main` to it): libFuzzer's driver, with the function below.
@_cdecl("fuzz_translate_main")
func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    fuzz_run(argc, argv)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let control = input.byte()
    let pick = Int(input.byte())
    var packet = input.rest()

    let engine = engines[Int(control & 3)]
    let nat = engine.nat
    let pool = nat.configuration.poolAddresses
    clockSeconds += [0, 1, 61, 400][Int(control >> 6)]
    if clockSeconds > 1 << 31 {
        // Far past any timeout; a monotonic clock never gets here. Start over rather than wrap.
        engines = makeEngines()
        clockSeconds = 1000
    }
    let now = NatInstant.seconds(clockSeconds)

    let before: [String] = packet.withUnsafeMutableBytes { p in
        guard let ihl = declaredHeaderLength(p) else { return ["unparseable"] }
        switch control >> 2 & 3 {
        case 1:
            Readdress.set(p, at: 12, privateNet.network.value | UInt32(pick & 0x0F))
            if isICMPError(p, ihl: ihl), !engine.recent.isEmpty {
                setQuote(p, ihl: ihl, flow: engine.recent[pick % engine.recent.count], sentByUs: false)
            }
        case 2:
            Readdress.set(p, at: 16, pool[pick % pool.count].value)
        case 3:
            guard !engine.recent.isEmpty else { break }
            let flow = engine.recent[pick % engine.recent.count]
            Readdress.set(p, at: 12, flow.remoteAddress)
            Readdress.set(p, at: 16, flow.externalAddress)
            if isICMPError(p, ihl: ihl) {
                setQuote(p, ihl: ihl, flow: flow, sentByUs: true)
            } else {
                p[9] = flow.proto
                setPorts(p, proto: flow.proto, at: ihl, source: flow.proto == 1 ? flow.externalPort : flow.remotePort,
                         destination: flow.externalPort)
            }
        default: break
        }
        if control & 0x10 != 0 { fixTransportChecksum(p) }
        fixIPv4HeaderChecksum(p)
        return []
    } + ChecksumAudit.problems(in: packet)

    // What the packet was before translation, for remembering the flow it makes.
    let original: (proto: UInt8, source: UInt32, ports: (UInt16, UInt16)?)? = packet.withUnsafeMutableBytes { p in
        guard let ihl = declaredHeaderLength(p) else { return nil }
        return (p[9], Readdress.get(p, at: 12), ports(p, proto: p[9], at: ihl))
    }

    let given = packet
    var verdict = Verdict.held
    packet.withUnsafeMutableBytes { p in
        if control & 0x20 != 0 { _ = nat.readdressCapturedReply(p) }
        verdict = nat.translate(p, now: now)
        guard case .forward(let direction) = verdict else { return }
        // Whatever was forwarded still parses: translation never breaks a header it accepted.
        guard let ip = try? IPv4Packet(validating: p) else { fatalError("forwarded packet no longer valid") }
        if direction == .outbound, let original, let (sourcePort, destinationPort) = original.ports,
           let (externalPort, _) = ports(p, proto: original.proto, at: ip.headerLength), !isICMPError(p, ihl: ip.headerLength) {
            engine.remember(Engine.Flow(
                proto: original.proto, internalAddress: original.source, internalPort: sourcePort,
                externalAddress: ip.source.value, externalPort: externalPort, remoteAddress: ip.destination.value,
                remotePort: destinationPort))
        }
    }
    if before.isEmpty {
        // Every rewrite is incremental (RFC 1624), forwarded or not: what verified before verifies after.
        let after = ChecksumAudit.problems(in: packet)
        require(after.isEmpty, "translation (\(verdict)) broke a checksum that verified before: \(after)\n"
                + "before: \(hex(given))\nafter:  \(hex(packet))")
    }

    for released in nat.takeReleasedFragments() {
        var bytes = released.bytes
        require(bytes.withUnsafeMutableBytes { (try? IPv4Packet(validating: $0)) != nil },
                     "released fragment does not parse")
    }
    if engine.recording { takeChanges(engine) }
    return 0
}

/// Takes the change feed as the active does during a resync: with the next part of a walk over the table (begun
/// every 7th second and after an overflow). A part is upserts only and moves the walk forward.
func takeChanges(_ engine: Engine) {
    let changes = engine.nat.takeChanges(snapshotFrom: engine.walk.map { [$0] } ?? [])
    if let cursor = engine.walk {
        require(changes.parts.count == 1, "one cursor asked for, \(changes.parts.count) parts given")
        let part = changes.parts[0]
        require(part.records.allSatisfy { $0.operation == .upsert }, "a snapshot part holds a delete")
        require(part.next.map { $0 > cursor } ?? true, "the walk does not move forward from slot \(cursor)")
        engine.walk = part.next
    } else if clockSeconds % 7 == 0 || changes.overflowed {
        engine.walk = 0
    }
}
