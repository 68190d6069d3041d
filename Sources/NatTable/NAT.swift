import PacketKit

/// What became of a packet handed to `NAT.translate(_:now:)`.
public enum Verdict: Equatable, Sendable {
    /// Rewritten in place; send it on.
    case forward(NatDirection)
    /// Not sent; counted under the reason.
    case drop(DropReason)
    /// A later fragment kept until its first fragment arrives; it comes out of `takeReleasedFragments()`.
    case held
}

extension DropReason: Error {}

/// Why a configuration was refused: every problem, each with its key.
public struct NatConfigurationError: Error, CustomStringConvertible {
    public let problems: [(key: String, problem: String)]
    public var description: String { problems.map { "\($0.key): \($0.problem)" }.joined(separator: "; ") }
}

/// The NAT: one table, one owner (a worker thread), translating packets in place.
public final class NAT {
    public let configuration: NatConfiguration
    public internal(set) var counters = NatCounters()

    @usableFromInline let store: FlowStore
    let ports: PortAllocator
    let fragments: FragmentTracker
    var random: SplitMix64
    let privatePrefixes: [IPv4Prefix]
    let pool: [UInt32]
    let timeouts: [UInt32]
    let verifyChecksums: Bool
    let filtering: NatConfiguration.Filtering
    let maxFlowsPerHost: Int?
    let maxFlowsPerPrefix: Int?
    /// The netmask of `maxFlowsPerPrefix`'s prefixes.
    let prefixMask: UInt32
    let maxInboundFlowsPerMapping: Int
    let maxInboundFlows: Int
    /// Destination ports whose single-exchange UDP flows get `Timeouts.udpRequestResponse` (RFC 4787 REQ-5a).
    let requestResponsePorts: [UInt16]
    /// The NAT64 side, when configured.
    let nat64: Nat64State?
    /// The key of the paired-pooling hash: from the configuration, so that peers agree on it.
    let pairingKey: UInt64
    /// Flows per private host, kept only when a per-host limit is set. Flows made from outside are not counted.
    let flowsPerHost: OwnerCounts
    /// Flows per private source prefix (`prefixMask`), kept only when a per-prefix limit is set.
    let flowsPerPrefix: OwnerCounts
    /// Flows made by inbound packets, against `maxInboundFlows`.
    public private(set) var inboundFlowCount = 0
    /// A mapping whose last flow eviction must leave alone while a hairpinned packet is translated: its target.
    var sparedMapping: UInt32 = 0
    /// Flows per (mapping, remote address), kept only for address-dependent filtering.
    var flowsPerRemoteAddress: [UInt64: UInt32] = [:]
    /// Whether this table translates. A standby's table is a replica kept by `apply(_:now:)`: it drops every
    /// packet (`standby`) and retires nothing, since the active decides when a flow ends.
    public internal(set) var isLive = true
    /// Flow creates, TCP state changes and removals since the last `takeChanges()`, while recording.
    var changes: [FlowRecord] = []
    var recording = false
    /// Set when `changes` outgrew `maxPendingChanges` and was emptied: the replica needs a full resync.
    var changesOverflowed = false
    /// How many changes were ever recorded: the serial number of the newest one.
    public internal(set) var changeSerial: UInt64 = 0

    /// How many expired flows one call to `translate` retires at most: enough to keep up with any rate of new
    /// flows, small enough that no packet waits behind a mass expiry.
    public static let expiryBudgetPerPacket = 8

    public init(configuration: NatConfiguration) throws(NatConfigurationError) {
        let problems = configuration.problems()
        guard problems.isEmpty else { throw NatConfigurationError(problems: problems) }
        self.configuration = configuration
        store = FlowStore(capacity: configuration.maxFlows, seed: configuration.seed)
        ports = PortAllocator(poolSize: configuration.poolAddresses.count)
        fragments = FragmentTracker(lifetime: configuration.timeouts.fragment,
                                    maxHeld: configuration.maxHeldFragments)
        random = SplitMix64(seed: configuration.seed)
        privatePrefixes = configuration.privatePrefixes
        pool = configuration.poolAddresses.map(\.value)
        let t = configuration.timeouts
        timeouts = [t.tcpEstablished, t.tcpTransitory, t.udp, t.icmp, t.tcpUnreplied, t.udp, t.udpRequestResponse,
                    t.tcpTransitory]
        verifyChecksums = configuration.verifyChecksums
        filtering = configuration.filtering
        maxFlowsPerHost = configuration.maxFlowsPerHost
        maxFlowsPerPrefix = configuration.maxFlowsPerPrefix
        flowsPerHost = OwnerCounts(seed: configuration.seed)
        flowsPerPrefix = OwnerCounts(seed: configuration.seed &+ 1)
        prefixMask = IPv4Prefix.mask(configuration.limitPrefixLength)
        maxInboundFlowsPerMapping = configuration.maxInboundFlowsPerMapping
        maxInboundFlows = configuration.maxInboundFlows
        requestResponsePorts = configuration.requestResponsePorts
        pairingKey = configuration.pairingKey
        nat64 = configuration.nat64.map { Nat64State($0, seed: configuration.seed) }
    }

    public var flowCount: Int { store.flowCount }
    public var mappingCount: Int { store.mappingCount }

