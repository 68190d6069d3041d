#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
import SystemCalls

/// What changed in the kernel's routing and neighbour tables, as `EgressWatcher` heard it: a routing generation
/// (any route, rule, address or link change, or lost news, moves it and every cached route is asked again) and
/// the last neighbour changes, numbered, so that a worker asks again only about the next hops that changed.
public final class EgressChanges: Sendable {
    /// How many neighbour changes are kept for workers that have not seen them yet; a worker further behind
    /// asks about all of its next hops again.
    static var kept: Int { 256 }
    let routing = Atomic<UInt64>(1)
    let neighbourCount = Atomic<UInt64>(0)
    /// (interface, address) of neighbour change number n at n % kept.
    let neighbours: Mutex<[(Int32, UInt32)]>

    public init() {
        neighbours = Mutex(Array(repeating: (0, 0), count: Self.kept))
    }

    public func note(_ change: RouteNetlink.Change) {
        switch change {
        case .routing, .lost:
            routing.add(1, ordering: .releasing)
        case .neighbour(let interface, let address):
            neighbours.withLock { kept in
                let n = neighbourCount.load(ordering: .relaxed)
                kept[Int(n % UInt64(Self.kept))] = (interface, address)
                neighbourCount.store(n &+ 1, ordering: .releasing)
            }
        }
    }

    /// The neighbour changes numbered `from..<neighbourCount`, or nil when some of them are no longer kept.
    func neighbourChanges(from: UInt64, _ body: (Int32, UInt32) -> Void) -> UInt64? {
        neighbours.withLock { kept in
            let count = neighbourCount.load(ordering: .relaxed)
            guard count &- from <= UInt64(Self.kept) else { return nil }
            for n in from..<count {
                let (interface, address) = kept[Int(n % UInt64(Self.kept))]
                body(interface, address)
            }
            return count
        }
    }
}

/// Hears rtnetlink's route, rule, address, link and neighbour groups and notes each change in `changes`. Runs
/// on its own thread until `stop`; it asks nothing, so it needs no privilege.
public enum EgressWatcher {
    public static func open() throws(Errno) -> RouteNetlink {
        try RouteNetlink(groups: [.link, .neighbour, .ipv4Address, .ipv4Route, .ipv4Rule])
    }

    public static func run(_ socket: RouteNetlink, changes: EgressChanges, stop: StopSignal) {
        while !stop.isStopped {
            do {
                let (readable, _) = try Syscall.pollIn(socket.fd, stop.fd, timeoutMilliseconds: 1000)
                if readable { try socket.readChanges { changes.note($0) } }
            } catch {
                // Whatever was missed, the routes are asked again.
                changes.note(.lost)
                Syscall.sleep(milliseconds: 100)
            }
        }
    }
}

/// The kernel's answers that `EgressCache` asks for: a `RouteNetlink` in the data plane, a table in tests.
public protocol EgressResolver: AnyObject {
    func route(to destination: UInt32, from source: UInt32, inputInterface: Int32) throws(Errno) -> RouteNetlink.Route
    func neighbour(_ address: UInt32, interface: Int32) throws(Errno) -> RouteNetlink.Neighbour?
    func link(_ index: Int32) throws(Errno) -> RouteNetlink.Link
}

extension RouteNetlink: EgressResolver {}

/// Where a packet leaves when it skips the kernel's second routing pass: the interface and the 14-byte
/// Ethernet header to put before it, from the kernel's own route and neighbour tables. One per worker, so it
/// takes no lock on the packet path. Routes are kept per (source, destination) in an 8-way set-associative table
/// of `routeSlots` (a set is two 64-byte cache lines; a hit moves to the front of its set, a miss replaces the
/// last, least recently used, entry), big enough that 64k destinations in use each cost one question per routing
/// change rather than one per packet (at 2 keys a set on average, fewer than 0.2 % of them are in a set of more
/// than 8); next hops (interface, address, MAC addresses, MTU) in a small table of
/// their own, which neighbour changes update one by one. At most `lookupBudget` netlink questions are asked per batch: beyond that, and whenever the
/// answer is not a usable unicast route through an Ethernet interface with a resolved neighbour, the packet
/// goes back into the TUN and the kernel forwards it (and resolves the neighbour, which the watcher then hears).
public final class EgressCache {
    public struct NextHop {
        public var interface: Int32 = 0
        public var address: UInt32 = 0
        public var mtu: Int = 0
        /// MAC addresses as `Netlink.ethernet` packs them.
        public var destinationMAC: UInt64 = 0
        public var sourceMAC: UInt64 = 0
        /// The neighbour was resolved when last asked.
        public var usable = false
        /// A change to this neighbour was heard since: ask again when next used (within the budget).
        public var stale = false

