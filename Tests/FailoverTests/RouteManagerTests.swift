@testable import Failover
import AWS
import FakeAWS
import Health
import Logging
import SystemCalls
import Testing

/// The route manager against an in-memory EC2 and a hand-turned clock: each of AWSnycast's rules as the calls it
/// makes (not only the decision), what tunnat adds (VPC scoping, first verdict, hold-down, the pool addresses,
/// claims under replication, races and failed calls), and the preflight. No sockets, no sleeps.
@Suite struct RouteManagerTests {
    static let vpc = "vpc-1"
    static let me = InstanceIdentity(instanceID: "i-me", region: "eu-west-1", availabilityZone: "eu-west-1a", mac: "0a:00:00:00:00:01",
                                     vpcID: vpc, subnetID: "subnet-1", interfaceID: "eni-me", privateIP: "10.0.0.10")
    static let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    /// This instance (eni-me) and another NAT (i-other, eni-other) in vpc-1; route table rtb-a (tagged nat=a) with
    /// 0.0.0.0/0 pointing at `holder` (nil: no such route); rtb-x in another VPC, tagged the same.
    static func world(holder: String? = "eni-other", pool: [String] = [], poolOn: String = "eni-other") -> FakeEC2 {
        let ec2 = FakeEC2()
        ec2.with { s in
            s.interfaces = [
                NetworkInterface(id: "eni-me", instanceID: "i-me", macAddress: me.mac, vpcID: vpc, primaryPrivateIP: "10.0.0.10",
                                 privateIPs: poolOn == "eni-me" ? pool : []),
                NetworkInterface(id: "eni-other", instanceID: "i-other", vpcID: vpc, primaryPrivateIP: "10.0.0.20",
                                 privateIPs: poolOn == "eni-other" ? pool : []),
            ]
            let route = holder.map { [Route(destination: "0.0.0.0/0", networkInterfaceID: $0)] } ?? []
            s.routeTables = [
                RouteTable(id: "rtb-a", vpcID: vpc, tags: ["nat": "a"], routes: route),
                RouteTable(id: "rtb-x", vpcID: "vpc-2", tags: ["nat": "a"],
                           routes: [Route(destination: "0.0.0.0/0", networkInterfaceID: "eni-far")]),
            ]
            s.statuses = [InstanceStatus(instanceID: "i-other")]
            s.addresses = pool.map { ElasticAddress(publicIP: "198.18.0.\($0.split(separator: ".").last!)", privateIP: $0) }
        }
        return ec2
    }

    static func config(_ route: ManagedRoute = ManagedRoute(cidr: "0.0.0.0/0"), check: HealthCheckSpec? = nil,
                       holdDown: UInt32 = 30, pool: [String] = []) -> FailoverConfiguration {
        var c = FailoverConfiguration()
        c.holdDown = holdDown
        c.poolAddresses = pool
        if let check { c.healthChecks["internet"] = check }
        c.routeTables["private"] = RouteTableSpec(find: .byTag(key: "nat", value: "a"), manageRoutes: [route])
        return c
    }

    /// A command check that passes or fails on its first probe (rise and fall 1).
    static func commandCheck(passing: Bool) -> HealthCheckSpec {
        var spec = HealthCheckSpec(kind: .command)
        spec.command = passing ? "/bin/true" : "/bin/false"
        spec.destination = "127.0.0.1"
        spec.rise = 1
        spec.fall = 1
        return spec
    }

    static func manager(_ config: FailoverConfiguration, _ ec2: FakeEC2, clock: ManualClock = ManualClock(),
                        imds: FakeInstanceMetadata? = nil, noop: Bool = false) throws -> RouteManager {
        try RouteManager(config: config, identity: me, ec2: ec2, imds: imds, noop: noop, clock: clock, logger: quiet)
    }

    static func route(_ holder: String?, ifUnhealthy: Bool = false, neverDelete: Bool = false, check: Bool = false) -> ManagedRoute {
        var r = ManagedRoute(cidr: "0.0.0.0/0")
        r.ifUnhealthy = ifUnhealthy
        r.neverDelete = neverDelete
        if check { r.healthCheck = "internet" }
        _ = holder
        return r
    }

    // MARK: - AWSnycast's rules, as calls

    @Test func aMissingRouteIsCreatedToThisInstancesInterface() throws {
        let ec2 = Self.world(holder: nil)
        let changes = try Self.manager(Self.config(), ec2).pass()
        #expect(changes.map(\.decision) == [.create])
        #expect(ec2.changes == ["CreateRoute rtb-a 0.0.0.0/0 eni-me"])
        #expect(ec2.route("rtb-a", "0.0.0.0/0")?.networkInterfaceID == "eni-me")
        #expect(ec2.route("rtb-x", "0.0.0.0/0")?.networkInterfaceID == "eni-far", "a table in another VPC is never touched")
    }

