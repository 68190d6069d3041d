#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Port spaces are per protocol: TCP port 80 and UDP port 80 are different resources (RFC 4787, RFC 5382).
@usableFromInline enum ProtocolClass: UInt8 {
    case tcp = 0
    case udp = 1
    case icmp = 2
    static let count = 3
}

/// Which idle timeout a flow is under. Every flow in one class has the same timeout, so a list per class kept in
/// last-seen order expires exactly by looking at its head: no sweep over the table, ever.
@usableFromInline enum TimerClass: UInt8, Sendable {
    case tcpEstablished = 0
    case tcpTransitory = 1
    case udp = 2
    case icmp = 3
    /// A TCP connection picked up mid-stream whose other side has not answered (`TCPTracker.pickedUp`).
    case tcpUnreplied = 4
    /// UDP that has not become a stream (`UDPTracker.isAssured`): as long-lived as `udp`, but evictable.
    case udpUnassured = 5
    /// A single request and its answer to a well-known request/response port (DNS, NTP): RFC 4787 REQ-5a's
    /// shorter timer, and evictable.
    case udpShort = 6
    /// Made from outside and not (yet) an established connection or a stream: `tcpTransitory`'s timeout, evicted
    /// before any flow a private host made, and never in the way of a host looking for one of its own to evict.
    case inbound = 7
    static let count = 8

    /// The class of a flow whose state alone gives `self`, made from outside or not.
    @inline(__always) func madeFromOutside(_ inbound: Bool) -> TimerClass {
        guard inbound else { return self }
        switch self {
        case .tcpUnreplied, .tcpTransitory, .udpUnassured, .udpShort: return .inbound
        case .tcpEstablished, .udp, .icmp, .inbound: return self
        }
    }
}

/// An internal endpoint bound to an external one. 28 bytes.
@usableFromInline struct Mapping {
    var internalAddress: UInt32
    var externalAddress: UInt32
    var internalPort: UInt16
    var externalPort: UInt16
    var protocolClass: UInt8
    var pool: UInt8
    /// Flows of this mapping that an inbound packet created (bounded by `maxInboundFlowsPerMapping`).
    var inboundFlows: UInt16 = 0
    /// Flows that use this mapping; the mapping goes when the last one does.
    var flows: UInt32
    /// Next mapping in the same by-internal bucket (0: none); also the free-list link.
    var nextByInternal: UInt32
    var nextByExternal: UInt32
}

/// A mapping plus one remote endpoint: the unit that has a timer and TCP or UDP state. 48 bytes.
@usableFromInline struct Flow {
    var mapping: UInt32
    var remoteAddress: UInt32
    var remotePort: UInt16
    /// The state byte: a TCP flow's tracker; a UDP flow keeps its `UDPTracker` here (`udp`); 0 for ICMP.
    var tcp: TCPTracker
    /// The timer class (low 7 bits) and, in the top bit, whether an inbound packet made the flow: one byte, in the
    /// cache line the lookup and the timer list already touch.
    var classAndOrigin: UInt8
    var lastSeen: UInt32
    /// Next flow in the same bucket (0: none); also the free-list link.
    var next: UInt32
    var older: UInt32
    var newer: UInt32
    /// TCP only: each side's sequence space, to check RSTs and FINs.
    var window: TCPWindow

    init(mapping: UInt32, remoteAddress: UInt32, remotePort: UInt16, tcp: TCPTracker, timer: UInt8, lastSeen: UInt32,
         next: UInt32, older: UInt32, newer: UInt32, window: TCPWindow, inboundCreated: Bool) {
        self.mapping = mapping
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.tcp = tcp
        classAndOrigin = timer | (inboundCreated ? 0x80 : 0)
        self.lastSeen = lastSeen
        self.next = next
        self.older = older
        self.newer = newer
        self.window = window
    }

    var timer: UInt8 {
        get { classAndOrigin & 0x7F }
        set { classAndOrigin = classAndOrigin & 0x80 | newValue }
    }

    /// Made by an inbound packet: counted in its mapping's `inboundFlows` and the table's inbound budget, never
    /// against its host.
    var inboundCreated: Bool { classAndOrigin & 0x80 != 0 }

