import AWS
import Health
import Logging
import Synchronization
import SystemCalls

/// One change the route manager made (or, with noop, would make).
public struct RouteChange: Sendable, Equatable, CustomStringConvertible {
    public var table: String
    public var cidr: String
    public var decision: RouteDecision
    public var target: String?
    public var noop: Bool

    public var description: String {
        let verb: String
        switch decision {
        case .create: verb = "create route \(cidr) -> \(target ?? "?") in \(table)"
        case .replace(let why): verb = "replace route \(cidr) in \(table) -> \(target ?? "?") (\(why))"
        case .delete(let why): verb = "delete route \(cidr) from \(table) (\(why))"
        case .keep(let why), .wait(let why): verb = "leave route \(cidr) in \(table) (\(why))"
        }
        return noop ? "noop: would \(verb)" : verb
    }
}

public struct FailoverError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Keeps the routes of the configured route tables pointing at this instance (AWSnycast's model): finds the tables
/// (in its own VPC only), decides per managed route with `RouteDecision`, and makes the calls. With `noop` it
/// reports every change it would make and makes none (decided here, not with DryRun). Before taking a route over it
/// moves the pool addresses to its own ENI.
// @unchecked: the route state (lastChange, eniOwners, remoteChecks, raced) is touched only by the one thread that
// runs passes; other threads reach only the Sendable wake-up, stop signal, claim flag and health checks.
public final class RouteManager: @unchecked Sendable {
    public let config: FailoverConfiguration
    public let identity: InstanceIdentity
    let ec2: any EC2API
    let imds: (any InstanceMetadataSource)?
    /// Hold-down ages and the wait for the instance metadata to show the pool addresses.
    let clock: any MonotonicClock
    public let noop: Bool
    let logger: Logger
    /// Local health checks by name (only those some route uses are started).
    public private(set) var healthChecks: [String: HealthCheck] = [:]
    /// Remote checks by template and the address they probe.
    private var remoteChecks: [RemoteCheckKey: HealthCheck] = [:]
    /// When tunnat last changed each route (monotonic seconds).
    private var lastChange: [RouteKey: Double] = [:]
    private var eniOwners: [String: (instance: String?, ip: String)] = [:]
    private var routerENIs: [String: String] = [:]
    /// A verdict flipped, the role changed, or a race was lost: a pass is due now.
    private let wake: Wakeup
    private let stopping: StopSignal
    /// Oneshot: run remote checks synchronously to a verdict instead of on threads.
    private var synchronousChecks = false
    /// With replication: this node's role, which decides the routes (RouteDecision.ruleOfRole). Set before `run`.
    public var role: (@Sendable () -> RouteRole)?
    /// With replication: every peer is heard (authenticated, alive) and none is active. Then a managed route or
    /// pool address another instance holds is stranded there, and the active takes it back (`reclaimWait`).
    public var othersStandDown: (@Sendable () -> Bool)?
    /// How long the active waits, with every peer heard and none active, before taking back what another instance
    /// holds: long enough for a node that has just taken over to be heard as the active (it outranks this one,
    /// which then steps down) rather than fought.
    public static let reclaimWait = 5.0
    /// Since when the active has seen something of its own held elsewhere while no other node is active.
    private var strayedSince: Double?

    public init(config: FailoverConfiguration, identity: InstanceIdentity, ec2: any EC2API,
                imds: (any InstanceMetadataSource)?, noop: Bool, clock: any MonotonicClock = SystemMonotonicClock(),
                logger: Logger) throws(FailoverError) {
        do {
            wake = try Wakeup()
            stopping = try StopSignal()
        } catch {
            throw FailoverError("route manager: \(error)")
        }
        self.config = config
        self.identity = identity
        self.ec2 = ec2
        self.imds = imds
        self.noop = noop
        self.clock = clock
        self.logger = logger
        let used = Set(config.routeTables.values.flatMap { $0.manageRoutes.compactMap(\.healthCheck) })
        for name in used.sorted() {
            guard let spec = config.healthChecks[name] else { continue }
            do {
                healthChecks[name] = try HealthCheck(name: name, spec: spec, log: { [logger] in logger.notice("\($0)") },
                                                     onChange: { [wake] _, _ in wake.signal() })
            } catch {
                throw FailoverError("health check \(name): \(error)")
            }
        }
    }

    /// The wait before preflight retry `attempt` (0 first): doubling from `base` up to 60 s, the upper half of it
    /// drawn at random (`random` in 0...1), so that a fleet restarted together does not call EC2 in step.
    public static func preflightBackoff(attempt: Int, base: Double, random: Double) -> Double {
        let ceiling = min(60, base * Double(1 << min(attempt, 16)))
        return ceiling * (0.5 + 0.5 * random)
    }

    /// The first wait of the preflight's retries, in seconds (tests shorten it).
    public var preflightRetryBase = 1.0
    private let preflighted = Flag()
    private let problemText = Mutex<String?>(nil)
    private let problemCount = Atomic<Int>(0)

    /// Why the route manager is not doing its job, if it is not: the preflight failing, or the last pass's error.
    public var problem: String? { problemText.withLock { $0 } }
    /// Preflights and passes that failed since start.
    public var failures: Int { problemCount.load(ordering: .relaxed) }

    func report(_ problem: String?, failed: Bool = true) {
        if problem != nil && failed { problemCount.add(1, ordering: .relaxed) }
        problemText.withLock { $0 = problem }
    }

    /// Refuses to manage routes for an interface that would drop forwarded traffic (source/dest check on) or that
    /// is not in the VPC the instance is in.
    public func preflight() throws(FailoverError) {
        try checkInterface()
        preflighted.set()
    }

    func checkInterface() throws(FailoverError) {
        let enis: [NetworkInterface]
        do { enis = try ec2.describeNetworkInterfaces(ids: [identity.interfaceID]) } catch {
            throw FailoverError("cannot read this instance's interface \(identity.interfaceID): \(error)")
        }
        guard let eni = enis.first(where: { $0.id == identity.interfaceID }) else {
            throw FailoverError("interface \(identity.interfaceID) does not exist")
        }
        guard eni.vpcID == identity.vpcID else {
            throw FailoverError("interface \(eni.id) is in \(eni.vpcID), not in this instance's VPC \(identity.vpcID)")
        }
        if let instance = eni.instanceID, instance != identity.instanceID {
            throw FailoverError("interface \(eni.id) is attached to \(instance), not to this instance \(identity.instanceID)")
        }
        guard !eni.sourceDestCheck else {
            throw FailoverError("source/dest check is on for \(eni.id): EC2 would drop the traffic routed through it. "
                + "Turn it off first (aws ec2 modify-network-interface-attribute --network-interface-id \(eni.id) --no-source-dest-check)")
        }
    }

    // MARK: - Running

    /// --oneshot: every health check a route uses is probed to a verdict, then one pass.
    public func runOnce() throws(FailoverError) -> [RouteChange] {
        try preflight()
        synchronousChecks = true
        for check in healthChecks.values.sorted(by: { $0.name < $1.name }) {
            let verdict = check.probeUntilVerdict()
            logger.info("health check \(check.name): \(verdict ? "healthy" : "unhealthy") (\(check.detail))")
        }
        return try pass()
    }

    /// The daemon: health checks on their threads; the preflight, retried with backoff until it passes (EC2 may
    /// be down, throttled or hanging: the health checks and the data plane go on meanwhile); then a pass every
    /// poll_time and whenever a verdict flips, until `stop()`. Errors are logged, kept for the status
    /// (`problem`), and the next pass tries again.
    public func run() {
        for check in healthChecks.values { check.start() }
        defer {
            for check in healthChecks.values { check.stop() }
            for check in remoteChecks.values { check.stop() }
        }
        var attempt = 0
        if !preflighted.isSet { report("preflight: checking this instance's interface through EC2 (no answer yet)", failed: false) }
        while !preflighted.isSet && !stopping.isStopped {
            do {
                try preflight()
            } catch {
                let wait = Self.preflightBackoff(attempt: attempt, base: preflightRetryBase, random: Double.random(in: 0...1))
                attempt += 1
                report("preflight: \(error) (attempt \(attempt); next in \(String(format: "%.1f", wait)) s)")
                logger.error("failover preflight: \(error); the data plane goes on, routes are not managed; retry \(attempt) in \(String(format: "%.1f", wait)) s")
                _ = stopping.sleep(milliseconds: Int32(wait * 1000))
            }
        }
        if stopping.isStopped { return }
        logger.notice("managing routes in \(config.routeTables.count) route table spec(s), poll every \(config.pollTime)s, \(noop ? "noop" : "live")")
        while !stopping.isStopped {
            // A pass reports its own problems (`problem`), those of a pass that made changes too.
            do { _ = try pass() } catch { logger.error("\(error)") }
            // A claim not yet complete, or a stranded route, is looked at again within a second, not after poll_time.
            let wait = claiming.isSet || strayedSince != nil ? 1000 : Int32(clamping: Int(max(config.pollTime, 1)) * 1000)
            _ = try? Syscall.pollIn(wake.fd, stopping.fd, timeoutMilliseconds: wait)
            wake.drain()
        }
    }

    public func stop() { stopping.stop() }

    /// The role changed: becoming the active starts a claim (every pool address and every route are taken, retried
    /// every second until they all are); any other role ends it. A pass follows at once.
    public func roleChanged(to role: RouteRole) {
        _ = claimed.take()
        if role == .active { claiming.set() } else { _ = claiming.take() }
        wake.signal()
    }
    private let claiming = Flag()
    private let claimed = Flag()

    /// This node, the active, holds every pool address and every managed route (its claim is complete). A planned
    /// handover waits for the new active to say so.
    public var holdsEverything: Bool { claimed.isSet }
    /// A CreateRoute of this pass lost a race: the claim is not complete.
    private var raced = false
    /// After the last pass: the managed routes found, and those that point at this instance.
    private let managedCount = Atomic<Int>(0)
    private let heldCount = Atomic<Int>(0)
    public var routesManaged: Int { managedCount.load(ordering: .relaxed) }
    public var routesHeld: Int { heldCount.load(ordering: .relaxed) }

    /// Each health check's verdict, by the check's name.
    public var verdicts: [String: HealthVerdict] { healthChecks.mapValues(\.verdict) }

    /// Whether every health check this node runs is healthy: nil until each has a verdict; true with none.
    public var isHealthy: Bool? {
        var all = true
        for check in healthChecks.values {
            guard let verdict = check.isHealthy else { return nil }
            all = all && verdict
        }
        return all
    }

    // MARK: - One pass

    /// Reads the route tables of this VPC, evaluates every managed route, and makes (or reports) the changes.
    public func pass() throws(FailoverError) -> [RouteChange] {
        let tables: [RouteTable]
        do { tables = try ec2.describeRouteTables(filters: [EC2Filter("vpc-id", [identity.vpcID])]) } catch {
            report("reading route tables: \(error)")
            throw FailoverError("reading route tables: \(error)")
        }
        let own = tables.filter { $0.vpcID == identity.vpcID }
        // Interfaces can be re-attached while tunnat runs: who holds one is read afresh on each pass.
        eniOwners.removeAll()
        routerENIs.removeAll()
        var changes: [RouteChange] = []
        var problems: [String] = []
        var usedRemote = Set<RemoteCheckKey>()
        var managed = 0
        var held = 0
        var strayed: [String] = []
        // Taking over, the active NAT takes the pool addresses first: the replies to its flows come back through
        // them. Each pass of a claim takes them all, so the claim is complete only once it holds all of them.
        let claim = role?() == .active && claiming.isSet
        raced = false
        if claim {
            do throws(AWSError) { try takePoolAddresses(config.poolAddresses) } catch {
                problems.append("pool addresses \(config.poolAddresses.joined(separator: ", ")): \(error)")
            }
        }
        for (name, spec) in config.routeTables.sorted(by: { $0.key < $1.key }) {
            let matched = own.filter { spec.find.matches($0) }
            if matched.isEmpty {
                if !spec.noResultsOK {
                    problems.append("route table spec \(name) found no route table in \(identity.vpcID) (set no_results_ok: true if that is expected)")
                }
                continue
            }
            for table in matched {
                for route in spec.manageRoutes {
                    do {
                        let (change, ours) = try manage(route, in: table, usedRemote: &usedRemote)
                        if let change { changes.append(change) }
                        managed += 1
                        if ours && route.instance == nil { held += 1 }
                        if !ours && route.instance == nil && !claim { strayed.append("route \(route.cidr) in \(table.id)") }
                    } catch {
                        problems.append("\(table.id) \(route.cidr): \(error)")
                    }
                }
            }
        }
        for (key, check) in remoteChecks where !usedRemote.contains(key) {
            check.stop()
            remoteChecks[key] = nil
        }
        managedCount.store(managed, ordering: .relaxed)
        heldCount.store(held, ordering: .relaxed)
        if role?() == .active && !claim && problems.isEmpty && !noop {
            do throws(AWSError) {
                if !(try holdsPoolAddresses()) { strayed.append("pool address(es) \(config.poolAddresses.joined(separator: ", "))") }
                reclaimIfStranded(strayed)
            } catch {
                problems.append("pool addresses \(config.poolAddresses.joined(separator: ", ")): \(error)")
            }
        } else {
            strayedSince = nil
        }
        for problem in problems { logger.error("\(problem)") }
        report(problems.isEmpty ? nil : problems.count == 1 ? problems[0] : "\(problems.count) problems, the first: \(problems[0])")
        if claim && problems.isEmpty && !noop && !raced {
            _ = claiming.take()
            claimed.set()
            logger.notice("takeover complete: this node holds the pool addresses and every managed route")
        }
        if !problems.isEmpty && changes.isEmpty {
            throw FailoverError(problems.count == 1 ? problems[0] : "\(problems.count) problems, the first: \(problems[0])")
        }
        return changes
    }

    /// The active, its claim complete, finds `strayed` (managed routes, pool addresses) held by another instance.
    /// With a peer unheard or active, that instance may be an active across a partition: left alone (the routes
    /// do not flap; when the two hear each other the older active steps down). With every peer heard and none
    /// active, nothing can outrank this node: after `reclaimWait` it claims everything again.
    func reclaimIfStranded(_ strayed: [String]) {
        guard !strayed.isEmpty else {
            strayedSince = nil
            return
        }
        _ = claimed.take()
        guard othersStandDown?() == true else {
            if strayedSince != nil { logger.notice("\(strayed.joined(separator: ", ")): held elsewhere, and another node may be active; left alone") }
            strayedSince = nil
            return
        }
        let now = clock.seconds()
        guard let since = strayedSince else {
            strayedSince = now
            logger.warning("\(strayed.joined(separator: ", ")): held by another instance while no other node is active; taking it back in \(Int(Self.reclaimWait)) s unless one becomes active")
            return
        }
        guard now - since >= Self.reclaimWait else { return }
        strayedSince = nil
        logger.notice("\(strayed.joined(separator: ", ")): still held elsewhere and no other node is active; this node, the active, takes everything back")
        claiming.set()
        wake.signal()
    }

    /// Under replication the role can change while EC2 answers a claim's earlier calls (the node heard an active
    /// that outranks it): a node no longer the active makes no further change.
    func mustStillBeActive(_ action: String) throws(AWSError) {
        guard let role, role() != .active else { return }
        throw .badResponse(action: action, "not sent: this node stopped being the active during the claim")
    }

    /// This instance's interface lists every pool address.
    func holdsPoolAddresses() throws(AWSError) -> Bool {
        guard !config.poolAddresses.isEmpty else { return true }
        let enis = try ec2.describeNetworkInterfaces(ids: [identity.interfaceID])
        guard let eni = enis.first(where: { $0.id == identity.interfaceID }) else { return false }
        return config.poolAddresses.allSatisfy { eni.privateIPs.contains($0) || eni.primaryPrivateIP == $0 }
    }

    /// The change made (or, noop, that would be), and whether the route points at `spec`'s target afterwards.
    func manage(_ spec: ManagedRoute, in table: RouteTable, usedRemote: inout Set<RemoteCheckKey>) throws(AWSError) -> (RouteChange?, Bool) {
        let targetInstance = spec.instance ?? identity.instanceID
        let targetENI = try routerInterface(of: targetInstance)
        let current = table.route(to: spec.cidr)
        var isOurs = false
        if let current {
            if let eni = current.networkInterfaceID { isOurs = eni == targetENI }
            else if let instance = current.instanceID { isOurs = instance == targetInstance }
        }
        let key = RouteKey(table: table.id, cidr: spec.cidr)
        var situation = RouteSituation(
            current: current, isOurs: isOurs, localHealthy: spec.healthCheck.map { healthChecks[$0]?.isHealthy ?? nil } ?? true,
            localName: spec.healthCheck, spec: spec,
            secondsSinceOurLastChange: lastChange[key].map { clock.seconds() - $0 }, holdDown: Double(config.holdDown))
        situation.role = role?()
        situation.claiming = claiming.isSet
        var ownerError: AWSError?
        let decision = RouteDecision.decide(situation) { () -> OwnerHealth in
            do throws(AWSError) { return try ownerHealth(of: current!, spec: spec, usedRemote: &usedRemote) } catch {
                ownerError = error
                return .unknown("\(error)")
            }
        }
        if let ownerError { throw ownerError }
        let change = RouteChange(table: table.id, cidr: spec.cidr, decision: decision, target: targetENI, noop: noop)
        guard decision.changes else {
            if case .wait = decision { logger.info("\(change)") } else { logger.debug("\(change)") }
            return (nil, isOurs)
        }
        logger.notice("\(change)")
        // A route to this instance: the pool addresses come first (with noop, what would move is said).
        if decision.setsTarget && spec.instance == nil { try takePoolAddresses(config.poolAddresses) }
        if noop { return (change, isOurs) }
        switch decision {
        case .create, .replace:
            try mustStillBeActive(decision == .create ? "CreateRoute" : "ReplaceRoute")
            run(spec.runBeforeReplaceRoute, "run_before_replace_route")
            do {
                if case .create = decision {
                    try ec2.createRoute(table: table.id, cidr: spec.cidr, networkInterface: targetENI)
                } else {
                    try ec2.replaceRoute(table: table.id, cidr: spec.cidr, networkInterface: targetENI)
                }
            } catch let error where error.code == "RouteAlreadyExists" {
                // Another instance created it between our read and our call: the next pass sees it and decides.
                logger.notice("\(table.id) \(spec.cidr): created by someone else meanwhile (\(error)); will re-evaluate")
                raced = true
                wake.signal()
                return (nil, false)
            }
            run(spec.runAfterReplaceRoute, "run_after_replace_route")
        case .delete:
            run(spec.runBeforeDeleteRoute, "run_before_delete_route")
            try ec2.deleteRoute(table: table.id, cidr: spec.cidr)
            run(spec.runAfterDeleteRoute, "run_after_delete_route")
        case .keep, .wait:
            break
        }
        lastChange[key] = clock.seconds()
        if case .delete = decision { return (change, false) }
        return (change, true)
    }

    func run(_ command: [String], _ what: String) {
        guard !command.isEmpty else { return }
        let outcome = CommandRunner.run(command, timeoutMilliseconds: 60_000)
        if outcome != .exited(0) { logger.warning("\(what) \(command.joined(separator: " ")): \(outcome)") }
    }

    /// The ENI a route to `instance` should point at: ours for SELF, else that instance's interface with
    /// source/dest check off (as AWSnycast picks it).
    func routerInterface(of instance: String) throws(AWSError) -> String {
        if instance == identity.instanceID { return identity.interfaceID }
        if let cached = routerENIs[instance] { return cached }
        let enis = try ec2.describeNetworkInterfaces(filters: [EC2Filter("attachment.instance-id", [instance])])
        guard let eni = enis.first(where: { !$0.sourceDestCheck }) else {
            throw .badResponse(action: "DescribeNetworkInterfaces", "instance \(instance) has no interface with source/dest check off")
        }
        routerENIs[instance] = eni.id
        return eni.id
    }

    /// For if_unhealthy: the remote health check of the route's holder if the entry has one, else EC2's view of
    /// the holder (DescribeInstanceStatus: impaired, or not running at all).
    func ownerHealth(of route: Route, spec: ManagedRoute, usedRemote: inout Set<RemoteCheckKey>) throws(AWSError) -> OwnerHealth {
        var instance = route.instanceID
        var ip: String?
        if let eni = route.networkInterfaceID {
            if eniOwners[eni] == nil {
                guard let found = try ec2.describeNetworkInterfaces(filters: [EC2Filter("network-interface-id", [eni])]).first else {
                    return .unhealthy("its interface \(eni) no longer exists")
                }
                eniOwners[eni] = (found.instanceID, found.primaryPrivateIP)
            }
            instance = instance ?? eniOwners[eni]?.instance
            ip = eniOwners[eni]?.ip
        }
        if let templateName = spec.remoteHealthCheck, let template = config.remoteHealthChecks[templateName] {
            guard let ip else { return .unknown("no address to run remote check \(templateName) against") }
            let key = RemoteCheckKey(template: templateName, address: ip)
            usedRemote.insert(key)
            let check: HealthCheck
            if let existing = remoteChecks[key] { check = existing } else {
                do {
                    check = try HealthCheck(name: key.description, spec: template.with(destination: ip),
                                            log: { [logger] in logger.notice("\($0)") }, onChange: { [wake] _, _ in wake.signal() })
                } catch {
                    return .unknown("remote check \(key) cannot start: \(error)")
                }
                remoteChecks[key] = check
                if !synchronousChecks { check.start() }
            }
            if synchronousChecks && check.isHealthy == nil { _ = check.probeUntilVerdict() }
            switch check.isHealthy {
            case .some(true): return .healthy("remote check \(key) passes")
            case .some(false): return .unhealthy("remote check \(key) fails: \(check.detail)")
            case .none: return .unknown("remote check \(key) has no verdict yet")
            }
        }
        guard let instance else { return .unhealthy("no instance behind it") }
        let statuses = try ec2.describeInstanceStatus(ids: [instance])
        guard let status = statuses.first(where: { $0.instanceID == instance }) else {
            return .unhealthy("instance \(instance) is not running")
        }
        if status.isImpaired {
            return .unhealthy("instance \(instance) is impaired (instance \(status.instanceStatus), system \(status.systemStatus))")
        }
        return .healthy("instance \(instance) is \(status.state), status \(status.instanceStatus)")
    }

    // MARK: - The pool addresses

    /// Moves the pool addresses to this instance's ENI. One DescribeNetworkInterfaces of the VPC says who lists
    /// each; those this ENI lacks are assigned in one AssignPrivateIpAddresses with AllowReassignment (EC2 assigns
    /// all or none, and each one's Elastic IP moves along); each other ENI that still lists some of them gets one
    /// UnassignPrivateIpAddresses; one DescribeAddresses reports the Elastic IPs. Then it waits (up to 10 s) until
    /// the instance metadata shows them all, as EC2 applies the remap asynchronously. Returns when this ENI holds
    /// all of them (with noop, once it has said what it would move); throws otherwise.
    public func takePoolAddresses(_ addresses: [String]) throws(AWSError) {
        guard !addresses.isEmpty else { return }
        let enis = try ec2.describeNetworkInterfaces(filters: [EC2Filter("vpc-id", [identity.vpcID])])
        func listed(on eni: NetworkInterface) -> [String] {
            addresses.filter { eni.privateIPs.contains($0) || eni.primaryPrivateIP == $0 }
        }
        let held = enis.first { $0.id == identity.interfaceID }.map(listed(on:)) ?? []
        let missing = addresses.filter { !held.contains($0) }
        let others = enis.filter { $0.id != identity.interfaceID }.map { ($0.id, listed(on: $0)) }.filter { !$0.1.isEmpty }
        if missing.isEmpty && others.isEmpty { return }
        let from = others.filter { !Set($0.1).isDisjoint(with: missing) }.map(\.0)
        let origin = from.isEmpty ? "nobody" : from.joined(separator: ", ")
        if noop {
            if !missing.isEmpty {
                logger.notice("noop: would assign pool address(es) \(missing.joined(separator: ", ")) to \(identity.interfaceID) (from \(origin))")
            }
            for (eni, stale) in others {
                logger.notice("noop: would unassign pool address(es) \(stale.joined(separator: ", ")) from \(eni)")
            }
            return
        }
        if !missing.isEmpty {
            try mustStillBeActive("AssignPrivateIpAddresses")
            try ec2.assignPrivateIPAddresses(missing, to: identity.interfaceID, allowReassignment: true)
            logger.notice("pool address(es) \(missing.joined(separator: ", ")) assigned to \(identity.interfaceID) (from \(origin))")
        }
        for (eni, stale) in others {
            do {
                try ec2.unassignPrivateIPAddresses(stale, from: eni)
                logger.notice("pool address(es) \(stale.joined(separator: ", ")) unassigned from \(eni)")
            } catch let error where error.code == "InvalidParameterValue" {
                // AllowReassignment already took them away (EC2 proper); nothing to undo.
            }
        }
        if let eips = try? ec2.describeAddresses(filters: [EC2Filter("private-ip-address", addresses)]) {
            for address in addresses {
                let carried = eips.filter { $0.privateIP == address }.map(\.publicIP)
                if carried.isEmpty {
                    logger.info("pool address \(address) carries no Elastic IP")
                } else {
                    logger.notice("pool address \(address) carries Elastic IP \(carried.joined(separator: ", "))")
                }
            }
        }
        guard let imds, !identity.mac.isEmpty else { return }
        var unseen = addresses
        for _ in 0..<50 {
            if let ips = try? imds.get("network/interfaces/macs/\(identity.mac)/local-ipv4s") {
                let shown = Set(ips.split(whereSeparator: \.isNewline).map(String.init))
                unseen = addresses.filter { !shown.contains($0) }
                if unseen.isEmpty { return }
            }
            clock.sleep(milliseconds: 200)
        }
        logger.warning("pool address(es) \(unseen.joined(separator: ", ")): the instance metadata does not show them on \(identity.mac) after 10s")
    }
}

/// A managed route: its route table and destination.
public struct RouteKey: Hashable, Sendable, CustomStringConvertible {
    public var table: String
    public var cidr: String
    public init(table: String, cidr: String) {
        self.table = table
        self.cidr = cidr
    }
    public var description: String { "\(table) \(cidr)" }
}

/// A remote health check: the template it is made from and the address of the route holder it probes.
struct RemoteCheckKey: Hashable, Sendable, CustomStringConvertible {
    var template: String
    var address: String
    var description: String { "\(template)@\(address)" }
}

/// A flag shared between threads (the claim the route manager is making).
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
    /// Reads and clears.
    func take() -> Bool { value.exchange(false, ordering: .relaxed) }
}
