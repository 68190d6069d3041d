import Logging
import NatTable
import SystemCalls
import TunIO

/// One worker per TUN queue, each on a thread of its own (`tunnat-qN`), with the output `tun.output` names: the
/// packet path. Made (outputs opened, read rings set up) before `start`; each has a heartbeat for the watchdog.
final class Workers: Component {
    let name = "workers"
    let heartbeats: [Heartbeat]
    /// How the queues are read: "io_uring", or read(2) and why.
    let reads: String
    /// io_uring was asked for and the kernel refused it (worth a warning; `tun.io_uring: false` is not).
    let ringRefused: Bool
    private let runs: [@Sendable () -> Void]
    private let stopSignal: StopSignal
    private var threads: [NamedThread] = []

    init(device: TunDevice, tun: TunConfiguration, shared: LockedNAT, gate: ReplicationGate?,
         egress: EgressChanges) throws(LiveDataPlane.Failure) {
        do { stopSignal = try StopSignal() } catch { throw .init(description: "\(error)", errno: error) }
        let stop = stopSignal
        var runs: [@Sendable () -> Void] = []
        var ringRefusal: Errno?
        let heartbeats = device.queues.map { _ in Heartbeat() }
        func add<Output: PacketOutput & SendableMetatype>(_ queue: TunQueue, _ output: Output, _ heartbeat: Heartbeat) {
            let worker = Worker(queue: queue, virtioHeaders: device.virtioHeaders, output: output, shared: shared,
                                stop: stop, gate: gate, heartbeat: heartbeat, ioUring: tun.ioUring)
            ringRefusal = ringRefusal ?? worker.ringRefusal
            runs.append { worker.run() }
        }
        do throws(TunError) {
            for (queue, heartbeat) in zip(device.queues, heartbeats) {
                switch tun.output {
                case .tun:
                    add(queue, TunOutput(queue: queue, virtioHeaders: device.virtioHeaders), heartbeat)
                case .raw:
                    add(queue, try RawOutput(), heartbeat)
                case .packet:
                    add(queue, try PacketSocketOutput(queue: queue, virtioHeaders: device.virtioHeaders,
                                                      tunInterface: Int32(Syscall.interfaceIndex(device.name)),
                                                      changes: egress), heartbeat)
                }
            }
        } catch {
            throw .init(description: error.description, errno: error.errno)
        }
        self.runs = runs
        self.heartbeats = heartbeats
        ringRefused = tun.ioUring && ringRefusal != nil
        reads = !tun.ioUring ? "read(2) (tun.io_uring: false)"
            : ringRefusal.map { "read(2): io_uring refused (\($0)); it needs Linux 6.7 and kernel.io_uring_disabled=0" }
            ?? "io_uring"
    }

    func start() throws(LiveDataPlane.Failure) {
        for (index, run) in runs.enumerated() {
            do { threads.append(try NamedThread("tunnat-q\(index)", run)) } catch {
                stop()  // the workers already running: the stack stops only what started whole
                throw .init(description: "worker \(index): \(error)", errno: error)
            }
        }
    }

    func stop() {
        stopSignal.stop()
        for thread in threads { thread.join() }
    }
}

/// Packet output: one thread hears the kernel's route and neighbour changes for every worker's next-hop cache.
final class EgressLoop: Component {
    let name = "egress watcher"
    let changes: EgressChanges
    private let stopSignal: StopSignal
    private var thread: NamedThread?

    init(changes: EgressChanges) throws(LiveDataPlane.Failure) {
        self.changes = changes
        do { stopSignal = try StopSignal() } catch { throw .init(description: "\(error)", errno: error) }
    }

    func start() throws(LiveDataPlane.Failure) {
        // Only the watcher's thread uses the socket once it starts.
        nonisolated(unsafe) let watcher: RouteNetlink
        do { watcher = try EgressWatcher.open() } catch { throw .init(description: "packet output: \(error)", errno: error) }
        let (changes, stop) = (self.changes, stopSignal)
        do { thread = try NamedThread("tunnat-egress") { EgressWatcher.run(watcher, changes: changes, stop: stop) } } catch {
            throw .init(description: "packet output: \(error)", errno: error)
        }
    }

    func stop() {
        stopSignal.stop()
        thread?.join()
    }
}