    /// A UDP flow's state, kept in the same byte as a TCP flow's.
    var udp: UDPTracker {
        get { UDPTracker(bits: tcp.bits) }
        set { tcp.bits = newValue.bits }
    }
}

/// One flow index per timer class (`TimerClass.count`): the ends of the classes' lists, kept inline.
@usableFromInline typealias TimerEnds = (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)

/// Flows and mappings in two preallocated slabs, indexed from 1 (0 means "none"), with three chained hash
/// indexes: mappings by internal endpoint, mappings by external endpoint, flows by (mapping, remote endpoint).
/// Every lookup, insert, refresh and removal is O(1) (chains average at most one entry: there are at least as
/// many buckets as slots). The slabs are reserved at full capacity up front and only touched as they fill, so
/// a million-flow table costs its memory only once it holds a million flows, and the packet path never allocates.
@usableFromInline final class FlowStore {
    let capacity: Int
    let bucketMask: Int
    @usableFromInline let mappings: UnsafeMutablePointer<Mapping>
    @usableFromInline let flows: UnsafeMutablePointer<Flow>
    let mappingsByInternal: UnsafeMutablePointer<UInt32>
    let mappingsByExternal: UnsafeMutablePointer<UInt32>
    let flowsByKey: UnsafeMutablePointer<UInt32>
    /// Oldest and newest flow of each timer class.
    var oldest: TimerEnds = (0, 0, 0, 0, 0, 0, 0, 0)
    var newest: TimerEnds = (0, 0, 0, 0, 0, 0, 0, 0)
    var mappingHighWater: UInt32 = 0
    var flowHighWater: UInt32 = 0
    var freeMappings: UInt32 = 0
    var freeFlows: UInt32 = 0
    private(set) var mappingCount = 0
    private(set) var flowCount = 0
    let seed0: UInt64
    let seed1: UInt64

    init(capacity: Int, seed: UInt64) {
        precondition(capacity >= 1 && capacity < Int(UInt32.max))
        self.capacity = capacity
        var buckets = 1
        while buckets < capacity { buckets <<= 1 }
        bucketMask = buckets - 1
        mappings = .allocate(capacity: capacity + 1)
        flows = .allocate(capacity: capacity + 1)
        mappingsByInternal = Self.zeroed(buckets)
        mappingsByExternal = Self.zeroed(buckets)
        flowsByKey = Self.zeroed(buckets)
        var mixer = SplitMix64(seed: seed ^ 0x6861_7368)
        seed0 = mixer.next()
        seed1 = mixer.next() | 1
    }

    deinit {
        mappings.deallocate()
        flows.deallocate()
        free(mappingsByInternal)
        free(mappingsByExternal)
        free(flowsByKey)
    }

    /// calloc: the kernel hands out zero pages lazily, so an empty million-bucket index costs nothing resident.
    static func zeroed(_ count: Int) -> UnsafeMutablePointer<UInt32> {
        guard let raw = calloc(count, MemoryLayout<UInt32>.stride) else { fatalError("out of memory for \(count) buckets") }
        return raw.bindMemory(to: UInt32.self, capacity: count)
    }

    /// Bytes of table memory per flow when full, with one mapping per flow (the worst case).
    static func bytesPerFlow(capacity: Int) -> Double {
        var buckets = 1
        while buckets < capacity { buckets <<= 1 }
        let slabs = MemoryLayout<Mapping>.stride + MemoryLayout<Flow>.stride
        return Double(slabs) + Double(3 * MemoryLayout<UInt32>.stride * buckets) / Double(capacity)
    }

    // MARK: Hashing

    /// A keyed multiply-fold hash (the "mum" step of wyhash) over two 64-bit key halves. The keys are secret per
    /// table, so a sender cannot aim packets at one bucket.
    @inline(__always) func bucket(_ a: UInt64, _ b: UInt64) -> Int {
        let product = (a ^ seed0).multipliedFullWidth(by: b ^ seed1)
        return Int(truncatingIfNeeded: product.high ^ product.low) & bucketMask
    }

