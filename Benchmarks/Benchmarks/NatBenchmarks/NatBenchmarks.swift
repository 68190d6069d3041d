import Benchmark
import Foundation
import NatTable
import PacketKit
import SystemCalls
import TunIO

/// The per-packet figures the issues ask for, measured (never timed in unit tests):
/// - the full checksum of a 1500-byte packet;
/// - translating a packet of an established flow with 1,000,000 flows in the table (time, and mallocs, which
///   must be 0: the threshold fails the run otherwise);
/// - setting up new flows;
/// - table memory per flow, from the process's resident memory.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        warmupIterations: 1000,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 2_000_000
    )

    let fullPacket = (0..<1500).map { UInt8(truncatingIfNeeded: $0 &* 7) }
    Benchmark("Checksum full 1500 bytes",
              configuration: .init(thresholds: [.mallocCountTotal: BenchmarkThresholds(absolute: [.p100: 0])])) { benchmark in
        fullPacket.withUnsafeBytes { bytes in
            for _ in benchmark.scaledIterations { blackHole(Checksum.sum(bytes)) }
        }
    }

    // 1,000,000 established flows, one per mapping: 62,500 hosts x 16 ports, over 32 pool addresses (about
    // 31,000 ports used on each, of 64,512).
    let flowCount = 1_000_000
    let pool = (1...32).map { IPv4Address(198, 18, 0, UInt8($0)) }
    let server = IPv4Address(198, 19, 0, 10)
    func host(_ i: Int) -> (IPv4Address, UInt16) {
        let h = i / 16
        return (IPv4Address(10, UInt8(h >> 16 & 0xFF), UInt8(h >> 8 & 0xFF), UInt8(h & 0xFF)), UInt16(20000 + i % 16))
    }
    func makeNAT(capacity: Int) -> NAT {
        try! NAT(configuration: NatConfiguration(
            privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: pool, maxFlows: capacity, seed: 0x7475_6E6E_6174))
    }
    func populate(_ nat: NAT) {
        var packet = PacketBuilder.udp(from: host(0), to: (server, 443), payload: [UInt8](repeating: 0, count: 64))
        for i in 0..<flowCount {
            let (address, port) = host(i)
            packet.withUnsafeMutableBytes { b in
                let ip = IPv4Packet(unchecked: b)
                // Reset the template to this host's endpoint, then translate it in place.
                ip.setSource(address)
                let udp = UDPDatagram(unchecked: ip.payload)
                udp.setSourcePort(Port(port))
                udp.fillChecksum(pseudoHeaderSum: ip.pseudoHeaderSum)
                let verdict = nat.translate(b, now: .seconds(1))
                if verdict != .forward(.outbound) { fatalError("flow \(i) not set up: \(verdict)") }
            }
        }
        precondition(nat.flowCount == flowCount)
    }

    /// 65,536 packets of flows spread over the whole table, so lookups touch memory as a busy NAT's do.
    func templates(size payload: Int, tcp: Bool) -> [[UInt8]] {
        (0..<65536).map { j in
            let i = (j &* 2_654_435_761) % flowCount
            let from = host(i)
            return tcp
                ? PacketBuilder.tcp(from: from, to: (server, 443), flags: [.ack], payload: [UInt8](repeating: 1, count: payload))
                : PacketBuilder.udp(from: from, to: (server, 443), payload: [UInt8](repeating: 1, count: payload))
        }
    }

    for (name, payload, tcp) in [("UDP 64-byte payload", 64, false), ("TCP 1460-byte payload", 1460, true)] {
        Benchmark("Translate established flow, 1M flows, \(name)",
                  configuration: .init(thresholds: [.mallocCountTotal: BenchmarkThresholds(absolute: [.p100: 0])])) {
            (benchmark: Benchmark, state: Loaded) in
            let (nat, packets) = (state.nat, state.packets)
            var work = [UInt8](repeating: 0, count: 1600)
            var forwarded = 0
            work.withUnsafeMutableBytes { buffer in
                var j = 0
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    // Copy the untranslated packet in (a TUN read does the same), then translate it in place.
                    let template = packets[j & 0xFFFF]
                    template.withUnsafeBytes { buffer.copyMemory(from: $0) }
                    if case .forward = nat.translate(buffer.prefix(upTo: template.count), now: .seconds(2)) {
                        forwarded &+= 1
                    }
                    j &+= 1
                }
                benchmark.stopMeasurement()
            }
            if forwarded != benchmark.scaledIterations.count {
                fatalError("only \(forwarded) of \(benchmark.scaledIterations.count) packets translated: \(nat.counters)")
            }
        } setup: {
            let nat = makeNAT(capacity: NatConfiguration.defaultMaxFlows)
            populate(nat)
            return Loaded(nat: nat, packets: templates(size: payload, tcp: tcp))
        }
    }

    // NAT64: 1,000,000 established flows of IPv6 hosts (62,500 hosts x 16 ports, fd00:1::/64, the Well-Known
    // Prefix to 93.184.216.34), one packet of them in turn each way: IPv6 to IPv4 (the host's packet out) and
    // IPv4 to IPv6 (the reply, grown into the headroom in front of it). Against the NAT44 figures above.
    let remote = IPv4Address(93, 184, 216, 34)
    func host6(_ i: Int) -> (IPv6Address, UInt16) {
        (IPv6Address(high: 0xfd00_0001_0000_0000, low: UInt64(i / 16 + 1)), UInt16(20000 + i % 16))
    }
    func makeNAT64() -> NAT {
        var c = NatConfiguration(privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: pool,
                                 maxFlows: NatConfiguration.defaultMaxFlows, seed: 0x7475_6E6E_6174)
        c.nat64 = Nat64Configuration(privatePrefixes: [IPv6Prefix("fd00:1::/64")!])
        return try! NAT(configuration: c)
    }
    /// Translates `packet` with the data plane's headroom in front of it: the translated packet, nil if dropped.
    func translate64(_ nat: NAT, _ buffer: UnsafeMutableRawBufferPointer, _ packet: [UInt8], now: UInt64) -> UnsafeMutableRawBufferPointer? {
        let room = Translate64.headroom
        packet.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[room..<(room + packet.count)]).copyMemory(from: $0) }
        var window = UnsafeMutableRawBufferPointer(rebasing: buffer[room..<(room + packet.count)])
        guard case .forward = nat.translate(&window, headroom: room, now: .seconds(now)) else { return nil }
        return window
    }
    for direction in ["IPv6 to IPv4", "IPv4 to IPv6"] {
        Benchmark("Translate established NAT64 flow, 1M flows, UDP 64-byte payload, \(direction)",
                  configuration: .init(thresholds: [.mallocCountTotal: BenchmarkThresholds(absolute: [.p100: 0])])) {
            (benchmark: Benchmark, state: Loaded) in
            let (nat, packets) = (state.nat, state.packets)
            var work = [UInt8](repeating: 0, count: 1700)
            var forwarded = 0
            let room = Translate64.headroom
            work.withUnsafeMutableBytes { buffer in
                var j = 0
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    let template = packets[j & 0xFFFF]
                    template.withUnsafeBytes {
                        UnsafeMutableRawBufferPointer(rebasing: buffer[room..<(room + template.count)]).copyMemory(from: $0)
                    }
                    var window = UnsafeMutableRawBufferPointer(rebasing: buffer[room..<(room + template.count)])
                    if case .forward = nat.translate(&window, headroom: room, now: .seconds(2)) { forwarded &+= 1 }
                    j &+= 1
                }
                benchmark.stopMeasurement()
            }
            if forwarded != benchmark.scaledIterations.count {
                fatalError("only \(forwarded) of \(benchmark.scaledIterations.count) packets translated: \(nat.counters)")
            }
        } setup: {
            let nat = makeNAT64()
            var external = [(UInt32, UInt16)](repeating: (0, 0), count: flowCount)
            var work = [UInt8](repeating: 0, count: 1700)
            let prefix = NAT64Prefix.wellKnown.embed(remote.value)
            work.withUnsafeMutableBytes { buffer in
                for i in 0..<flowCount {
                    let (address, port) = host6(i)
                    let packet = PacketBuilder.udp6(from: (address, port), to: (prefix, 443), payload: [UInt8](repeating: 0, count: 64))
                    guard let out = translate64(nat, buffer, packet, now: 1) else { fatalError("NAT64 flow \(i) not set up") }
                    external[i] = (out.loadBE32(at: 12), out.loadBE16(at: 20))
                }
            }
            precondition(nat.flowCount == flowCount && nat.nat64HostCount == flowCount / 16)
            let packets: [[UInt8]] = (0..<65536).map { j in
                let i = (j &* 2_654_435_761) % flowCount
                if direction == "IPv6 to IPv4" {
                    let (address, port) = host6(i)
                    return PacketBuilder.udp6(from: (address, port), to: (prefix, 443), payload: [UInt8](repeating: 1, count: 64))
                }
                return PacketBuilder.udp(from: (remote, 443), to: (IPv4Address(external[i].0), external[i].1),
                                         payload: [UInt8](repeating: 1, count: 64))
            }
            return Loaded(nat: nat, packets: packets)
        }
    }

    // The tun output path for bulk TCP: a 64 KB GSO super-packet with a partial checksum, as the kernel hands it
    // over, through FrameProcessor (virtio-net header, translation, partial sum moved, TTL). Only the headers are
    // reset from the template each time; the payload is never touched, as on the real path.
    Benchmark("Translate frame, TCP 64 KB GSO super-packet, partial checksum (tun output)",
              configuration: .init(thresholds: [.mallocCountTotal: BenchmarkThresholds(absolute: [.p100: 0])])) {
        (benchmark: Benchmark, state: Loaded) in
        let nat = state.nat
        var frame = state.packets[0]
        var counters = IOCounters()
        var forwarded = 0
        frame.withUnsafeMutableBytes { buffer in
            state.packets[0].withUnsafeBytes { template in
                let headers = UnsafeRawBufferPointer(rebasing: template[..<(VirtioNetHeader.size + 52)])
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    buffer.copyMemory(from: headers)
                    if case .send = FrameProcessor.process(buffer, nat: nat, now: .seconds(2), compensateHop: true,
                                                           counters: &counters) {
                        forwarded &+= 1
                    }
                }
                benchmark.stopMeasurement()
            }
        }
        if forwarded != benchmark.scaledIterations.count {
            fatalError("only \(forwarded) of \(benchmark.scaledIterations.count) frames translated: \(nat.counters)")
        }
    } setup: {
        let nat = makeNAT(capacity: 1024)
        var packet = PacketBuilder.tcp(from: host(0), to: (server, 443), flags: [.ack],
                                       options: [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
                                       payload: [UInt8](repeating: 1, count: 65_535 - 52))
        packet.withUnsafeMutableBytes { b in
            // The kernel's CHECKSUM_PARTIAL form: the field holds the folded pseudo-header sum.
            b.storeBE16(Checksum.fold(UInt64(IPv4Packet(unchecked: b).pseudoHeaderSum)), at: 36)
        }
        var frame = [UInt8](repeating: 0, count: VirtioNetHeader.size) + packet
        frame.withUnsafeMutableBytes { b in
            VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, gsoType: VirtioNetHeader.GSO.tcpv4, headerLength: 52,
                            gsoSize: 1448, checksumStart: 20, checksumOffset: 16).write(to: b)
        }
        return Loaded(nat: nat, packets: [frame])
    }

    // One table for the whole run; each iteration sets up one more flow (a new host:port, so a new mapping and a
    // port allocation too). 500 samples x 1000 iterations = 500,000 flows at most, within the 1M capacity.
    Benchmark("New flow setup (UDP, new mapping each, up to 500k flows)",
              configuration: .init(warmupIterations: 0, maxIterations: 500)) { (benchmark: Benchmark, state: Growing) in
        let nat = state.nat
        state.packet.withUnsafeMutableBytes { b in
            for _ in benchmark.scaledIterations {
                let (address, port) = host(state.next)
                let ip = IPv4Packet(unchecked: b)
                let udp = UDPDatagram(unchecked: ip.payload)
                // translate rewrote the source last time round: put this host's endpoint in, checksums kept right.
                udp.updateChecksum(addressFrom: ip.source, to: address)
                ip.setSource(address)
                udp.setSourcePort(Port(port))
                blackHole(nat.translate(b, now: .seconds(1)))
                state.next += 1
            }
        }
        if nat.counters.dropped != 0 || nat.flowCount != state.next {
            fatalError("not every new flow was set up: \(nat.flowCount) flows for \(state.next), \(nat.counters)")
        }
    } setup: {
        Growing(nat: makeNAT(capacity: NatConfiguration.defaultMaxFlows),
                packet: PacketBuilder.udp(from: host(0), to: (server, 443), payload: [UInt8](repeating: 0, count: 64)))
    }

    // The packet output's next-hop cache with 65,536 destinations in use, every one already asked about: each
    // iteration looks up the next destination in turn (a resolver that answers at once stands in for rtnetlink; a
    // question it is asked is counted and fails the run past the first pass).
    Benchmark("Egress next hop, 64k destinations in turn",
              configuration: .init(thresholds: [.mallocCountTotal: BenchmarkThresholds(absolute: [.p100: 0])])) {
        (benchmark: Benchmark, state: Destinations) in
        var counters = IOCounters()
        for _ in benchmark.scaledIterations {
            if state.next & 63 == 0 { state.cache.refresh() }
            blackHole(state.cache.nextHop(from: state.source, to: state.destinations[state.next & 0xFFFF],
                                          counters: &counters))
            state.next &+= 1
        }
        if counters.egressLookups > 65_536 / 100 {
            fatalError("\(counters.egressLookups) netlink questions for destinations asked about already")
        }
    } setup: {
        Destinations()
    }

    Benchmark("Memory per flow (resident bytes, 1M flows)",
              configuration: .init(metrics: [.custom("bytes per flow", polarity: .prefersSmaller, useScalingFactor: false)],
                                   warmupIterations: 0, scalingFactor: .one, maxIterations: 1)) { benchmark in
        let before = residentBytes()
        let nat = makeNAT(capacity: NatConfiguration.defaultMaxFlows)
        populate(nat)
        let after = residentBytes()
        benchmark.measurement(.custom("bytes per flow"), (after - before) / flowCount)
        blackHole(nat)
    }
}

