import Synchronization
import SystemCalls

/// A clock that moves only when told to (`advance`) or when someone sleeps on it (the sleep returns at once,
/// the time having passed): tests of hold-downs and deadlines run in microseconds and never depend on the machine.
public final class ManualClock: MonotonicClock {
    private let now: Mutex<Double>
    private let slept = Atomic<Int>(0)

    public init(seconds: Double = 1000) { now = Mutex(seconds) }

    public func seconds() -> Double { now.withLock { $0 } }

    public func sleep(milliseconds: Int) {
        slept.add(milliseconds, ordering: .relaxed)
        advance(Double(milliseconds) / 1000)
    }

    public func advance(_ seconds: Double) { now.withLock { $0 += seconds } }

    /// Milliseconds slept on this clock in all.
    public var sleptMilliseconds: Int { slept.load(ordering: .relaxed) }
}
