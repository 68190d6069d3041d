import Failover
import Glibc
import Logging
import NatTable
import Replication
import Synchronization
import SystemCalls
import TunIO

/// The main thread of `tunnat run` once everything has started: it owns the signals (SIGINT and SIGTERM stop,
/// SIGHUP rereads the configuration), the service manager's notifications (READY, STATUS, WATCHDOG, RELOADING,
/// STOPPING) and the periodic summary. It returns when asked to stop, after a planned handover if this node is the
/// active one; the caller then stops the components.
final class ServiceLoop {
    let logger: Logger
    let configPath: String?
    private(set) var running: TunnatConfiguration
    private let signals: StopSignal
    private let reloadSignal: Wakeup
    /// The service manager's notification socket, when systemd started tunnat (also for its descriptor store).
    let notify: NotifySocket?
    private let watchdogTimeout: UInt64?
    /// A failover section that a background reload put in place (`RouteLoop.replace`), for `running`.
    private let reloadedFailover = Reloaded()
    private final class Reloaded: Sendable {
        let failover = Mutex<FailoverConfiguration?>(nil)
    }

    init(running: TunnatConfiguration, configPath: String?, logger: Logger) throws(LiveDataPlane.Failure) {
        self.running = running
        self.configPath = configPath
        self.logger = logger
        do {
            signals = try StopSignals.install()
            reloadSignal = try ReloadSignal.install()
        } catch {
            throw .init(description: "\(error)", errno: error)
        }
        // The service manager (systemd, Type=notify), when it started us.
        var notify: NotifySocket?
        do { notify = try NotifySocket.fromEnvironment() } catch {
            logger.warning("NOTIFY_SOCKET: \(error); the service manager will not hear from tunnat")
        }
        self.notify = notify
        watchdogTimeout = NotifySocket.watchdogTimeoutFromEnvironment()
    }

    /// `stop()` on it ends `run`, as SIGTERM does (a handover asked through the control socket stops the node
    /// afterwards).
    var stopper: StopSignal { signals }

    /// Until SIGINT or SIGTERM (or `requestStop`): the watchdog, the status line, the summary, SIGHUP.
    func run(status: StatusSource, heartbeats: [Heartbeat], replication: ReplicationLoop?, routes: RouteLoop?) {
        var statusLine = Service.statusLine(status.report())
        notify?.send("READY=1\nSTATUS=\(statusLine)\nMAINPID=\(getpid())")
        var watchdog = watchdogTimeout.map {
            PacketPathWatchdog(timeoutMicroseconds: $0, now: SystemClock.monotonicNanoseconds(), beats: heartbeats.map(\.count))
        }
        if let watchdog { logger.info("watchdog", metadata: ["ping-every-ms": "\(watchdog.interval / 1_000_000)"]) }
        // A tick often enough for the watchdog (a quarter of its interval), else once a second.
        let tickMilliseconds = Int32(clamping: min(1000, (watchdog?.interval ?? 4_000_000_000) / 4_000_000))
        var withheld = false
        var lastPackets: UInt64 = 0
        var lastLog = SystemClock.monotonicNanoseconds()
        while true {
            let (stopping, reloading) = (try? Syscall.pollIn(signals.fd, reloadSignal.fd, timeoutMilliseconds: tickMilliseconds)) ?? (false, false)
            if stopping || signals.isStopped {
                logger.info("stopping", metadata: ["signal": "\(StopSignals.receivedName)"])
                notify?.send("STOPPING=1\nSTATUS=stopping")
                if let replication, replication.replicator.role == .active { _ = replication.handOverOnce() }
                return
            }
            if reloading {
                reloadSignal.drain()
                notify?.send("RELOADING=1\nMONOTONIC_USEC=\(SystemClock.monotonicNanoseconds() / 1000)")
                reload(routes: routes)
                notify?.send("READY=1\nSTATUS=\(Service.statusLine(status.report()))")
            }
            let now = SystemClock.monotonicNanoseconds()
            if var w = watchdog {
                let beats = heartbeats.map(\.count)
                if w.tick(now: now, beats: beats) {
                    notify?.send("WATCHDOG=1")
                    if withheld { logger.notice("every queue turns again: watchdog pings resumed") }
                    withheld = false
                } else if !withheld && w.sinceLastPing(now: now) >= w.interval * 3 / 2 {
                    withheld = true
                    logger.error("queue(s) \(w.stalled(beats).map(String.init).joined(separator: ",")) have not turned for \(w.sinceLastPing(now: now) / 1_000_000) ms: watchdog pings withheld, the service manager will restart tunnat")
                }
                watchdog = w
            }
            // One report a tick serves both the service manager's status line and the periodic summary, and none
            // is made when neither wants it.
            let statsDue = running.statsInterval > 0 && now - lastLog >= UInt64(running.statsInterval) * 1_000_000_000
            guard notify != nil || statsDue else { continue }
            let r = status.report()
            if let notify {
                let line = Service.statusLine(r)
                if line != statusLine {
                    statusLine = line
                    notify.send("STATUS=\(line)")
                }
            }
            if statsDue {
                lastLog = now
                if r.nat.packets != lastPackets {
                    lastPackets = r.nat.packets
                    logger.info("counters", metadata: Self.summary(r))
                }
            }
        }
    }