    /// Table memory per flow at capacity, one mapping per flow (the worst case), in bytes.
    public var bytesPerFlowAtCapacity: Double { FlowStore.bytesPerFlow(capacity: configuration.maxFlows) }

    /// The external endpoint mapped for an internal one, if any.
    public func externalEndpoint(protocol proto: IPProtocol, address: IPv4Address, port: Port)
        -> (address: IPv4Address, port: Port)? {
        guard let cls = Self.protocolClass(proto) else { return nil }
        let m = store.findMapping(internal: cls.rawValue, address.value, port.value)
        guard m != 0 else { return nil }
        let mapping = store.mappings[Int(m)]
        return (IPv4Address(mapping.externalAddress), Port(mapping.externalPort))
    }

    /// What the fragment tracker holds: remembered first-fragment translations, their expiry-order entries (never
    /// more than the translations), and later fragments held with their bytes. All bounded.
    public var fragmentState: (translations: Int, orderEntries: Int, held: Int, heldBytes: Int) {
        (fragments.rewrites.count, fragments.order.count, fragments.heldCount, fragments.heldBytes)
    }

    /// Later fragments released by the arrival of their first fragment, already translated, in arrival order.
    public func takeReleasedFragments() -> [(bytes: [UInt8], direction: NatDirection)] {
        guard !fragments.released.isEmpty else { return [] }
        defer { fragments.released.removeAll() }
        counters.releasedFragments &+= UInt64(fragments.released.count)
        guard nat64 != nil else { return fragments.released }
        // Fragments for an IPv6 host are translated now that their first fragment has told where they go.
        return fragments.released.compactMap { fragment in
            guard fragment.bytes.count >= 20, Nat64Hosts.isAlias(fragment.bytes.loadBE(UInt32.self, at: 16))
            else { return fragment }
            let room = Translate64.headroom
            var buffer = [UInt8](repeating: 0, count: room) + fragment.bytes
            return buffer.withUnsafeMutableBytes { b -> (bytes: [UInt8], direction: NatDirection)? in
                var packet = b.suffix(from: room)
                do throws(DropReason) { try deliver6(&packet, headroom: room) } catch {
                    counters[error] &+= 1
                    return nil
                }
                counters.nat64Inbound &+= 1
                counters.nat64InboundBytes &+= UInt64(packet.count)
                return (Array(packet), fragment.direction)
            }
        }
    }

    // MARK: Translation

    /// Translates one IPv4 packet in place. `now` is the caller's clock; nothing here reads one.
    ///
    /// `transportChecksumTrusted` says the transport checksum is not to be verified because the kernel vouched
    /// for it (virtio-net DATA_VALID) or has yet to compute it (NEEDS_CSUM: the field holds only the
    /// pseudo-header sum). Linux conntrack skips the same packets (`skb_csum_unnecessary`).
    public func translate(
        _ packet: UnsafeMutableRawBufferPointer, now: NatInstant, transportChecksumTrusted: Bool = false
    ) -> Verdict {
        var window = packet
        return translate(&window, headroom: 0, now: now, transportChecksumTrusted: transportChecksumTrusted)
    }

    /// Translates one IPv4 or (with NAT64) IPv6 packet in place. A packet that changes family changes size:
    /// `packet` is set to where the translated packet now is, which may begin up to `headroom` bytes earlier
    /// (`Translate64.headroom` is always enough) or some bytes later.
    public func translate(
        _ packet: inout UnsafeMutableRawBufferPointer, headroom: Int, now: NatInstant,
        transportChecksumTrusted: Bool = false
    ) -> Verdict {
        counters.packets &+= 1
        guard isLive else {
            counters[.standby] &+= 1
            return .drop(.standby)
        }
        expire(now: now, budget: Self.expiryBudgetPerPacket)
        var verdict: Verdict
        let arrivedAs6 = packet.count > 0 && packet[0] >> 4 == 6
        do throws(DropReason) {
            if arrivedAs6 {
                verdict = try translate6(&packet, headroom: headroom, now: now.seconds, trusted: transportChecksumTrusted)
            } else {
                // 240.0.0.0/4 is where IPv6 hosts' aliases live: no packet may come from there (it could pose as one).
                if nat64 != nil, packet.count >= 20, Nat64Hosts.isAlias(packet.loadBE32(at: 12)) {
                    throw DropReason.notPrivateSource
                }
                verdict = try translateOrThrow(packet, now: now.seconds, trusted: transportChecksumTrusted)
                if nat64 != nil, case .forward(let direction) = verdict, direction != .outbound {
                    try deliver6(&packet, headroom: headroom)
                }
            }
        } catch {
            verdict = .drop(error)
        }
        switch verdict {
        case .forward(.outbound):
            counters.outbound &+= 1
            counters.outboundBytes &+= UInt64(packet.count)
        case .forward(.inbound):
            counters.inbound &+= 1
            counters.inboundBytes &+= UInt64(packet.count)
        case .forward(.hairpin):
            counters.hairpin &+= 1
            counters.hairpinBytes &+= UInt64(packet.count)
        case .drop(let reason): counters[reason] &+= 1
        case .held: counters.heldFragments &+= 1
        }
        if nat64 != nil, case .forward = verdict {
            if arrivedAs6 {
                counters.nat64Outbound &+= 1
                counters.nat64OutboundBytes &+= UInt64(packet.count)
            }
            if packet[0] >> 4 == 6 {
                counters.nat64Inbound &+= 1
                counters.nat64InboundBytes &+= UInt64(packet.count)
            }
        }
        return verdict
    }

