/// The questions of the packet output's next-hop cache (where would a packet go, who is the neighbour, what is the
/// link), their answers, and the change notices of the multicast groups: small fixed messages, written into and
/// read from the caller's buffer, allocating nothing.
extension Netlink {
    /// What the kernel would do with a packet (RTM_NEWROUTE's answer to RTM_GETROUTE).
    public struct Route: Equatable, Sendable {
        /// RTN_*: 1 is unicast; anything else (local, broadcast, blackhole, unreachable, ...) is for the kernel.
        public var type: UInt8
        public var outputInterface: Int32
        /// The next hop, network byte order; nil when the destination is on the link.
        public var gateway: UInt32?
        /// More than one next hop (RTA_MULTIPATH): the kernel picks per flow.
        public var multipath: Bool
        public static let unicast: UInt8 = 1
        public init(type: UInt8, outputInterface: Int32, gateway: UInt32?, multipath: Bool) {
            self.type = type
            self.outputInterface = outputInterface
            self.gateway = gateway
            self.multipath = multipath
        }
    }

    /// A neighbour entry (RTM_NEWNEIGH).
    public struct Neighbour: Equatable, Sendable {
        /// NUD_* bits.
        public var state: UInt16
        /// The link-layer address when it is 6 bytes long (Ethernet), as `Netlink.ethernet` packs it.
        public var ethernet: UInt64?
        /// NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT: an address the kernel itself
        /// would send to (NUD_VALID without NUD_NOARP, which has no address).
        public var isUsable: Bool { state & 0x9E != 0 && ethernet != nil }
        public init(state: UInt16, ethernet: UInt64?) {
            self.state = state
            self.ethernet = ethernet
        }
    }

    /// An interface (RTM_NEWLINK).
    public struct Link: Equatable, Sendable {
        /// ARPHRD_*: 1 is Ethernet.
        public var type: UInt16
        public var mtu: UInt32
        /// The interface's own address when it is 6 bytes long (Ethernet), as `Netlink.ethernet` packs it.
        public var ethernet: UInt64?
        public static let ethernetType: UInt16 = 1
        public init(type: UInt16, mtu: UInt32, ethernet: UInt64?) {
            self.type = type
            self.mtu = mtu
            self.ethernet = ethernet
        }
    }

    /// A change heard on the multicast groups.
    public enum Change: Equatable, Sendable {
        /// A neighbour entry was added, changed or removed.
        case neighbour(interface: Int32, address: UInt32)
        /// A route, rule, address or link changed: any route may now lead elsewhere.
        case routing
        /// The socket's queue overflowed (ENOBUFS): changes were lost, so anything may have changed.
        case lost
    }

    /// The RTM_GETROUTE body asking where a packet from `source` to `destination` (network order) arriving on
    /// `inputInterface` would go (ip route get DST from SRC iif DEV); returns its length.
    public static func writeRouteQuestion(_ b: UnsafeMutableRawBufferPointer, destination: UInt32, source: UInt32,
                                          inputInterface: Int32) -> Int {
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        b.storeBytes(of: familyInet, toByteOffset: 0, as: UInt8.self)
        b.storeBytes(of: UInt8(32), toByteOffset: 1, as: UInt8.self)
        b.storeBytes(of: UInt8(32), toByteOffset: 2, as: UInt8.self)
        var at = 12
        at = attribute(b, at, type: 1, destination)  // RTA_DST
        at = attribute(b, at, type: 2, source)  // RTA_SRC
        return attribute(b, at, type: 3, UInt32(bitPattern: inputInterface))  // RTA_IIF
    }

    /// The route in an RTM_NEWROUTE answer; nil when the payload is cut short.
    public static func route(answer payload: UnsafeRawBufferPointer) -> Route? {
        guard payload.count >= 12 else { return nil }
        var route = Route(type: payload[7], outputInterface: 0, gateway: nil, multipath: false)
        attributes(payload, from: 12) { type, value in
            switch type {
            case 4 where value.count == 4: route.outputInterface = Int32(bitPattern: value.loadUnaligned(as: UInt32.self))
            case 5 where value.count == 4: route.gateway = value.loadUnaligned(as: UInt32.self)
            case 9: route.multipath = true
            default: break
            }
        }
        return route
    }

    /// The RTM_GETNEIGH body asking for the entry of `address` (network order) on `interface`; returns its length.
    public static func writeNeighbourQuestion(_ b: UnsafeMutableRawBufferPointer, address: UInt32, interface: Int32) -> Int {
        // struct ndmsg: family, pad1, pad2, ifindex, state, flags, type.
        b.storeBytes(of: familyInet, toByteOffset: 0, as: UInt8.self)
        b.storeBytes(of: interface, toByteOffset: 4, as: Int32.self)
        return attribute(b, 12, type: 1, address)  // NDA_DST
    }

    /// The entry in an RTM_NEWNEIGH answer; nil when the payload is cut short.
    public static func neighbour(answer payload: UnsafeRawBufferPointer) -> Neighbour? {
        guard payload.count >= 12 else { return nil }
        var neighbour = Neighbour(state: payload.loadUnaligned(fromByteOffset: 8, as: UInt16.self), ethernet: nil)
        attributes(payload, from: 12) { type, value in
            if type == 2, value.count == 6 { neighbour.ethernet = ethernet(value) }  // NDA_LLADDR
        }
        return neighbour
    }

    /// The RTM_GETLINK body asking for interface `index`; returns its length.
    public static func writeLinkQuestion(_ b: UnsafeMutableRawBufferPointer, index: Int32) -> Int {
        // struct ifinfomsg: family, pad, type, index, flags, change.
        b.storeBytes(of: index, toByteOffset: 4, as: Int32.self)
        return 16
    }

    /// The interface in an RTM_NEWLINK answer; nil when the payload is cut short.
    public static func link(answer payload: UnsafeRawBufferPointer) -> Link? {
        guard payload.count >= 16 else { return nil }
        var link = Link(type: payload.loadUnaligned(fromByteOffset: 2, as: UInt16.self), mtu: 0, ethernet: nil)
        attributes(payload, from: 16) { type, value in
            switch type {
            case 1 where value.count == 6: link.ethernet = ethernet(value)  // IFLA_ADDRESS
            case 4 where value.count == 4: link.mtu = value.loadUnaligned(as: UInt32.self)  // IFLA_MTU
            default: break
            }
        }
        return link
    }

    /// What a message heard on the multicast groups means: a neighbour of an IPv4 address changed, or anything
    /// else routing depends on; nil for what concerns nothing (an error or end message, an IPv6 neighbour, a
    /// neighbour notice cut short).
    public static func change(type: UInt16, payload: UnsafeRawBufferPointer) -> Change? {
        switch type {
        case newNeighbour, deleteNeighbour:
            guard payload.count >= 12 else { return nil }
            let interface = payload.loadUnaligned(fromByteOffset: 4, as: Int32.self)
            var address: UInt32?
            attributes(payload, from: 12) { type, value in
                if type == 1, value.count == 4 { address = value.loadUnaligned(as: UInt32.self) }
            }
            // IPv6 neighbours (and any without an IPv4 address) do not concern tunnat.
            guard payload[0] == familyInet, let address else { return nil }
            return .neighbour(interface: interface, address: address)
        case error, done:
            return nil
        default:
            return .routing
        }
    }
}
