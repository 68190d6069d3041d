import Glibc
import Netlink

/// The policy rules and the routes of the kernel's routing tables, added, deleted and listed over rtnetlink: what
/// `ip rule add/del/show` and `ip route add/del/show/flush` do, in-process, so that tunnat needs no iproute2 at
/// run time and spawns nothing to set up its routing. IPv4 only. The messages are the Netlink module's
/// (Tables.swift). A change is sent with NLM_F_ACK and waits for the kernel's answer, an NLMSG_ERROR carrying 0 or a
/// negative errno; a listing is a dump, read until NLMSG_DONE. Unlike the questions of the packet path these
/// allocate (a listing is an array) and may wait, at most `answerSeconds`.
extension RouteNetlink {
    public typealias Prefix = Netlink.Prefix
    public typealias Rule = Netlink.Rule
    public typealias RouteType = Netlink.RouteType
    public typealias TableRoute = Netlink.TableRoute
    public typealias Entry = Netlink.Entry

    /// How long a change or a listing may wait for the kernel's answer (which it usually gives inside the send).
    static let answerSeconds = 5.0

    // MARK: Changes

    /// Adds `entry` (NLM_F_CREATE | NLM_F_EXCL): the kernel answers EEXIST when it is there already.
    public func add(_ entry: Entry) throws(Errno) { try change(entry, adding: true) }

    /// Deletes `entry`: the kernel answers ENOENT for a rule that is not there, ESRCH for a route.
    public func delete(_ entry: Entry) throws(Errno) { try change(entry, adding: false) }

    func change(_ entry: Entry, adding: Bool) throws(Errno) {
        let type: UInt16
        switch entry {
        case .rule(let rule):
            type = adding ? Netlink.newRule : Netlink.deleteRule
            // IFNAMSIZ is 16 with the NUL; a rule this type cannot write in full would be another rule.
            guard !rule.hasOtherSelectors, (rule.inputInterface?.utf8.count ?? 1) <= 15 else {
                throw Errno("netlink \(Netlink.name(type))", EINVAL)
            }
        case .route(let route):
            type = adding ? Netlink.newRoute : Netlink.deleteRoute
            guard route.interfaces.count <= 1 else { throw Errno("netlink \(Netlink.name(type))", EINVAL) }
        }
        let sequence = try send(type: type, flags: Netlink.acknowledge | (adding ? Netlink.create | Netlink.exclusive : 0)) { b in
            switch entry {
            case .rule(let rule): Netlink.write(rule, into: b)
            case .route(let route): Netlink.write(route, adding: adding, into: b)
            }
        }
        try receive(sequence, of: type, waiting: true) { kind, _, _ in kind == Netlink.error }
    }

    /// Deletes every route of `table` (`ip route flush table N`): lists the table and deletes each route by its
    /// type, destination, tos and metric through any interface (so a multipath route, or one through a nexthop
    /// object, goes too), and again until the listing is empty, at most 8 rounds. A route that went meanwhile
    /// (ESRCH) is not an error. Returns how many it deleted.
    @discardableResult
    public func flush(table: UInt32) throws(Errno) -> Int {
        var deleted = 0
        for _ in 0..<8 {
            let routes = try routes(table: table) + routes(table: table, family: Netlink.familyInet6)
            if routes.isEmpty { return deleted }
            for var route in routes {
                route.interfaces = []
                do {
                    try delete(.route(route))
                    deleted += 1
                } catch where error.code == Errno.noSuchEntry {}
            }
        }
        throw Errno("netlink \(Netlink.name(Netlink.deleteRoute)): table \(table) still holds routes after 8 rounds", EBUSY)
    }

    // MARK: Listings

    /// The IPv4 policy rules, in the kernel's order (by priority): `ip rule show`.
    public func rules() throws(Errno) -> [Rule] {
        try dump(Netlink.getRule, answer: Netlink.newRule, Netlink.rule(parsing:))
    }

    /// The IPv6 policy rules: `ip -6 rule show`.
    public func rules6() throws(Errno) -> [Rule] {
        try dump(Netlink.getRule, answer: Netlink.newRule, family: Netlink.familyInet6, Netlink.rule(parsing:))
    }

    /// The routes of `table` (254 is main), routes of every type: `ip route show table N`. A table that never
    /// held a route lists as empty.
    public func routes(table: UInt32, family: UInt8 = Netlink.familyInet) throws(Errno) -> [TableRoute] {
        try dump(Netlink.getRoute, answer: Netlink.newRoute, family: family, Netlink.route(parsing:)).filter { $0.table == table }
    }

    /// Dumps the kernel's `type` table for IPv4 and returns what `parse` makes of each message of type `answer`.
    /// A dump the kernel marks interrupted (NLM_F_DUMP_INTR: the table changed while it was read) is read again,
    /// up to 3 times.
    func dump<T>(_ type: UInt16, answer: UInt16, family: UInt8 = Netlink.familyInet,
                 _ parse: (UnsafeRawBufferPointer) -> T?) throws(Errno) -> [T] {
        for _ in 0..<3 {
            let sequence = try send(type: type, flags: Netlink.dump) { b in
                Netlink.writeDumpRequest(b, family: family)
            }
            var found: [T] = []
            var interrupted = false
            try receive(sequence, of: type, waiting: true) { kind, flags, payload in
                if flags & Netlink.dumpInterrupted != 0 { interrupted = true }
                if kind == answer, let item = parse(payload) { found.append(item) }
                return kind == Netlink.done
            }
            if !interrupted { return found }
        }
        throw Errno("netlink \(Netlink.name(type)) dump, interrupted 3 times", EINTR)
    }
}
