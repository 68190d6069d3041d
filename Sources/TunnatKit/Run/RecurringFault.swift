/// A fault that may repeat many times a second (no descriptor for an accept, a port held by someone else): each
/// occurrence is counted, the log hears of it the first time and then at most once per `every` seconds with the
/// count since, and the caller waits `delay` before it tries again, doubling from `initialDelay` up to `maximumDelay`
/// while the fault lasts. Time is given, never read, so tests turn it by hand.
public struct RecurringFault: Sendable {
    public let every: Double
    public let initialDelay: Double
    public let maximumDelay: Double
    /// Occurrences since start, and since the last log line.
    public private(set) var total: UInt64 = 0
    public private(set) var sinceLog: UInt64 = 0
    /// Seconds to wait before the next try.
    public private(set) var delay: Double
    private var lastLog: Double?

    public init(every: Double = 60, initialDelay: Double = 0.01, maximumDelay: Double = 1) {
        self.every = every
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        delay = initialDelay
    }

    /// Counts one occurrence at `now`; the number to log (this one and those not yet logged) when a line is due.
    public mutating func occurred(now: Double) -> UInt64? {
        total += 1
        sinceLog += 1
        defer { delay = min(maximumDelay, delay * 2) }
        if let lastLog, now - lastLog < every { return nil }
        lastLog = now
        defer { sinceLog = 0 }
        return sinceLog
    }

    /// The fault is over: the next one waits `initialDelay` again (and is logged if a line is due).
    public mutating func cleared() { delay = initialDelay }
}