    @inline(__always) func endpointBucket(_ cls: UInt8, _ address: UInt32, _ port: UInt16) -> Int {
        bucket(UInt64(address) << 16 | UInt64(port), UInt64(cls))
    }

    @inline(__always) func flowBucket(_ mapping: UInt32, _ address: UInt32, _ port: UInt16) -> Int {
        bucket(UInt64(mapping), UInt64(address) << 16 | UInt64(port))
    }

    // MARK: Mappings

    @inline(__always)
    func findMapping(internal cls: UInt8, _ address: UInt32, _ port: UInt16) -> UInt32 {
        var i = mappingsByInternal[endpointBucket(cls, address, port)]
        while i != 0 {
            let m = mappings[Int(i)]
            if m.internalAddress == address && m.internalPort == port && m.protocolClass == cls { return i }
            i = m.nextByInternal
        }
        return 0
    }

    @inline(__always)
    func findMapping(external cls: UInt8, _ address: UInt32, _ port: UInt16) -> UInt32 {
        var i = mappingsByExternal[endpointBucket(cls, address, port)]
        while i != 0 {
            let m = mappings[Int(i)]
            if m.externalAddress == address && m.externalPort == port && m.protocolClass == cls { return i }
            i = m.nextByExternal
        }
        return 0
    }

    /// Inserts a mapping; the caller has checked there is room (there always is while flows < capacity).
    func insertMapping(_ mapping: Mapping) -> UInt32 {
        let index: UInt32
        if freeMappings != 0 {
            index = freeMappings
            freeMappings = mappings[Int(index)].nextByInternal
        } else {
            precondition(Int(mappingHighWater) < capacity, "mapping slab overflow")
            mappingHighWater += 1
            index = mappingHighWater
        }
        var m = mapping
        let bi = endpointBucket(m.protocolClass, m.internalAddress, m.internalPort)
        let be = endpointBucket(m.protocolClass, m.externalAddress, m.externalPort)
        m.nextByInternal = mappingsByInternal[bi]
        m.nextByExternal = mappingsByExternal[be]
        (mappings + Int(index)).initialize(to: m)
        mappingsByInternal[bi] = index
        mappingsByExternal[be] = index
        mappingCount += 1
        return index
    }

    func removeMapping(_ index: UInt32) {
        let m = mappings[Int(index)]
        Self.unlink(index, from: mappingsByInternal + endpointBucket(m.protocolClass, m.internalAddress, m.internalPort),
                    in: mappings, next: \.nextByInternal)
        Self.unlink(index, from: mappingsByExternal + endpointBucket(m.protocolClass, m.externalAddress, m.externalPort),
                    in: mappings, next: \.nextByExternal)
        mappings[Int(index)].nextByInternal = freeMappings
        freeMappings = index
        mappingCount -= 1
    }

    /// Takes entry `index` out of the hash chain that starts at `head`, `next` being the chain's link field. The
    /// predecessor is found by walking the chain, which is short (about one entry) by construction.
    @inline(__always)
    static func unlink<Entry>(_ index: UInt32, from head: UnsafeMutablePointer<UInt32>,
                              in slab: UnsafeMutablePointer<Entry>, next: WritableKeyPath<Entry, UInt32>) {
        let after = slab[Int(index)][keyPath: next]
        guard head.pointee != index else {
            head.pointee = after
            return
        }
        var p = head.pointee
        while slab[Int(p)][keyPath: next] != index { p = slab[Int(p)][keyPath: next] }
        slab[Int(p)][keyPath: next] = after
    }

    // MARK: Flows

    @inline(__always)
    func findFlow(_ mapping: UInt32, _ address: UInt32, _ port: UInt16) -> UInt32 {
        var i = flowsByKey[flowBucket(mapping, address, port)]
        while i != 0 {
            let f = flows[Int(i)]
            if f.mapping == mapping && f.remoteAddress == address && f.remotePort == port { return i }
            i = f.next
        }
        return 0
    }

