import Logging
import NatTable
import SystemCalls
import TunIO

/// `tunnat run`: the TUN device and a set of components (Run/): the policy routing, replication, the route manager,
/// the egress watcher, one worker thread per queue, monitoring and the control socket, each started in turn and
/// stopped in reverse; the main thread runs the `ServiceLoop` (signals, watchdog, status) until SIGINT or SIGTERM.
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
    /// reread). The components start in order and stop in reverse; the numbered steps are the order.
    public static func run(_ config: TunnatConfiguration, configPath: String?, installRouting: Bool, logger: Logger) throws(Failure) {
        // 1. The sockets the service manager passed (before anything is opened: they are descriptors 3 and up), the
        //    table, the device, the signals, and the control socket's path (taken now: a second tunnat fails here).
        let inherited = InheritedSockets.fromEnvironment()
        let shared: LockedNAT
        do { shared = LockedNAT(nat: try NAT(configuration: config.nat)) } catch { throw Failure(description: "nat: \(error)") }
        let device = try Device.open(config.tun, nat64: config.nat.nat64 != nil, logger: logger)
        let service = try ServiceLoop(running: config, configPath: configPath, logger: logger)
        let counters = LocalServiceCounters()
        let control = try ControlServer(path: config.controlSocket, counters: counters, logger: logger)
        // The metrics and sync sockets the service manager kept across a restart (or a socket unit passed).
        let sockets = ServiceSockets(inherited: inherited, notify: service.notify, logger: logger)
        let stack = ComponentStack(logger: logger)
        defer { stack.stopAll() }
        // 2. The policy routing that puts the device in the path.
        if installRouting && config.tun.routing.install {
            try stack.start(Routing(config, device: device.name, logger: logger))
        } else {
            logger.notice("policy routing not installed: route private traffic and the pool addresses into \(device.name) yourself")
        }
        // 3. Failover (made and preflighted on its own thread, retried while AWS is down: it never holds up the
        //    data plane) and replication, whose role the routes follow; until this node is the active one its
        //    table translates nothing.
        let routes = try config.failover.map { failover throws(Failure) in try RouteLoop(failover, logger: logger) }
        let replication = try config.replication.map { settings throws(Failure) in
            try ReplicationLoop(settings, table: shared, routes: routes, sockets: sockets, logger: logger)
        }
        if let replication { try stack.start(replication) }
        if let routes { try stack.start(routes) }
        // 4. The packet path: the egress watcher for packet output, then the workers; monitoring beside them.
        let egress = EgressChanges()
        if config.tun.output == .packet { try stack.start(EgressLoop(changes: egress)) }
        let workers = try Workers(device: device, tun: config.tun, shared: shared, gate: replication?.gate, egress: egress)
        if workers.ringRefused { logger.warning("tun reads", metadata: ["reads": "\(workers.reads)"]) }
        let status = StatusSource(device: device, output: config.tun.output.rawValue, shared: shared, replication: replication,
                                  routes: routes, services: counters)
        try stack.start(Monitoring(config.metrics, failover: config.failover?.aws, report: { status.report() },
                                   counters: counters, sockets: sockets, logger: logger))
        sockets.closeLeftovers()
        try stack.start(workers)
        // 5. The control socket: status, and a planned handover that stops this node afterwards.
        control.report = { status.report().json() }
        let stopper = service.stopper
        control.handover = {
            let outcome = replication?.handOverOnce() ?? "no replication configured: nothing to hand over"
            stopper.stop()
            return Array("\(outcome)\n".utf8)
        }
        try stack.start(control)
        logger.info("translating", metadata: ["control-socket": "\(config.controlSocket)", "reads": "\(workers.reads)"])
        // 6. Until SIGINT or SIGTERM; then everything stops, last started first.
        service.run(status: status, heartbeats: workers.heartbeats, replication: replication, routes: routes)
        stack.stopAll()
        logger.info("stopped", metadata: ServiceLoop.summary(status.report()))
    }
}
