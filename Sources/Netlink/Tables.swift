/// The policy rules and the routes of the kernel's routing tables as rtnetlink carries them: what `ip rule` and
/// `ip route` add, delete and list, written as iproute2 writes them and read from the kernel's dumps. IPv4 only.
extension Netlink {
    /// An IPv4 or IPv6 prefix as rtnetlink carries it.
    public struct Prefix: Hashable, Sendable {
        /// IPv4: network byte order, as in the messages.
        public var address: UInt32
        /// 0 to 32 (IPv4), 0 to 128 (IPv6).
        public var length: UInt8
        /// IPv6: the address as two 64-bit halves, most significant first, in host order.
        public var high: UInt64 = 0
        public var low: UInt64 = 0
        public var isIPv6 = false

        public init(address: UInt32, length: UInt8) {
            self.address = address
            self.length = length
        }

        public init(high: UInt64, low: UInt64, length: UInt8) {
            address = 0
            self.high = high
            self.low = low
            self.length = length
            isIPv6 = true
        }

        var family: UInt8 { isIPv6 ? familyInet6 : familyInet }
    }

    /// A policy rule (struct fib_rule_hdr and its FRA_* attributes, linux/fib_rules.h) of the shapes tunnat makes:
    /// `from <source> [to <destination>] [iif <name>] lookup <table> pref <priority>`, or `blackhole`, `goto
    /// <priority>` or `nop` instead of the lookup.
    public struct Rule: Hashable, Sendable {
        public enum Action: Hashable, Sendable {
            /// FR_ACT_TO_TBL: `lookup <table>`.
            case lookup(table: UInt32)
            /// FR_ACT_BLACKHOLE: `blackhole`, the packet is dropped.
            case blackhole
            /// FR_ACT_GOTO and FRA_GOTO: `goto <priority>`, the rules go on from that one (a later one).
            case goto(priority: UInt32)
            /// FR_ACT_NOP: `nop`, nothing; the target of a goto.
            case nop
            /// Any other FR_ACT_* (unreachable, prohibit), as the kernel numbers it: listed, never added.
            case other(UInt8)
        }
        /// `pref`: the kernel tries rules in increasing order.
        public var priority: UInt32
        /// FRA_SRC and src_len; nil is `from all`.
        public var source: Prefix?
        /// FRA_DST and dst_len; nil is `to all`.
        public var destination: Prefix?
        /// FRA_IIFNAME: a name, so a rule may name an interface that does not exist (yet): `ip rule` shows it
        /// `[detached]`, and it applies once the interface appears.
        public var inputInterface: String?
        public var action: Action
        /// A listed rule with a selector this type does not name (a destination, tos, fwmark, oif, ports, uid range,
        /// `not`, ...): it matches less than the fields above say. A rule with one cannot be added or deleted here.
        public var hasOtherSelectors: Bool
        /// An IPv6 rule (`ip -6 rule`): implied by a prefix, and needed for one without (`ip -6 rule add nop`).
        public var isIPv6 = false

        public init(priority: UInt32, source: Prefix?, destination: Prefix? = nil, inputInterface: String?,
                    action: Action, hasOtherSelectors: Bool = false) {
            self.priority = priority
            self.source = source
            self.destination = destination
            self.inputInterface = inputInterface
            self.action = action
            self.hasOtherSelectors = hasOtherSelectors
            isIPv6 = (source ?? destination)?.isIPv6 ?? false
        }
    }

    /// RTN_* (linux/rtnetlink.h): what a route does with a packet.
    public struct RouteType: Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let unicast = RouteType(rawValue: 1)
        public static let blackhole = RouteType(rawValue: 6)
        public static let unreachable = RouteType(rawValue: 7)
        public static let prohibit = RouteType(rawValue: 8)
        /// Back to the rules: the lookup goes on with the next rule.
        public static let `throw` = RouteType(rawValue: 9)

