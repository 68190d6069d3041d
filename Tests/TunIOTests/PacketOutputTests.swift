import Glibc
import PacketKit
import SystemCalls
import Netlink
import Testing
@testable import TunIO

/// The packet output and its egress cache, against a kernel made of tables that answers as rtnetlink does (a
/// missing route is ENETUNREACH, a missing neighbour is no entry, a missing link is ENODEV), the TUN fallback on
/// an in-memory queue, and the packet socket replaced by a recorder.
@Suite struct PacketOutputTests {
    final class TableKernel: EgressResolver {
        struct HopKey: Hashable {
            let interface: Int32
            let address: UInt32
        }
        var routes: [UInt32: RouteNetlink.Route] = [:]
        /// The route of every destination `routes` does not name, as a default route is.
        var defaultRoute: RouteNetlink.Route?
        var neighbours: [HopKey: RouteNetlink.Neighbour] = [:]
        var links: [Int32: RouteNetlink.Link] = [:]
        var questions = 0

        func route(to destination: UInt32, from source: UInt32, inputInterface: Int32) throws(Errno) -> RouteNetlink.Route {
            questions += 1
            guard let route = routes[destination] ?? defaultRoute else { throw Errno("netlink RTM_GETROUTE", ENETUNREACH) }
            return route
        }
        func neighbour(_ address: UInt32, interface: Int32) throws(Errno) -> RouteNetlink.Neighbour? {
            questions += 1
            return neighbours[HopKey(interface: interface, address: address)]
        }
        func link(_ index: Int32) throws(Errno) -> RouteNetlink.Link {
            questions += 1
            guard let link = links[index] else { throw Errno("netlink RTM_GETLINK", ENODEV) }
            return link
        }
    }

    /// What went out of the packet socket: the prefix (virtio-net and Ethernet headers), the packet, the
    /// interface, and how many frames the TUN had been given when it went.
    struct Sent {
        let prefix: [UInt8]
        let packet: [UInt8]
        let interface: Int32
        let tunWritesBefore: Int
    }
    final class Recorder {
        var sent: [Sent] = []
    }

    static let tun: Int32 = 3, wan: Int32 = 5, lan: Int32 = 6
    static let gateway = IPv4Address("198.19.0.1")!.value.bigEndian
    static func mac(_ bytes: UInt8...) -> UInt64 { bytes.withUnsafeBytes { Netlink.ethernet($0) } }
    static let wanMAC = mac(2, 0, 0, 0, 0, 5)
    static let gatewayMAC = mac(2, 0, 0, 0, 0, 1)

    let kernel = TableKernel()
    let changes = EgressChanges()
    let queue = MemoryQueue()
    let recorder = Recorder()
    let output: PacketSocketOutput<MemoryQueue>

    init() {
        kernel.links[Self.wan] = RouteNetlink.Link(type: RouteNetlink.Link.ethernetType, mtu: 1500, ethernet: Self.wanMAC)
        kernel.routes[server.value.bigEndian] = RouteNetlink.Route(type: RouteNetlink.Route.unicast,
                                                                  outputInterface: Self.wan, gateway: Self.gateway,
                                                                  multipath: false)
        let queue = queue
        let recorder = recorder
        output = PacketSocketOutput(
            fallback: TunOutput(queue: queue, virtioHeaders: true),
            cache: EgressCache(tunInterface: Self.tun, changes: changes, resolver: kernel), socket: nil
        ) { frames, count in
            for frame in UnsafeBufferPointer(start: frames, count: count) {
                recorder.sent.append(Sent(
                    prefix: Array(UnsafeRawBufferPointer(start: frame.prefix, count: frame.prefix_length)),
                    packet: Array(UnsafeRawBufferPointer(start: frame.bytes, count: frame.length)),
                    interface: frame.ifindex, tunWritesBefore: queue.written.count))
            }
            return .success(count)
        }
    }