    /// Counts a packet that never reached `translate` (not IPv4, bad link layer) under `reason`.
    public func countDrop(_ reason: DropReason) {
        counters.packets &+= 1
        counters[reason] &+= 1
    }

    @inline(__always)
    func translateOrThrow(
        _ bytes: UnsafeMutableRawBufferPointer, now: UInt32, trusted: Bool, fromAlias: Bool = false
    ) throws(DropReason) -> Verdict {
        let ip: IPv4Packet
        do throws(PacketError) { ip = try IPv4Packet(validating: bytes) } catch { throw Self.reason(ipError: error) }

        let fromPrivate = fromAlias || isPrivate(ip.source.value)
        let toPool = poolIndex(ip.destination.value) != nil
        let direction: NatDirection
        if toPool {
            direction = fromPrivate ? .hairpin : .inbound
        } else if fromPrivate {
            direction = .outbound
        } else {
            throw .notPrivateSource
        }
        if fromPrivate {
            counters.fromSource &+= 1
            counters.fromSourceBytes &+= UInt64(bytes.count)
        } else {
            counters.fromDestination &+= 1
            counters.fromDestinationBytes &+= UInt64(bytes.count)
        }
        guard ip.fragmentOffset == 0 else {
            defer { countFragmentLosses() }
            return fragments.follow(ip, now: now)
        }

        let original = ip.isFragment ? FragmentTracker.Key(ip) : nil
        let transport = try Transport(ip, verify: verifyChecksums && !trusted && !ip.isFragment)
        if case .icmpError(let icmp) = transport {
            guard !ip.isFragment else { throw .unsupportedICMP }
            return try translateError(ip, icmp, direction: direction)
        }
        switch direction {
        case .outbound: try translateOutbound(ip, transport, now: now)
        case .inbound: try translateInbound(ip, transport, now: now)
        case .hairpin: try translateHairpin(ip, transport, now: now)
        }
        if let original { fragments.register(original: original, as: ip, direction: direction, now: now) }
        return .forward(direction)
    }

    /// Private host to the internet: find or make the mapping and the flow, rewrite the source.
    @inline(__always)
    func translateOutbound(_ ip: IPv4Packet, _ transport: Transport, now: UInt32) throws(DropReason) {
        let source = ip.source.value
        let ports = transport.ports
        let m = try mapping(transport.protocolClass, source, ports.source, now: now,
                            mayCreate: transport.mayCreateMapping)
        let map = store.mappings[Int(m)]
        try refreshFlow(m, remote: ip.destination.value, ports.destination, transport, outbound: true, now: now)
        transport.setSourcePort(map.externalPort)
        transport.updateChecksum(addressFrom: ip.source, to: IPv4Address(map.externalAddress))
        ip.setSource(IPv4Address(map.externalAddress))
    }

    /// Internet to a pool address: only through an existing mapping, and only if its filter lets this remote in.
    @inline(__always)
    func translateInbound(_ ip: IPv4Packet, _ transport: Transport, now: UInt32) throws(DropReason) {
        if case .icmpQuery(let icmp) = transport, icmp.type.isQueryRequest { throw .inboundRequest }
        let ports = transport.ports
        let m = store.findMapping(external: transport.protocolClass.rawValue, ip.destination.value, ports.destination)
        guard m != 0 else { throw .noMapping }
        let map = store.mappings[Int(m)]
        try refreshFlow(m, remote: ip.source.value, ports.source, transport, outbound: false, now: now)
        transport.setDestinationPort(map.internalPort)
        transport.updateChecksum(addressFrom: ip.destination, to: IPv4Address(map.internalAddress))
        ip.setDestination(IPv4Address(map.internalAddress))
    }

    /// Private host to a pool address (RFC 4787 REQ-9, RFC 5382 REQ-8): the packet goes out through the sender's
    /// mapping and back in through the target's, so the target sees the sender's external address and port.
    @inline(__always)
    func translateHairpin(_ ip: IPv4Packet, _ transport: Transport, now: UInt32) throws(DropReason) {
        let cls = transport.protocolClass
        let ports = transport.ports
        let target = store.findMapping(external: cls.rawValue, ip.destination.value, ports.destination)
        guard target != 0 else { throw .noMapping }
        // Making room for the sender's flow must not take the target's last flow (and with it the mapping).
        sparedMapping = target
        defer { sparedMapping = 0 }
        let sender = try mapping(cls, ip.source.value, ports.source, now: now, mayCreate: transport.mayCreateMapping)
        let from = store.mappings[Int(sender)]
        let to = store.mappings[Int(target)]
        try refreshFlow(sender, remote: ip.destination.value, ports.destination, transport, outbound: true, now: now)
        try refreshFlow(target, remote: from.externalAddress, from.externalPort, transport, outbound: false, now: now)
        transport.setSourcePort(from.externalPort)
        transport.setDestinationPort(to.internalPort)
        transport.updateChecksum(addressFrom: ip.source, to: IPv4Address(from.externalAddress))
        transport.updateChecksum(addressFrom: ip.destination, to: IPv4Address(to.internalAddress))
        ip.setSource(IPv4Address(from.externalAddress))
        ip.setDestination(IPv4Address(to.internalAddress))
    }