        /// Writes the Ethernet header (destination, source, EtherType IPv4) into the 14 bytes at `to`, which
        /// must be followed by 2 more writable bytes (each MAC is stored as a word; the next field overwrites
        /// the word's top two bytes).
        @inline(__always)
        public func writeEthernetHeader(to: UnsafeMutableRawPointer) {
            to.storeBytes(of: destinationMAC.littleEndian, toByteOffset: 0, as: UInt64.self)
            to.storeBytes(of: sourceMAC.littleEndian, toByteOffset: 6, as: UInt64.self)
            to.storeBytes(of: UInt16(0x0800).bigEndian, toByteOffset: 12, as: UInt16.self)
        }
    }

    /// 16 bytes: four to a cache line. All zeros (generation 0, never current) is an empty slot.
    struct Route {
        var source: UInt32 = 0
        var destination: UInt32 = 0
        /// The low 32 bits of the routing generation it was asked in.
        var generation: UInt32 = 0
        /// Index into `hops`, or -1: the kernel forwards these (no unicast route, or no room for the hop).
        var hop: Int32 = -1
    }

    /// 262,144 routes, 4 MiB per worker, zero pages until used: 64k destinations fill a quarter of it, so few sets
    /// overflow their eight ways.
    static var routeSlots: Int { ways << setBits }
    static var ways: Int { 8 }
    /// log2 of the number of sets.
    static var setBits: Int { 15 }
    static var hopSlots: Int { 256 }
    public static var lookupBudget: Int { 8 }

    let netlink: any EgressResolver
    let changes: EgressChanges
    /// The TUN: a route back into it is a loop, so those packets are the kernel's.
    let tunInterface: Int32
    let routes: UnsafeMutablePointer<Route>
    let routeBlock: UnsafeMutableRawPointer
    let hops: UnsafeMutablePointer<NextHop>
    var hopCount = 0
    var generation: UInt64 = 0
    var neighboursSeen: UInt64 = 0
    var budget = EgressCache.lookupBudget

