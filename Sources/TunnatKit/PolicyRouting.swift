import Foundation
import Glibc
import NatTable
import PacketKit
import SystemCalls

/// The routing that puts the TUN in the data path (docs/data-plane.md, "Policy routing"), in `ip` syntax:
///
///     ip route add default dev tun0 table 100            everything in table 100 goes into the TUN,
///     ip route add blackhole default table 100 metric 4294967295
///                                                        and is dropped when the TUN is gone;
///     ip route add throw 10.0.0.0/8 table 100            private destinations are routed, not translated;
///     ip rule add from 10.0.0.0/8 iif eth1 lookup 100 pref 100
///                                                        private sources arriving on the private side (one rule
///                                                        per private interface) go to table 100;
///     ip rule add from 10.0.0.0/8 iif lo lookup main pref 101
///                                                        the host's own traffic keeps the main table;
///     ip rule add from 10.0.0.0/8 blackhole pref 102     a private source arriving anywhere else (the public
///                                                        side: spoofed) is dropped, never forwarded;
///     ip rule add nop pref 106                           the forwarding fence (`fence_forwarding`): the host's
///     ip rule add iif lo goto 106 pref 103               own traffic and what tunnat writes into the TUN go
///     ip rule add iif tun0 goto 106 pref 103             on as before; replies to a pool address go to table
///     ip rule add to 198.18.0.1/32 lookup 100 pref 104   100 (into the TUN, or its blackhole when the TUN is
///     ip rule add blackhole pref 105                     gone); anything else the host would forward is
///                                                        dropped: it was not translated (inbound to a private
///                                                        host, or a source outside the private prefixes);
///     ip route add 198.18.0.1/32 dev tun0                replies to a pool address go into the TUN.
///
/// What is addressed to the host itself never meets these rules: the kernel's `local` rule (priority 0) delivers
/// it first.
///
/// Never untranslated: the rules, the blackhole and the throws (the fence) keep private sources out of the main
/// table whether tunnat runs or not. Installing adds what is missing and leaves in place what an earlier run left
/// (killed, or stopped with `on_stop: keep`), so there is no moment in which a private source follows the main
/// table. A stop removes the routes through the device, and the fence only with `on_stop: remove`. The rules name
/// the interfaces private traffic arrives on, and a private source arriving on any other is dropped: a spoofed one
/// is neither translated nor forwarded. The rules and routes are made over rtnetlink in-process
/// (`RouteNetlink`), which needs CAP_NET_ADMIN and no iproute2; the `ip` syntax is for the logs and the errors.
public final class PolicyRouting {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// One rule or route: what the kernel is asked to add and later to delete, and the same in `ip` syntax.
    public struct Step: Equatable, Sendable {
        public enum Kind: Sendable {
            /// A route through the device: it goes with the device, and every stop removes it.
            case throughDevice
            /// Keeps private sources out of the main table: a stop keeps it unless `on_stop: remove`.
            case fence
        }
        public let kind: Kind
        public let entry: RouteNetlink.Entry
        /// The `ip rule`/`ip route` arguments after `add` or `del`: `default dev tun0 table 100`.
        public let arguments: String

        /// `ip route add default dev tun0 table 100`.
        public var added: String { "ip \(object) add \(arguments)" }
        /// `ip route del default dev tun0 table 100`.
        public var removed: String { "ip \(object) del \(arguments)" }
        var object: String {
            switch entry {
            case .rule(let rule): rule.isIPv6 ? "-6 rule" : "rule"
            case .route(let route): route.destination.isIPv6 ? "-6 route" : "route"
            }
        }
    }

    let device: String
    let routing: TunConfiguration.Routing
    let nat: NatConfiguration
    let interfaces: [String]
    /// The steps in place, added by this run or found there, in install order.
    private(set) var inPlace: [Step] = []
    /// The socket `install` opened, kept for `stop`.
    private var netlink: RouteNetlink?
    /// The rules of an earlier run's fence that `install` removed because this run makes another, in `ip` syntax.
    public private(set) var staleRemoved: [String] = []

    /// `interfaces`: where private traffic arrives (`tun.routing.interface`, or what `findPrivateInterfaces` found).
    public init(device: String, routing: TunConfiguration.Routing, nat: NatConfiguration, interfaces: [String]) {
        self.device = device
        self.routing = routing
        self.nat = nat
        self.interfaces = interfaces
    }

