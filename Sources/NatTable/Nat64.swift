#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import PacketKit

/// Stateful NAT64 (RFC 6146) on the NAT44 table: what it translates and how many IPv6 hosts it keeps at once.
public struct Nat64Configuration: Sendable, Equatable {
    /// The prefix IPv4 addresses are embedded in on the IPv6 side (RFC 6052).
    public var prefix: NAT64Prefix
    /// IPv6 sources that are translated; any other is never translated (dropped and counted).
    public var privatePrefixes: [IPv6Prefix]
    /// The most IPv6 hosts with mappings at once. A host is 20 bytes of table; the bound is what a flood of
    /// forged IPv6 sources reaches, counted (`nat64-hosts-full`).
    public var maxHosts: Int

    public static let defaultMaxHosts = 65_536

    public init(prefix: NAT64Prefix = .wellKnown, privatePrefixes: [IPv6Prefix], maxHosts: Int = defaultMaxHosts) {
        self.prefix = prefix
        self.privatePrefixes = privatePrefixes
        self.maxHosts = maxHosts
    }

    func problems(ipv4 private4: [IPv4Prefix]) -> [(key: String, problem: String)] {
        var found: [(String, String)] = []
        if privatePrefixes.isEmpty {
            found.append(("nat64.private_prefixes", "at least one IPv6 prefix is required"))
        }
        for p in privatePrefixes where p.contains(prefix.prefix.network) || prefix.prefix.contains(p.network) {
            found.append(("nat64.private_prefixes", "\(p) overlaps the NAT64 prefix \(prefix)"))
        }
        if !(1...Nat64Hosts.maxCapacity).contains(maxHosts) {
            found.append(("nat64.max_hosts", "expected a whole number from 1 to \(Nat64Hosts.maxCapacity), got \(maxHosts)"))
        }
        for p in private4 where p.contains(IPv4Address(Nat64Hosts.aliasBase)) || Nat64Hosts.aliases.contains(p.network) {
            found.append(("private_prefixes", "\(p) overlaps \(Nat64Hosts.aliases), which NAT64 uses for its IPv6 hosts"))
        }
        return found
    }
}

/// The IPv6 hosts behind NAT64, each known to the NAT44 table by an alias: an address in 240.0.0.0/4 (reserved,
/// never on a wire) that stands in as the mapping's internal address. So a NAT64 session is a NAT44 flow from
/// the alias, with the same ports, filtering, timers, limits, ICMP error handling, eviction and replication, and
/// the 16-byte address lives here once per host, not once per flow. A host lives while it has mappings.
///
/// A slab of addresses indexed from 1 and a chained hash from address to index, keyed per table; every
/// operation is O(1) and nothing allocates after `init`.
final class Nat64Hosts {
    static let aliases = IPv4Prefix("240.0.0.0/4")!
    static let aliasBase: UInt32 = 0xF000_0000
    static let maxCapacity = 1 << 24

    let capacity: Int
    let addresses: UnsafeMutablePointer<IPv6Address>
    let mappings: UnsafeMutablePointer<UInt32>
    let next: UnsafeMutablePointer<UInt32>
    /// The free list is doubly linked (`next` one way, this the other), so that a replica can take any index out
    /// of it in O(1): host records arrive in whatever order the active's table walk meets them.
    let previousFree: UnsafeMutablePointer<UInt32>
    let buckets: UnsafeMutablePointer<UInt32>
    let bucketMask: Int
    let key0: UInt64
    let key1: UInt64
    var highWater: UInt32 = 0
    var free: UInt32 = 0
    private(set) var count = 0
    /// The host a packet is being translated for: it stays, even if making room for its new flow takes its last
    /// mapping, until the translation is over (its alias is in the packet by then).
    var pinned: UInt32 = 0

    init(capacity: Int, seed: UInt64) {
        self.capacity = capacity
        var b = 1
        while b < capacity { b <<= 1 }
        bucketMask = b - 1
        addresses = .allocate(capacity: capacity + 1)
        mappings = .allocate(capacity: capacity + 1)
        next = .allocate(capacity: capacity + 1)
        previousFree = .allocate(capacity: capacity + 1)
        buckets = FlowStore.zeroed(b)
        var mixer = SplitMix64(seed: seed ^ 0x6E61_7436_34)
        key0 = mixer.next()
        key1 = mixer.next() | 1
    }

