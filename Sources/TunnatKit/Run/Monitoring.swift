import AWS
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
    private var server: MetricsServer?
    private var cloudWatch: (thread: NamedThread, stop: StopSignal)?

    init(_ settings: MetricsConfiguration, failover: AWSSettings?, report: @escaping @Sendable () -> StatusReport, logger: Logger) {
        self.settings = settings
        self.failover = failover
        self.report = report
        self.logger = logger
    }

    func start() throws(LiveDataPlane.Failure) {
        let exporter = PrometheusExporter()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: exporter.registry))
        let report = self.report
        if let (host, port) = settings.listenAddress {
            do {
                let server = try MetricsServer(host: host, port: port) { exporter.render(Figure.of(report())) }
                self.server = server
                logger.info("metrics", metadata: ["listen": "http://\(host):\(server.port)/metrics"])
            } catch {
                throw .init(description: error.description)
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
        server?.stop()
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

    init(path: String) throws(LiveDataPlane.Failure) {
        do { server = try ControlSocket.Server(path: path) } catch {
            throw .init(description: error.description, errno: error.errno)
        }
        do { stopSignal = try StopSignal() } catch { throw .init(description: "\(error)", errno: error) }
        self.path = path
    }

    func start() throws(LiveDataPlane.Failure) {
        let (server, stop, report, handover) = (self.server, stopSignal, self.report, self.handover)
        do { thread = try NamedThread("tunnat-control") { server.serve(stop: stop, report: report, handover: handover) } } catch {
            throw .init(description: "control socket: \(error)", errno: error)
        }
    }

    func stop() {
        stopSignal.stop()
        thread?.join()
    }
}