    // MARK: ICMP errors (RFC 5508 section 4)

    /// An ICMP error quotes a datagram of an existing flow: inbound, one we sent out (its source is our external
    /// endpoint); outbound, one we brought in (its destination is the internal endpoint). The outer address, the
    /// quoted address and port, and every checksum they touch are rewritten. Errors never create or refresh a
    /// flow (RFC 5508 REQ-4, REQ-5): a forged error must not keep a mapping alive or open one.
    func translateError(_ ip: IPv4Packet, _ icmp: ICMPv4Message, direction: NatDirection) throws(DropReason) -> Verdict {
        guard direction != .hairpin else { throw .icmpErrorNoFlow }
        let quoted: IPv4Packet
        do throws(PacketError) { quoted = try IPv4Packet(quoted: icmp.body) } catch { throw .badTransportHeader }
        // RFC 5508 REQ-3: an embedded IP header whose checksum fails is dropped.
        if verifyChecksums && !quoted.isHeaderChecksumValid { throw .badIPv4Checksum }
        guard quoted.fragmentOffset == 0, let cls = Self.protocolClass(quoted.protocol) else { throw .icmpErrorNoFlow }
        let l4 = quoted.payload
        guard l4.count >= 8 else { throw .badTransportHeader }
        var sourcePort = l4.loadBE16(at: 0)
        var destinationPort = l4.loadBE16(at: 2)
        if cls == .icmp {
            guard ICMPv4Type(l4[0]).isQuery else { throw .icmpErrorNoFlow }
            sourcePort = l4.loadBE16(at: 4)
            destinationPort = sourcePort
        }
        let inbound = direction == .inbound
        let m: UInt32
        let f: UInt32
        // ICMP query flows are keyed by the remote address alone (see `refreshFlow`).
        if inbound {
            m = store.findMapping(external: cls.rawValue, quoted.source.value, sourcePort)
            f = m == 0 ? 0 : store.findFlow(m, quoted.destination.value, cls == .icmp ? 0 : destinationPort)
        } else {
            m = store.findMapping(internal: cls.rawValue, quoted.destination.value, destinationPort)
            f = m == 0 ? 0 : store.findFlow(m, quoted.source.value, cls == .icmp ? 0 : sourcePort)
        }
        guard f != 0 else { throw .icmpErrorNoFlow }
        let map = store.mappings[Int(m)]
        // The error goes back to whoever sent the quoted datagram; from the private side, only the host of the flow
        // may report on it. Otherwise a host could send errors from the pool address about another host's flow,
        // or to any address at all.
        guard ip.destination.value == quoted.source.value, inbound || ip.source.value == map.internalAddress else {
            throw .icmpErrorForeign
        }
        if inbound {
            Self.rewriteQuoted(icmp, quoted, cls, sourceSide: true, IPv4Address(map.internalAddress), map.internalPort)
            ip.setDestination(IPv4Address(map.internalAddress))
        } else {
            Self.rewriteQuoted(icmp, quoted, cls, sourceSide: false, IPv4Address(map.externalAddress), map.externalPort)
            ip.setSource(IPv4Address(map.externalAddress))
        }
        return .forward(direction)
    }

    /// Rewrites one endpoint (source or destination) of the datagram quoted in `icmp`: its address, the quoted IP
    /// header checksum, its port or ICMP identifier, the quoted transport checksum where the quote holds it, and
    /// the outer ICMP checksum for each of those words, all incrementally (RFC 1624).
    static func rewriteQuoted(_ icmp: ICMPv4Message, _ quoted: IPv4Packet, _ cls: ProtocolClass, sourceSide: Bool,
                              _ address: IPv4Address, _ port: UInt16) {
        let start = ICMPv4Message.headerLength
        let message = icmp.buffer
        let addressAt = start + (sourceSide ? 12 : 16)
        let oldAddress = message.loadBE32(at: addressAt)
        let newAddress = address.value
        icmp.setWord(UInt16(truncatingIfNeeded: newAddress >> 16), at: addressAt)
        icmp.setWord(UInt16(truncatingIfNeeded: newAddress), at: addressAt + 2)
        let ipChecksum = message.loadBE16(at: start + 10)
        icmp.setWord(Checksum.update(ipChecksum, old: oldAddress, new: newAddress), at: start + 10)

        let l4 = start + quoted.headerLength
        let available = message.count - l4
        switch cls {
        case .tcp, .udp:
            let portAt = l4 + (sourceSide ? 0 : 2)
            let oldPort = message.loadBE16(at: portAt)
            icmp.setWord(port, at: portAt)
            let checksumAt = l4 + (cls == .tcp ? TCPSegment.checksumOffset : UDPDatagram.checksumOffset)
            guard available >= checksumAt - l4 + 2 else { return }
            let old = message.loadBE16(at: checksumAt)
            if cls == .udp && old == 0 { return }
            var new = Checksum.update(Checksum.update(old, old: oldAddress, new: newAddress), old: oldPort, new: port)
            if cls == .udp && new == 0 { new = 0xFFFF }
            icmp.setWord(new, at: checksumAt)
        case .icmp:
            let oldID = message.loadBE16(at: l4 + 4)
            icmp.setWord(port, at: l4 + 4)
            let old = message.loadBE16(at: l4 + 2)
            icmp.setWord(Checksum.update(old, old: oldID, new: port), at: l4 + 2)
        }
    }