    deinit {
        addresses.deallocate()
        mappings.deallocate()
        next.deallocate()
        previousFree.deallocate()
        Glibc.free(buckets)
    }

    @inline(__always) static func isAlias(_ v4: UInt32) -> Bool { v4 & 0xF000_0000 == aliasBase }
    @inline(__always) static func alias(_ index: UInt32) -> UInt32 { aliasBase | index }
    @inline(__always) static func index(_ alias: UInt32) -> UInt32 { alias & 0x0FFF_FFFF }

    @inline(__always) func bucket(_ a: IPv6Address) -> Int {
        let product = (a.high ^ key0).multipliedFullWidth(by: a.low ^ key1)
        return Int(truncatingIfNeeded: product.high ^ product.low) & bucketMask
    }

    /// The index of `address`, or 0.
    @inline(__always) func find(_ address: IPv6Address) -> UInt32 {
        var i = buckets[bucket(address)]
        while i != 0 {
            if addresses[Int(i)] == address { return i }
            i = next[Int(i)]
        }
        return 0
    }

    /// The address of a live index (or alias), or nil.
    @inline(__always) func address(ofAlias alias: UInt32) -> IPv6Address? {
        let i = Self.index(alias)
        guard i != 0, i <= highWater, mappings[Int(i)] != .max else { return nil }
        return addresses[Int(i)]
    }

    /// The index of `address`, made with no mappings if it is new; 0 when the table is full.
    func findOrInsert(_ address: IPv6Address) -> UInt32 {
        let found = find(address)
        if found != 0 { return found }
        return insert(address, at: 0)
    }

    /// Inserts `address` at a free index (or at `wanted`, a replica's choice, if free); 0 when there is no room.
    func insert(_ address: IPv6Address, at wanted: UInt32) -> UInt32 {
        let index: UInt32
        if wanted != 0 {
            guard Int(wanted) <= capacity, wanted > highWater || mappings[Int(wanted)] == .max else { return 0 }
            if wanted > highWater {
                // Extend the slab to it: the indices between become free.
                while highWater < wanted - 1 {
                    highWater += 1
                    mappings[Int(highWater)] = .max
                    pushFree(highWater)
                }
                highWater = wanted
            } else {
                unlinkFree(wanted)
            }
            index = wanted
        } else if free != 0 {
            index = free
            unlinkFree(index)
        } else {
            guard Int(highWater) < capacity else { return 0 }
            highWater += 1
            index = highWater
        }
        addresses[Int(index)] = address
        mappings[Int(index)] = 0
        let b = bucket(address)
        next[Int(index)] = buckets[b]
        buckets[b] = index
        count += 1
        return index
    }

    @inline(__always) func pushFree(_ i: UInt32) {
        next[Int(i)] = free
        previousFree[Int(i)] = 0
        if free != 0 { previousFree[Int(free)] = i }
        free = i
    }

    @inline(__always) func unlinkFree(_ i: UInt32) {
        let (p, n) = (previousFree[Int(i)], next[Int(i)])
        if p != 0 { next[Int(p)] = n } else { free = n }
        if n != 0 { previousFree[Int(n)] = p }
    }

    /// Removes the hosts that hold no mapping (a replica's, named by host records whose flows never came).
    func removeUnmapped() {
        guard highWater > 0 else { return }
        for i in 1...highWater where mappings[Int(i)] == 0 { remove(i) }
    }

    /// Removes a host (its last mapping went, or it never got one).
    func remove(_ index: UInt32) {
        let b = bucket(addresses[Int(index)])
        if buckets[b] == index {
            buckets[b] = next[Int(index)]
        } else {
            var p = buckets[b]
            while next[Int(p)] != index { p = next[Int(p)] }
            next[Int(p)] = next[Int(index)]
        }
        // A free slot is marked by an impossible mapping count.
        mappings[Int(index)] = .max
        pushFree(index)
        count -= 1
    }
}

/// The NAT64 side of a NAT: the prefix, the IPv6 private prefixes, the hosts, and the scratch space ICMP error
/// translation builds in.
final class Nat64State {
    let prefix: NAT64Prefix
    let privatePrefixes: [IPv6Prefix]
    let hosts: Nat64Hosts
    let scratch: UnsafeMutableRawBufferPointer
    /// The Identification of IPv4 packets made from unfragmented IPv6 ones (RFC 7915 section 5.1).
    var nextIdentification: UInt16

