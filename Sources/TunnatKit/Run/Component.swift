import Logging

/// One long-running part of `tunnat run`: the policy routing, the workers, the replication, the route manager,
/// the egress watcher, monitoring, the control socket. `start()` brings it up (a thread, a socket, kernel state)
/// or throws why it cannot; `stop()` takes down what `start()` brought up, waits for its thread, and is called once,
/// only after a `start()` that returned.
protocol Component: AnyObject {
    var name: String { get }
    func start() throws(LiveDataPlane.Failure)
    func stop()
}

/// The components of a running data plane, in the order they started: `stopAll()` stops them in reverse, so that
/// nothing is stopped while something started after it still uses it (the workers before the routing that feeds
/// them, the control socket before the workers whose figures it reports).
final class ComponentStack {
    private var started: [any Component] = []
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Starts `component` and keeps it for `stopAll()`; a failure stops nothing by itself (the caller's
    /// `defer { stopAll() }` takes down what had started).
    func start(_ component: any Component) throws(LiveDataPlane.Failure) {
        try component.start()
        started.append(component)
        logger.debug("started \(component.name)")
    }

    /// Stops every started component, last first.
    func stopAll() {
        while let component = started.popLast() {
            component.stop()
            logger.debug("stopped \(component.name)")
        }
    }
}