    /// The steps, in install order: the table before the rules that lead to it. `deviceIndex` is the TUN's
    /// interface index (the routes through it name it by index; the rules name interfaces by name).
    public func steps(deviceIndex: Int32) -> [Step] {
        let table = UInt32(routing.table)
        var steps: [Step] = []
        func route(_ kind: Step.Kind, _ type: RouteNetlink.RouteType, _ destination: IPv4Prefix, table: UInt32,
                   metric: UInt32 = 0) {
            let throughDevice = kind == .throughDevice
            let route = RouteNetlink.TableRoute(type: type, table: table, destination: RouteNetlink.Prefix(destination),
                                                interfaces: throughDevice ? [deviceIndex] : [], metric: metric)
            steps.append(Step(kind: kind, entry: .route(route),
                              arguments: Self.arguments(route, device: throughDevice ? device : nil)))
        }
        func rule(_ rule: RouteNetlink.Rule) {
            steps.append(Step(kind: .fence, entry: .rule(rule), arguments: Self.arguments(rule)))
        }
        route(.throughDevice, .unicast, IPv4Prefix.everything, table: table)
        // Fail closed: when the device goes (a crash, or a stop), the route through it goes too, and private traffic
        // meets this instead of falling through to the main table and leaving untranslated.
        route(.fence, .blackhole, IPv4Prefix.everything, table: table, metric: .max)
        for prefix in nat.privatePrefixes { route(.fence, .throw, prefix, table: table) }
        for prefix in nat.privatePrefixes {
            for interface in interfaces {
                rule(RouteNetlink.Rule(priority: UInt32(routing.priority), source: RouteNetlink.Prefix(prefix),
                                       inputInterface: interface, action: .lookup(table: table)))
            }
        }
        for prefix in nat.privatePrefixes { Self.closingRules(prefix, priority: routing.priority).forEach(rule) }
        if routing.fenceForwarding {
            Self.forwardingFence(routing: routing, nat: nat, device: device).forEach(rule)
        }
        for address in nat.poolAddresses {
            route(.throughDevice, .unicast, IPv4Prefix(network: address, length: 32)!, table: Self.mainTable)
        }
        if let nat64 = nat.nat64 {
            // NAT64: whatever is addressed to the prefix goes into the TUN, or into the blackhole when the TUN is
            // gone; never on through the IPv6 routes untranslated.
            let prefix = RouteNetlink.Prefix(nat64.prefix.prefix)
            for (kind, type, metric) in [(Step.Kind.throughDevice, RouteNetlink.RouteType.unicast, UInt32(0)),
                                         (.fence, .blackhole, .max)] {
                let throughDevice = kind == .throughDevice
                let r = RouteNetlink.TableRoute(type: type, table: table, destination: prefix,
                                                interfaces: throughDevice ? [deviceIndex] : [], metric: metric)
                steps.append(Step(kind: kind, entry: .route(r), arguments: Self.arguments(r, device: throughDevice ? device : nil)))
            }
            rule(Self.nat64Rule(prefix, routing: routing))
        }
        return steps
    }

    /// Adds every step that is not in place; what is there already (an earlier run's fence) stays as it is. A rule
    /// is looked for first (kernels before 4.15 ignore NLM_F_EXCL for rules and take a second copy); a fence route
    /// the kernel says exists (EEXIST) is there. If a step fails, what was in place is undone as a stop would undo it.
    @discardableResult
    public func install() throws(Failure) -> (added: Int, found: Int) {
        let netlink = try Self.open()
        self.netlink = netlink
        let index = Int32(Syscall.interfaceIndex(device))
        guard index > 0 else { throw Failure(description: "\(device): no such interface") }
        let listed: [RouteNetlink.Rule]
        do { listed = try netlink.rules() + (nat.nat64 == nil ? [] : netlink.rules6()) } catch {
            throw Failure(description: "listing the policy rules: \(error)")
        }
        let wanted = steps(deviceIndex: index)
        // A fence an earlier run left that this one would not make (another TUN device, pool addresses no longer
        // configured, or `fence_forwarding: false` now): it goes, blackhole first (`leftoverRules`' order), before
        // anything is added.
        let stale = Self.leftoverRules(in: listed, routing: routing, nat: nat).filter { rule in
            Self.isFenceShaped(rule, routing: routing) && !wanted.contains { $0.entry == .rule(rule) }
        }
        staleRemoved = try Self.delete(stale, netlink: netlink)
        var added = 0
        for step in wanted {
            if case .rule(let rule) = step.entry, listed.contains(rule) {
                inPlace.append(step)
                continue
            }
            do { try netlink.add(step.entry) } catch {
                // A route through the device is new with the device: one that exists is someone else's route.
                if step.kind == .fence && error.code == Errno.exists {
                    inPlace.append(step)
                    continue
                }
                stop()
                throw Failure(description: "\(step.added): \(error)")
            }
            inPlace.append(step)
            added += 1
        }
        return (added, inPlace.count - added)
    }

