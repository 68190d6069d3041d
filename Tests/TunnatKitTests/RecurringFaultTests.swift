import Testing
import TunnatKit

/// A repeating local fault (no descriptor for an accept, a taken port) is counted every time, logged the first
/// time and then once a minute with the count since, and waited on longer each time up to a ceiling.
@Suite struct RecurringFaultTests {
    @Test func loggedFirstThenOnceAMinuteWithTheCountSince() {
        var fault = RecurringFault(every: 60, initialDelay: 0.01, maximumDelay: 1)
        #expect(fault.occurred(now: 100) == 1)
        for i in 1...999 { #expect(fault.occurred(now: 100 + Double(i) * 0.05) == nil) }
        #expect(fault.total == 1000 && fault.sinceLog == 999)
        #expect(fault.occurred(now: 160) == 1000)
        #expect(fault.sinceLog == 0 && fault.total == 1001)
        #expect(fault.occurred(now: 161) == nil)
    }

    @Test func theWaitDoublesToItsCeilingAndStartsOverOnceCleared() {
        var fault = RecurringFault(every: 60, initialDelay: 0.01, maximumDelay: 1)
        var delays: [Double] = []
        for t in 0..<10 {
            delays.append(fault.delay)
            _ = fault.occurred(now: Double(t))
        }
        #expect(delays.prefix(3) == [0.01, 0.02, 0.04])
        #expect(fault.delay == 1)
        #expect(delays.allSatisfy { $0 <= 1 })
        fault.cleared()
        #expect(fault.delay == 0.01)
        // Cleared is not forgotten: a fault within the minute is counted, not logged.
        #expect(fault.occurred(now: 10) == nil)
    }
}