    func resolveGateway() {
        kernel.neighbours[TableKernel.HopKey(interface: Self.wan, address: Self.gateway)] =
            RouteNetlink.Neighbour(state: 0x02, ethernet: Self.gatewayMAC)  // NUD_REACHABLE
    }

    /// Sends `packet` as a frame with `header`, as the worker does, and ends the batch when `flush`.
    func send(_ packet: [UInt8], _ header: VirtioNetHeader = VirtioNetHeader(), flush: Bool = true, counters: inout IOCounters) {
        var bytes = frame(header, packet)
        bytes.withUnsafeMutableBytes { output.send(frame: $0, header: header, counters: &counters) }
        if flush { output.flush(counters: &counters) }
    }

    func outbound(_ port: UInt16 = 40000, size: Int = 32) -> [UInt8] {
        PacketBuilder.udp(from: (pool, port), to: (server, 53), payload: payload(size))
    }

    @Test func aFrameToAResolvedNeighbourLeavesTheEgressInterfaceAsItCame() {
        resolveGateway()
        var counters = IOCounters()
        let packet = outbound()
        send(packet, counters: &counters)
        #expect(queue.written.isEmpty)
        #expect(recorder.sent.count == 1)
        guard let sent = recorder.sent.first else { return }
        #expect(sent.interface == Self.wan)
        #expect(sent.packet == packet, "the TTL was taken on the way into the TUN: nothing more to change")
        #expect(Array(sent.prefix[0..<10]) == [UInt8](repeating: 0, count: 10))
        #expect(Array(sent.prefix[10..<24]) == [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 5, 0x08, 0x00])
        #expect(counters.framesDirect == 1 && counters.framesFallback == 0 && counters.packetsWritten == 1)
    }

