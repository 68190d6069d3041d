import Glibc
import Netlink

/// A NETLINK_ROUTE socket (rtnetlink(7)): asks the kernel's routing, neighbour and link tables one question at
/// a time, or, bound to multicast groups, hears when they change. The kernel answers a request inside the
/// send, so a question costs one sendto and one recv and never waits, and allocates nothing. The policy rules
/// and the routes of a table are added, deleted and listed here too (RouteNetlinkTables.swift), for the policy
/// routing: in-process, what iproute2's `ip rule` and `ip route` would do. The messages themselves are the Netlink
/// module's; this type only sends and receives them.
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

    public typealias Route = Netlink.Route
    public typealias Neighbour = Netlink.Neighbour
    public typealias Link = Netlink.Link
    public typealias Change = Netlink.Change

    let descriptor: FileDescriptor
    public var fd: Int32 { descriptor.rawValue }
    var sequence: UInt32 = 0
    /// Requests are built here and answers read here: a question allocates nothing.
    let buffer: UnsafeMutableRawBufferPointer

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
        try ask(type: Netlink.getRoute, body: {
            Netlink.writeRouteQuestion($0, destination: destination, source: source, inputInterface: inputInterface)
        }, answer: Netlink.newRoute) { payload in
            if let answer = Netlink.route(answer: payload) { route = answer }
        }
        return route
    }

    /// The neighbour entry for `address` (network order) on `interface`; nil when there is none (ENOENT).
    public func neighbour(_ address: UInt32, interface: Int32) throws(Errno) -> Neighbour? {
        var neighbour = Neighbour(state: 0, ethernet: nil)
        do {
            try ask(type: Netlink.getNeighbour, body: {
                Netlink.writeNeighbourQuestion($0, address: address, interface: interface)
            }, answer: Netlink.newNeighbour) { payload in
                if let answer = Netlink.neighbour(answer: payload) { neighbour = answer }
            }
        } catch where error.code == Errno.noEntry {
            return nil
        }
        return neighbour
    }

    /// The interface with index `index`.
    public func link(_ index: Int32) throws(Errno) -> Link {
        var link = Link(type: 0, mtu: 0, ethernet: nil)
        try ask(type: Netlink.getLink, body: { Netlink.writeLinkQuestion($0, index: index) }, answer: Netlink.newLink) { payload in
            if let answer = Netlink.link(answer: payload) { link = answer }
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
            Netlink.messages(UnsafeRawBufferPointer(rebasing: buffer[..<n])) { type, _, payload in
                if let change = Netlink.change(type: type, payload: payload) { body(change) }
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
            return kind == Netlink.error
        }
    }

    /// Writes a request of `type` with NLM_F_REQUEST and `flags`, its body written by `body` (which returns the
    /// body's length), and sends it; returns its sequence number.
    func send(type: UInt16, flags: UInt16, body: (UnsafeMutableRawBufferPointer) -> Int) throws(Errno) -> UInt32 {
        sequence &+= 1
        let request = UnsafeMutableRawBufferPointer(rebasing: buffer[..<512])
        let length = Netlink.writeRequest(into: request, type: type, flags: flags, sequence: sequence, body: body)
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
                guard left > 0 else { throw Errno("netlink \(Netlink.name(type))", ETIMEDOUT) }
                _ = try Syscall.pollIn(fd, timeoutMilliseconds: Int32(left * 1000) + 1)
                continue
            }
            var failure: Int32?
            Netlink.messages(UnsafeRawBufferPointer(rebasing: buffer[..<n]), sequence: sequence) { kind, flags, payload in
                guard !finished else { return }
                if let code = Netlink.errorCode(kind: kind, payload: payload), code != 0 {
                    failure = code
                    finished = true
                    return
                }
                finished = body(kind, flags, payload)
            }
            if let failure { throw Errno("netlink \(Netlink.name(type))", failure) }
        }
    }
}
