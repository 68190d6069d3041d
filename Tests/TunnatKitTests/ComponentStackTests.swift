import Logging
import Testing
@testable import TunnatKit

/// `tunnat run`'s components stop in the reverse of the order they started, and a component that fails to start
/// leaves the ones before it to be stopped, and is not stopped itself.
@Suite struct ComponentStackTests {
    final class Recorder: Component {
        let name: String
        let fails: Bool
        let log: Log
        init(_ name: String, fails: Bool = false, log: Log) {
            self.name = name
            self.fails = fails
            self.log = log
        }
        func start() throws(LiveDataPlane.Failure) {
            log.lines.append("start \(name)")
            if fails { throw LiveDataPlane.Failure(description: "\(name) cannot start") }
        }
        func stop() { log.lines.append("stop \(name)") }
    }

    final class Log { var lines: [String] = [] }

    static let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    @Test func componentsStopInReverseOrderOnce() throws {
        let log = Log()
        let stack = ComponentStack(logger: Self.quiet)
        for name in ["routing", "replication", "workers", "control"] { try stack.start(Recorder(name, log: log)) }
        stack.stopAll()
        stack.stopAll()
        #expect(log.lines == ["start routing", "start replication", "start workers", "start control",
                              "stop control", "stop workers", "stop replication", "stop routing"])
    }

    @Test func aFailedStartStopsWhatStartedBeforeIt() {
        let log = Log()
        let stack = ComponentStack(logger: Self.quiet)
        #expect(throws: LiveDataPlane.Failure.self) {
            defer { stack.stopAll() }
            try stack.start(Recorder("routing", log: log))
            try stack.start(Recorder("monitoring", fails: true, log: log))
            try stack.start(Recorder("workers", log: log))
        }
        #expect(log.lines == ["start routing", "start monitoring", "stop routing"])
    }
}
