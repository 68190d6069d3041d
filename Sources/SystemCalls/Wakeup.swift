import CSystemShim
import Glibc
import Synchronization

/// The one wake-up primitive: an eventfd (eventfd(2)) that a thread sleeps on in poll(2), alone or beside the
/// descriptors it serves, with a timeout. `signal()` is safe from any thread and from a signal handler (it is
/// one write(2)).
public final class Wakeup: Sendable {
    let descriptor: FileDescriptor
    public var fd: Int32 { descriptor.rawValue }

    public init() throws(Errno) {
        let fd = tunnat_eventfd()
        guard fd >= 0 else { throw Errno("eventfd") }
        descriptor = FileDescriptor(owning: fd)
    }

    /// Makes the descriptor readable until `drain()`.
    public func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(fd, $0.baseAddress, 8) }
    }

    /// Clears any signals given so far.
    public func drain() {
        var count: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &count) { Glibc.read(fd, $0.baseAddress, 8) }
    }

    /// Sleeps until signalled or `milliseconds` pass (-1: no limit); true if signalled (the signal is consumed).
    @discardableResult
    public func wait(milliseconds: Int32) -> Bool {
        let signalled = (try? Syscall.pollIn(fd, timeoutMilliseconds: milliseconds).0) ?? false
        if signalled { drain() }
        return signalled
    }
}

/// Tells threads to stop: a flag, and a `Wakeup` that wakes them from poll(2) at once. Never drained, so that
/// every thread waiting on it sees it.
public final class StopSignal: Sendable {
    let flag = Atomic<Bool>(false)
    public let wakeup: Wakeup
    public var fd: Int32 { wakeup.fd }

    public init() throws(Errno) {
        wakeup = try Wakeup()
    }

    public var isStopped: Bool { flag.load(ordering: .acquiring) }

    /// Safe to call from any thread, more than once.
    public func stop() {
        flag.store(true, ordering: .releasing)
        wakeup.signal()
    }

    /// Sleeps until stopped or `milliseconds` pass; true if stopped. A signal handler stops it by writing to its
    /// descriptor alone (the flag is not async-signal-safe to reach), so a readable descriptor counts as stopped.
    public func sleep(milliseconds: Int32) -> Bool {
        if isStopped { return true }
        let readable = (try? Syscall.pollIn(fd, timeoutMilliseconds: milliseconds).0) ?? false
        return readable || isStopped
    }
}

/// SIGINT and SIGTERM, caught by a handler that only stores the signal's number and writes to an eventfd
/// (async-signal-safe), so that the main thread wakes and stops everything in order. A handler, not a blocked
/// mask: the runtime may have started threads before tunnat could block the signals in them.
public enum StopSignals {
    nonisolated(unsafe) static var fd: Int32 = -1  // written once, before the handler is installed
    static let received = Atomic<Int32>(0)
    static let installed = Mutex<StopSignal?>(nil)

    /// The stop signal that SIGINT and SIGTERM give (the same one on every call).
    public static func install() throws(Errno) -> StopSignal {
        try installed.withLock { (current: inout StopSignal?) throws(Errno) -> StopSignal in
            if let current { return current }
            let signal = try StopSignal()
            fd = signal.fd
            try catchSignals([(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")]) { number in
                StopSignals.received.store(number, ordering: .releasing)
                var one: UInt64 = 1
                _ = withUnsafeBytes(of: &one) { Glibc.write(StopSignals.fd, $0.baseAddress, 8) }
            }
            current = signal
            return signal
        }
    }

    /// "SIGINT" or "SIGTERM": the signal that arrived.
    public static var receivedName: String {
        received.load(ordering: .acquiring) == SIGINT ? "SIGINT" : "SIGTERM"
    }
}

/// Installs `handler` (SA_RESTART, nothing masked) for each of `signals`, named for the error.
private func catchSignals(_ signals: [(Int32, String)], _ handler: @convention(c) (Int32) -> Void) throws(Errno) {
    var action = sigaction()
    action.__sigaction_handler.sa_handler = handler
    sigemptyset(&action.sa_mask)
    action.sa_flags = SA_RESTART
    for (number, name) in signals {
        try Syscall.zeroOrErrno("sigaction \(name)") { sigaction(number, &action, nil) }
    }
}

/// SIGHUP, caught the same way as the stop signals: the handler writes to an eventfd that the main thread polls
/// beside the stop signal's, and reads the configuration again.
public enum ReloadSignal {
    nonisolated(unsafe) static var fd: Int32 = -1  // written once, before the handler is installed
    static let installed = Mutex<Wakeup?>(nil)

    /// The wake-up SIGHUP signals (the same one on every call). Drain it before rereading.
    public static func install() throws(Errno) -> Wakeup {
        try installed.withLock { (current: inout Wakeup?) throws(Errno) -> Wakeup in
            if let current { return current }
            let wakeup = try Wakeup()
            fd = wakeup.fd
            try catchSignals([(SIGHUP, "SIGHUP")]) { _ in
                var one: UInt64 = 1
                _ = withUnsafeBytes(of: &one) { Glibc.write(ReloadSignal.fd, $0.baseAddress, 8) }
            }
            current = wakeup
            return wakeup
        }
    }
}
