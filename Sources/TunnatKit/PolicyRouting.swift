import Foundation
import NatTable
import PacketKit
import SystemCalls

/// The routing that puts the TUN in the data path (DESIGN.md, "The data path on a NAT instance"):
///
///     ip route add default dev tun0 table 100           everything in table 100 goes into the TUN,
///     ip route add throw 10.0.0.0/8 table 100           except private destinations (private-to-private
///                                                       traffic is routed, not translated);
///     ip rule add iif lo lookup main pref 99            the host's own traffic keeps the main table
///                                                       (only when no private interface is named);
///     ip rule add from 10.0.0.0/8 [iif eth1] lookup 100 pref 100
///     ip route add 198.18.0.1/32 dev tun0               replies to a pool address go into the TUN.
///
/// Each step that succeeds is remembered and undone, in reverse, by `remove()`; a step that fails undoes the
/// ones before it. It runs iproute2's `ip`, which needs CAP_NET_ADMIN, as tunnat does.
public final class PolicyRouting {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    let device: String
    let routing: TunConfiguration.Routing
    let nat: NatConfiguration
    /// The `ip` arguments that undo each installed step, newest last.
    private(set) var undo: [[String]] = []

    public init(device: String, routing: TunConfiguration.Routing, nat: NatConfiguration) {
        self.device = device
        self.routing = routing
        self.nat = nat
    }

    /// The steps, as `ip` arguments with the arguments that undo them.
    public var steps: [(install: [String], remove: [String])] {
        let table = String(routing.table)
        var steps: [(install: [String], remove: [String])] = []
        let defaultRoute = ["route", "add", "default", "dev", device, "table", table]
        steps.append((defaultRoute, ["route", "del", "default", "dev", device, "table", table]))
        // Fail closed: if tunnat dies without undoing its steps, the route through the device goes with the device,
        // and private traffic would fall through to the main table and leave untranslated. This one stays.
        let fence = ["blackhole", "default", "table", table, "metric", "4294967295"]
        steps.append((["route", "add"] + fence, ["route", "del"] + fence))
        for prefix in nat.privatePrefixes {
            steps.append((["route", "add", "throw", "\(prefix)", "table", table],
                          ["route", "del", "throw", "\(prefix)", "table", table]))
        }
        if routing.interface.isEmpty {
            let pref = String(routing.priority - 1)
            steps.append((["rule", "add", "iif", "lo", "lookup", "main", "pref", pref],
                          ["rule", "del", "iif", "lo", "lookup", "main", "pref", pref]))
        }
        for prefix in nat.privatePrefixes {
            var selector = ["from", "\(prefix)"]
            if !routing.interface.isEmpty { selector += ["iif", routing.interface] }
            let rest = ["lookup", table, "pref", String(routing.priority)]
            steps.append((["rule", "add"] + selector + rest, ["rule", "del"] + selector + rest))
        }
        for address in nat.poolAddresses {
            steps.append((["route", "add", "\(address)/32", "dev", device], ["route", "del", "\(address)/32", "dev", device]))
        }
        return steps
    }

    /// Installs every step. What an earlier run left behind (killed with SIGKILL, it could not undo its steps) is
    /// removed first: routes would fail with "File exists", and rules would be doubled.
    public func install() throws(Failure) {
        for step in steps.reversed() { _ = Self.ip(step.remove) }
        for step in steps {
            if let error = Self.ip(step.install) {
                remove()
                throw Failure(description: "ip \(step.install.joined(separator: " ")): \(error)")
            }
            undo.append(step.remove)
        }
    }

    /// Undoes what `install` did. Routes through the device also vanish with it; a step already undone is fine.
    public func remove() {
        while let step = undo.popLast() { _ = Self.ip(step) }
    }

    /// Runs `ip ARGS`; nil on success, else what it said on stderr (or why it could not run).
    static func ip(_ arguments: [String]) -> String? {
        guard let path = CommandRunner.executable(["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]) else {
            return "iproute2's 'ip' command is not installed (apt-get install iproute2)"
        }
        let (outcome, said) = CommandRunner.run([path] + arguments, timeoutMilliseconds: 10_000, capturingStandardError: true)
        switch outcome {
        case .exited(0): return nil
        case .exited: return said.isEmpty ? "\(outcome)" : said
        case .timedOut: return "\(path): \(outcome)"
        case .failedToStart: return "\(outcome)"
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