    // MARK: Mappings and flows

    /// The mapping of an internal endpoint, made if there is none and this packet may make one.
    @inline(__always)
    func mapping(_ cls: ProtocolClass, _ address: UInt32, _ port: UInt16, now: UInt32, mayCreate: Bool)
        throws(DropReason) -> UInt32 {
        let m = store.findMapping(internal: cls.rawValue, address, port)
        if m != 0 { return m }
        guard mayCreate else { throw .noMapping }
        try checkRoomForFlow(internalAddress: address, now: now)
        // RFC 4787 REQ-2: "paired" pooling, the same external address for every mapping of a host.
        let poolSlot = UInt8(truncatingIfNeeded: Int(pairedPoolIndex(address)))
        let range: ClosedRange<UInt16> =
            cls == .icmp ? 0...65535 : (port < 1024 ? NatConfiguration.lowPortRange : configuration.portRange)
        guard let external = ports.allocate(poolSlot, cls.rawValue, preferred: port, range: range, random: &random)
        else { throw .portsExhausted }
        if external == port { counters.portsPreserved &+= 1 }
        counters.mappingsCreated &+= 1
        nat64MappingAdded(address)
        return store.insertMapping(Mapping(
            internalAddress: address, externalAddress: pool[Int(poolSlot)], internalPort: port,
            externalPort: external, protocolClass: cls.rawValue, pool: poolSlot, flows: 0, nextByInternal: 0,
            nextByExternal: 0))
    }

    /// Finds the flow of mapping `m` with this remote endpoint and marks it seen, or creates it: outbound always
    /// (within limits), inbound only as the filter allows (RFC 4787 section 5, RFC 5382 REQ-3) and within
    /// `maxInboundFlowsPerMapping`. A packet that the filter lets in but that may not make a flow passes without
    /// leaving state. TCP RSTs and FINs outside the connection's window are refused before anything changes.
    @inline(__always)
    func refreshFlow(_ m: UInt32, remote: UInt32, _ port: UInt16, _ transport: Transport, outbound: Bool,
                     now: UInt32) throws(DropReason) {
        // An ICMP query has one identifier, translated: its flows are keyed by the remote address alone.
        let remotePort = transport.protocolClass == .icmp ? 0 : port
        let f = store.findFlow(m, remote, remotePort)
        if f != 0 {
            let flow = store.flows + Int(f)
            var timer = transport.timer
            switch transport {
            case .tcp(let segment):
                let flags = segment.flags
                let before = flow.pointee.tcp
                let restart = flags.contains(.syn) && !flags.contains(.rst) && !flags.contains(.fin)
                    ? flow.pointee.window.restart(for: segment, outbound: outbound, over: before.isOver) : .nothing
                if restart != .nothing {
                    flow.pointee.window.restart(outbound: outbound, everything: restart == .everything)
                } else if !flow.pointee.window.accepts(segment, outbound: outbound) {
                    // Blind: an RST or FIN could end the connection, so it goes no further; data and ACKs are
                    // forwarded (the receiver answers them with an ACK) but move nothing, not even the timer.
                    if flags.contains(.rst) || flags.contains(.fin) { throw .outOfWindow }
                    counters.outOfWindowIgnored &+= 1
                    return
                }
                flow.pointee.window.observe(segment, length: segment.payload.count, outbound: outbound)
                flow.pointee.tcp.observe(flags, outbound: outbound)
                timer = flow.pointee.tcp.timer
                if flow.pointee.tcp.isEstablished && !before.isEstablished { counters.tcpEstablished &+= 1 }
                // A fresh SYN on a closed or closing 4-tuple is a new connection attempt, as a new flow's SYN is (a
                // retransmitted SYN is not); short connections that reuse ports would otherwise count once.
                if outbound, flags.contains(.syn), !flags.contains(.ack), !flags.contains(.rst), !flags.contains(.fin),
                   before.bits & (TCPTracker.reset | TCPTracker.finOutbound | TCPTracker.finInbound) != 0 {
                    counters.tcpAttempts &+= 1
                }
                if recording && flow.pointee.tcp != before { record(.upsert, flow: f) }
            case .udp:
                let before = flow.pointee.udp
                // A stream stays one: only a flow that is not yet has anything to learn.
                if !before.isAssured {
                    flow.pointee.udp.observe(outbound: outbound)
                    if recording && flow.pointee.udp != before { record(.upsert, flow: f) }
                }
                timer = flow.pointee.udp.timer
            case .icmpQuery, .icmpError: break
            }
            store.touch(f, now: now, timer: timer.madeFromOutside(flow.pointee.inboundCreated))
            return
        }
        var tracker = TCPTracker.none
        var window = TCPWindow.unknown
        var timer = transport.timer
        if case .tcp(let segment) = transport {
            let flags = segment.flags
            // An RST ends what is not there; from outside, only a SYN may open a connection.
            if flags.contains(.rst) || (!outbound && (!flags.contains(.syn) || flags.contains(.ack))) {
                throw .tcpNoFlow
            }
            tracker = TCPTracker.opening(with: flags, outbound: outbound)
            window.observe(segment, length: segment.payload.count, outbound: outbound)
            timer = tracker.timer
        } else if case .udp = transport {
            let udp = UDPTracker.opening(outbound: outbound,
                                         requestResponse: outbound && requestResponsePorts.contains(port))
            tracker = TCPTracker(bits: udp.bits)
            timer = udp.timer
        }
        let map = store.mappings[Int(m)]
        if !outbound {
            switch filtering {
            case .endpointIndependent: break
            case .addressDependent:
                // Let in from an address the internal endpoint sent to; the state stays the outbound flows'.
                guard flowsPerRemoteAddress[Self.remoteKey(m, remote)] != nil else { throw .filtered }
                return
            case .addressAndPortDependent: throw .filtered
            }
            // ICMP queries are answered by the host that was asked, over the flow that asking made.
            if case .icmpQuery = transport { throw .filtered }
            // Flows made from outside have their own budget, never the host's: an outsider cannot use up what the
            // host may open, and they are unassured until the host answers and the sender speaks again.
            guard Int(map.inboundFlows) < maxInboundFlowsPerMapping, inboundFlowCount < maxInboundFlows,
                  store.flowCount < store.capacity
            else {
                counters.inboundFlowLimit &+= 1
                return
            }
        } else {
            // A mapping made for this packet was checked for room by `mapping(...)`; an older one has flows.
            try checkRoomForFlow(internalAddress: map.internalAddress, keeping: m, now: now)
        }
        let created = insertFlow(m, remote: remote, remotePort, tcp: tracker, timer: timer, now: now,
                                 window: window, inboundCreated: !outbound)
        counters.flowsCreated &+= 1
        if case .tcp = transport, tracker.bits & TCPTracker.pickedUp == 0 { counters.tcpAttempts &+= 1 }
        if recording { record(.upsert, flow: created) }
    }