/// A table loaded with a million flows, and packets of those flows. Built once in setup, then used by the one
/// thread that runs the benchmark.
final class Loaded: @unchecked Sendable {
    let nat: NAT
    let packets: [[UInt8]]
    init(nat: NAT, packets: [[UInt8]]) {
        self.nat = nat
        self.packets = packets
    }
}

/// A table that grows by one flow per iteration.
final class Growing: @unchecked Sendable {
    let nat: NAT
    var packet: [UInt8]
    var next = 0
    init(nat: NAT, packet: [UInt8]) {
        self.nat = nat
        self.packet = packet
    }
}

/// Resident set size from /proc/self/statm (Linux), in bytes.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

/// A resolver that answers every question at once: the same unicast route through one Ethernet interface and a
/// resolved gateway.
final class InstantKernel: EgressResolver {
    static let gateway = UInt32(0xC613_0001).bigEndian
    func route(to destination: UInt32, from source: UInt32, inputInterface: Int32) throws(Errno) -> RouteNetlink.Route {
        RouteNetlink.Route(type: RouteNetlink.Route.unicast, outputInterface: 5, gateway: Self.gateway, multipath: false)
    }
    func neighbour(_ address: UInt32, interface: Int32) throws(Errno) -> RouteNetlink.Neighbour? {
        RouteNetlink.Neighbour(state: 0x02, ethernet: 0x0100_0000_0002)
    }
    func link(_ index: Int32) throws(Errno) -> RouteNetlink.Link {
        RouteNetlink.Link(type: RouteNetlink.Link.ethernetType, mtu: 1500, ethernet: 0x0500_0000_0002)
    }
}

/// 65,536 destinations, each asked about once (in batches within the question budget) before the run.
final class Destinations: @unchecked Sendable {
    let cache = EgressCache(tunInterface: 3, changes: EgressChanges(), resolver: InstantKernel())
    let source = UInt32(0xC612_0001).bigEndian
    let destinations = (0..<UInt32(65_536)).map { (0xC613_0000 + $0).bigEndian }
    var next = 0
    init() {
        var counters = IOCounters()
        for (i, destination) in destinations.enumerated() {
            if i % 4 == 0 { cache.refresh() }
            _ = cache.nextHop(from: source, to: destination, counters: &counters)
        }
    }
}
