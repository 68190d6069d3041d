import AWS
@testable import Failover
import FakeAWS
import Logging
import Synchronization
import SystemCalls
import Testing
@testable import TunnatKit

/// The failover module of `tunnat run` against AWS trouble: nothing of it may stop the data plane or the thread that
/// pings the watchdog. Waits are for conditions, with deadlines; nothing depends on the machine's speed.
@Suite struct RouteLoopTests {
    static let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
    static let me = InstanceIdentity(instanceID: "i-me", region: "eu-west-1", availabilityZone: "eu-west-1a", mac: "",
                                     vpcID: "vpc-1", subnetID: "subnet-1", interfaceID: "eni-me", privateIP: "10.0.0.10")

    static func world() -> FakeEC2 {
        let ec2 = FakeEC2()
        ec2.with { s in
            s.interfaces = [NetworkInterface(id: "eni-me", instanceID: "i-me", vpcID: "vpc-1", primaryPrivateIP: "10.0.0.10")]
            s.routeTables = [RouteTable(id: "rtb-a", vpcID: "vpc-1", tags: ["nat": "a"], routes: [])]
        }
        return ec2
    }

    static func config() -> FailoverConfiguration {
        var c = FailoverConfiguration()
        c.pollTime = 1
        c.routeTables["private"] = RouteTableSpec(find: .byTag(key: "nat", value: "a"), manageRoutes: [ManagedRoute(cidr: "0.0.0.0/0")])
        return c
    }

    static func until(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = SystemClock.monotonicSeconds() + seconds
        while SystemClock.monotonicSeconds() < end {
            if condition() { return true }
            Syscall.sleep(milliseconds: 5)
        }
        return condition()
    }

    final class Attempts: Sendable {
        let count = Atomic<Int>(0)
    }

    /// Identity or credentials unavailable (IMDS down), then EC2 throttled at the preflight: the loop starts at
    /// once, says why routes are not managed, retries with backoff, and manages them once AWS answers.
    @Test func awsTroubleAtStartIsRetriedInTheBackgroundAndReported() throws {
        let ec2 = Self.world()
        ec2.failNext("DescribeNetworkInterfaces", .api(action: "DescribeNetworkInterfaces", status: 503,
                                                       code: "RequestLimitExceeded", message: "slow down"), count: 3)
        let attempts = Attempts()
        let loop = try RouteLoop(Self.config(), logger: Self.quiet, retryBase: 0.01) { c in
            if attempts.count.add(1, ordering: .relaxed).newValue <= 2 { throw FailoverError("instance metadata: connection refused") }
            return try RouteManager(config: c, identity: Self.me, ec2: ec2, imds: nil, noop: false, logger: Self.quiet)
        }
        #expect(loop.status.problem == "starting")
        try loop.start()
        defer { loop.stop() }
        #expect(Self.until(10) { ec2.route("rtb-a", "0.0.0.0/0")?.networkInterfaceID == "eni-me" }, "routes managed once AWS answers")
        #expect(Self.until(10) { loop.status.problem == nil })
        #expect(attempts.count.load(ordering: .relaxed) == 3)
        #expect(loop.status.failures == 2 + 3, "two failed makes and three failed preflights")
    }

    /// A reload whose preflight hangs (EC2 not answering) returns at once: the main thread goes on pinging the
    /// watchdog. The running manager is kept when the new one fails, replaced when it succeeds.
    @Test func aReloadMakesItsManagerOffTheCallingThread() throws {
        let ec2 = Self.world()
        let release = try StopSignal()
        let loop = try RouteLoop(Self.config(), logger: Self.quiet, retryBase: 0.01) { c in
            if c.pollTime == 7 { _ = release.sleep(milliseconds: 30_000) }
            if c.pollTime == 9 { throw FailoverError("no credentials") }
            return try RouteManager(config: c, identity: Self.me, ec2: ec2, imds: nil, noop: false, logger: Self.quiet)
        }
        try loop.start()
        defer { loop.stop() }
        #expect(Self.until(10) { loop.manager != nil && loop.status.problem == nil })
        let first = try #require(loop.manager)

        let outcomes = Mutex<[String?]>([])
        let record: @Sendable (String?) -> Void = { outcome in outcomes.withLock { $0.append(outcome) } }
        var hanging = Self.config()
        hanging.pollTime = 7
        let before = SystemClock.monotonicSeconds()
        loop.replace(with: hanging, done: record)
        #expect(SystemClock.monotonicSeconds() - before < 1, "replace returns while the new manager is still being made")
        #expect(outcomes.withLock { $0.isEmpty })
        // A second reload meanwhile is refused, not queued.
        loop.replace(with: Self.config(), done: record)
        #expect(outcomes.withLock { $0.first??.contains("still under way") == true })
        release.stop()
        #expect(Self.until(10) { outcomes.withLock { $0.count } == 2 && loop.manager !== first })
        #expect(outcomes.withLock { $0.last! } == nil, "the hanging reload completed once released")

        let second = try #require(loop.manager)
        var failing = Self.config()
        failing.pollTime = 9
        loop.replace(with: failing, done: record)
        #expect(Self.until(10) { outcomes.withLock { $0.count } == 3 })
        #expect(outcomes.withLock { $0.last!?.contains("kept") == true })
        #expect(loop.manager === second)
    }
}