    /// Inserts a flow of mapping `m` and counts it against the per-host, per-prefix and per-remote limits (one
    /// made from outside against the inbound budget instead of the host's and the prefix's).
    func insertFlow(_ m: UInt32, remote: UInt32, _ remotePort: UInt16, tcp: TCPTracker, timer: TimerClass,
                    now: UInt32, window: TCPWindow = .unknown, inboundCreated: Bool = false) -> UInt32 {
        let f = store.insertFlow(mapping: m, remoteAddress: remote, remotePort: remotePort, tcp: tcp,
                                 timer: timer.madeFromOutside(inboundCreated), now: now, window: window,
                                 inboundCreated: inboundCreated)
        let host = store.mappings[Int(m)].internalAddress
        if inboundCreated {
            inboundFlowCount += 1
        } else {
            if maxFlowsPerHost != nil { flowsPerHost.add(host) }
            if maxFlowsPerPrefix != nil && !Nat64Hosts.isAlias(host) { flowsPerPrefix.add(host & prefixMask) }
        }
        if filtering == .addressDependent { flowsPerRemoteAddress[Self.remoteKey(m, remote), default: 0] += 1 }
        return f
    }

    /// A host at its limit, or a source prefix at its, makes room among its own evictable flows (`evictOwn`),
    /// else is refused; in a full table, makes room by evicting (`evictOne`) or refuses.
    ///
    /// A host making many short exchanges reaches its limit with flows that are over (a closed connection holds
    /// its flow for the transitory timeout, at least 4 minutes by RFC 5382; a one-off datagram its flow for the UDP
    /// timeout): one of those goes, and the table does not grow. Sources forged within a prefix escape the per-host
    /// limit with each new address, never the prefix's. An owner whose look for a flow of its own found none is
    /// refused without another look for the rest of that second: a host flooding at its limit costs one bounded
    /// look a second, not one a packet.
    func checkRoomForFlow(internalAddress: UInt32, keeping m: UInt32 = 0, now: UInt32) throws(DropReason) {
        if let limit = maxFlowsPerHost, flowsPerHost.flows(internalAddress) >= limit {
            guard flowsPerHost.mayLook(internalAddress, now: now) else { throw .hostLimit }
            guard evictOwn(owner: internalAddress, mask: .max, keeping: m) else {
                flowsPerHost.lookedInVain(internalAddress, now: now)
                throw .hostLimit
            }
            return
        }
        let prefix = internalAddress & prefixMask
        // An IPv6 host's alias has no prefix: NAT64 hosts are bounded by `Nat64Configuration.maxHosts`.
        if let limit = maxFlowsPerPrefix, !Nat64Hosts.isAlias(internalAddress), flowsPerPrefix.flows(prefix) >= limit {
            guard flowsPerPrefix.mayLook(prefix, now: now) else { throw .prefixLimit }
            guard evictOwn(owner: prefix, mask: prefixMask, keeping: m) else {
                flowsPerPrefix.lookedInVain(prefix, now: now)
                throw .prefixLimit
            }
            return
        }
        guard store.flowCount >= store.capacity else { return }
        guard evictOne(keeping: m) else { throw .tableFull }
    }

