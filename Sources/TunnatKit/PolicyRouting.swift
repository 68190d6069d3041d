import Foundation
import NatTable
import PacketKit
import SystemCalls

/// The routing that puts the TUN in the data path (DESIGN.md, "The data path on a NAT instance"):
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
///     ip route add 198.18.0.1/32 dev tun0                replies to a pool address go into the TUN.
///
/// Never untranslated: the rules, the blackhole and the throws (the fence) keep private sources out of the main
/// table whether tunnat runs or not. Installing adds what is missing and leaves in place what an earlier run left
/// (killed, or stopped with `on_stop: keep`), so there is no moment in which a private source follows the main
/// table. A stop removes the routes through the device, and the fence only with `on_stop: remove`. The rules name
/// the interfaces private traffic arrives on, and a private source arriving on any other is dropped: a spoofed one
/// is neither translated nor forwarded. It runs iproute2's `ip`, which needs CAP_NET_ADMIN, as tunnat does.
public final class PolicyRouting {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// One `ip` command and the one that undoes it.
    public struct Step: Equatable, Sendable {
        public enum Kind: Sendable {
            /// A route through the device: it goes with the device, and every stop removes it.
            case throughDevice
            /// Keeps private sources out of the main table: a stop keeps it unless `on_stop: remove`.
            case fence
        }
        public let kind: Kind
        public let install: [String]
        public let remove: [String]
        /// For a rule: how `ip -N -o rule show` lists it, so that installing can look before adding.
        public let rule: ShownRule?
    }

    /// A line of `ip -N -o rule show`: `100:	from 10.0.0.0/8 iif eth1 lookup 100` is priority 100 and the selector
    /// and action `from 10.0.0.0/8 iif eth1 lookup 100`.
    public struct ShownRule: Hashable, Sendable {
        public let priority: Int
        public let selector: [String]
        public init(priority: Int, selector: [String]) {
            self.priority = priority
            self.selector = selector
        }
    }

    let device: String
    let routing: TunConfiguration.Routing
    let nat: NatConfiguration
    let interfaces: [String]
    /// The steps in place, added by this run or found there, in install order.
    private(set) var inPlace: [Step] = []

    /// `interfaces`: where private traffic arrives (`tun.routing.interface`, or what `privateInterfaces` found).
    public init(device: String, routing: TunConfiguration.Routing, nat: NatConfiguration, interfaces: [String]) {
        self.device = device
        self.routing = routing
        self.nat = nat
        self.interfaces = interfaces
    }

    /// The steps, in install order: the table before the rules that lead to it.
    public var steps: [Step] {
        let table = String(routing.table)
        var steps: [Step] = []
        func route(_ kind: Step.Kind, _ arguments: [String]) {
            steps.append(Step(kind: kind, install: ["route", "add"] + arguments, remove: ["route", "del"] + arguments, rule: nil))
        }
        route(.throughDevice, ["default", "dev", device, "table", table])
        // Fail closed: when the device goes (a crash, or a stop), the route through it goes too, and private traffic
        // meets this instead of falling through to the main table and leaving untranslated.
        route(.fence, ["blackhole", "default", "table", table, "metric", "4294967295"])
        for prefix in nat.privatePrefixes { route(.fence, ["throw", "\(prefix)", "table", table]) }
        for prefix in nat.privatePrefixes {
            for interface in interfaces {
                let selector = ["from", "\(prefix)", "iif", interface, "lookup", table]
                let priority = ["pref", String(routing.priority)]
                steps.append(Step(kind: .fence, install: ["rule", "add"] + selector + priority,
                                  remove: ["rule", "del"] + selector + priority,
                                  rule: ShownRule(priority: routing.priority, selector: selector)))
            }
        }
        for prefix in nat.privatePrefixes {
            for (offset, selector) in Self.closingRules(prefix) {
                let priority = ["pref", String(routing.priority + offset)]
                steps.append(Step(kind: .fence, install: ["rule", "add"] + selector + priority,
                                  remove: ["rule", "del"] + selector + priority,
                                  rule: ShownRule(priority: routing.priority + offset, selector: selector)))
            }
        }
        for address in nat.poolAddresses { route(.throughDevice, ["\(address)/32", "dev", device]) }
        return steps
    }

