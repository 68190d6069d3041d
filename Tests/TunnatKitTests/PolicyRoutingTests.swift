import Foundation
import NatTable
import PacketKit
import SystemCalls
import Testing
@testable import TunnatKit

@Suite struct PolicyRoutingTests {
    static let nat = NatConfiguration(privatePrefixes: [IPv4Prefix("10.0.0.0/8")!, IPv4Prefix("172.16.0.0/12")!],
                                      poolAddresses: [IPv4Address(198, 18, 0, 1)], seed: 1)

    static func prefix(_ text: String) -> RouteNetlink.Prefix { RouteNetlink.Prefix(IPv4Prefix(text)!) }

    static func rule(_ priority: UInt32, _ source: String?, iif: String? = nil, _ action: RouteNetlink.Rule.Action,
                     others: Bool = false) -> RouteNetlink.Rule {
        RouteNetlink.Rule(priority: priority, source: source.map(prefix), inputInterface: iif, action: action,
                          hasOtherSelectors: others)
    }

    /// The table before the rules that lead to it; one rule per (prefix, interface), each with `iif`; only the
    /// routes through the device are of the kind every stop removes, and they name the device by its index.
    @Test func stepsPutTheTableFirstAndARulePerPrefixAndInterface() {
        let routing = PolicyRouting(device: "tun0", routing: TunConfiguration.Routing(), nat: Self.nat,
                                    interfaces: ["lan1", "lan2"])
        let steps = routing.steps(deviceIndex: 7)
        #expect(steps.map(\.added) == [
            "ip route add default dev tun0 table 100",
            "ip route add blackhole default table 100 metric 4294967295",
            "ip route add throw 10.0.0.0/8 table 100",
            "ip route add throw 172.16.0.0/12 table 100",
            "ip rule add from 10.0.0.0/8 iif lan1 lookup 100 pref 100",
            "ip rule add from 10.0.0.0/8 iif lan2 lookup 100 pref 100",
            "ip rule add from 172.16.0.0/12 iif lan1 lookup 100 pref 100",
            "ip rule add from 172.16.0.0/12 iif lan2 lookup 100 pref 100",
            "ip rule add from 10.0.0.0/8 iif lo lookup main pref 101",
            "ip rule add from 10.0.0.0/8 blackhole pref 102",
            "ip rule add from 172.16.0.0/12 iif lo lookup main pref 101",
            "ip rule add from 172.16.0.0/12 blackhole pref 102",
            "ip rule add from all nop pref 106",
            "ip rule add from all iif lo goto 106 pref 103",
            "ip rule add from all iif tun0 goto 106 pref 103",
            "ip rule add from all to 198.18.0.1/32 lookup 100 pref 104",
            "ip rule add from all blackhole pref 105",
            "ip route add 198.18.0.1/32 dev tun0",
        ])
        #expect(steps.allSatisfy { $0.removed == $0.added.replacingOccurrences(of: " add ", with: " del ") })
        #expect(steps.filter { $0.kind == .throughDevice }.map(\.entry) == [
            .route(RouteNetlink.TableRoute(type: .unicast, table: 100, destination: Self.prefix("0.0.0.0/0"), interfaces: [7])),
            .route(RouteNetlink.TableRoute(type: .unicast, table: 254, destination: Self.prefix("198.18.0.1/32"), interfaces: [7])),
        ])
        #expect(steps[1].entry == .route(RouteNetlink.TableRoute(type: .blackhole, table: 100,
                                                                 destination: Self.prefix("0.0.0.0/0"), metric: .max)))
        #expect(steps[4].entry == .rule(Self.rule(100, "10.0.0.0/8", iif: "lan1", .lookup(table: 100))))
        #expect(steps[9].entry == .rule(Self.rule(102, "10.0.0.0/8", .blackhole)))
    }

    /// A table above 255 and another priority reach the rules and routes as they are.
    @Test func tableAndPriorityComeFromTheConfiguration() {
        var settings = TunConfiguration.Routing()
        settings.table = 1000
        settings.priority = 50
        let nat = NatConfiguration(privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: [], seed: 1)
        let steps = PolicyRouting(device: "tun9", routing: settings, nat: nat, interfaces: ["eth1"]).steps(deviceIndex: 3)
        #expect(steps.map(\.added) == [
            "ip route add default dev tun9 table 1000",
            "ip route add blackhole default table 1000 metric 4294967295",
            "ip route add throw 10.0.0.0/8 table 1000",
            "ip rule add from 10.0.0.0/8 iif eth1 lookup 1000 pref 50",
            "ip rule add from 10.0.0.0/8 iif lo lookup main pref 51",
            "ip rule add from 10.0.0.0/8 blackhole pref 52",
            "ip rule add from all nop pref 56",
            "ip rule add from all iif lo goto 56 pref 53",
            "ip rule add from all iif tun9 goto 56 pref 53",
            "ip rule add from all blackhole pref 55",
        ])
        // fence_forwarding: false leaves the forwarding to the kernel, as before.
        settings.fenceForwarding = false
        let unfenced = PolicyRouting(device: "tun9", routing: settings, nat: nat, interfaces: ["eth1"]).steps(deviceIndex: 3)
        #expect(unfenced.count == 6 && unfenced.allSatisfy { !$0.added.contains("from all") })
    }

    /// `tunnat routing remove` takes tunnat's rules whatever interface they name (or none, as older runs left them),
    /// and nothing else: another priority, table, source or selector is someone else's.
    @Test func leftoverRulesAreTunnatsShapeOnly() {
        let listed = [
            Self.rule(0, nil, .lookup(table: 255)),
            Self.rule(99, nil, iif: "lo", .lookup(table: 254)),
            Self.rule(100, "10.0.0.0/8", iif: "lan1", .lookup(table: 100)),
            Self.rule(100, "10.0.0.0/8", iif: "eth9", .lookup(table: 100)),  // listed [detached]: eth9 is gone
            Self.rule(100, "172.16.0.0/12", .lookup(table: 100)),
            Self.rule(100, "10.0.0.0/8", .lookup(table: 100), others: true),  // from 10.0.0.0/8 fwmark 0x1 lookup 100
            Self.rule(100, "192.168.0.0/16", iif: "lan1", .lookup(table: 100)),
            Self.rule(100, "10.0.0.0/8", iif: "lan1", .lookup(table: 101)),
            Self.rule(100, "10.0.0.0/8", iif: "lan1", .blackhole),
            Self.rule(101, "10.0.0.0/8", iif: "lo", .lookup(table: 254)),
            Self.rule(101, "10.0.0.0/8", iif: "lan1", .lookup(table: 254)),
            Self.rule(102, "10.0.0.0/8", .blackhole),
            Self.rule(102, "192.168.0.0/16", .blackhole),
            Self.rule(200, "10.0.0.0/8", iif: "lan1", .lookup(table: 100)),
            Self.rule(103, nil, iif: "lo", .goto(priority: 106)),
            Self.rule(103, nil, iif: "tunold", .goto(priority: 106)),  // the device an earlier run had
            Self.rule(103, nil, iif: "lo", .goto(priority: 107)),
            RouteNetlink.Rule(priority: 104, source: nil, destination: Self.prefix("198.18.0.1/32"), inputInterface: nil,
                              action: .lookup(table: 100)),
            // A pool address an earlier configuration had: tunnat's shape, so it goes too.
            RouteNetlink.Rule(priority: 104, source: nil, destination: Self.prefix("198.18.0.9/32"), inputInterface: nil,
                              action: .lookup(table: 100)),
            RouteNetlink.Rule(priority: 104, source: nil, destination: Self.prefix("198.18.0.0/24"), inputInterface: nil,
                              action: .lookup(table: 100)),  // not a /32: someone else's
            Self.rule(105, nil, .blackhole, others: true),  // blackhole fwmark 0x1: someone else's
            Self.rule(105, nil, .blackhole),
            Self.rule(106, nil, .nop),
            Self.rule(32766, nil, .lookup(table: 254)),
            Self.rule(32767, nil, .lookup(table: 253)),
        ]
        let removals = PolicyRouting.leftoverRules(in: listed, routing: TunConfiguration.Routing(), nat: Self.nat)
        // The fence's blackhole first: the host's own traffic never meets it without the rules that take it past.
        #expect(removals.map { "ip rule del \(PolicyRouting.arguments($0))" } == [
            "ip rule del from all blackhole pref 105",
            "ip rule del from 10.0.0.0/8 iif lan1 lookup 100 pref 100",
            "ip rule del from 10.0.0.0/8 iif eth9 lookup 100 pref 100",
            "ip rule del from 172.16.0.0/12 lookup 100 pref 100",
            "ip rule del from 10.0.0.0/8 iif lo lookup main pref 101",
            "ip rule del from 10.0.0.0/8 blackhole pref 102",
            "ip rule del from all iif lo goto 106 pref 103",
            "ip rule del from all iif tunold goto 106 pref 103",
            "ip rule del from all to 198.18.0.1/32 lookup 100 pref 104",
            "ip rule del from all to 198.18.0.9/32 lookup 100 pref 104",
            "ip rule del from all nop pref 106",
        ])
    }

    /// Installing looks for each rule in the listing before adding it: a step's rule is what the kernel lists
    /// for it.
    @Test func aStepsRuleIsFoundInAListingOfIt() {
        let routing = PolicyRouting(device: "tun0", routing: TunConfiguration.Routing(), nat: Self.nat, interfaces: ["lan1"])
        let listed = [Self.rule(100, "10.0.0.0/8", iif: "lan1", .lookup(table: 100)),
                      Self.rule(101, "10.0.0.0/8", iif: "lo", .lookup(table: 254)),
                      Self.rule(102, "10.0.0.0/8", .blackhole)]
        let found = routing.steps(deviceIndex: 7).filter {
            if case .rule(let rule) = $0.entry { listed.contains(rule) } else { false }
        }
        #expect(found.map(\.added) == [
            "ip rule add from 10.0.0.0/8 iif lan1 lookup 100 pref 100",
            "ip rule add from 10.0.0.0/8 iif lo lookup main pref 101",
            "ip rule add from 10.0.0.0/8 blackhole pref 102",
        ])
    }

    static let mainTable: [(String, [String])] = [
        ("0.0.0.0/0", ["wan"]),
        ("10.0.1.0/24", ["lan1"]),
        ("10.0.2.0/24", ["lan2"]),
        ("10.9.0.0/16", ["lan1", "lan3"]),  // multipath
        ("198.18.0.1/32", ["tun0"]),
        ("198.18.1.0/24", ["wan"]),
    ]

    /// The private side is where the main table routes destinations inside the private prefixes: never the default
    /// route's interface for that alone, never lo or the TUN.
    @Test(arguments: [
        (mainTable, ["10.0.0.0/8"], ["lan1", "lan2", "lan3"]),
        (mainTable, ["10.0.1.0/24"], ["lan1"]),
        (mainTable, ["172.16.0.0/12"], []),
        // A route wider than the prefix is not inside it: the default route never makes wan private.
        ([("0.0.0.0/0", ["wan"]), ("10.0.0.0/8", ["wan"])], ["10.0.1.0/24"], []),
        // One interface for both sides (a one-ENI NAT instance): found, and it carries the default route too.
        ([("0.0.0.0/0", ["eth0"]), ("10.0.0.0/24", ["eth0"])], ["10.0.0.0/16"], ["eth0"]),
        ([("10.1.0.0/16", ["lo"]), ("10.2.0.0/16", ["tun0"])], ["10.0.0.0/8"], []),
    ])
    func privateInterfacesComeFromRoutesIntoThePrivatePrefixes(table: [(String, [String])],
                                                               prefixes: [String], expected: [String]) {
        let routes = table.map { (destination: IPv4Prefix($0.0)!, devices: $0.1) }
        let found = PolicyRouting.privateInterfaces(routes: routes, prefixes: prefixes.map { IPv4Prefix($0)! }, excluding: "tun0")
        #expect(found == expected)
    }

    /// A listed route becomes its destination and the names of its devices, once each; routes through no device,
    /// and devices that have gone, are left out.
    @Test func listedRoutesBecomeDestinationsAndDeviceNames() {
        let lo = Int32(Syscall.interfaceIndex("lo"))
        let routes = [
            RouteNetlink.TableRoute(type: .unicast, table: 254, destination: Self.prefix("10.9.0.0/16"), interfaces: [lo, lo]),
            RouteNetlink.TableRoute(type: .unicast, table: 254, destination: Self.prefix("10.8.0.0/16"), interfaces: [Int32.max]),
            RouteNetlink.TableRoute(type: .blackhole, table: 254, destination: Self.prefix("10.7.0.0/16")),
            RouteNetlink.TableRoute(type: .throw, table: 254, destination: Self.prefix("10.6.0.0/16"), interfaces: [lo]),
            RouteNetlink.TableRoute(type: .unicast, table: 254, destination: Self.prefix("0.0.0.0/0"), interfaces: [lo]),
        ]
        #expect(PolicyRouting.throughDevices(routes).map { "\($0.destination) \($0.devices.joined(separator: ","))" }
            == ["10.9.0.0/16 lo", "0.0.0.0/0 lo"])
    }
}