    init(_ configuration: Nat64Configuration, seed: UInt64) {
        prefix = configuration.prefix
        privatePrefixes = configuration.privatePrefixes
        hosts = Nat64Hosts(capacity: configuration.maxHosts, seed: seed)
        scratch = .allocate(byteCount: Translate64.scratchSize, alignment: 16)
        nextIdentification = UInt16(truncatingIfNeeded: seed >> 17)
    }

    deinit { scratch.deallocate() }

    @inline(__always) func isPrivate(_ address: IPv6Address) -> Bool {
        for p in privatePrefixes where p.contains(address) { return true }
        return false
    }

    /// The IPv4 address an IPv6 address in a packet stands for: an embedded one, or a host's alias.
    @inline(__always) func ipv4(_ address: IPv6Address) -> UInt32? {
        if let v4 = prefix.extract(address) { return prefix.mayEmbed(v4) ? v4 : nil }
        let i = hosts.find(address)
        return i == 0 ? nil : Nat64Hosts.alias(i)
    }

    /// The IPv6 address an IPv4 address stands for: a host's, for an alias; else embedded in the prefix.
    @inline(__always) func ipv6(_ address: UInt32) -> IPv6Address? {
        if Nat64Hosts.isAlias(address) { return hosts.address(ofAlias: address) }
        return prefix.mayEmbed(address) ? prefix.embed(address) : nil
    }
}

extension NAT {
    /// The IPv6 address behind an alias (for status, replication and tests).
    public func nat64Host(alias: IPv4Address) -> IPv6Address? { nat64?.hosts.address(ofAlias: alias.value) }

    /// IPv6 hosts with mappings now.
    public var nat64HostCount: Int { nat64?.hosts.count ?? 0 }

    /// IPv6 to IPv4 and on through the NAT44 path from the host's alias (RFC 6146 section 3.5 and RFC 7915
    /// section 5); a hairpin to another IPv6 host comes back out as IPv6.
    @inline(__always)
    func translate6(_ packet: inout UnsafeMutableRawBufferPointer, headroom: Int, now: UInt32, trusted: Bool)
        throws(DropReason) -> Verdict {
        guard let nat64 else { throw .notIPv4 }
        let ip: IPv6Packet
        do throws(PacketError) { ip = try IPv6Packet(validating: packet) } catch {
            switch error {
            case .truncated: throw .truncated
            case .unsupported(IPv6Packet.NextHeader.routing): throw .sourceRouted
            default: throw .badIPv6Header
            }
        }
        guard nat64.isPrivate(ip.source) else { throw .notPrivateSource }
        guard let destination = nat64.prefix.extract(ip.destination), nat64.prefix.mayEmbed(destination) else {
            throw .notNAT64Destination
        }
        let known = nat64.hosts.find(ip.source)
        // A later fragment opens nothing: from a host with no mapping it has no first fragment to follow (and is
        // not held under an alias that could be someone else's by the time its first fragment comes).
        if known == 0 && ip.fragmentOffset != 0 { throw .noMapping }
        let host = known != 0 ? known : nat64.hosts.findOrInsert(ip.source)
        guard host != 0 else { throw .nat64HostsFull }
        // Pinned while its packet is translated; a host that got no mapping from it (refused, an error) goes.
        nat64.hosts.pinned = host
        defer {
            nat64.hosts.pinned = 0
            if nat64.hosts.mappings[Int(host)] == 0 { nat64.hosts.remove(host) }
        }
        nat64.nextIdentification &+= 1
        let v4: UnsafeMutableRawBufferPointer
        do throws(Translate64.Failure) {
            v4 = try Translate64.toIPv4(ip, source: Nat64Hosts.alias(host), destination: destination,
                                        identification: nat64.nextIdentification, verify: verifyChecksums && !trusted,
                                        scratch: nat64.scratch, innerAddress: nat64.ipv4)
        } catch { throw Self.reason(translation: error) }
        packet = v4
        let verdict = try translateOrThrow(v4, now: now, trusted: trusted, fromAlias: true)
        if case .forward(.hairpin) = verdict { try deliver6(&packet, headroom: headroom) }
        return verdict
    }