    public init(tunInterface: Int32, changes: EgressChanges, resolver: any EgressResolver) {
        netlink = resolver
        self.changes = changes
        self.tunInterface = tunInterface
        // calloc: a block this size is fresh anonymous memory, zero pages the kernel hands out as they are first
        // written, so the table costs memory only as it fills. 128 bytes more, to start it on a 128-byte boundary so
        // that each set is two whole cache lines.
        guard let block = calloc(Self.routeSlots * MemoryLayout<Route>.stride + 128, 1) else {
            fatalError("out of memory for the egress route cache")
        }
        routeBlock = block
        routes = UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: block) + 127) & ~127)!
            .bindMemory(to: Route.self, capacity: Self.routeSlots)
        hops = .allocate(capacity: Self.hopSlots)
        hops.initialize(repeating: NextHop(), count: Self.hopSlots)
        refresh()
    }

    deinit {
        free(routeBlock)
        hops.deallocate()
    }

    /// Between batches: takes in what the watcher heard, and renews the lookup budget.
    public func refresh() {
        budget = Self.lookupBudget
        let current = changes.routing.load(ordering: .acquiring)
        if current != generation {
            generation = current
            hopCount = 0
            neighboursSeen = changes.neighbourCount.load(ordering: .acquiring)
            return
        }
        guard changes.neighbourCount.load(ordering: .acquiring) != neighboursSeen else { return }
        let seen = changes.neighbourChanges(from: neighboursSeen) { interface, address in
            for i in 0..<hopCount where hops[i].address == address && hops[i].interface == interface {
                hops[i].stale = true
            }
        }
        if let seen {
            neighboursSeen = seen
        } else {
            for i in 0..<hopCount { hops[i].stale = true }
            neighboursSeen = changes.neighbourCount.load(ordering: .acquiring)
        }
    }

    /// The next hop for a packet from `source` to `destination` (network order), or nil: the kernel's.
    @inline(__always)
    public func nextHop(from source: UInt32, to destination: UInt32, counters: inout IOCounters) -> UnsafeMutablePointer<NextHop>? {
        let current = UInt32(truncatingIfNeeded: generation)
        // MurmurHash3's 64-bit finaliser: every bit of both addresses reaches every bit of the index, so servers
        // of one /24, or pool addresses of one, spread over the sets as random keys would.
        var mixed = UInt64(source) << 32 | UInt64(destination)
        mixed = (mixed ^ mixed >> 33) &* 0xFF51_AFD7_ED55_8CCD
        mixed = (mixed ^ mixed >> 33) &* 0xC4CE_B9FE_1A85_EC53
        mixed ^= mixed >> 33
        let set = routes + Int(truncatingIfNeeded: mixed >> (64 - Self.setBits)) * Self.ways
        var way = 0
        while way < Self.ways {
            let r = set[way]
            if r.source == source && r.destination == destination && r.generation == current { break }
            way += 1
        }
        if way == Self.ways {
            guard budget > 0 else { return nil }
            way = Self.ways - 1
            set[way] = Route(source: source, destination: destination, generation: current,
                             hop: resolve(from: source, to: destination, counters: &counters))
        }
        // Most recently used first: the last way is the one a miss replaces.
        if way > 0 {
            let found = set[way]
            for i in stride(from: way, to: 0, by: -1) { set[i] = set[i - 1] }
            set[0] = found
        }
        let route = set
        guard route.pointee.hop >= 0 else { return nil }
        let hop = hops + Int(route.pointee.hop)
        if hop.pointee.stale, budget > 0 { ask(about: hop, counters: &counters) }
        return hop.pointee.usable ? hop : nil
    }

    /// Asks for the route, and for its next hop when it is new: the hop's index, or -1.
    func resolve(from source: UInt32, to destination: UInt32, counters: inout IOCounters) -> Int32 {
        budget -= 1
        counters.egressLookups &+= 1
        guard let route = try? netlink.route(to: destination, from: source, inputInterface: tunInterface),
              route.type == RouteNetlink.Route.unicast, !route.multipath,
              route.outputInterface > 0, route.outputInterface != tunInterface
        else { return -1 }
        let address = route.gateway ?? destination
        for i in 0..<hopCount where hops[i].address == address && hops[i].interface == route.outputInterface {
            return Int32(i)
        }
        guard hopCount < Self.hopSlots else { return -1 }
        counters.egressLookups &+= 1
        guard let link = try? netlink.link(route.outputInterface), link.type == RouteNetlink.Link.ethernetType,
              let mac = link.ethernet, link.mtu >= 576
        else { return -1 }
        let hop = hops + hopCount
        hop.pointee = NextHop(interface: route.outputInterface, address: address, mtu: Int(link.mtu), sourceMAC: mac)
        hopCount += 1
        ask(about: hop, counters: &counters)
        return Int32(hopCount - 1)
    }

    /// Asks for the neighbour entry of `hop`.
    func ask(about hop: UnsafeMutablePointer<NextHop>, counters: inout IOCounters) {
        budget -= 1
        counters.egressLookups &+= 1
        hop.pointee.stale = false
        guard let neighbour = try? netlink.neighbour(hop.pointee.address, interface: hop.pointee.interface),
              neighbour.isUsable, let mac = neighbour.ethernet
        else {
            hop.pointee.usable = false
            return
        }
        hop.pointee.destinationMAC = mac
        hop.pointee.usable = true
    }
}