    /// SIGHUP: reads the file again and applies what may change while running (the log level, and the failover
    /// section: health checks and routes, by a new route manager in place of the old); anything else is refused
    /// with one line naming it, and everything keeps running as it was.
    func reload(routes: RouteLoop?) {
        guard let path = configPath else {
            logger.notice("SIGHUP: running on the embedded default configuration (no --config): nothing to reread")
            return
        }
        // A failover section reloaded in the background since the last SIGHUP is the running one now.
        if let failover = reloadedFailover.failover.withLock({ $0.take() }) { running.failover = failover }
        let loaded: TunnatConfiguration
        do { loaded = try ConfigFile.load(path: path) } catch {
            logger.error("SIGHUP: \(error); the running configuration is kept")
            return
        }
        let plan: Reload.Plan
        switch Reload.plan(running: running, loaded: loaded) {
        case .failure(let refusal):
            logger.error("SIGHUP: \(path): \(refusal)")
            return
        case .success(let p): plan = p
        }
        if plan.isEmpty {
            logger.notice("SIGHUP: \(path) reread: nothing that can change without a restart changed")
            return
        }
        // Reload.plan refuses a failover section added or removed: with one, `routes` is there. The new route
        // manager is made and preflighted (EC2, with the client's retries) on a thread of its own: this thread pings
        // the watchdog.
        if let failover = plan.failover, let routes {
            logger.notice("SIGHUP: reloading the failover section in the background")
            routes.replace(with: failover) { [logger, reloadedFailover] problem in
                if let problem {
                    logger.error("SIGHUP: \(problem)")
                    return
                }
                reloadedFailover.failover.withLock { $0 = failover }
                logger.notice("SIGHUP: failover reloaded", metadata: [
                    "health-checks": "\(failover.healthChecks.keys.sorted().joined(separator: ","))",
                    "route-tables": "\(failover.routeTables.count)",
                ])
            }
        }
        if let name = plan.logLevel, let level = Logger.Level(rawValue: name) {
            LogOutput.setLevel(level)
            running.logLevel = name
            logger.notice("SIGHUP: log level \(name)")
        }
    }

    static func summary(_ r: StatusReport) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["flows": "\(r.flows)"]
        let n = r.nat
        for (key, value) in [("packets", n.packets), ("outbound", n.outbound), ("inbound", n.inbound), ("hairpin", n.hairpin),
                             ("dropped", n.dropped)] { metadata[key] = "\(value)" }
        let drops = DropReason.allCases.filter { n[$0] > 0 }.map { "\($0)=\(n[$0])" }.sorted()
        if !drops.isEmpty { metadata["drops"] = "\(drops.joined(separator: ","))" }
        if r.io.writeErrors > 0 { metadata["write-errors"] = "\(r.io.writeErrors)" }
        if let dropped = r.kernel?["tun-tx-dropped"], dropped > 0 { metadata["tun-tx-dropped"] = "\(dropped)" }
        return metadata
    }
}