    @Test func aPartialChecksumsOffsetsCountFromTheEthernetHeader() {
        resolveGateway()
        var counters = IOCounters()
        var packet = outbound()
        makePartial(&packet, field: 26)
        let header = VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, headerLength: 28, checksumStart: 20, checksumOffset: 6)
        send(packet, header, counters: &counters)
        #expect(recorder.sent.count == 1)
        guard let prefix = recorder.sent.first?.prefix else { return }
        let shifted = prefix.withUnsafeBytes { VirtioNetHeader(UnsafeMutableRawBufferPointer(mutating: $0)) }
        #expect(shifted == VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, headerLength: 42, checksumStart: 34, checksumOffset: 6))
    }

    /// With no neighbour entry the frame goes back into the TUN (TTL compensated, as in tun mode): the kernel
    /// resolves the neighbour, the watcher hears it, and the next batch sends directly.
    @Test func anUnresolvedNeighbourSendsThroughTheKernelUntilItIsHeardResolved() {
        var counters = IOCounters()
        let packet = outbound()
        send(packet, counters: &counters)
        #expect(recorder.sent.isEmpty)
        #expect(queue.written.count == 1)
        let back = Array(queue.written[0].dropFirst(VirtioNetHeader.size))
        #expect(back[8] == packet[8] + 1 && ChecksumAudit.problems(in: back) == [], "compensated for the second pass")
        let asked = kernel.questions
        send(packet, counters: &counters)
        #expect(kernel.questions == asked, "no question again until a change is heard")
        #expect(queue.written.count == 2)

        resolveGateway()
        changes.note(.neighbour(interface: Self.wan, address: Self.gateway))
        output.flush(counters: &counters)
        send(packet, counters: &counters)
        #expect(recorder.sent.count == 1 && recorder.sent.first?.interface == Self.wan)
        #expect(counters.framesFallback == 2 && counters.framesDirect == 1)
    }

    /// A change of another neighbour asks nothing; a routing change asks the route again.
    @Test func onlyTheChangedNextHopIsAskedAgainAndARoutingChangeAsksEverything() {
        resolveGateway()
        var counters = IOCounters()
        send(outbound(), counters: &counters)
        let asked = kernel.questions
        changes.note(.neighbour(interface: Self.lan, address: client.value.bigEndian))
        output.flush(counters: &counters)
        send(outbound(), counters: &counters)
        #expect(kernel.questions == asked)

        kernel.links[Self.lan] = RouteNetlink.Link(type: RouteNetlink.Link.ethernetType, mtu: 9001, ethernet: Self.mac(2, 0, 0, 0, 0, 6))
        kernel.routes[server.value.bigEndian] = RouteNetlink.Route(type: RouteNetlink.Route.unicast, outputInterface: Self.lan,
                                                                  gateway: nil, multipath: false)
        kernel.neighbours[TableKernel.HopKey(interface: Self.lan, address: server.value.bigEndian)] =
            RouteNetlink.Neighbour(state: 0x04, ethernet: Self.mac(2, 0, 0, 0, 0, 0x10))  // NUD_STALE: still usable
        changes.note(.routing)
        output.flush(counters: &counters)
        send(outbound(), counters: &counters)
        #expect(recorder.sent.map(\.interface) == [Self.wan, Self.wan, Self.lan])
        #expect(recorder.sent.last.map { Array($0.prefix[10..<16]) } == [2, 0, 0, 0, 0, 0x10])
    }

    /// Larger than the egress MTU: the kernel's (to fragment, or to answer "fragmentation needed"), and only
    /// after the frames queued before it, so the flow keeps its order. A GSO super-packet whose segments fit
    /// stays whole and direct.
    @Test func aPacketOverTheMTUGoesThroughTheKernelAfterWhatWasQueued() {
        resolveGateway()
        var counters = IOCounters()
        send(outbound(40000, size: 100), flush: false, counters: &counters)
        send(outbound(40000, size: 1500), flush: false, counters: &counters)
        let gso = VirtioNetHeader(gsoType: VirtioNetHeader.GSO.udpL4, headerLength: 28, gsoSize: 1472)
        send(outbound(40000, size: 4 * 1472), gso, counters: &counters)
        #expect(recorder.sent.count == 2)
        #expect(recorder.sent.first?.tunWritesBefore == 0, "the small one left before the large one went into the TUN")
        #expect(recorder.sent.last?.tunWritesBefore == 1)
        #expect(queue.written.count == 1 && queue.written.first?.count == VirtioNetHeader.size + 1528)
    }

    /// No unicast route through an Ethernet interface other than the TUN: the kernel's.
    @Test func routesThatAreNotPlainUnicastAreTheKernels() {
        resolveGateway()
        var counters = IOCounters()
        let kinds: [RouteNetlink.Route] = [
            .init(type: 2, outputInterface: Self.wan, gateway: nil, multipath: false),  // local
            .init(type: 6, outputInterface: 0, gateway: nil, multipath: false),  // blackhole
            .init(type: RouteNetlink.Route.unicast, outputInterface: Self.tun, gateway: nil, multipath: false),
            .init(type: RouteNetlink.Route.unicast, outputInterface: Self.wan, gateway: Self.gateway, multipath: true),
            .init(type: RouteNetlink.Route.unicast, outputInterface: 9, gateway: nil, multipath: false),  // no such link
        ]
        for (i, route) in kinds.enumerated() {
            let destination = IPv4Address(server.value + UInt32(i) + 1)
            kernel.routes[destination.value.bigEndian] = route
            let packet = PacketBuilder.udp(from: (pool, 40000), to: (destination, 53), payload: payload(8))
            send(packet, counters: &counters)
        }
        #expect(recorder.sent.isEmpty)
        #expect(queue.written.count == kinds.count && counters.framesFallback == UInt64(kinds.count))
    }

    /// A batch of new destinations asks at most the budget's worth of questions (each of which may ask for the
    /// route, the link and the neighbour); the rest go through the kernel, and the next batch asks more.
    @Test func newDestinationsAskAtMostTheBudgetPerBatch() {
        var counters = IOCounters()
        for i in 0..<200 {
            let destination = IPv4Address(server.value + UInt32(i) + 100)
            kernel.routes[destination.value.bigEndian] = RouteNetlink.Route(type: RouteNetlink.Route.unicast,
                outputInterface: Self.wan, gateway: Self.gateway, multipath: false)
            send(PacketBuilder.udp(from: (pool, 40000), to: (destination, 53), payload: payload(8)), flush: false,
                 counters: &counters)
        }
        #expect(kernel.questions <= EgressCache.lookupBudget + 2)
        #expect(counters.egressLookups == UInt64(kernel.questions))
        #expect(queue.written.count == 200)
        let asked = kernel.questions
        output.flush(counters: &counters)
        send(outbound(), counters: &counters)
        #expect(kernel.questions > asked, "a new batch, a new budget")
    }

    /// A cache of its own, every destination routed through the resolved gateway (as a default route is).
    func cacheWithADefaultRoute() -> EgressCache {
        kernel.defaultRoute = RouteNetlink.Route(type: RouteNetlink.Route.unicast, outputInterface: Self.wan,
                                                 gateway: Self.gateway, multipath: false)
        resolveGateway()
        return EgressCache(tunInterface: Self.tun, changes: changes, resolver: kernel)
    }

    /// Looks up every (source, destination) pair in turn, in batches of 4 (a new budget each, more than 4 new
    /// routes need): how many had a next hop, and how many questions the kernel was asked.
    func pass(_ cache: EgressCache, _ pairs: [(UInt32, UInt32)]) -> (direct: Int, asked: Int) {
        var counters = IOCounters()
        let asked = kernel.questions
        var direct = 0
        for (i, (source, destination)) in pairs.enumerated() {
            if i % 4 == 0 { cache.refresh() }
            if cache.nextHop(from: source, to: destination, counters: &counters) != nil { direct += 1 }
        }
        return (direct, kernel.questions - asked)
    }

    /// 64k destinations in use (a crawler, a busy NAT), each seen again and again: the cache asks about each once
    /// per routing change, not once per packet as a 4,096-slot direct-mapped table did past 4,096 destinations.
    @Test func sixtyFourThousandDestinationsAreAskedAboutOncePerRoutingChange() {
        let cache = cacheWithADefaultRoute()
        let destinations = (0..<UInt32(65_536)).map { (pool.value.bigEndian, (IPv4Address(198, 19, 0, 0).value + $0).bigEndian) }
        func pass() -> (direct: Int, asked: Int) { self.pass(cache, destinations) }
        let first = pass()
        #expect(first.direct == 65_536 && first.asked == 65_536 + 2, "a route each, the gateway's link and neighbour once")
        for _ in 0..<3 {
            let again = pass()
            #expect(again.direct == 65_536)
            #expect(again.asked <= 65_536 / 100, "\(again.asked) questions for destinations asked about already")
        }
        changes.note(.routing)
        cache.refresh()
        #expect(pass().asked >= 65_536, "a routing change: every route is asked again")
    }

    /// Servers of one /24 seen from one pool address, and pool addresses of one /24 towards one server: every
    /// address bit reaches the set index, so they spread over the sets and are asked about once each.
    @Test func addressesOfOneSubnetSpreadOverTheSets() {
        let cache = cacheWithADefaultRoute()
        let pairs = (0..<UInt32(256)).map { (pool.value.bigEndian, (IPv4Address(198, 19, 7, 0).value + $0).bigEndian) }
            + (0..<UInt32(256)).map { ((IPv4Address(198, 18, 0, 0).value + $0).bigEndian, server.value.bigEndian) }
        _ = pass(cache, pairs)
        for _ in 0..<3 {
            let again = pass(cache, pairs)
            #expect(again.direct == pairs.count)
            #expect(again.asked == 0, "\(again.asked) questions again for 512 pairs asked about already")
        }
    }
}
