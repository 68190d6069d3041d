import Failover
import Foundation
import Logging
import Metrics
import NatTable
import Prometheus
import Replication
import Synchronization
import SystemCalls
import TunIO

/// `tunnat run`: the TUN device, one worker thread per queue, the policy routing, the control socket, and a
/// main thread that waits for SIGINT/SIGTERM and logs a summary now and then. Everything it set up is taken
/// down again on the way out, in reverse order.
public enum LiveDataPlane {
    /// Why the data plane could not start or run: one line for the operator, and the failed system call
    /// (errno included) when one failed.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public let errno: Errno?

        init(description: String, errno: Errno? = nil) {
            self.description = description
            self.errno = errno
        }
    }

    /// `configPath`: the file `config` was read from, read again on SIGHUP (nil: the embedded default, nothing to
    /// reread).
    public static func run(_ config: TunnatConfiguration, configPath: String?, installRouting: Bool, logger: Logger) throws(Failure) {
        let nat: NAT
        do { nat = try NAT(configuration: config.nat) } catch { throw Failure(description: "nat: \(error)") }
        let tun = config.tun

        // The kernel forwards every packet into the TUN (and, in tun mode, out of it again).
        if let forward = KernelSettings.read("net.ipv4.ip_forward"), forward != "1" {
            throw Failure(description: "net.ipv4.ip_forward is \(forward): the kernel must forward packets into and out of \(tun.name); enable it with 'sysctl -w net.ipv4.ip_forward=1'")
        }
        if tun.output != .raw, KernelSettings.read("net.ipv4.conf.all.rp_filter") == "1" {
            throw Failure(description: "net.ipv4.conf.all.rp_filter is 1 (strict): the kernel would drop translated replies coming out of \(tun.name); set it to 0 or 2 (loose) with 'sysctl -w net.ipv4.conf.all.rp_filter=2'")
        }

        let queueCount = tun.queues > 0 ? tun.queues : Syscall.onlineProcessors
        let device: TunDevice
        do {
            device = try TunDevice(name: tun.name, queueCount: queueCount, offloads: tun.offloads)
        } catch {
            throw Failure(description: error.description, errno: error.errno)
        }
        // Replies leave the TUN with sources that route elsewhere; the device is ours, so loosen it here.
        _ = KernelSettings.write("net.ipv4.conf.\(tun.name).rp_filter", "0")
        // tunnat translates IPv4 only; without this the kernel's own IPv6 chatter on the device (router
        // solicitations) would show up as not-ipv4 drops.
        _ = KernelSettings.write("net.ipv6.conf.\(tun.name).disable_ipv6", "1")
        do { try device.bringUp(mtu: tun.mtu) } catch { throw Failure(description: error.description, errno: error.errno) }
        logger.info("device up", metadata: [
            "device": "\(device.name)", "queues": "\(device.queues.count)",
            "virtio-headers": "\(device.virtioHeaders)", "offloads": "\(device.offloads)", "output": "\(tun.output)",
        ])

        let stop: StopSignal
        let signals: StopSignal
        let reloadSignal: Wakeup
        do {
            stop = try StopSignal()
            signals = try StopSignals.install()
            reloadSignal = try ReloadSignal.install()
        } catch {
            throw Failure(description: "\(error)", errno: error)
        }
        // The service manager (systemd, Type=notify), when it started us: READY, STATUS, WATCHDOG, STOPPING.
        var notify: NotifySocket?
        do { notify = try NotifySocket.fromEnvironment() } catch {
            logger.warning("NOTIFY_SOCKET: \(error); the service manager will not hear from tunnat")
        }
        let watchdogTimeout = NotifySocket.watchdogTimeoutFromEnvironment()
        let shared = LockedNAT(nat: nat)

        let control: ControlSocket.Server
        do { control = try ControlSocket.Server(path: config.controlSocket) } catch {
            throw Failure(description: error.description, errno: error.errno)
        }

        let routing: PolicyRouting?
        if installRouting && tun.routing.install {
            routing = try installPolicyRouting(config, device: device.name, logger: logger)
        } else {
            routing = nil
            logger.notice("policy routing not installed: route private traffic and the pool addresses into \(device.name) yourself")
        }
        defer {
            if let routing {
                let kept = routing.stop()
                switch tun.routing.onStop {
                case .keep:
                    logger.notice("policy routing kept (tun.routing.on_stop: keep): private sources still go to table \(tun.routing.table), where the blackhole drops them, so nothing leaves untranslated; 'tunnat routing remove' with this configuration gives the host back", metadata: [
                        "kept": "\(kept.count) rule(s) and route(s)", "removed": "the routes through \(device.name)",
                    ])
                case .remove:
                    logger.notice("policy routing removed (tun.routing.on_stop: remove): with IP forwarding on, the kernel forwards private traffic untranslated")
                }
            }
        }

        // The failover module (health checks and AWS routes), when configured: it must be able to start
        // (identity, credentials, source/dest check off) or the data plane does not start either.
        var manager: RouteManager?
        if let failover = config.failover {
            do {
                manager = try RouteService.makeManager(failover, noop: false, logger: logger)
                try manager!.preflight()
            } catch {
                throw Failure(description: "failover: \(error)")
            }
        }
        // The running route manager: a SIGHUP that changes the failover section replaces it.
        let managerSlot = RouteManagerSlot(manager)

        // Replication and the role: until this node is the active one, its table is a replica and translates
        // nothing, and the routes follow the role (set before the route manager's first pass).
        var replication: (replicator: Replicator, thread: DispatchGroup)?
        if let settings = config.replication {
            let keyring = try readKeyring(settings)
            let replicator: Replicator
            do {
                replicator = try Replicator(config: settings, keyring: keyring, table: shared,
                                            health: { managerSlot.manager?.isHealthy ?? true },
                                            holdReport: { shared.replicationHoldMaxNanoseconds }, logger: logger)
            } catch {
                throw Failure(description: "replication: \(error)", errno: error)
            }
            if let manager {
                manager.role = { RouteRole(replicator.routeRole) }
                replicator.setRoleObserver { role in managerSlot.manager?.roleChanged(to: RouteRole(role)) }
                replicator.setRoutesHeld { managerSlot.manager?.holdsEverything ?? false }
            }
            replication = (replicator, RouteService.thread("tunnat-replication") { replicator.run() })
        }
        defer {
            if let replication {
                replication.replicator.stop()
                replication.thread.wait()
            }
        }
        var routes = manager.map { ($0, RouteService.start($0)) }
        defer {
            if let (manager, thread) = routes {
                manager.stop()
                thread.wait()
            }
        }

        let replicator = replication?.replicator
        let gate: ReplicationGate? = (config.replication?.holdNewFlowsMilliseconds ?? 0) > 0 ? replicator : nil
        // Packet output: one thread hears the kernel's route and neighbour changes for every worker's cache.
        let egressChanges = EgressChanges()
        var watcherThread: DispatchGroup?
        if tun.output == .packet {
            // Only the watcher's thread uses the socket once it starts.
            nonisolated(unsafe) let watcher: RouteNetlink
            do { watcher = try EgressWatcher.open() } catch { throw Failure(description: "packet output: \(error)", errno: error) }
            watcherThread = RouteService.thread("tunnat-egress") { EgressWatcher.run(watcher, changes: egressChanges, stop: stop) }
        }
        defer {
            if let watcherThread {
                stop.stop()
                watcherThread.wait()
            }
        }
        var workers: [@Sendable () -> Void] = []
        var ringRefusal: Errno?
        let heartbeats = device.queues.map { _ in Heartbeat() }
        func addWorker<Output: PacketOutput & SendableMetatype>(_ queue: TunQueue, _ output: Output, _ heartbeat: Heartbeat) {
            let worker = Worker(queue: queue, virtioHeaders: device.virtioHeaders, output: output, shared: shared,
                                stop: stop, gate: gate, heartbeat: heartbeat, ioUring: tun.ioUring)
            ringRefusal = ringRefusal ?? worker.ringRefusal
            workers.append { worker.run() }
        }
        do throws(TunError) {
            for (queue, heartbeat) in zip(device.queues, heartbeats) {
                switch tun.output {
                case .tun:
                    addWorker(queue, TunOutput(queue: queue, virtioHeaders: device.virtioHeaders), heartbeat)
                case .raw:
                    addWorker(queue, try RawOutput(), heartbeat)
                case .packet:
                    addWorker(queue, try PacketSocketOutput(queue: queue, virtioHeaders: device.virtioHeaders,
                                                            tunInterface: Int32(Syscall.interfaceIndex(device.name)),
                                                            changes: egressChanges), heartbeat)
                }
            }
        } catch {
            throw Failure(description: error.description, errno: error.errno)
        }
        let reads = !tun.ioUring ? "read(2) (tun.io_uring: false)"
            : ringRefusal.map { "read(2): io_uring refused (\($0)); it needs Linux 6.7 and kernel.io_uring_disabled=0" }
            ?? "io_uring"
        if ringRefusal != nil {
            logger.warning("tun reads", metadata: ["reads": "\(reads)"])
        }

        let started = SystemClock.monotonicNanoseconds()
        let report = { @Sendable () -> StatusReport in
            let uptime = (SystemClock.monotonicNanoseconds() - started) / 1_000_000_000
            let kernel = StatusReport.kernelCounters(device: device.name)
            // Only the figures are copied under the lock: the packets wait for nothing else.
            let table = shared.state.withLock { StatusReport.TableFigures($0.nat, io: $0.io) }
            return StatusReport(device: device.name, queues: device.queues.count, offloads: device.offloads.description,
                                output: tun.output.rawValue, uptimeSeconds: uptime, table: table, kernel: kernel,
                                replication: replicator?.status,
                                failover: managerSlot.manager.map(StatusReport.FailoverStatus.init))
        }

        // Monitoring: the Prometheus endpoint, and CloudWatch. Both read `report()`, as `tunnat status` does.
        let exporter = PrometheusExporter()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: exporter.registry))
        var metricsServer: MetricsServer?
        if let (host, port) = config.metrics.listenAddress {
            do {
                metricsServer = try MetricsServer(host: host, port: port) { exporter.render(Figure.of(report())) }
            } catch {
                throw Failure(description: error.description)
            }
            logger.info("metrics", metadata: ["listen": "http://\(host):\(metricsServer!.port)/metrics"])
        }
        defer { metricsServer?.stop() }
        var cloudWatchThread: DispatchGroup?
        if let settings = config.metrics.cloudWatch {
            let publisher: CloudWatchPublisher
            do { publisher = try CloudWatchPublisher.make(settings, failover: config.failover?.aws, logger: logger) } catch {
                throw Failure(description: "metrics.cloudwatch: \(error)")
            }
            cloudWatchThread = RouteService.thread("tunnat-cw") { publisher.run(report: report, stop: stop) }
        }
        defer {
            if let cloudWatchThread {
                stop.stop()
                cloudWatchThread.wait()
            }
        }

        let group = DispatchGroup()
        for (index, work) in workers.enumerated() {
            group.enter()
            let thread = Thread {
                Syscall.nameThisThread("tunnat-q\(index)")
                work()
                group.leave()
            }
            thread.name = "tunnat-q\(index)"
            thread.start()
        }
        group.enter()
        // A planned handover (SIGTERM, or `tunnat handover`) happens once, before the stop.
        let handedOver = Atomic<Bool>(false)
        let handOver = { @Sendable () -> String in
            guard let replicator, !handedOver.exchange(true, ordering: .acquiringAndReleasing) else {
                return replicator == nil ? "no replication configured: nothing to hand over" : "a handover has already run"
            }
            switch replicator.handOver() {
            case .complete:
                logger.notice("handover complete: the new active holds the routes and every flow; stopping")
                return "handover complete"
            case .notPossible(let why):
                logger.notice("no handover (\(why)); stopping: a standby, if any, takes over when this node falls silent")
                return "no handover: \(why)"
            case .failed(let why):
                logger.error("handover failed (\(why)); stopping anyway")
                return "handover failed: \(why)"
            }
        }
        let controlThread = Thread {
            Syscall.nameThisThread("tunnat-control")
            control.serve(stop: stop, report: { report().json() }, handover: {
                let outcome = handOver()
                signals.stop()
                return Array("\(outcome)\n".utf8)
            })
            group.leave()
        }
        controlThread.name = "tunnat-control"
        controlThread.start()
        logger.info("translating", metadata: ["control-socket": "\(config.controlSocket)", "reads": "\(reads)"])
        var statusLine = Service.statusLine(report())
        notify?.send("READY=1\nSTATUS=\(statusLine)\nMAINPID=\(getpid())")
        var watchdog = watchdogTimeout.map {
            PacketPathWatchdog(timeoutMicroseconds: $0, now: SystemClock.monotonicNanoseconds(), beats: heartbeats.map(\.count))
        }
        if let watchdog { logger.info("watchdog", metadata: ["ping-every-ms": "\(watchdog.interval / 1_000_000)"]) }
        // A tick often enough for the watchdog (a quarter of its interval), else once a second.
        let tickMilliseconds = Int32(clamping: min(1000, (watchdog?.interval ?? 4_000_000_000) / 4_000_000))
        var withheld = false
        var running = config

        var lastPackets: UInt64 = 0
        var lastLog = SystemClock.monotonicNanoseconds()
        while true {
            let (stopping, reloading) = (try? Syscall.pollIn(signals.fd, reloadSignal.fd, timeoutMilliseconds: tickMilliseconds)) ?? (false, false)
            if stopping || signals.isStopped {
                logger.info("stopping", metadata: ["signal": "\(StopSignals.receivedName)"])
                notify?.send("STOPPING=1\nSTATUS=stopping")
                if replicator?.role == .active { _ = handOver() }
                break
            }
            if reloading {
                reloadSignal.drain()
                notify?.send("RELOADING=1\nMONOTONIC_USEC=\(SystemClock.monotonicNanoseconds() / 1000)")
                reloadConfiguration(path: configPath, running: &running, routes: &routes, slot: managerSlot,
                                    replicator: replicator, logger: logger)
                notify?.send("READY=1\nSTATUS=\(Service.statusLine(report()))")
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
            let statsDue = config.statsInterval > 0 && now - lastLog >= UInt64(config.statsInterval) * 1_000_000_000
            guard notify != nil || statsDue else { continue }
            let r = report()
            if let notify {
                let line = Service.statusLine(r)
                if line != statusLine {
                    statusLine = line
                    notify.send("STATUS=\(line)")
                }
            }
            if statsDue {
                lastLog = now
                let packets = r.nat.packets
                if packets != lastPackets {
                    lastPackets = packets
                    logger.info("counters", metadata: summary(r))
                }
            }
        }
        stop.stop()
        group.wait()
        logger.info("stopped", metadata: summary(report()))
    }

    /// SIGHUP: reads `path` again and applies what may change while running (the log level, and the failover
    /// section: health checks and routes, by a new route manager in place of the old); anything else is refused
    /// with one line naming it, and everything keeps running as it was.
    static func reloadConfiguration(path: String?, running: inout TunnatConfiguration,
                                    routes: inout (RouteManager, DispatchGroup)?, slot: RouteManagerSlot,
                                    replicator: Replicator?, logger: Logger) {
        guard let path else {
            logger.notice("SIGHUP: running on the embedded default configuration (no --config): nothing to reread")
            return
        }
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
        if let failover = plan.failover {
            let fresh: RouteManager
            do {
                fresh = try RouteService.makeManager(failover, noop: false, logger: logger)
                try fresh.preflight()
            } catch {
                logger.error("SIGHUP: failover: \(error); the running health checks and routes are kept")
                return
            }
            if let (old, thread) = routes {
                old.stop()
                thread.wait()
            }
            if let replicator {
                fresh.role = { RouteRole(replicator.routeRole) }
                fresh.roleChanged(to: RouteRole(replicator.routeRole))
            }
            slot.manager = fresh
            routes = (fresh, RouteService.start(fresh))
            running.failover = failover
            logger.notice("SIGHUP: failover reloaded", metadata: [
                "health-checks": "\(failover.healthChecks.keys.sorted().joined(separator: ","))",
                "route-tables": "\(failover.routeTables.count)",
            ])
        }
        if let name = plan.logLevel, let level = Logger.Level(rawValue: name) {
            LogOutput.setLevel(level)
            running.logLevel = name
            logger.notice("SIGHUP: log level \(name)")
        }
    }

    /// The policy routing for `device`, installed. With `tun.routing.interface` empty, the private side is where the
    /// main table routes the private prefixes (found now, logged); a private source is accepted from there only.
    static func installPolicyRouting(_ config: TunnatConfiguration, device: String, logger: Logger) throws(Failure) -> PolicyRouting {
        let settings = config.tun.routing
        var interfaces = [settings.interface]
        if settings.interface.isEmpty {
            let found: (interfaces: [String], sharedWithDefault: [String])
            do { found = try PolicyRouting.findPrivateInterfaces(prefixes: config.nat.privatePrefixes, device: device) } catch {
                throw Failure(description: error.description)
            }
            interfaces = found.interfaces
            logger.info("private side: the interfaces of the main table's routes into the private prefixes (tun.routing.interface is empty)",
                        metadata: ["interfaces": "\(interfaces.joined(separator: ","))"])
            if !found.sharedWithDefault.isEmpty {
                logger.notice("\(found.sharedWithDefault.joined(separator: ", ")) also carries the default route: tunnat cannot tell a spoofed private source arriving there from a real one; on a one-ENI AWS NAT instance the VPC's own anti-spoofing is what stops them, elsewhere give the private side an interface of its own")
            }
        }
        let routing = PolicyRouting(device: device, routing: settings, nat: config.nat, interfaces: interfaces)
        let counts: (added: Int, found: Int)
        do { counts = try routing.install() } catch { throw Failure(description: "installing policy routing: \(error)") }
        let rules = config.nat.privatePrefixes.flatMap { prefix in interfaces.map { "from \(prefix) iif \($0)" } }
        logger.info("policy routing installed", metadata: [
            "table": "\(settings.table)", "priority": "\(settings.priority)", "rules": "\(rules.joined(separator: ", "))",
            "pool": "\(config.nat.poolAddresses.map(\.description).joined(separator: ","))",
            "added": "\(counts.added)", "already-there": "\(counts.found)",
        ])
        return routing
    }

    /// The shared keys: each at least 32 bytes, in a file owned by this user and readable by it alone.
    static func readKeyring(_ settings: ReplicationConfiguration) throws(Failure) -> SyncKeyring {
        var files = [(key: "replication.key_file", path: settings.keyFile, id: settings.keyID)]
        if let file = settings.acceptKeyFile, let id = settings.acceptKeyID {
            files.append((key: "replication.accept_key_file", path: file, id: id))
        }
        var keys: [UInt8: [UInt8]] = [:]
        for file in files {
            let bytes: [UInt8]
            do { bytes = try FileBytes.readSecret(file.path) } catch {
                throw Failure(description: "\(file.key): \(error)")
            }
            guard SyncKeyring.material(bytes) != nil else {
                throw Failure(description: "\(file.key) \(file.path): holds \(bytes.count) bytes; it needs at least 32 bytes of secret (for example: head -c 48 /dev/urandom | base64 > \(file.path))")
            }
            keys[UInt8(file.id)] = bytes
        }
        guard let keyring = SyncKeyring(keys: keys, sendingID: UInt8(settings.keyID)) else {
            throw Failure(description: "replication: the keys could not be set up")
        }
        return keyring
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

/// The running route manager, read by other threads (status, replication's callbacks); a SIGHUP replaces it.
final class RouteManagerSlot: Sendable {
    private let current: Mutex<RouteManager?>
    init(_ manager: RouteManager?) { current = Mutex(manager) }
    var manager: RouteManager? {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }
}

extension RouteRole {
    /// The route manager's view of a replication role.
    init(_ role: Role) {
        switch role {
        case .starting: self = .starting
        case .standby: self = .standby
        case .active: self = .active
        }
    }
}
