import Glibc

/// Seconds since 1970 (for SigV4 dates and credential expiry).
public func wallClockSeconds() -> Int { Int(time(nil)) }

/// Seconds on CLOCK_MONOTONIC, for intervals (health check spacing, hold-down, poll time).
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

public func sleepMilliseconds(_ ms: Int) {
    guard ms > 0 else { return }
    var request = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// An environment variable; unset and empty both read as nil.
public func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    let text = String(cString: value)
    return text.isEmpty ? nil : text
}