    /// The flows that may go to make room, in the order they go: TCP picked up and never answered, flows made
    /// from outside that are not yet a connection or a stream, single UDP exchanges to request/response ports,
    /// other UDP that never became a stream, then TCP opening, closing or reset. Established TCP, UDP streams and
    /// ICMP are never evicted: a flood of new flows cannot push out the connections that work.
    static let evictable: [TimerClass] = [.tcpUnreplied, .inbound, .udpShort, .udpUnassured, .tcpTransitory]
    /// What a host or prefix at its limit may give up of its own (flows made from outside are not its own).
    static let evictableOwn: [TimerClass] = [.tcpUnreplied, .udpShort, .udpUnassured, .tcpTransitory]

    /// Removes the oldest evictable flow to make room for a new one. Mapping `keeping`, about to get a flow, is
    /// never left empty and released.
    func evictOne(keeping m: UInt32) -> Bool {
        for timer in Self.evictable where evictOldest(timer, keeping: m) { return true }
        return false
    }

    /// Removes the oldest evictable flow of a host or a prefix (its address is `owner` under `mask`) that counts
    /// against it (not one made from outside), among each class's `hostEvictionScan` oldest.
    func evictOwn(owner: UInt32, mask: UInt32, keeping m: UInt32) -> Bool {
        for timer in Self.evictableOwn where evictOldest(timer, of: (owner, mask), keeping: m) { return true }
        return false
    }

    /// How many of a timer class's oldest flows a host at its limit looks through for one of its own: a bound on
    /// the work a refused packet costs, whatever the other hosts' flows.
    static var hostEvictionScan: Int { 16 }

    /// Removes the oldest flow of `timer`'s class, or the oldest of `owner`'s (a host or a prefix, not made from
    /// outside) among the class's `hostEvictionScan` oldest, never the last flow of mapping `keeping`. False if
    /// there is none.
    func evictOldest(_ timer: TimerClass, of owner: (address: UInt32, mask: UInt32)? = nil, keeping m: UInt32) -> Bool {
        var f = store.oldestFlow(timer.rawValue)
        // For any owner, the first three candidates suffice: at most two of them are the last flow of `keeping`
        // or of the spared mapping.
        for _ in 0..<(owner == nil ? 3 : Self.hostEvictionScan) where f != 0 {
            let flow = store.flows[Int(f)]
            let eligible = owner.map {
                !flow.inboundCreated && store.mappings[Int(flow.mapping)].internalAddress & $0.mask == $0.address
            } ?? true
            let last = store.mappings[Int(flow.mapping)].flows == 1
            if eligible, !last || (flow.mapping != m && flow.mapping != sparedMapping) {
                removeFlow(f)
                counters.flowsEvicted &+= 1
                return true
            }
            f = flow.newer
        }
        return false
    }

    static func remoteKey(_ mapping: UInt32, _ remote: UInt32) -> UInt64 { UInt64(mapping) << 32 | UInt64(remote) }

    // MARK: Expiry

    /// Retires up to `budget` flows whose idle time has run out, oldest first, and the mappings they leave
    /// unused; also ages the fragment state. Call it from an idle loop too, so a quiet NAT still frees its ports.
    @discardableResult
    public func expire(now: NatInstant, budget: Int) -> Int {
        guard isLive else { return 0 }
        let t = now.seconds
        var retired = 0
        for timer in 0..<UInt8(TimerClass.count) {
            let timeout = Int64(timeouts[Int(timer)])
            while retired < budget {
                let f = store.oldestFlow(timer)
                guard f != 0, Int64(t) - Int64(store.flows[Int(f)].lastSeen) >= timeout else { break }
                removeFlow(f)
                retired += 1
            }
        }
        counters.flowsExpired &+= UInt64(retired)
        fragments.expire(now: t)
        countFragmentLosses()
        return retired
    }

    /// Moves the held fragments the tracker lost (timed out, evicted) into the drop counters.
    @inline(__always) func countFragmentLosses() {
        guard fragments.timedOut | fragments.evicted != 0 else { return }
        counters[.fragmentTimeout] &+= UInt64(fragments.timedOut)
        counters[.fragmentEvicted] &+= UInt64(fragments.evicted)
        fragments.timedOut = 0
        fragments.evicted = 0
    }

    func removeFlow(_ f: UInt32) {
        if recording { record(.delete, flow: f) }
        let flow = store.flows[Int(f)]
        let m = store.removeFlow(f)
        let map = store.mappings[Int(m)]
        if flow.inboundCreated {
            inboundFlowCount -= 1
        } else {
            if maxFlowsPerHost != nil { flowsPerHost.remove(map.internalAddress) }
            if maxFlowsPerPrefix != nil && !Nat64Hosts.isAlias(map.internalAddress) {
                flowsPerPrefix.remove(map.internalAddress & prefixMask)
            }
        }
        if filtering == .addressDependent {
            let key = Self.remoteKey(m, flow.remoteAddress)
            let left = (flowsPerRemoteAddress[key] ?? 1) - 1
            flowsPerRemoteAddress[key] = left == 0 ? nil : left
        }
        if map.flows == 0 { releaseMapping(m) }
    }

