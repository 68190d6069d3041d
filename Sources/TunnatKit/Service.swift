import Failover
import Foundation
import NatTable

/// What the service manager hears from a running data plane (sd_notify(3)), decided without I/O so that tests
/// drive it with a clock of their own: when the packet path earns a watchdog ping, what the status line says,
/// whether this node is ready, and what a SIGHUP may change.
public enum Service {
    /// The `STATUS=` line: the role, the flows, and whether the replica or the peers are synced.
    public static func statusLine(_ report: StatusReport) -> String {
        var parts: [String] = []
        if let r = report.replication {
            switch r.role {
            case .standby: parts.append("standby of node \(r.leader), replica \(r.synced ? "synced" : "incomplete")")
            case .starting, .active: parts.append(r.role.description)
            }
            let synced = r.peers.filter(\.synced).count
            parts.append("\(synced)/\(r.peers.count) peer(s) synced")
        } else {
            parts.append("active (no replication)")
        }
        parts.append("\(report.flows) flow(s)")
        if let f = report.failover { parts.append("\(f.routesHeld)/\(f.routesManaged) route(s) held") }
        return parts.joined(separator: ", ")
    }

    /// `tunnat status --ready`: ready when this node translates (the active, or a single node) or is a standby
    /// whose replica is complete, so that a takeover would keep every flow.
    public static func readiness(_ report: StatusReport) -> (ready: Bool, why: String) {
        guard let r = report.replication else { return (true, "ready: translating (no replication: always active)") }
        switch r.role {
        case .active: return (true, "ready: active, term \(r.term)")
        case .standby where r.synced: return (true, "ready: standby of node \(r.leader) with a complete replica")
        case .standby: return (false, "not ready: standby of node \(r.leader), replica incomplete")
        case .starting: return (false, "not ready: \(r.role)")
        }
    }
}

/// The systemd watchdog (`WatchdogSec=`), fed by the packet path itself: a ping is sent only when every queue's
/// worker has turned since the last ping. A timer thread would keep pinging while the workers hang; this stops.
public struct PacketPathWatchdog: Sendable {
    /// Nanoseconds between pings: half the manager's timeout, as sd_watchdog_enabled(3) advises.
    public let interval: UInt64
    var lastPing: UInt64
    var beatsAtPing: [UInt64]

    /// `timeoutMicroseconds`: `$WATCHDOG_USEC`. `beats`: each worker's heartbeat count now.
    public init(timeoutMicroseconds: UInt64, now: UInt64, beats: [UInt64]) {
        interval = timeoutMicroseconds * 1000 / 2
        lastPing = now
        beatsAtPing = beats
    }

    /// True when a ping is due and earned: the interval has passed and every worker has turned since the last.
    public mutating func tick(now: UInt64, beats: [UInt64]) -> Bool {
        guard now &- lastPing >= interval, !beats.isEmpty, beats.count == beatsAtPing.count,
              zip(beats, beatsAtPing).allSatisfy({ $0 != $1 })
        else { return false }
        lastPing = now
        beatsAtPing = beats
        return true
    }

    /// The queues that have not turned since the last ping (for the log line when pings are withheld).
    public func stalled(_ beats: [UInt64]) -> [Int] {
        zip(beats, beatsAtPing).enumerated().filter { $0.element.0 == $0.element.1 }.map(\.offset)
    }

    /// How long since the last ping, in nanoseconds.
    public func sinceLastPing(now: UInt64) -> UInt64 { now &- lastPing }
}

/// What a SIGHUP may change without a restart: the health checks and routes (the failover section) and the log
/// level. Anything else is refused, naming what changed, and the running configuration stays.
public enum Reload {
    public struct Plan: Equatable, Sendable {
        /// The new log level, when it changed.
        public var logLevel: String?
        /// The new failover section, when it changed.
        public var failover: FailoverConfiguration?
        public var isEmpty: Bool { logLevel == nil && failover == nil }
    }

    public struct Refusal: Error, Equatable, CustomStringConvertible {
        /// The keys that changed and take a restart.
        public let keys: [String]
        public var description: String {
            "\(keys.joined(separator: ", ")) changed: only failover (health checks and routes) and log_level change "
                + "without a restart; the running configuration is kept (restart tunnat to apply the rest)"
        }
    }

    public static func plan(running: TunnatConfiguration, loaded: TunnatConfiguration) -> Result<Plan, Refusal> {
        var loaded = loaded
        // A file without nat.seed draws a new one each time it is read: that is not a change.
        if !loaded.seedConfigured && !running.seedConfigured { loaded.nat.seed = running.nat.seed }
        var keys: [String] = []
        if loaded.nat != running.nat || loaded.seedConfigured != running.seedConfigured { keys.append("nat") }
        if loaded.tun != running.tun { keys.append("tun") }
        if loaded.replication != running.replication { keys.append("replication") }
        if loaded.controlSocket != running.controlSocket { keys.append("control_socket") }
        if loaded.statsInterval != running.statsInterval { keys.append("stats_interval") }
        if loaded.metrics != running.metrics { keys.append("metrics") }
        if loaded.logFormat != running.logFormat { keys.append("log_format") }
        if (loaded.failover == nil) != (running.failover == nil) {
            keys.append(loaded.failover == nil ? "failover (removed)" : "failover (added)")
        }
        guard keys.isEmpty else { return .failure(Refusal(keys: keys)) }
        var plan = Plan()
        if loaded.logLevel != running.logLevel { plan.logLevel = loaded.logLevel }
        if loaded.failover != running.failover { plan.failover = loaded.failover }
        return .success(plan)
    }
}