    /// Undoes what is in place as `tun.routing.on_stop` says, newest first: the routes through the device always,
    /// the fence only with `remove`. What is gone already (with the device) is no error. Returns the steps it kept.
    @discardableResult
    public func stop() -> [Step] {
        var kept: [Step] = []
        while let step = inPlace.popLast() {
            if step.kind == .fence && routing.onStop == .keep {
                kept.insert(step, at: 0)
            } else {
                try? netlink?.delete(step.entry)
            }
        }
        return kept
    }

    /// `tunnat routing remove`: gives the host back to the kernel's forwarding while tunnat is not running. Removes
    /// every rule of tunnat's shape (its priority, a private prefix as source, any interface, its table, and the
    /// closing rules), whichever interfaces the run that left it found, and flushes its table. Returns what it did,
    /// in `ip` syntax.
    public static func removeLeftovers(routing: TunConfiguration.Routing, nat: NatConfiguration) throws(Failure) -> [String] {
        let netlink = try open()
        let listed: [RouteNetlink.Rule]
        do { listed = try netlink.rules() } catch { throw Failure(description: "listing the policy rules: \(error)") }
        var done = try delete(leftoverRules(in: listed, routing: routing, nat: nat), netlink: netlink)
        let listed6: [RouteNetlink.Rule]
        do { listed6 = try netlink.rules6() } catch { throw Failure(description: "listing the IPv6 policy rules: \(error)") }
        done += try delete(leftoverRules6(in: listed6, routing: routing), netlink: netlink)
        let table = UInt32(routing.table)
        let command = "ip route flush table \(table)"
        do {
            if try netlink.flush(table: table) > 0 { done.append(command) }
        } catch {
            throw Failure(description: "\(command): \(error)")
        }
        return done
    }

    /// Deletes `rules` in their order; one gone meanwhile is no error. Returns what it did, in `ip` syntax.
    static func delete(_ rules: [RouteNetlink.Rule], netlink: RouteNetlink) throws(Failure) -> [String] {
        var done: [String] = []
        for rule in rules {
            let command = "ip \(rule.isIPv6 ? "-6 " : "")rule del \(arguments(rule))"
            do { try netlink.delete(.rule(rule)) } catch where error.code == Errno.noEntry {
                continue
            } catch {
                throw Failure(description: "\(command): \(error)")
            }
            done.append(command)
        }
        return done
    }

    /// NAT64's one rule: `ip -6 rule add to <prefix> lookup <table> pref <priority>`.
    static func nat64Rule(_ prefix: RouteNetlink.Prefix, routing: TunConfiguration.Routing) -> RouteNetlink.Rule {
        RouteNetlink.Rule(priority: UInt32(routing.priority), source: nil, destination: prefix, inputInterface: nil,
                          action: .lookup(table: UInt32(routing.table)))
    }

    /// Listed IPv6 rules of NAT64's shape (any prefix) at this priority and table.
    static func leftoverRules6(in rules: [RouteNetlink.Rule], routing: TunConfiguration.Routing) -> [RouteNetlink.Rule] {
        rules.filter {
            $0.isIPv6 && $0.priority == UInt32(routing.priority) && $0.source == nil && $0.destination != nil
                && $0.inputInterface == nil && !$0.hasOtherSelectors && $0.action == .lookup(table: UInt32(routing.table))
        }
    }

    /// The rules after the private side's, at the priority plus 1 and 2: the host's own traffic from a private
    /// source keeps the main table; a private source from anywhere else is dropped.
    static func closingRules(_ prefix: IPv4Prefix, priority: Int) -> [RouteNetlink.Rule] {
        let source = RouteNetlink.Prefix(prefix)
        return [
            RouteNetlink.Rule(priority: UInt32(priority + 1), source: source, inputInterface: "lo", action: .lookup(table: mainTable)),
            RouteNetlink.Rule(priority: UInt32(priority + 2), source: source, inputInterface: nil, action: .blackhole),
        ]
    }

    /// How many priorities after `routing.priority` the rules use: the closing rules take 1 and 2, the forwarding
    /// fence 3 to 6.
    public static let prioritiesUsed = 6