    @Test func aRouteHeldByAnotherInstanceIsTakenWithoutIfUnhealthy() throws {
        let ec2 = Self.world()
        let manager = try Self.manager(Self.config(), ec2)
        _ = try manager.pass()
        #expect(ec2.changes == ["ReplaceRoute rtb-a 0.0.0.0/0 eni-me"])
        #expect(try manager.pass().isEmpty, "ours now: a second pass changes nothing")
        #expect(ec2.changes.count == 1)
        #expect(manager.routesManaged == 1 && manager.routesHeld == 1)
    }

    @Test func ifUnhealthyLeavesAHealthyHolderAlone() throws {
        let ec2 = Self.world()
        let changes = try Self.manager(Self.config(Self.route("eni-other", ifUnhealthy: true)), ec2).pass()
        #expect(changes.isEmpty)
        #expect(ec2.changes.isEmpty)
        #expect(ec2.calls.contains("DescribeInstanceStatus i-other"))
    }

    @Test(arguments: [
        ("impaired", [InstanceStatus(instanceID: "i-other", instanceStatus: "impaired")]),
        ("system impaired", [InstanceStatus(instanceID: "i-other", systemStatus: "impaired")]),
        ("not running", []),
    ])
    func ifUnhealthyTakesTheRouteFromAnUnhealthyHolder(_ why: String, _ statuses: [InstanceStatus]) throws {
        let ec2 = Self.world()
        ec2.with { $0.statuses = statuses }
        let changes = try Self.manager(Self.config(Self.route("eni-other", ifUnhealthy: true)), ec2).pass()
        #expect(changes.count == 1, "\(why)")
        #expect(ec2.changes == ["ReplaceRoute rtb-a 0.0.0.0/0 eni-me"], "\(why)")
    }

    @Test func ifUnhealthyTakesABlackholeRouteWithoutAsking() throws {
        let ec2 = Self.world()
        ec2.with { $0.routeTables[0].routes[0].state = "blackhole" }
        _ = try Self.manager(Self.config(Self.route("eni-other", ifUnhealthy: true)), ec2).pass()
        #expect(ec2.changes == ["ReplaceRoute rtb-a 0.0.0.0/0 eni-me"])
        #expect(!ec2.calls.contains { $0.hasPrefix("DescribeInstanceStatus") })
    }

    @Test func nothingHappensBeforeTheFirstHealthVerdict() throws {
        let ec2 = Self.world(holder: nil)
        let manager = try Self.manager(Self.config(Self.route(nil, check: true), check: Self.commandCheck(passing: true)), ec2)
        #expect(try manager.pass().isEmpty)
        #expect(ec2.changes.isEmpty)
        #expect(manager.healthChecks["internet"]?.probeOnce() == true)
        _ = try manager.pass()
        #expect(ec2.changes == ["CreateRoute rtb-a 0.0.0.0/0 eni-me"])
    }

    @Test func aFailingLocalCheckDeletesOurRouteUnlessNeverDelete() throws {
        for neverDelete in [false, true] {
            let ec2 = Self.world(holder: "eni-me")
            let manager = try Self.manager(Self.config(Self.route("eni-me", neverDelete: neverDelete, check: true),
                                                       check: Self.commandCheck(passing: false)), ec2)
            #expect(manager.healthChecks["internet"]?.probeOnce() == false)
            _ = try manager.pass()
            #expect(ec2.changes == (neverDelete ? [] : ["DeleteRoute rtb-a 0.0.0.0/0"]), "never_delete \(neverDelete)")
        }
    }

    @Test func aFailingLocalCheckNeitherCreatesNorTakesARoute() throws {
        for holder in [nil, "eni-other"] as [String?] {
            let ec2 = Self.world(holder: holder)
            let manager = try Self.manager(Self.config(Self.route(holder, check: true), check: Self.commandCheck(passing: false)), ec2)
            _ = manager.healthChecks["internet"]?.probeOnce()
            #expect(try manager.pass().isEmpty)
            #expect(ec2.changes.isEmpty, "holder \(holder ?? "none")")
        }
    }

    @Test func aRouteToAnotherInstancePointsAtItsInterfaceWithSourceDestCheckOff() throws {
        let ec2 = Self.world(holder: nil)
        ec2.with { s in
            s.interfaces.append(NetworkInterface(id: "eni-b-checked", instanceID: "i-b", vpcID: Self.vpc, primaryPrivateIP: "10.0.0.31",
                                                 sourceDestCheck: true))
            s.interfaces.append(NetworkInterface(id: "eni-b-router", instanceID: "i-b", vpcID: Self.vpc, primaryPrivateIP: "10.0.0.30"))
        }
        _ = try Self.manager(Self.config(ManagedRoute(cidr: "0.0.0.0/0", instance: "i-b")), ec2).pass()
        #expect(ec2.changes == ["CreateRoute rtb-a 0.0.0.0/0 eni-b-router"])
    }