        /// Its packets leave through no device: dropped, refused, or sent back to the rules.
        public var leadsNowhere: Bool { [.blackhole, .unreachable, .prohibit, .throw].contains(self) }
    }

    /// A route of a routing table (struct rtmsg and its RTA_* attributes): what `ip route` adds and lists. Not to
    /// be confused with `Route`, the kernel's answer to where one packet would go.
    public struct TableRoute: Hashable, Sendable {
        public var type: RouteType
        /// The whole number (RTA_TABLE); the header's byte holds only tables below 256.
        public var table: UInt32
        public var destination: Prefix
        /// The interfaces it leaves through: RTA_OIF, or each next hop's of a multipath route (RTA_MULTIPATH);
        /// none for a route through no device. A route to add names at most one; to delete, none matches any.
        public var interfaces: [Int32]
        /// RTA_PRIORITY, `metric`; 0 is none.
        public var metric: UInt32
        /// rtm_tos: a deletion matches only routes of the same tos.
        public var tos: UInt8

        public init(type: RouteType, table: UInt32, destination: Prefix, interfaces: [Int32] = [], metric: UInt32 = 0,
                    tos: UInt8 = 0) {
            self.type = type
            self.table = table
            self.destination = destination
            self.interfaces = interfaces
            self.metric = metric
            self.tos = tos
        }
    }

    /// What `add` and `delete` take.
    public enum Entry: Hashable, Sendable {
        case rule(Rule)
        case route(TableRoute)
    }

    /// The 12 bytes of struct fib_rule_hdr and of struct rtmsg, which share their shape: family, dst_len,
    /// src_len, tos, table, three bytes each names its own way (a rule's res1, res2, action; a route's protocol,
    /// scope, type), then 32 bits of flags.
    enum Field {
        static let family = 0, destinationLength = 1, sourceLength = 2, tos = 3, table = 4
        static let ruleAction = 7
        static let routeProtocol = 5, routeScope = 6, routeType = 7
        static let flags = 8
        static let end = 12
    }

    /// FRA_* (linux/fib_rules.h).
    enum RuleAttribute {
        static let destination: UInt16 = 1, source: UInt16 = 2, inputInterface: UInt16 = 3, goto: UInt16 = 4
        static let priority: UInt16 = 6
        static let suppressPrefixLength: UInt16 = 14, table: UInt16 = 15, pad: UInt16 = 18, protocolNumber: UInt16 = 21
    }

    /// RTA_* (linux/rtnetlink.h).
    enum RouteAttribute {
        static let destination: UInt16 = 1, outputInterface: UInt16 = 4, priority: UInt16 = 6, multipath: UInt16 = 9
        static let table: UInt16 = 15
    }

    // FR_ACT_*, FIB_RULE_INVERT (linux/fib_rules.h); RTPROT_BOOT, RT_SCOPE_*, RTM_F_CLONED (linux/rtnetlink.h).
    static let actionLookup: UInt8 = 1, actionGoto: UInt8 = 2, actionNop: UInt8 = 3, actionBlackhole: UInt8 = 6
    static let ruleInverted: UInt32 = 0x2
    static let protocolBoot: UInt8 = 3
    static let scopeUniverse: UInt8 = 0, scopeLink: UInt8 = 253, scopeNowhere: UInt8 = 255
    static let routeCloned: UInt32 = 0x200

    // MARK: Writing requests

    /// Writes the header a rule and a route share (`Field`): family AF_INET, the table when below 256 (else 0,
    /// RT_TABLE_UNSPEC, and an attribute carries it), no flags. A rule has 0 where a route has its protocol and
    /// scope (res1, res2), and its action where a route has its type. Returns the header's length.
    public static func writeHeader(_ b: UnsafeMutableRawBufferPointer, family: UInt8 = familyInet, destinationLength: UInt8,
                                   sourceLength: UInt8, tos: UInt8, table: UInt32, protocol: UInt8, scope: UInt8,
                                   typeOrAction: UInt8) -> Int {
        b[Field.family] = family
        b[Field.destinationLength] = destinationLength
        b[Field.sourceLength] = sourceLength
        b[Field.tos] = tos
        b[Field.table] = table < 256 ? UInt8(table) : 0
        b[Field.routeProtocol] = `protocol`
        b[Field.routeScope] = scope
        b[Field.routeType] = typeOrAction
        b.storeBytes(of: UInt32(0), toByteOffset: Field.flags, as: UInt32.self)
        return Field.end
    }

    /// An RTM_NEWRULE or RTM_DELRULE body for `rule`, as `ip rule add` writes it; returns its length.
    public static func write(_ rule: Rule, into b: UnsafeMutableRawBufferPointer) -> Int {
        var table: UInt32 = 0
        var target: UInt32?
        let action: UInt8
        switch rule.action {
        case .lookup(let number):
            table = number
            action = actionLookup
        case .blackhole: action = actionBlackhole
        case .goto(let priority):
            target = priority
            action = actionGoto
        case .nop: action = actionNop
        case .other(let number): action = number
        }
        let family = (rule.source ?? rule.destination)?.family ?? (rule.isIPv6 ? familyInet6 : familyInet)
        var at = writeHeader(b, family: family, destinationLength: rule.destination?.length ?? 0,
                             sourceLength: rule.source?.length ?? 0, tos: 0, table: table, protocol: 0, scope: 0,
                             typeOrAction: action)
        if let destination = rule.destination { at = attribute(b, at, type: RuleAttribute.destination, destination) }
        if let source = rule.source { at = attribute(b, at, type: RuleAttribute.source, source) }
        if let name = rule.inputInterface { at = attribute(b, at, type: RuleAttribute.inputInterface, name) }
        if let target { at = attribute(b, at, type: RuleAttribute.goto, target) }
        if table > 255 { at = attribute(b, at, type: RuleAttribute.table, table) }
        return attribute(b, at, type: RuleAttribute.priority, rule.priority)
    }

    /// An RTM_NEWROUTE or RTM_DELROUTE body for `route`, as `ip route add/del` writes it: an addition has protocol
    /// boot (which `ip route` does not show) and scope link for a route through a device without a gateway,
    /// universe otherwise; a deletion matches any protocol and scope (RT_SCOPE_NOWHERE). Returns its length.
    public static func write(_ route: TableRoute, adding: Bool, into b: UnsafeMutableRawBufferPointer) -> Int {
        let scope = !adding ? scopeNowhere : route.type == .unicast && !route.interfaces.isEmpty ? scopeLink : scopeUniverse
        var at = writeHeader(b, family: route.destination.family, destinationLength: route.destination.length,
                             sourceLength: 0, tos: route.tos, table: route.table, protocol: adding ? protocolBoot : 0,
                             scope: scope, typeOrAction: route.type.rawValue)
        if route.destination.length > 0 { at = attribute(b, at, type: RouteAttribute.destination, route.destination) }
        if route.table > 255 { at = attribute(b, at, type: RouteAttribute.table, route.table) }
        if route.metric != 0 { at = attribute(b, at, type: RouteAttribute.priority, route.metric) }
        if let interface = route.interfaces.first {
            at = attribute(b, at, type: RouteAttribute.outputInterface, UInt32(bitPattern: interface))
        }
        return at
    }

    // MARK: Reading listings

    /// A rule from the payload of a listed RTM_NEWRULE; nil for anything but IPv4, or a payload cut short. The
    /// `[detached]` flag of a rule whose interface does not exist is left out: it is the same rule.
    public static func rule(parsing p: UnsafeRawBufferPointer) -> Rule? {
        guard p.count >= Field.end, p[Field.family] == familyInet || p[Field.family] == familyInet6 else { return nil }
        let six = p[Field.family] == familyInet6
        let width = six ? 16 : 4
        guard p[Field.sourceLength] <= (six ? 128 : 32), p[Field.destinationLength] <= (six ? 128 : 32) else { return nil }
        var table = UInt32(p[Field.table])
        var priority: UInt32 = 0
        var source = Prefix(address: 0, length: p[Field.sourceLength])
        var destination = Prefix(address: 0, length: p[Field.destinationLength])
        var target: UInt32 = 0
        var inputInterface: String?
        var others = p[Field.tos] != 0
            || p.loadUnaligned(fromByteOffset: Field.flags, as: UInt32.self) & ruleInverted != 0
        attributes(p, from: Field.end) { type, value in
            switch type {
            case RuleAttribute.table where value.count == 4: table = value.loadUnaligned(as: UInt32.self)
            case RuleAttribute.priority where value.count == 4: priority = value.loadUnaligned(as: UInt32.self)
            case RuleAttribute.source where value.count == width: source = prefix(value, length: source.length)
            case RuleAttribute.destination where value.count == width:
                destination = prefix(value, length: destination.length)
            case RuleAttribute.goto where value.count == 4: target = value.loadUnaligned(as: UInt32.self)
            case RuleAttribute.inputInterface:
                inputInterface = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
            // Listed with every rule: all ones unless `suppress_prefixlength` was given.
            case RuleAttribute.suppressPrefixLength where value.count == 4:
                if value.loadUnaligned(as: UInt32.self) != .max { others = true }
            // Who made the rule, and alignment: not selectors.
            case RuleAttribute.protocolNumber, RuleAttribute.pad: break
            default: others = true
            }
        }
        let action: Rule.Action = switch p[Field.ruleAction] {
        case actionLookup: .lookup(table: table)
        case actionBlackhole: .blackhole
        case actionGoto: .goto(priority: target)
        case actionNop: .nop
        case let other: .other(other)
        }
        var rule = Rule(priority: priority, source: source.length == 0 ? nil : source,
                        destination: destination.length == 0 ? nil : destination,
                        inputInterface: inputInterface, action: action, hasOtherSelectors: others)
        rule.isIPv6 = six
        return rule
    }

    /// A prefix from a 4- or 16-byte address attribute.
    static func prefix(_ value: UnsafeRawBufferPointer, length: UInt8) -> Prefix {
        if value.count == 4 { return Prefix(address: value.loadUnaligned(as: UInt32.self), length: length) }
        return Prefix(high: UInt64(bigEndian: value.loadUnaligned(as: UInt64.self)),
                      low: UInt64(bigEndian: value.loadUnaligned(fromByteOffset: 8, as: UInt64.self)), length: length)
    }

    /// A route from the payload of a listed RTM_NEWROUTE; nil for anything but IPv4, a payload cut short, or a
    /// cached exception (RTM_F_CLONED: a learned path MTU or redirect, which a dump may list with the routes).
    public static func route(parsing p: UnsafeRawBufferPointer) -> TableRoute? {
        guard p.count >= Field.end, p[Field.family] == familyInet || p[Field.family] == familyInet6,
              p[Field.destinationLength] <= (p[Field.family] == familyInet6 ? 128 : 32),
              p.loadUnaligned(fromByteOffset: Field.flags, as: UInt32.self) & routeCloned == 0
        else { return nil }
        let six = p[Field.family] == familyInet6
        var destination = Prefix(address: 0, length: p[Field.destinationLength])
        if six { destination = Prefix(high: 0, low: 0, length: p[Field.destinationLength]) }
        var route = TableRoute(type: RouteType(rawValue: p[Field.routeType]), table: UInt32(p[Field.table]),
                               destination: destination, tos: p[Field.tos])
        attributes(p, from: Field.end) { type, value in
            switch type {
            case RouteAttribute.destination where value.count == (six ? 16 : 4):
                route.destination = prefix(value, length: route.destination.length)
            case RouteAttribute.table where value.count == 4: route.table = value.loadUnaligned(as: UInt32.self)
            case RouteAttribute.priority where value.count == 4: route.metric = value.loadUnaligned(as: UInt32.self)
            case RouteAttribute.outputInterface where value.count == 4:
                route.interfaces.append(value.loadUnaligned(as: Int32.self))
            case RouteAttribute.multipath: nextHops(value) { route.interfaces.append($0) }
            default: break
            }
        }
        return route
    }

    /// Each next hop's interface in an RTA_MULTIPATH value: a struct rtnexthop (length, flags, hops, ifindex)
    /// followed by its own attributes, each 4-byte aligned.
    public static func nextHops(_ value: UnsafeRawBufferPointer, _ body: (Int32) -> Void) {
        var at = 0
        while at + 8 <= value.count {
            let length = Int(value.loadUnaligned(fromByteOffset: at, as: UInt16.self))
            guard length >= 8, at + length <= value.count else { return }
            body(value.loadUnaligned(fromByteOffset: at + 4, as: Int32.self))
            at += (length + 3) & ~3
        }
    }

    /// The body of a dump request (RTM_GETRULE, RTM_GETROUTE): a struct rtgenmsg is all the kernel reads of one;
    /// iproute2 sends the whole header, zeroed but for the family.
    public static func writeDumpRequest(_ b: UnsafeMutableRawBufferPointer, family: UInt8 = familyInet) -> Int {
        writeHeader(b, family: family, destinationLength: 0, sourceLength: 0, tos: 0, table: 0, protocol: 0, scope: 0,
                    typeOrAction: 0)
    }
}