    /// The forwarding fence, at the priority plus 3 to 6: past the closing rules only sources outside the private
    /// prefixes are left. Of those, the host's own traffic (iif lo) and what tunnat writes into the TUN (translated
    /// inbound packets) jump past the blackhole; packets to a pool address go to tunnat's table (into the TUN, or
    /// its blackhole while tunnat is stopped: never back out untranslated); anything else the kernel would forward
    /// (local destinations were delivered at priority 0) is dropped.
    static func forwardingFence(routing: TunConfiguration.Routing, nat: NatConfiguration, device: String)
        -> [RouteNetlink.Rule] {
        let p = UInt32(routing.priority)
        let past = RouteNetlink.Rule.Action.goto(priority: p + 6)
        let intoTheTUN = RouteNetlink.Rule.Action.lookup(table: UInt32(routing.table))
        // In install order: a goto whose target is missing is skipped, so the target comes first and the blackhole
        // last, and there is no moment in which the host's own traffic meets the blackhole.
        return [RouteNetlink.Rule(priority: p + 6, source: nil, inputInterface: nil, action: .nop),
                RouteNetlink.Rule(priority: p + 3, source: nil, inputInterface: "lo", action: past),
                RouteNetlink.Rule(priority: p + 3, source: nil, inputInterface: device, action: past)]
            + nat.poolAddresses.map {
                RouteNetlink.Rule(priority: p + 4, source: nil, destination: RouteNetlink.Prefix(IPv4Prefix(network: $0, length: 32)!),
                                  inputInterface: nil, action: intoTheTUN)
            }
            + [RouteNetlink.Rule(priority: p + 5, source: nil, inputInterface: nil, action: .blackhole)]
    }

    /// Whether a listed rule has the shape of a forwarding fence rule at this priority, whatever TUN device and
    /// pool addresses the run that made it had: `iif X goto P+6` at P+3, `to A/32 lookup <table>` at P+4, and
    /// `blackhole` at P+5 and `nop` at P+6 with no selector.
    static func isFenceShaped(_ rule: RouteNetlink.Rule, routing: TunConfiguration.Routing) -> Bool {
        let p = UInt32(routing.priority)
        guard rule.source == nil, !rule.hasOtherSelectors else { return false }
        switch (rule.priority &- p, rule.action) {
        case (3, .goto(let target)): return target == p + 6 && rule.inputInterface != nil && rule.destination == nil
        case (4, .lookup(let table)):
            return table == UInt32(routing.table) && rule.inputInterface == nil && rule.destination?.length == 32
        case (5, .blackhole), (6, .nop): return rule.inputInterface == nil && rule.destination == nil
        default: return false
        }
    }

    /// The listed rules tunnat installs: `from <private prefix> [iif X] lookup <table>` at its priority, with no
    /// other selector, the closing rules, and the forwarding fence (whichever TUN device and pool it named). In the
    /// order they may go: the fence's blackhole first, so that the host's own traffic never meets it without the
    /// rules that take that traffic past it.
    public static func leftoverRules(in rules: [RouteNetlink.Rule], routing: TunConfiguration.Routing,
                                     nat: NatConfiguration) -> [RouteNetlink.Rule] {
        let prefixes = Set(nat.privatePrefixes.map(RouteNetlink.Prefix.init))
        let closing = Set(nat.privatePrefixes.flatMap { closingRules($0, priority: routing.priority) })
        let found = rules.filter { rule in
            if closing.contains(rule) || isFenceShaped(rule, routing: routing) { return true }
            guard let source = rule.source else { return false }
            return rule.priority == UInt32(routing.priority) && prefixes.contains(source)
                && rule.action == .lookup(table: UInt32(routing.table)) && !rule.hasOtherSelectors
        }
        return found.filter { $0.action == .blackhole && $0.source == nil } + found.filter { $0.action != .blackhole || $0.source != nil }
    }

    /// Where private traffic arrives when `tun.routing.interface` is empty: the devices of the routes to destinations
    /// inside a private prefix (the private subnets are there), without lo and `excluding` (the TUN); sorted.
    public static func privateInterfaces(routes: [(destination: IPv4Prefix, devices: [String])], prefixes: [IPv4Prefix],
                                         excluding: String) -> [String] {
        var found = Set<String>()
        for route in routes where prefixes.contains(where: { $0.length <= route.destination.length && $0.contains(route.destination.network) }) {
            found.formUnion(route.devices)
        }
        return found.subtracting(["lo", excluding]).sorted()
    }