    // MARK: - What tunnat adds

    @Test func holdDownDampsFlappingOnTheInjectedClock() throws {
        let ec2 = Self.world(holder: "eni-me")
        let clock = ManualClock()
        let manager = try Self.manager(Self.config(Self.route("eni-me", check: true), check: Self.commandCheck(passing: true), holdDown: 30),
                                       ec2, clock: clock)
        _ = manager.healthChecks["internet"]?.probeOnce()
        ec2.with { $0.routeTables[0].routes = [] }
        _ = try manager.pass()
        #expect(ec2.changes == ["CreateRoute rtb-a 0.0.0.0/0 eni-me"])
        // Someone moves it away 10 s later: hold-down keeps tunnat from flapping it back at once.
        clock.advance(10)
        ec2.with { $0.routeTables[0].routes[0].networkInterfaceID = "eni-other" }
        let held = try manager.pass()
        #expect(held.isEmpty && ec2.changes.count == 1)
        clock.advance(21)
        _ = try manager.pass()
        #expect(ec2.changes.last == "ReplaceRoute rtb-a 0.0.0.0/0 eni-me")
    }

    @Test func noopSaysWhatItWouldChangeAndChangesNothing() throws {
        let ec2 = Self.world(pool: ["10.0.0.50"])
        let changes = try Self.manager(Self.config(pool: ["10.0.0.50"]), ec2, noop: true).pass()
        #expect(changes.count == 1 && changes[0].noop)
        #expect(changes[0].description.hasPrefix("noop: would replace route 0.0.0.0/0 in rtb-a -> eni-me"))
        #expect(ec2.changes.isEmpty)
        #expect(ec2.holder(of: "10.0.0.50") == "eni-other")
    }

    @Test func thePoolAddressesMoveBeforeTheRouteAndTheMetadataIsWaitedFor() throws {
        let ec2 = Self.world(pool: ["10.0.0.50", "10.0.0.51"])
        let clock = ManualClock()
        let imds = FakeInstanceMetadata(followInterfaces: ec2, lagReads: 3)
        _ = try Self.manager(Self.config(pool: ["10.0.0.50", "10.0.0.51"]), ec2, clock: clock, imds: imds).pass()
        #expect(ec2.changes == ["AssignPrivateIpAddresses 10.0.0.50,10.0.0.51 eni-me", "ReplaceRoute rtb-a 0.0.0.0/0 eni-me"])
        #expect(ec2.holder(of: "10.0.0.50") == "eni-me" && ec2.holder(of: "10.0.0.51") == "eni-me")
        // EC2 applies the move asynchronously: three reads of the metadata lag, each followed by a 200 ms wait.
        #expect(clock.sleptMilliseconds == 600)
    }

    @Test func aRaceLostOnCreateRouteIsReevaluatedNotAnError() throws {
        let ec2 = Self.world(holder: nil)
        ec2.failNext("CreateRoute", .api(action: "CreateRoute", status: 400, code: "RouteAlreadyExists", message: "exists"))
        let manager = try Self.manager(Self.config(), ec2)
        #expect(try manager.pass().isEmpty)
        #expect(ec2.changes.isEmpty)
        _ = try manager.pass()
        #expect(ec2.changes == ["CreateRoute rtb-a 0.0.0.0/0 eni-me"])
    }

    @Test func aFailedCallFailsThePassWithAWSsCodeAndTheNextPassTriesAgain() throws {
        let ec2 = Self.world(holder: nil)
        ec2.failNext("DescribeRouteTables", .api(action: "DescribeRouteTables", status: 503, code: "RequestLimitExceeded", message: "slow down"))
        let manager = try Self.manager(Self.config(), ec2)
        #expect { try manager.pass() } throws: { "\($0)".contains("RequestLimitExceeded") }
        #expect(ec2.changes.isEmpty)
        _ = try manager.pass()
        #expect(ec2.changes == ["CreateRoute rtb-a 0.0.0.0/0 eni-me"])
    }

    // MARK: - Under replication: the role decides

    @Test func aStandbyTouchesNothingEvenWithNoRoute() throws {
        let ec2 = Self.world(holder: nil, pool: ["10.0.0.50"])
        let manager = try Self.manager(Self.config(pool: ["10.0.0.50"]), ec2)
        manager.role = { .standby }
        #expect(try manager.pass().isEmpty)
        #expect(ec2.changes.isEmpty)
    }