    func insertFlow(mapping: UInt32, remoteAddress: UInt32, remotePort: UInt16, tcp: TCPTracker, timer: TimerClass,
                    now: UInt32, window: TCPWindow = .unknown, inboundCreated: Bool = false) -> UInt32 {
        let index: UInt32
        if freeFlows != 0 {
            index = freeFlows
            freeFlows = flows[Int(index)].next
        } else {
            precondition(Int(flowHighWater) < capacity, "flow slab overflow")
            flowHighWater += 1
            index = flowHighWater
        }
        let b = flowBucket(mapping, remoteAddress, remotePort)
        (flows + Int(index)).initialize(
            to: Flow(mapping: mapping, remoteAddress: remoteAddress, remotePort: remotePort, tcp: tcp,
                     timer: timer.rawValue, lastSeen: now, next: flowsByKey[b], older: 0, newer: 0, window: window,
                     inboundCreated: inboundCreated))
        flowsByKey[b] = index
        appendNewest(index, timer.rawValue)
        mappings[Int(mapping)].flows += 1
        if inboundCreated { mappings[Int(mapping)].inboundFlows += 1 }
        flowCount += 1
        return index
    }

    /// Removes a flow and returns its mapping, whose flow count the caller checks.
    func removeFlow(_ index: UInt32) -> UInt32 {
        let f = flows[Int(index)]
        Self.unlink(index, from: flowsByKey + flowBucket(f.mapping, f.remoteAddress, f.remotePort), in: flows,
                    next: \.next)
        unlinkTimer(index)
        mappings[Int(f.mapping)].flows -= 1
        if f.inboundCreated { mappings[Int(f.mapping)].inboundFlows -= 1 }
        flows[Int(index)].next = freeFlows
        // A free slot has no mapping (indices start at 1): a walk over the slots (NAT.snapshot) skips it.
        flows[Int(index)].mapping = 0
        freeFlows = index
        flowCount -= 1
        return f.mapping
    }

    /// Marks a flow as seen now, under `timer`: it moves to the newest end of that class's list.
    @inline(__always)
    func touch(_ index: UInt32, now: UInt32, timer: TimerClass) {
        let f = flows[Int(index)]
        if f.timer == timer.rawValue && f.lastSeen == now && f.newer == 0 { return }
        unlinkTimer(index)
        // Never let time run backwards inside a list (a capture may hold out-of-order timestamps).
        flows[Int(index)].lastSeen = max(now, f.lastSeen)
        flows[Int(index)].timer = timer.rawValue
        appendNewest(index, timer.rawValue)
    }

    @inline(__always) func oldestFlow(_ timer: UInt8) -> UInt32 {
        withUnsafeBytes(of: oldest) { $0.load(fromByteOffset: Int(timer) * 4, as: UInt32.self) }
    }

    @inline(__always) func setEnd(_ ends: inout TimerEnds, _ timer: UInt8, _ value: UInt32) {
        withUnsafeMutableBytes(of: &ends) { $0.storeBytes(of: value, toByteOffset: Int(timer) * 4, as: UInt32.self) }
    }

    @inline(__always) func newestFlow(_ timer: UInt8) -> UInt32 {
        withUnsafeBytes(of: newest) { $0.load(fromByteOffset: Int(timer) * 4, as: UInt32.self) }
    }

    @inline(__always) func appendNewest(_ index: UInt32, _ timer: UInt8) {
        let tail = newestFlow(timer)
        flows[Int(index)].older = tail
        flows[Int(index)].newer = 0
        if tail != 0 { flows[Int(tail)].newer = index } else { setEnd(&oldest, timer, index) }
        setEnd(&newest, timer, index)
    }

    @inline(__always) func unlinkTimer(_ index: UInt32) {
        let f = flows[Int(index)]
        if f.older != 0 { flows[Int(f.older)].newer = f.newer } else { setEnd(&oldest, f.timer, f.newer) }
        if f.newer != 0 { flows[Int(f.newer)].older = f.older } else { setEnd(&newest, f.timer, f.older) }
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small, fast generator for port randomisation and hash keys. The NAT
/// is seeded by its caller, so a replay is reproducible and a live NAT unpredictable. Public for the tests and
/// fuzz targets that need a seeded generator of their own.
public struct SplitMix64: Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in 0..<bound (Lemire's multiply-high; the bias for bound <= 65536 is below 2^-48).
    mutating func next(below bound: Int) -> Int {
        Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(bound)).high)
    }
}
