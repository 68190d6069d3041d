import Glibc

/// A NETLINK_ROUTE socket (rtnetlink(7)): asks the kernel's routing, neighbour and link tables one question at
/// a time, or, bound to multicast groups, hears when they change. The kernel answers a request inside the
/// send, so a question costs one sendto and one recv and never waits, and allocates nothing. The policy rules
/// and the routes of a table are added, deleted and listed here too (RouteNetlinkTables.swift), for the policy
/// routing: in-process, what iproute2's `ip rule` and `ip route` would do.
public final class RouteNetlink {
    /// rtnetlink multicast groups (linux/rtnetlink.h, RTMGRP_*).
    public struct Groups: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let link = Groups(rawValue: 0x1)
        public static let neighbour = Groups(rawValue: 0x4)
        public static let ipv4Address = Groups(rawValue: 0x10)
        public static let ipv4Route = Groups(rawValue: 0x40)
        public static let ipv4Rule = Groups(rawValue: 0x80)
    }

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
        /// The link-layer address when it is 6 bytes long (Ethernet), as `RouteNetlink.ethernet` packs it.
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
        /// The interface's own address when it is 6 bytes long (Ethernet), as `RouteNetlink.ethernet` packs it.
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

    let descriptor: FileDescriptor
    public var fd: Int32 { descriptor.rawValue }
    var sequence: UInt32 = 0
    /// Requests are built here and answers read here: a question allocates nothing.
    let buffer: UnsafeMutableRawBufferPointer

    static let headerSize = 16
    // Message types (linux/rtnetlink.h RTM_*, linux/netlink.h NLMSG_*).
    static let getLink: UInt16 = 18, newLink: UInt16 = 16
    static let newRoute: UInt16 = 24, deleteRoute: UInt16 = 25, getRoute: UInt16 = 26
    static let newNeighbour: UInt16 = 28, deleteNeighbour: UInt16 = 29, getNeighbour: UInt16 = 30
    static let newRule: UInt16 = 32, deleteRule: UInt16 = 33, getRule: UInt16 = 34
    static let error: UInt16 = 2, done: UInt16 = 3
    // Header flags (linux/netlink.h NLM_F_*).
    static let request: UInt16 = 0x1, acknowledge: UInt16 = 0x4, dumpInterrupted: UInt16 = 0x10
    static let dump: UInt16 = 0x300, exclusive: UInt16 = 0x200, create: UInt16 = 0x400

    /// Opens the socket, non-blocking; with `groups`, bound to them to hear changes (needs no privilege).
    public init(groups: Groups = []) throws(Errno) {
        descriptor = try Syscall.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                                        0 /* NETLINK_ROUTE */, call: "socket(AF_NETLINK, NETLINK_ROUTE)")
        buffer = .allocate(byteCount: 32 << 10, alignment: 8)
        if !groups.isEmpty {
            // struct sockaddr_nl: family, pad, port id (0: the kernel assigns one), groups.
            struct Address { var family: UInt16; var pad: UInt16 = 0; var pid: UInt32 = 0; var groups: UInt32 }
            try Syscall.bind(fd, Address(family: UInt16(AF_NETLINK), groups: groups.rawValue),
                             call: "bind(AF_NETLINK, groups)")
            try? Syscall.setOption(fd, SOL_SOCKET, SO_RCVBUF, Int32(1 << 20), call: "setsockopt SO_RCVBUF")
        }
    }

    deinit { buffer.deallocate() }

    // MARK: Questions

    /// The route a packet from `source` to `destination` (network order) arriving on `inputInterface` would
    /// take: the kernel's own forwarding decision, policy rules included (ip route get DST from SRC iif DEV).
    public func route(to destination: UInt32, from source: UInt32, inputInterface: Int32) throws(Errno) -> Route {
        var route = Route(type: 0, outputInterface: 0, gateway: nil, multipath: false)
        try ask(type: Self.getRoute, body: { b in
            // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
            b.storeBytes(of: UInt8(AF_INET), toByteOffset: 0, as: UInt8.self)
            b.storeBytes(of: UInt8(32), toByteOffset: 1, as: UInt8.self)
            b.storeBytes(of: UInt8(32), toByteOffset: 2, as: UInt8.self)
            var at = 12
            at = Self.attribute(b, at, type: 1, destination)  // RTA_DST
            at = Self.attribute(b, at, type: 2, source)  // RTA_SRC
            return Self.attribute(b, at, type: 3, UInt32(bitPattern: inputInterface))  // RTA_IIF
        }, answer: Self.newRoute) { payload in
            guard payload.count >= 12 else { return }
            route.type = payload[7]
            Self.attributes(payload, from: 12) { type, value in
                switch type {
                case 4 where value.count == 4: route.outputInterface = Int32(bitPattern: value.loadUnaligned(as: UInt32.self))
                case 5 where value.count == 4: route.gateway = value.loadUnaligned(as: UInt32.self)
                case 9: route.multipath = true
                default: break
                }
            }
        }
        return route
    }

    /// The neighbour entry for `address` (network order) on `interface`; nil when there is none (ENOENT).
    public func neighbour(_ address: UInt32, interface: Int32) throws(Errno) -> Neighbour? {
        var neighbour = Neighbour(state: 0, ethernet: nil)
        do {
            try ask(type: Self.getNeighbour, body: { b in
                // struct ndmsg: family, pad1, pad2, ifindex, state, flags, type.
                b.storeBytes(of: UInt8(AF_INET), toByteOffset: 0, as: UInt8.self)
                b.storeBytes(of: interface, toByteOffset: 4, as: Int32.self)
                return Self.attribute(b, 12, type: 1, address)  // NDA_DST
            }, answer: Self.newNeighbour) { payload in
                guard payload.count >= 12 else { return }
                neighbour.state = payload.loadUnaligned(fromByteOffset: 8, as: UInt16.self)
                Self.attributes(payload, from: 12) { type, value in
                    if type == 2, value.count == 6 { neighbour.ethernet = Self.ethernet(value) }  // NDA_LLADDR
                }
            }
        } catch where error.code == Errno.noEntry {
            return nil
        }
        return neighbour
    }

    /// The interface with index `index`.
    public func link(_ index: Int32) throws(Errno) -> Link {
        var link = Link(type: 0, mtu: 0, ethernet: nil)
        try ask(type: Self.getLink, body: { b in
            // struct ifinfomsg: family, pad, type, index, flags, change.
            b.storeBytes(of: index, toByteOffset: 4, as: Int32.self)
            return 16
        }, answer: Self.newLink) { payload in
            guard payload.count >= 16 else { return }
            link.type = payload.loadUnaligned(fromByteOffset: 2, as: UInt16.self)
            Self.attributes(payload, from: 16) { type, value in
                switch type {
                case 1 where value.count == 6: link.ethernet = Self.ethernet(value)  // IFLA_ADDRESS
                case 4 where value.count == 4: link.mtu = value.loadUnaligned(as: UInt32.self)  // IFLA_MTU
                default: break
                }
            }
        }
        return link
    }

    // MARK: Changes

    /// Reads the changes waiting on a socket bound to groups, handing each to `body`; returns when none is left.
    public func readChanges(_ body: (Change) -> Void) throws(Errno) {
        while true {
            let n: Int?
            do { n = try Syscall.read(fd, buffer) } catch where error.code == Errno.noBufferSpace {
                body(.lost)
                continue
            }
            guard let n else { return }
            Self.messages(UnsafeRawBufferPointer(rebasing: buffer[..<n])) { type, _, payload in
                switch type {
                case Self.newNeighbour, Self.deleteNeighbour:
                    guard payload.count >= 12 else { return }
                    let interface = payload.loadUnaligned(fromByteOffset: 4, as: Int32.self)
                    var address: UInt32?
                    Self.attributes(payload, from: 12) { type, value in
                        if type == 1, value.count == 4 { address = value.loadUnaligned(as: UInt32.self) }
                    }
                    // IPv6 neighbours (and any without an IPv4 address) do not concern tunnat.
                    if payload[0] == UInt8(AF_INET), let address { body(.neighbour(interface: interface, address: address)) }
                case Self.error, Self.done:
                    break
                default:
                    body(.routing)
                }
            }
        }
    }

    // MARK: Messages

    /// Sends one request of `type`, its body written by `body` (which returns the body's length), and hands the
    /// payload of the answer of type `answer` to `read`. A netlink error is thrown as `Errno` with its code.
    func ask(type: UInt16, body: (UnsafeMutableRawBufferPointer) -> Int, answer: UInt16,
             read: (UnsafeRawBufferPointer) -> Void) throws(Errno) {
        let sequence = try send(type: type, flags: 0, body: body)
        // The answer is queued before send returns: no waiting.
        try receive(sequence, of: type, waiting: false) { kind, _, payload in
            if kind == answer {
                read(payload)
                return true
            }
            return kind == Self.error
        }
    }

    /// Writes a request of `type` with NLM_F_REQUEST and `flags`, its body written by `body` (which returns the
    /// body's length), and sends it; returns its sequence number.
    func send(type: UInt16, flags: UInt16, body: (UnsafeMutableRawBufferPointer) -> Int) throws(Errno) -> UInt32 {
        sequence &+= 1
        let request = UnsafeMutableRawBufferPointer(rebasing: buffer[..<512])
        request.initializeMemory(as: UInt8.self, repeating: 0)
        let length = Self.headerSize + body(UnsafeMutableRawBufferPointer(rebasing: request[Self.headerSize...]))
        request.storeBytes(of: UInt32(length), toByteOffset: 0, as: UInt32.self)
        request.storeBytes(of: type, toByteOffset: 4, as: UInt16.self)
        request.storeBytes(of: Self.request | flags, toByteOffset: 6, as: UInt16.self)
        request.storeBytes(of: sequence, toByteOffset: 8, as: UInt32.self)
        guard try Syscall.send(fd, UnsafeRawBufferPointer(rebasing: request[..<length])) == length else {
            throw Errno("send(netlink)", EAGAIN)
        }
        return sequence
    }

    /// Reads the messages answering request `sequence` (of `type`, named in errors), skipping late answers to
    /// earlier requests, and hands each to `body` until it returns true. An NLMSG_ERROR or NLMSG_DONE carrying an
    /// error is thrown as `Errno` with its code. When nothing is there: EAGAIN, or `waiting`, poll(2) until
    /// `answerSeconds` after the start (then ETIMEDOUT).
    func receive(_ sequence: UInt32, of type: UInt16, waiting: Bool,
                 _ body: (_ kind: UInt16, _ flags: UInt16, _ payload: UnsafeRawBufferPointer) -> Bool) throws(Errno) {
        var deadline: Double?
        var finished = false
        while !finished {
            guard let n = try Syscall.read(fd, buffer) else {
                guard waiting else { throw Errno("recv(netlink)", EAGAIN) }
                let end = deadline ?? SystemClock.monotonicSeconds() + Self.answerSeconds
                deadline = end
                let left = end - SystemClock.monotonicSeconds()
                guard left > 0 else { throw Errno("netlink \(Self.name(type))", ETIMEDOUT) }
                _ = try Syscall.pollIn(fd, timeoutMilliseconds: Int32(left * 1000) + 1)
                continue
            }
            var failure: Int32?
            Self.messages(UnsafeRawBufferPointer(rebasing: buffer[..<n]), sequence: sequence) { kind, flags, payload in
                guard !finished else { return }
                if kind == Self.error || kind == Self.done {
                    let code = payload.count >= 4 ? -payload.loadUnaligned(as: Int32.self) : kind == Self.error ? EPROTO : 0
                    if code != 0 {
                        failure = code
                        finished = true
                        return
                    }
                }
                finished = body(kind, flags, payload)
            }
            if let failure { throw Errno("netlink \(Self.name(type))", failure) }
        }
    }

    static func name(_ type: UInt16) -> String {
        switch type {
        case getRoute: "RTM_GETROUTE"
        case newRoute: "RTM_NEWROUTE"
        case deleteRoute: "RTM_DELROUTE"
        case getRule: "RTM_GETRULE"
        case newRule: "RTM_NEWRULE"
        case deleteRule: "RTM_DELRULE"
        case getNeighbour: "RTM_GETNEIGH"
        case getLink: "RTM_GETLINK"
        default: "type \(type)"
        }
    }

    /// Each message in `bytes` (with sequence number `sequence`, when given): its type, flags and payload.
    static func messages(_ bytes: UnsafeRawBufferPointer, sequence: UInt32? = nil,
                         _ body: (_ type: UInt16, _ flags: UInt16, _ payload: UnsafeRawBufferPointer) -> Void) {
        var at = 0
        while at + headerSize <= bytes.count {
            let length = Int(bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))
            guard length >= headerSize, at + length <= bytes.count else { return }
            let type = bytes.loadUnaligned(fromByteOffset: at + 4, as: UInt16.self)
            let flags = bytes.loadUnaligned(fromByteOffset: at + 6, as: UInt16.self)
            let seq = bytes.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self)
            if sequence == nil || seq == sequence {
                body(type, flags, UnsafeRawBufferPointer(rebasing: bytes[(at + headerSize)..<(at + length)]))
            }
            at += (length + 3) & ~3
        }
    }

    /// Each attribute (struct rtattr: length, type, value) of `payload` from offset `from`.
    static func attributes(_ payload: UnsafeRawBufferPointer, from: Int, _ body: (UInt16, UnsafeRawBufferPointer) -> Void) {
        var at = from
        while at + 4 <= payload.count {
            let length = Int(payload.loadUnaligned(fromByteOffset: at, as: UInt16.self))
            guard length >= 4, at + length <= payload.count else { return }
            let type = payload.loadUnaligned(fromByteOffset: at + 2, as: UInt16.self) & 0x3FFF
            body(type, UnsafeRawBufferPointer(rebasing: payload[(at + 4)..<(at + length)]))
            at += (length + 3) & ~3
        }
    }

    /// Writes a 4-byte attribute at `at`; returns where the next one goes.
    static func attribute(_ b: UnsafeMutableRawBufferPointer, _ at: Int, type: UInt16, _ value: UInt32) -> Int {
        b.storeBytes(of: UInt16(8), toByteOffset: at, as: UInt16.self)
        b.storeBytes(of: type, toByteOffset: at + 2, as: UInt16.self)
        b.storeBytes(of: value, toByteOffset: at + 4, as: UInt32.self)
        return at + 8
    }

    /// A 6-byte MAC address packed into a word so that storing the word little-endian puts the bytes in wire
    /// order (byte 0 in the lowest bits), followed by two zero bytes.
    public static func ethernet(_ v: UnsafeRawBufferPointer) -> UInt64 {
        (0..<6).reduce(0) { $0 | UInt64(v[$1]) << (8 * UInt64($1)) }
    }
}