    @Test func anActiveClaimTakesThePoolAndEveryRouteThenHoldsThem() throws {
        let ec2 = Self.world(pool: ["10.0.0.50"])
        let manager = try Self.manager(Self.config(pool: ["10.0.0.50"]), ec2)
        manager.role = { .active }
        manager.roleChanged(to: .active)
        #expect(!manager.holdsEverything)
        // The first attempt fails on the pool address (throttled): the claim is not complete and goes on.
        ec2.failNext("AssignPrivateIpAddresses", .api(action: "AssignPrivateIpAddresses", status: 400,
                                                      code: "RequestLimitExceeded", message: "slow down"))
        _ = try? manager.pass()
        #expect(!manager.holdsEverything)
        _ = try manager.pass()
        #expect(manager.holdsEverything)
        #expect(ec2.holder(of: "10.0.0.50") == "eni-me")
        #expect(ec2.route("rtb-a", "0.0.0.0/0")?.networkInterfaceID == "eni-me")
        // After the claim, a route another node takes is not taken back (that node became active later).
        ec2.with { $0.routeTables[0].routes[0].networkInterfaceID = "eni-other" }
        let before = ec2.changes.count
        _ = try manager.pass()
        #expect(ec2.changes.count == before)
    }

    /// The active's claim is complete; then a standby (a node that stepped down after a forged flood made it claim)
    /// holds the route and the pool address. With every peer heard and none active, the active takes them back
    /// after `reclaimWait`, not before; with a peer that may be active (unheard, or heard active), never.
    @Test func aStrandedRouteAndPoolAreTakenBackOnlyWhenNoOtherNodeCanBeActive() throws {
        final class Others: @unchecked Sendable { var standDown = true }
        let ec2 = Self.world(pool: ["10.0.0.50"])
        let clock = ManualClock()
        let manager = try Self.manager(Self.config(pool: ["10.0.0.50"]), ec2, clock: clock)
        let others = Others()
        manager.role = { .active }
        manager.othersStandDown = { others.standDown }
        manager.roleChanged(to: .active)
        _ = try manager.pass()
        #expect(manager.holdsEverything)
        func strand() {
            ec2.with { s in
                s.routeTables[0].routes[0].networkInterfaceID = "eni-other"
                s.interfaces[0].privateIPs = []
                s.interfaces[1].privateIPs = ["10.0.0.50"]
            }
        }
        strand()
        let before = ec2.changes.count
        _ = try manager.pass()
        #expect(!manager.holdsEverything, "the active says it no longer holds everything")
        clock.advance(RouteManager.reclaimWait - 1)
        _ = try manager.pass()
        #expect(ec2.changes.count == before, "nothing is taken back before the wait is over")
        clock.advance(2)
        _ = try manager.pass()
        _ = try manager.pass()
        #expect(ec2.route("rtb-a", "0.0.0.0/0")?.networkInterfaceID == "eni-me")
        #expect(ec2.holder(of: "10.0.0.50") == "eni-me")
        #expect(manager.holdsEverything)

        // A partition: a peer unheard may be an active that took over; nothing is taken back however long it lasts.
        strand()
        others.standDown = false
        let held = ec2.changes.count
        for _ in 0..<10 {
            clock.advance(RouteManager.reclaimWait)
            _ = try manager.pass()
        }
        #expect(ec2.changes.count == held, "no flapping across a partition")
        #expect(ec2.route("rtb-a", "0.0.0.0/0")?.networkInterfaceID == "eni-other")
        // Heard again, and the holder is a standby: the wait starts over, then everything comes back.
        others.standDown = true
        _ = try manager.pass()
        clock.advance(RouteManager.reclaimWait)
        _ = try manager.pass()
        _ = try manager.pass()
        #expect(ec2.route("rtb-a", "0.0.0.0/0")?.networkInterfaceID == "eni-me" && manager.holdsEverything)
    }

    // MARK: - Preflight

    @Test func preflightRefusesAnInterfaceWithSourceDestCheckOnOrInAnotherVPC() throws {
        let checked = Self.world()
        checked.with { $0.interfaces[0].sourceDestCheck = true }
        #expect { try Self.manager(Self.config(), checked).preflight() } throws: { "\($0)".contains("--no-source-dest-check") }
        let elsewhere = Self.world()
        elsewhere.with { $0.interfaces[0].vpcID = "vpc-2" }
        #expect { try Self.manager(Self.config(), elsewhere).preflight() } throws: { "\($0)".contains("not in this instance's VPC") }
        try Self.manager(Self.config(), Self.world()).preflight()
    }
}
