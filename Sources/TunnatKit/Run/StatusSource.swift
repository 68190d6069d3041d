import SystemCalls
import TunIO

/// Makes the status report of a running data plane: the table's figures (copied under its lock, nothing else
/// waits), the device's kernel counters, the replication status and the failover's verdicts. `tunnat status`, the
/// service manager's status line, the periodic summary and monitoring all read this one report.
final class StatusSource: Sendable {
    let device: String
    let queues: Int
    let offloads: String
    let output: String
    let shared: LockedNAT
    let replication: ReplicationLoop?
    let routes: RouteLoop?
    let services: LocalServiceCounters
    let started = SystemClock.monotonicNanoseconds()

    init(device: TunDevice, output: String, shared: LockedNAT, replication: ReplicationLoop?, routes: RouteLoop?,
         services: LocalServiceCounters) {
        self.services = services
        self.device = device.name
        queues = device.queues.count
        offloads = device.offloads.description
        self.output = output
        self.shared = shared
        self.replication = replication
        self.routes = routes
    }

    func report() -> StatusReport {
        let uptime = (SystemClock.monotonicNanoseconds() - started) / 1_000_000_000
        let kernel = StatusReport.kernelCounters(device: device)
        let table = shared.state.withLock { StatusReport.TableFigures($0.nat, io: $0.io) }
        return StatusReport(device: device, queues: queues, offloads: offloads, output: output, uptimeSeconds: uptime,
                            table: table, kernel: kernel, replication: replication?.replicator.status,
                            failover: routes?.status, services: .init(services))
    }
}