    /// `privateInterfaces` from the main table as it is now, and which of them also carry the default route (one
    /// interface for both sides, as on a one-ENI NAT instance). None found is a refusal that names the key to set.
    public static func findPrivateInterfaces(prefixes: [IPv4Prefix], device: String) throws(Failure) -> (interfaces: [String], sharedWithDefault: [String]) {
        let listed: [RouteNetlink.TableRoute]
        do { listed = try open().routes(table: mainTable) } catch { throw Failure(description: "listing the main table: \(error)") }
        let main = throughDevices(listed)
        let interfaces = privateInterfaces(routes: main, prefixes: prefixes, excluding: device)
        guard !interfaces.isEmpty else {
            throw Failure(description: "tun.routing.interface is empty and no route in the main table leads into a private prefix (\(prefixes.map(\.description).joined(separator: ", "))) through an interface other than lo and \(device): set tun.routing.interface to the interface private traffic arrives on")
        }
        let defaults = Set(main.filter { $0.destination.length == 0 }.flatMap(\.devices))
        return (interfaces, interfaces.filter { defaults.contains($0) })
    }

    /// Each route's destination and the names of the devices it leaves through (several for a multipath route),
    /// as `ip route show` names them; routes through no device (blackhole, unreachable, prohibit, throw), and
    /// devices gone since the listing, are left out.
    static func throughDevices(_ routes: [RouteNetlink.TableRoute]) -> [(destination: IPv4Prefix, devices: [String])] {
        routes.compactMap { route in
            guard !route.type.leadsNowhere else { return nil }
            var devices: [String] = []
            for name in route.interfaces.compactMap(Syscall.interfaceName) where !devices.contains(name) {
                devices.append(name)
            }
            return devices.isEmpty ? nil : (IPv4Prefix(route.destination), devices)
        }
    }

    /// RT_TABLE_MAIN.
    static let mainTable: UInt32 = 254

    static func open() throws(Failure) -> RouteNetlink {
        do { return try RouteNetlink() } catch { throw Failure(description: "\(error)") }
    }

    /// A rule in `ip rule` syntax: `from 10.0.0.0/8 iif lan1 lookup 100 pref 100`.
    static func arguments(_ rule: RouteNetlink.Rule) -> String {
        var words = ["from", rule.source.map(\.text) ?? "all"]
        if let destination = rule.destination { words += ["to", destination.text] }
        if let name = rule.inputInterface { words += ["iif", name] }
        switch rule.action {
        case .lookup(let table): words += ["lookup", table == mainTable ? "main" : "\(table)"]
        case .blackhole: words.append("blackhole")
        case .goto(let priority): words += ["goto", "\(priority)"]
        case .nop: words.append("nop")
        case .other(let action): words += ["action", "\(action)"]
        }
        return (words + ["pref", "\(rule.priority)"]).joined(separator: " ")
    }

    /// A route in `ip route` syntax: `blackhole default table 100 metric 4294967295`; `device` names the interface
    /// it leaves through.
    static func arguments(_ route: RouteNetlink.TableRoute, device: String?) -> String {
        var words: [String] = []
        switch route.type {
        case .blackhole: words.append("blackhole")
        case .throw: words.append("throw")
        default: break
        }
        words.append(route.destination.length == 0 ? "default" : route.destination.text)
        if let device { words += ["dev", device] }
        if route.table != mainTable { words += ["table", "\(route.table)"] }
        if route.metric != 0 { words += ["metric", "\(route.metric)"] }
        return words.joined(separator: " ")
    }
}

extension RouteNetlink.Prefix {
    init(_ prefix: IPv4Prefix) {
        self.init(address: prefix.network.value.bigEndian, length: UInt8(prefix.length))
    }

    init(_ prefix: IPv6Prefix) {
        self.init(high: prefix.network.high, low: prefix.network.low, length: UInt8(prefix.length))
    }

    /// In `ip` syntax.
    var text: String {
        guard isIPv6 else { return "\(IPv4Prefix(self))" }
        return "\(IPv6Address(high: high, low: low))/\(length)"
    }
}

extension IPv4Prefix {
    /// 0.0.0.0/0, `default`.
    static let everything = IPv4Prefix(network: IPv4Address(0), length: 0)!

    /// A prefix as rtnetlink carries it (which never has a length over 32: the listings check).
    init(_ prefix: RouteNetlink.Prefix) {
        self.init(network: IPv4Address(UInt32(bigEndian: prefix.address)), length: Int(prefix.length))!
    }
}

/// Kernel settings the data path depends on, read from /proc/sys.
public enum KernelSettings {
    public static func read(_ name: String) -> String? {
        let path = "/proc/sys/" + name.replacingOccurrences(of: ".", with: "/")
        guard let bytes = try? FileBytes.read(path) else { return nil }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public static func write(_ name: String, _ value: String) -> Bool {
        let path = "/proc/sys/" + name.replacingOccurrences(of: ".", with: "/")
        return (try? FileBytes.write(Array((value + "\n").utf8), to: path)) != nil
    }
}