    func releaseMapping(_ m: UInt32) {
        let map = store.mappings[Int(m)]
        ports.release(map.pool, map.protocolClass, map.externalPort)
        store.removeMapping(m)
        nat64MappingRemoved(map.internalAddress)
    }

    // MARK: Classification

    @inline(__always) func isPrivate(_ address: UInt32) -> Bool {
        for prefix in privatePrefixes where prefix.contains(IPv4Address(address)) { return true }
        return false
    }

    @inline(__always) func poolIndex(_ address: UInt32) -> Int? {
        for i in pool.indices where pool[i] == address { return i }
        return nil
    }

    /// The pool address a private host always gets: a keyed hash of its address (RFC 4787 REQ-2, "paired").
    @inline(__always) func pairedPoolIndex(_ address: UInt32) -> Int {
        guard pool.count > 1 else { return 0 }
        var mixer = SplitMix64(seed: UInt64(address) ^ pairingKey)
        return mixer.next(below: pool.count)
    }

    static func protocolClass(_ proto: IPProtocol) -> ProtocolClass? {
        switch proto {
        case .tcp: .tcp
        case .udp: .udp
        case .icmp: .icmp
        default: nil
        }
    }

    static func reason(ipError error: PacketError) -> DropReason {
        switch error {
        case .truncated: .truncated
        case .badVersion: .notIPv4
        case .badChecksum: .badIPv4Checksum
        case .badHeaderLength, .badTotalLength, .unsupported: .badIPv4Header
        }
    }
}

/// Flows per owner (a private host, or a source prefix) against a limit, and the second in which an owner at its
/// limit last looked for a flow of its own to evict and found none. An open-addressing table (linear probing,
/// deletion by backward shift, so no tombstones) under a keyed multiplicative hash: a new flow costs one probe
/// sequence, not a dictionary's SipHash and copy-on-write checks, and a sender choosing its source addresses cannot
/// aim them at one chain. It doubles when half full (the only allocation, amortised over the owners it holds).
final class OwnerCounts {
    struct Entry {
        var owner: UInt32 = 0
        /// 0: the slot is empty.
        var flows: UInt32 = 0
        var lookedInVain: UInt32 = .max
    }

    private var slots: UnsafeMutablePointer<Entry>
    private var mask: Int
    private(set) var count = 0
    private let key: UInt64

    init(seed: UInt64, capacity: Int = 1024) {
        var mixer = SplitMix64(seed: seed ^ 0x6F77_6E65_7273)
        key = mixer.next() | 1
        mask = capacity - 1
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Entry(), count: capacity)
    }

    deinit { slots.deallocate() }

    @inline(__always) private func home(_ owner: UInt32) -> Int {
        Int(truncatingIfNeeded: ((UInt64(owner) ^ key) &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    /// The slot holding `owner`, or -1.
    @inline(__always) private func find(_ owner: UInt32) -> Int {
        var i = home(owner)
        while slots[i].flows != 0 {
            if slots[i].owner == owner { return i }
            i = (i + 1) & mask
        }
        return -1
    }

    func flows(_ owner: UInt32) -> Int {
        let i = find(owner)
        return i < 0 ? 0 : Int(slots[i].flows)
    }

    func add(_ owner: UInt32) {
        var i = home(owner)
        while slots[i].flows != 0 {
            if slots[i].owner == owner {
                slots[i].flows += 1
                return
            }
            i = (i + 1) & mask
        }
        slots[i] = Entry(owner: owner, flows: 1)
        count += 1
        if count * 2 > mask + 1 { grow() }
    }

    func remove(_ owner: UInt32) {
        var hole = find(owner)
        guard hole >= 0 else { return }
        slots[hole].flows -= 1
        guard slots[hole].flows == 0 else { return }
        count -= 1
        // Backward shift: move up every later entry of the run that may sit in the hole (its home is not within
        // (hole, j]), so that a probe from any home still finds what it looks for before an empty slot.
        var j = hole
        while true {
            j = (j + 1) & mask
            guard slots[j].flows != 0 else { break }
            let h = home(slots[j].owner)
            let between = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j)
            if !between {
                slots[hole] = slots[j]
                slots[j].flows = 0
                hole = j
            }
        }
    }

    func mayLook(_ owner: UInt32, now: UInt32) -> Bool {
        let i = find(owner)
        return i < 0 || slots[i].lookedInVain != now
    }

    func lookedInVain(_ owner: UInt32, now: UInt32) {
        let i = find(owner)
        if i >= 0 { slots[i].lookedInVain = now }
    }

    private func grow() {
        let old = slots, capacity = mask + 1
        mask = capacity * 2 - 1
        slots = .allocate(capacity: capacity * 2)
        slots.initialize(repeating: Entry(), count: capacity * 2)
        for i in 0..<capacity where old[i].flows != 0 {
            var j = home(old[i].owner)
            while slots[j].flows != 0 { j = (j + 1) & mask }
            slots[j] = old[i]
        }
        old.deallocate()
    }
}