    /// Adds every step that is not in place; what is there already (an earlier run's fence) stays as it is. A rule
    /// is looked for first (older kernels take a second copy of a rule); a route the kernel says exists is there.
    /// If a step fails, what was in place is undone as a stop would undo it.
    @discardableResult
    public func install() throws(Failure) -> (added: Int, found: Int) {
        let listed = Self.ip(["-N", "-o", "rule", "show"])
        if let error = listed.error { throw Failure(description: "ip -N -o rule show: \(error)") }
        let rules = Self.rules(shownBy: listed.output)
        var added = 0
        for step in steps {
            if let rule = step.rule, rules.contains(rule) {
                inPlace.append(step)
                continue
            }
            if let error = Self.ip(step.install).error {
                // A route through the device is new with the device: "File exists" there is someone else's route.
                if step.kind == .fence && error.contains("File exists") {
                    inPlace.append(step)
                    continue
                }
                stop()
                throw Failure(description: "ip \(step.install.joined(separator: " ")): \(error)")
            }
            inPlace.append(step)
            added += 1
        }
        return (added, inPlace.count - added)
    }

    /// Undoes what is in place as `tun.routing.on_stop` says, newest first: the routes through the device always,
    /// the fence only with `remove`. Returns the steps it kept.
    @discardableResult
    public func stop() -> [Step] {
        var kept: [Step] = []
        while let step = inPlace.popLast() {
            if step.kind == .fence && routing.onStop == .keep {
                kept.insert(step, at: 0)
            } else {
                _ = Self.ip(step.remove)
            }
        }
        return kept
    }

