import AWS
import Glibc
import Failover
import Logging
import Metrics
import Prometheus
import Synchronization
import SystemCalls

/// Monitoring: the Prometheus endpoint (`metrics.listen`) and CloudWatch (`metrics.cloudwatch`). Both read the
/// status report, as `tunnat status` does; the packet path never touches a metric.
final class Monitoring: Component {
    let name = "monitoring"
    let settings: MetricsConfiguration
    let failover: AWSSettings?
    let report: @Sendable () -> StatusReport
    let logger: Logger
    private let endpoint: MetricsEndpoint
    /// While the metrics port is taken: the thread that tries again every few seconds.
    private var binder: (thread: NamedThread, stop: StopSignal)?
    private var cloudWatch: (thread: NamedThread, stop: StopSignal)?

    init(_ settings: MetricsConfiguration, failover: AWSSettings?, report: @escaping @Sendable () -> StatusReport,
         counters: LocalServiceCounters, sockets: ServiceSockets, logger: Logger) {
        self.settings = settings
        self.failover = failover
        self.report = report
        self.logger = logger
        endpoint = MetricsEndpoint(counters: counters, sockets: sockets, logger: logger)
    }

    /// Seconds between tries while the metrics port is taken.
    static let retrySeconds = 5.0

    func start() throws(LiveDataPlane.Failure) {
        let exporter = PrometheusExporter()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: exporter.registry))
        let report = self.report
        if !settings.listen.isEmpty, let endpoint = UDPEndpoint(settings.listen) {
            let render: @Sendable () -> [UInt8] = { exporter.render(Figure.of(report())) }
            // A port someone else holds is no reason to leave the NAT down: the data plane starts, and the port
            // is tried again until it is free.
            var fault = RecurringFault(every: 60, initialDelay: Self.retrySeconds, maximumDelay: Self.retrySeconds)
            let metrics = self.endpoint
            if !metrics.serve(endpoint, render: render, fault: &fault) {
                do {
                    let stop = try StopSignal()
                    let first = fault
                    binder = (try NamedThread("tunnat-metrics") {
                        var fault = first
                        while !stop.isStopped {
                            _ = try? Syscall.pollIn(stop.fd, timeoutMilliseconds: Int32(fault.delay * 1000))
                            if stop.isStopped || metrics.serve(endpoint, render: render, fault: &fault) { return }
                        }
                    }, stop)
                } catch {
                    throw .init(description: "metrics.listen: \(error)", errno: error)
                }
            }
        }
        if let cw = settings.cloudWatch {
            // What started here is stopped here when the rest cannot start: the stack stops only what started whole.
            let publisher: CloudWatchPublisher
            do { publisher = try CloudWatchPublisher.make(cw, failover: failover, logger: logger) } catch {
                stop()
                throw .init(description: "metrics.cloudwatch: \(error)")
            }
            do {
                let stop = try StopSignal()
                cloudWatch = (try NamedThread("tunnat-cw") { publisher.run(report: report, stop: stop) }, stop)
            } catch {
                stop()
                throw .init(description: "metrics.cloudwatch: \(error)", errno: error)
            }
        }
    }

    func stop() {
        if let cloudWatch {
            cloudWatch.stop.stop()
            cloudWatch.thread.join()
        }
        if let binder {
            binder.stop.stop()
            binder.thread.join()
        }
        endpoint.server.withLock { $0 }?.stop()
    }
}

/// The metrics endpoint's socket and server, made on the start or, while the port is taken, on a later try.
final class MetricsEndpoint: Sendable {
    let counters: LocalServiceCounters
    let sockets: ServiceSockets
    let logger: Logger
    let server = Mutex<MetricsServer?>(nil)

    init(counters: LocalServiceCounters, sockets: ServiceSockets, logger: Logger) {
        self.counters = counters
        self.sockets = sockets
        self.logger = logger
    }

    /// Serves metrics on `endpoint`: the socket the service manager kept, or one bound now (and handed to it).
    /// False when it cannot yet: the fault is counted, and logged the first time and once a minute after.
    func serve(_ endpoint: UDPEndpoint, render: @escaping @Sendable () -> [UInt8], fault: inout RecurringFault,
               now: Double = SystemMonotonicClock().seconds()) -> Bool {
        let problem: String
        do throws(Errno) {
            let listening: FileDescriptor
            let fresh: Bool
            if let kept = sockets.adopt("metrics", type: Int32(SOCK_STREAM.rawValue), endpoint: endpoint) {
                listening = kept
                fresh = false
            } else {
                listening = try TCPListener.open(endpoint)
                fresh = true
            }
            let raw = listening.rawValue
            do throws(MetricsServer.Failure) {
                let logger = self.logger
                let server = try MetricsServer(listening: listening.release(), endpoint: endpoint, counters: counters,
                                               shortage: { count, error in
                    logger.warning("metrics: no descriptor for a connection; accepting again in a second",
                                   metadata: ["error": "\(error)", "times": "\(count)", "every": "60s at most"])
                }, render: render)
                self.server.withLock { $0 = server }
                // Handed to the service manager only once served: a store must not keep a port nobody answers on.
                if fresh { sockets.keep(raw, name: "metrics") }
                logger.info("metrics", metadata: ["listen": "http://\(endpoint)/metrics"]
                            .merging(fault.total > 0 ? ["after-tries": "\(fault.total + 1)"] : [:]) { a, _ in a })
                return true
            } catch {
                problem = error.description
                if !fresh { sockets.forget("metrics") }
            }
        } catch {
            let held = error.code == EADDRINUSE ? ServiceSockets.holder(of: endpoint, tcp: true) : ""
            problem = "metrics.listen \(endpoint): cannot listen: \(error.reason)\(held)"
        }
        if let count = fault.occurred(now: now) {
            logger.warning("\(problem); metrics are not served meanwhile, trying again every \(Int(fault.delay)) s",
                           metadata: ["tries": "\(count)"])
        }
        return false
    }
}

/// The control socket (`tunnat status`, `tunnat handover`): bound when made, so that a second tunnat on the same
/// path fails before it touches anything; served on a thread of its own once started.
final class ControlServer: Component {
    let name = "control socket"
    let server: ControlSocket.Server
    let path: String
    private let stopSignal: StopSignal
    private var thread: NamedThread?
    /// What the socket answers: the status as JSON, and a handover.
    var report: @Sendable () -> [UInt8] = { [] }
    var handover: @Sendable () -> [UInt8] = { Array("no handover here\n".utf8) }
    let counters: LocalServiceCounters
    let logger: Logger

    init(path: String, counters: LocalServiceCounters, logger: Logger) throws(LiveDataPlane.Failure) {
        self.counters = counters
        self.logger = logger
        do { server = try ControlSocket.Server(path: path) } catch {
            throw .init(description: error.description, errno: error.errno)
        }
        do { stopSignal = try StopSignal() } catch { throw .init(description: "\(error)", errno: error) }
        self.path = path
    }

    func start() throws(LiveDataPlane.Failure) {
        let (server, stop, report, handover, counters, logger) = (self.server, stopSignal, self.report, self.handover, counters, logger)
        do {
            thread = try NamedThread("tunnat-control") {
                server.serve(stop: stop, report: report, handover: handover, counters: counters) { count, error in
                    logger.warning("control socket: cannot accept a client; waiting before the next try",
                                   metadata: ["error": "\(error)", "times": "\(count)", "every": "60s at most"])
                }
            }
        } catch {
            throw .init(description: "control socket: \(error)", errno: error)
        }
    }

    func stop() {
        stopSignal.stop()
        thread?.join()
    }
}
