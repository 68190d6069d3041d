@testable import Failover
import AWS
import Health
import Testing

/// AWSnycast's decision rules (aws/route_table_manager.go: ManageInstanceRoute, ReplaceInstanceRoute) plus tunnat's
/// first-verdict rule and hold-down, one row each.
@Suite struct RouteDecisionTests {
    enum Expect: Sendable, CustomStringConvertible {
        case keep, create, replace, delete, wait
        var description: String { "\(self)" }
        func matches(_ d: RouteDecision) -> Bool {
            switch (self, d) {
            case (.keep, .keep), (.create, .create), (.replace, .replace), (.delete, .delete), (.wait, .wait): true
            default: false
            }
        }
    }

    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var route: Route?
        var ours = false
        var healthy: Bool? = true
        var ifUnhealthy = false
        var neverDelete = false
        var owner: OwnerHealth = .healthy("ok")
        var sinceLastChange: Double?
        var expect: Expect
        var ownerAsked = false
        var testDescription: String { name }
    }

    static let active = Route(destination: "0.0.0.0/0", networkInterfaceID: "eni-other", state: "active")
    static let blackhole = Route(destination: "0.0.0.0/0", networkInterfaceID: "eni-other", state: "blackhole")
    static let mine = Route(destination: "0.0.0.0/0", networkInterfaceID: "eni-me", state: "active")

    static let rows: [Row] = [
        Row(name: "no route, healthy: create", route: nil, expect: .create),
        Row(name: "no route, unhealthy: nothing", route: nil, healthy: false, expect: .keep),
        Row(name: "no route, no verdict yet: wait", route: nil, healthy: nil, expect: .wait),
        Row(name: "ours, healthy: keep", route: mine, ours: true, expect: .keep),
        Row(name: "ours, unhealthy: delete", route: mine, ours: true, healthy: false, expect: .delete),
        Row(name: "ours, unhealthy, never_delete: keep", route: mine, ours: true, healthy: false, neverDelete: true, expect: .keep),
        Row(name: "ours, no verdict yet: wait (not delete)", route: mine, ours: true, healthy: nil, expect: .wait),
        Row(name: "theirs, healthy, no if_unhealthy: replace", route: active, expect: .replace),
        Row(name: "theirs, we are unhealthy: keep", route: active, healthy: false, expect: .keep),
        Row(name: "theirs, if_unhealthy, holder healthy: keep", route: active, ifUnhealthy: true, expect: .keep, ownerAsked: true),
        Row(name: "theirs, if_unhealthy, holder unhealthy: replace", route: active, ifUnhealthy: true,
            owner: .unhealthy("impaired"), expect: .replace, ownerAsked: true),
        Row(name: "theirs, if_unhealthy, holder unknown: keep", route: active, ifUnhealthy: true,
            owner: .unknown("no verdict"), expect: .keep, ownerAsked: true),
        Row(name: "theirs, if_unhealthy, blackhole: replace without asking", route: blackhole, ifUnhealthy: true,
            owner: .healthy("ok"), expect: .replace),
        Row(name: "theirs, if_unhealthy, we are unhealthy: keep without asking", route: blackhole, healthy: false,
            ifUnhealthy: true, expect: .keep),
        Row(name: "hold-down: a due change waits", route: mine, ours: true, healthy: false, sinceLastChange: 3, expect: .wait),
        Row(name: "hold-down over: the change happens", route: mine, ours: true, healthy: false, sinceLastChange: 31, expect: .delete),
        Row(name: "hold-down does not hold a keep", route: mine, ours: true, sinceLastChange: 1, expect: .keep),
    ]

    @Test(arguments: rows) func awsnycastDecisionRules(_ row: Row) {
        var spec = ManagedRoute(cidr: "0.0.0.0/0")
        spec.ifUnhealthy = row.ifUnhealthy
        spec.neverDelete = row.neverDelete
        let situation = RouteSituation(current: row.route, isOurs: row.ours, localHealthy: row.healthy, localName: "hc",
                                       spec: spec, secondsSinceOurLastChange: row.sinceLastChange, holdDown: 30)
        var asked = false
        let decision = RouteDecision.decide(situation) {
            asked = true
            return row.owner
        }
        #expect(row.expect.matches(decision), "\(decision)")
        #expect(asked == row.ownerAsked, "EC2 is asked about the holder only under if_unhealthy for an active route")
    }
}

/// With replication the role decides: the active takes every route, a standby none, and the active never deletes.
@Suite struct RouteDecisionRoleTests {
    func situation(_ role: RouteRole, current: Route?, ours: Bool, healthy: Bool? = true, claiming: Bool = true)
        -> RouteSituation {
        var spec = ManagedRoute(cidr: "0.0.0.0/0")
        spec.ifUnhealthy = true
        var s = RouteSituation(current: current, isOurs: ours, localHealthy: healthy, localName: "nat", spec: spec,
                               secondsSinceOurLastChange: 1, holdDown: 30)
        s.role = role
        s.claiming = claiming
        return s
    }
    let held = Route(destination: "0.0.0.0/0", networkInterfaceID: "eni-other", state: "active")

    @Test func theActiveTakesRoutesRegardlessOfHoldDownAndOwnerHealth() {
        let d = RouteDecision.decide(situation(.active, current: held, ours: false)) { .healthy("running") }
        #expect(d == .replace("held by eni-other, and this node is the active NAT"))
        #expect(RouteDecision.decide(situation(.active, current: nil, ours: false)) { .healthy("") } == .create)
        #expect(!RouteDecision.decide(situation(.active, current: held, ours: true, healthy: false)) { .healthy("") }.changes,
                "an active never deletes its route")
    }

    @Test func anActiveDoesNotTakeBackARouteTakenAfterItsTakeover() {
        let d = RouteDecision.decide(situation(.active, current: held, ours: false, claiming: false)) { .unhealthy("") }
        #expect(!d.changes, "\(d)")
        #expect(RouteDecision.decide(situation(.active, current: nil, ours: false, claiming: false)) { .healthy("") }
                == .create, "a route that is gone is made again")
    }

    @Test func aStandbyOrAStartingNodeNeverTouchesARoute() {
        for role in [RouteRole.standby, .starting] {
            for (current, ours) in [(Optional(held), false), (nil, false), (Optional(held), true)] {
                let d = RouteDecision.decide(situation(role, current: current, ours: ours)) { .unhealthy("stopped") }
                #expect(!d.changes, "\(role) \(String(describing: current)) -> \(d)")
            }
        }
    }
}
