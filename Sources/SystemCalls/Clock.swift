import Glibc

/// The clocks. Only the live loops read them; the protocols above take `now` as an argument.
public enum SystemClock {
    /// clock_gettime(CLOCK_MONOTONIC) in nanoseconds: the NAT's clock in the live data plane.
    @inline(__always)
    public static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Seconds on CLOCK_MONOTONIC, for intervals (health check spacing, hold-down, poll time, replication).
    public static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// clock_gettime(CLOCK_REALTIME): seconds and nanoseconds since 1970.
    public static func realtime() -> (seconds: Int64, nanoseconds: Int64) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int64(ts.tv_sec), Int64(ts.tv_nsec))
    }

    /// Seconds since 1970 (for SigV4 dates and credential expiry).
    public static func wallClockSeconds() -> Int { Int(realtime().seconds) }
}

/// A monotonic clock that can also wait: the system's in the program, a hand-turned one in tests, so that what
/// depends on elapsed time (hold-downs, confirmations with a deadline) is tested without sleeping.
public protocol MonotonicClock: Sendable {
    /// Seconds on a monotonic scale (any origin).
    func seconds() -> Double
    func sleep(milliseconds: Int)
}

/// CLOCK_MONOTONIC, and nanosleep.
public struct SystemMonotonicClock: MonotonicClock {
    public init() {}
    public func seconds() -> Double { SystemClock.monotonicSeconds() }
    public func sleep(milliseconds: Int) { Syscall.sleep(milliseconds: milliseconds) }
}