    /// `tunnat routing remove`: gives the host back to the kernel's forwarding while tunnat is not running. Removes
    /// every rule of tunnat's shape (its priority, a private prefix as source, any interface, its table), whichever
    /// interfaces the run that left it found, and flushes its table. Returns the commands it ran.
    public static func removeLeftovers(routing: TunConfiguration.Routing, nat: NatConfiguration) throws(Failure) -> [String] {
        let listed = ip(["-N", "-o", "rule", "show"])
        if let error = listed.error { throw Failure(description: "ip -N -o rule show: \(error)") }
        var ran: [String] = []
        for arguments in leftoverRules(in: rules(shownBy: listed.output), routing: routing, nat: nat) {
            if let error = ip(arguments).error { throw Failure(description: "ip \(arguments.joined(separator: " ")): \(error)") }
            ran.append("ip " + arguments.joined(separator: " "))
        }
        let table = String(routing.table)
        let routes = ip(["-o", "route", "show", "table", table])
        // A table that never held a route does not exist as far as the kernel is concerned: nothing to flush.
        if let error = routes.error, !error.contains("does not exist") {
            throw Failure(description: "ip -o route show table \(table): \(error)")
        }
        if !routes.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            let flush = ["route", "flush", "table", table]
            if let error = ip(flush).error { throw Failure(description: "ip \(flush.joined(separator: " ")): \(error)") }
            ran.append("ip " + flush.joined(separator: " "))
        }
        return ran
    }

    /// The rules after the private side's, at the priority plus 1 and 2 and as `ip -N` lists them: the host's own
    /// traffic from a private source keeps the main table (254); a private source from anywhere else is dropped.
    static func closingRules(_ prefix: IPv4Prefix) -> [(offset: Int, selector: [String])] {
        [(1, ["from", "\(prefix)", "iif", "lo", "lookup", "254"]), (2, ["from", "\(prefix)", "blackhole"])]
    }

    /// The `ip rule del` arguments for each listed rule tunnat installs: `from <private prefix> [iif X] lookup
    /// <table>` at its priority.
    public static func leftoverRules(in rules: [ShownRule], routing: TunConfiguration.Routing,
                                     nat: NatConfiguration) -> [[String]] {
        let prefixes = Set(nat.privatePrefixes.map(\.description))
        let table = String(routing.table)
        let closing = Set(nat.privatePrefixes.flatMap { prefix in
            closingRules(prefix).map { ShownRule(priority: routing.priority + $0.offset, selector: $0.selector) }
        })
        return rules.filter { rule in
            if closing.contains(rule) { return true }
            let s = rule.selector
            guard rule.priority == routing.priority, s.count == 4 || s.count == 6, s[0] == "from", prefixes.contains(s[1]),
                  s[s.count - 2] == "lookup", s[s.count - 1] == table
            else { return false }
            return s.count == 4 || s[2] == "iif"
        }.map { ["rule", "del"] + $0.selector + ["pref", String($0.priority)] }
    }

    /// Parses `ip -N -o rule show`. The `[detached]` mark of a rule whose interface does not exist is dropped: it
    /// is the same rule. With -N, iproute2 shows a rule's action by number when it is not a lookup: 6 is
    /// FR_ACT_BLACKHOLE (linux/fib_rules.h), named here as it is written.
    public static func rules(shownBy output: String) -> [ShownRule] {
        output.split(separator: "\n").compactMap { line in
            guard let colon = line.firstIndex(of: ":"), let priority = Int(line[..<colon]) else { return nil }
            var selector = line[line.index(after: colon)...].split(whereSeparator: \.isWhitespace).map(String.init)
                .filter { $0 != "[detached]" }
            if selector.count >= 3, selector[selector.count - 1] == "6", selector[selector.count - 2] != "lookup" {
                selector[selector.count - 1] = "blackhole"
            }
            return ShownRule(priority: priority, selector: selector)
        }
    }

    /// Parses `ip -o route show table main`: each route's destination and the devices it leaves through (several
    /// for a multipath route). Routes through no device (blackhole, unreachable, prohibit, throw) are left out.
    public static func routes(shownBy output: String) -> [(destination: IPv4Prefix, devices: [String])] {
        output.split(separator: "\n").compactMap { line in
            var words = line.split(whereSeparator: { $0.isWhitespace || $0 == "\\" }).map(String.init)
            if let type = words.first, ["unicast", "local", "broadcast", "multicast", "anycast"].contains(type) {
                words.removeFirst()
            }
            guard let first = words.first,
                  let destination = first == "default" ? IPv4Prefix("0.0.0.0/0") : IPv4Prefix(first)
            else { return nil }
            var devices: [String] = []
            for (index, word) in words.enumerated() where word == "dev" && index + 1 < words.count {
                if !devices.contains(words[index + 1]) { devices.append(words[index + 1]) }
            }
            return devices.isEmpty ? nil : (destination, devices)
        }
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
        let listed = ip(["-o", "route", "show", "table", "main"])
        if let error = listed.error { throw Failure(description: "ip -o route show table main: \(error)") }
        let main = routes(shownBy: listed.output)
        let interfaces = privateInterfaces(routes: main, prefixes: prefixes, excluding: device)
        guard !interfaces.isEmpty else {
            throw Failure(description: "tun.routing.interface is empty and no route in the main table leads into a private prefix (\(prefixes.map(\.description).joined(separator: ", "))) through an interface other than lo and \(device): set tun.routing.interface to the interface private traffic arrives on")
        }
        let defaults = Set(main.filter { $0.destination.length == 0 }.flatMap(\.devices))
        return (interfaces, interfaces.filter { defaults.contains($0) })
    }

    /// Runs `ip ARGS`: what it printed, and nil on success, else what it said on stderr (or why it could not run).
    static func ip(_ arguments: [String]) -> (output: String, error: String?) {
        guard let path = CommandRunner.executable(["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]) else {
            return ("", "iproute2's 'ip' command is not installed (apt-get install iproute2)")
        }
        let (outcome, printed, said) = CommandRunner.run([path] + arguments, timeoutMilliseconds: 10_000,
                                                         capturingStandardError: true, capturingStandardOutput: true)
        switch outcome {
        case .exited(0): return (printed, nil)
        case .exited: return (printed, said.isEmpty ? "\(outcome)" : said)
        case .timedOut: return (printed, "\(path): \(outcome)")
        case .failedToStart: return (printed, "\(outcome)")
        }
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