    /// IPv4 to IPv6 for a packet the NAT44 path just addressed to an alias (RFC 7915 section 4).
    @inline(__always)
    func deliver6(_ packet: inout UnsafeMutableRawBufferPointer, headroom: Int) throws(DropReason) {
        guard let nat64 else { return }
        let destination = packet.loadBE32(at: 16)
        guard Nat64Hosts.isAlias(destination) else { return }
        let ip = IPv4Packet(unchecked: packet.prefix(upTo: min(packet.count, Int(packet.loadBE16(at: 2)))))
        guard let host = nat64.hosts.address(ofAlias: destination) else { throw .noMapping }
        // The source is an IPv4 address of the internet (or the pool's, hairpinned), always embedded: never an
        // alias, which would let a sender pose as another IPv6 host.
        guard nat64.prefix.mayEmbed(ip.source.value), !Nat64Hosts.isAlias(ip.source.value) else {
            throw .notNAT64Destination
        }
        let source = nat64.prefix.embed(ip.source.value)
        do throws(Translate64.Failure) {
            packet = try Translate64.toIPv6(ip, headroom: headroom, source: source, destination: host, verify: false,
                                            scratch: nat64.scratch, innerAddress: nat64.ipv6)
        } catch { throw Self.reason(translation: error) }
    }

    /// A mapping from an alias was made or went: its host lives while it has mappings.
    @inline(__always) func nat64MappingAdded(_ internalAddress: UInt32) {
        guard let nat64, Nat64Hosts.isAlias(internalAddress) else { return }
        let i = Int(Nat64Hosts.index(internalAddress))
        nat64.hosts.mappings[i] += 1
        if nat64.hosts.mappings[i] == 1 && recording { recordHost(alias: internalAddress) }
    }

    /// A replica learns which IPv6 host an alias stands for. A different host at that alias that holds mappings
    /// is a conflict (the replica needs a resync); one that holds none was left by a host record whose flows
    /// never came, and gives way.
    func applyHost(_ r: FlowRecord) throws(ApplyFailure) {
        guard let address = r.hostAddress, Nat64Hosts.isAlias(r.internalAddress.value) else { throw .conflict }
        // A replica configured without NAT64, or with fewer hosts than the active's, cannot hold this host: it
        // skips it (and its flows), counted, rather than ask for a resync that could never succeed.
        guard let nat64, Int(Nat64Hosts.index(r.internalAddress.value)) <= nat64.hosts.capacity else {
            counters.nat64RecordsSkipped &+= 1
            return
        }
        let index = Nat64Hosts.index(r.internalAddress.value)
        if let present = nat64.hosts.address(ofAlias: r.internalAddress.value) {
            if present == address { return }
            guard nat64.hosts.mappings[Int(index)] == 0 else { throw .conflict }
            nat64.hosts.remove(index)
        }
        let found = nat64.hosts.find(address)
        if found != 0 {
            // The same host under another alias: only possible if that one holds nothing.
            guard nat64.hosts.mappings[Int(found)] == 0 else { throw .conflict }
            nat64.hosts.remove(found)
        }
        guard nat64.hosts.insert(address, at: index) == index else { throw .tableFull }
    }

    @inline(__always) func nat64MappingRemoved(_ internalAddress: UInt32) {
        guard let nat64, Nat64Hosts.isAlias(internalAddress) else { return }
        let i = Nat64Hosts.index(internalAddress)
        nat64.hosts.mappings[Int(i)] -= 1
        if nat64.hosts.mappings[Int(i)] == 0 && i != nat64.hosts.pinned { nat64.hosts.remove(i) }
    }

    static func reason(translation error: Translate64.Failure) -> DropReason {
        switch error {
        case .untranslatableICMP: .unsupportedICMP
        case .fragmentedICMP: .icmpFragment
        case .udpZeroChecksumFragment: .udpZeroChecksumFragment
        case .sourceRouted: .sourceRouted
        case .badQuote: .icmpErrorNoFlow
        case .badChecksum: .badTransportChecksum
        case .noRoom: .noHeadroom
        case .unsupportedProtocol: .unsupportedProtocol
        case .truncated: .badTransportHeader
        }
    }
}
