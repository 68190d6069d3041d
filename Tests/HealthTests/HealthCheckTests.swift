import Glibc
@testable import Health
import SystemCalls
import Testing

@Suite struct HealthCheckTests {
    /// Passes (P) and failures (F) in order, and the verdict after each (n: none yet, h: healthy, u: unhealthy).
    static let sequences: [(rise: Int, fall: Int, probes: String, verdicts: String)] = [
        (2, 3, "PP", "nh"),
        (2, 3, "FFF", "nnu"),
        (2, 3, "PFPFPF", "nnnnnn"),
        (2, 3, "PPFFPFFF", "nhhhhhhu"),
        (1, 1, "PFP", "huh"),
        (3, 2, "FFPPP", "nuuuh"),
    ]

    @Test(arguments: sequences) func riseAndFallNeedThatManyInARow(_ s: (rise: Int, fall: Int, probes: String, verdicts: String)) {
        var state = HealthState(rise: s.rise, fall: s.fall)
        var got = ""
        for p in s.probes {
            _ = state.record(p == "P")
            got += state.isHealthy.map { $0 ? "h" : "u" } ?? "n"
        }
        #expect(got == s.verdicts)
    }

    @Test func recordReportsOnlyFlips() {
        var state = HealthState(rise: 1, fall: 2)
        #expect(state.record(true) == true)
        #expect(state.record(true) == nil)
        #expect(state.record(false) == nil)
        #expect(state.record(false) == false)
        #expect(state.record(false) == nil)
    }

    /// Inconclusive probes (I: this host lacked a descriptor or a route) neither pass nor fail: the verdict
    /// stands for what acts on it, and reads unknown after `fall` of them in a row.
    @Test func inconclusiveProbesLeaveTheVerdictAndReadUnknownAfterFall() {
        var state = HealthState(rise: 1, fall: 2)
        #expect(state.record(true) == true)
        var reported: [HealthVerdict] = []
        for p in "IIIIFPIF" {
            _ = state.record(p == "P", inconclusive: p == "I")
            reported.append(HealthVerdict(state))
        }
        #expect(reported == [.healthy, .unknown, .unknown, .unknown, .healthy, .healthy, .healthy, .healthy])
        #expect(state.isHealthy == true, "one failure, one pass, one inconclusive and one failure do not make two failures in a row")
        #expect(state.record(false) == false, "the second failure in a row does")
    }

    /// In a network namespace with no route (a thread of its own moved there), every kind of probe to the internet
    /// fails for want of a route: inconclusive, never unhealthy.
    @Test(.enabled(if: geteuid() == 0, "unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN"))
    func aProbeWithNoRouteIsInconclusive() throws {
        var ping = HealthCheckSpec(kind: .ping)
        ping.destination = "198.18.0.1"
        ping.timeout = 1
        var tcp = HealthCheckSpec(kind: .tcp)
        tcp.destination = "198.18.0.1"
        tcp.port = 443
        tcp.timeout = 1
        let specs = [ping, tcp]
        nonisolated(unsafe) var results: [ProbeResult] = []
        nonisolated(unsafe) var failure: Errno?
        let thread = try NamedThread("health-netns") {
            do throws(Errno) {
                try Syscall.unshareNetworkNamespace()
                results = specs.map(Probe.run)
            } catch {
                failure = error
            }
        }
        thread.join()
        #expect(failure == nil)
        #expect(results.count == 2)
        for r in results { #expect(!r.passed && r.inconclusive, "\(r.detail)") }
        #expect(results.allSatisfy { $0.detail.contains("Network is unreachable") }, "\(results.map(\.detail))")
    }

    @Test func commandHealthCheckSubstitutesTheDestination() {
        var spec = HealthCheckSpec(kind: .command)
        spec.destination = "10.1.2.3"
        spec.command = "test"
        spec.arguments = ["%DESTINATION%", "=", "10.1.2.3"]
        #expect(Probe.run(spec).passed)
        spec.arguments = ["%DESTINATION%", "=", "10.1.2.4"]
        #expect(!Probe.run(spec).passed)
    }

    @Test func commandThatOverrunsItsTimeoutIsKilledAndFails() {
        #expect(CommandRunner.run(["sleep", "5"], timeoutMilliseconds: 200) == .timedOut)
        #expect(CommandRunner.run(["/nonexistent/program"], timeoutMilliseconds: 200) != .exited(0))
    }

    @Test func tcpProbeToAClosedLoopbackPortFails() {
        var spec = HealthCheckSpec(kind: .tcp)
        spec.destination = "127.0.0.1"
        spec.port = 9  // discard: nothing listens here in a test environment
        spec.timeout = 1
        let result = Probe.run(spec)
        #expect(!result.passed && !result.detail.isEmpty)
    }
}
