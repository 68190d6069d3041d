import NatTable
import PacketKit
import Testing
import TunnatKit

@Suite struct PolicyRoutingTests {
    static let nat = NatConfiguration(privatePrefixes: [IPv4Prefix("10.0.0.0/8")!, IPv4Prefix("172.16.0.0/12")!],
                                      poolAddresses: [IPv4Address(198, 18, 0, 1)], seed: 1)

    /// The table before the rules that lead to it; one rule per (prefix, interface), each with `iif`; only the
    /// routes through the device are of the kind every stop removes.
    @Test func stepsPutTheTableFirstAndARulePerPrefixAndInterface() {
        let routing = PolicyRouting(device: "tun0", routing: TunConfiguration.Routing(), nat: Self.nat,
                                    interfaces: ["lan1", "lan2"])
        let steps = routing.steps
        #expect(steps.map { $0.install.joined(separator: " ") } == [
            "route add default dev tun0 table 100",
            "route add blackhole default table 100 metric 4294967295",
            "route add throw 10.0.0.0/8 table 100",
            "route add throw 172.16.0.0/12 table 100",
            "rule add from 10.0.0.0/8 iif lan1 lookup 100 pref 100",
            "rule add from 10.0.0.0/8 iif lan2 lookup 100 pref 100",
            "rule add from 172.16.0.0/12 iif lan1 lookup 100 pref 100",
            "rule add from 172.16.0.0/12 iif lan2 lookup 100 pref 100",
            "rule add from 10.0.0.0/8 iif lo lookup 254 pref 101",
            "rule add from 10.0.0.0/8 blackhole pref 102",
            "rule add from 172.16.0.0/12 iif lo lookup 254 pref 101",
            "rule add from 172.16.0.0/12 blackhole pref 102",
            "route add 198.18.0.1/32 dev tun0",
        ])
        #expect(steps.allSatisfy { $0.remove == [$0.install[0], "del"] + $0.install.dropFirst(2) })
        #expect(steps.filter { $0.kind == .throughDevice }.map { $0.install.joined(separator: " ") }
            == ["route add default dev tun0 table 100", "route add 198.18.0.1/32 dev tun0"])
        #expect(steps[4].rule == PolicyRouting.ShownRule(priority: 100, selector: ["from", "10.0.0.0/8", "iif", "lan1", "lookup", "100"]))
        #expect(steps.filter { $0.rule != nil }.count == 8)
    }

    static let ruleListing = """
        0:\tfrom all lookup 255
        99:\tfrom all iif lo lookup 254
        100:\tfrom 10.0.0.0/8 iif lan1 lookup 100
        100:\tfrom 10.0.0.0/8 iif eth9 [detached] lookup 100
        100:\tfrom 172.16.0.0/12 lookup 100
        100:\tfrom 10.0.0.0/8 fwmark 0x1 lookup 100
        100:\tfrom 192.168.0.0/16 iif lan1 lookup 100
        100:\tfrom 10.0.0.0/8 iif lan1 lookup 101
        101:\tfrom 10.0.0.0/8 iif lo lookup 254
        102:\tfrom 10.0.0.0/8 6
        102:\tfrom 192.168.0.0/16 6
        200:\tfrom 10.0.0.0/8 iif lan1 lookup 100
        32766:\tfrom all lookup 254
        32767:\tfrom all lookup 253

        """

    /// Installing looks for a rule before adding it, as `ip -N -o rule show` lists it; a detached interface is the
    /// same rule.
    @Test func ruleListingParses() {
        let rules = PolicyRouting.rules(shownBy: Self.ruleListing)
        #expect(rules.count == 14)
        #expect(rules[0] == PolicyRouting.ShownRule(priority: 0, selector: ["from", "all", "lookup", "255"]))
        #expect(rules[2] == PolicyRouting.ShownRule(priority: 100, selector: ["from", "10.0.0.0/8", "iif", "lan1", "lookup", "100"]))
        #expect(rules[3].selector == ["from", "10.0.0.0/8", "iif", "eth9", "lookup", "100"])
        let routing = PolicyRouting(device: "tun0", routing: TunConfiguration.Routing(), nat: Self.nat, interfaces: ["lan1"])
        #expect(rules.contains(routing.steps.compactMap(\.rule)[0]))
        #expect(PolicyRouting.rules(shownBy: "").isEmpty)
    }

    /// `tunnat routing remove` takes tunnat's rules whatever interface they name (or none, as older runs left them),
    /// and nothing else: another priority, table, source or selector is someone else's.
    @Test func leftoverRulesAreTunnatsShapeOnly() {
        let rules = PolicyRouting.rules(shownBy: Self.ruleListing)
        let removals = PolicyRouting.leftoverRules(in: rules, routing: TunConfiguration.Routing(), nat: Self.nat)
        #expect(removals.map { $0.joined(separator: " ") } == [
            "rule del from 10.0.0.0/8 iif lan1 lookup 100 pref 100",
            "rule del from 10.0.0.0/8 iif eth9 lookup 100 pref 100",
            "rule del from 172.16.0.0/12 lookup 100 pref 100",
            "rule del from 10.0.0.0/8 iif lo lookup 254 pref 101",
            "rule del from 10.0.0.0/8 blackhole pref 102",
        ])
    }

    static let mainTable = """
        default via 198.18.1.254 dev wan\u{20}
        10.0.1.0/24 dev lan1 proto kernel scope link src 10.0.1.254\u{20}
        10.0.2.0/24 dev lan2 proto kernel scope link src 10.0.2.254 linkdown\u{20}
        10.9.0.0/16 \\\tnexthop via 10.0.1.2 dev lan1 weight 1 \\\tnexthop via 10.0.2.3 dev lan3 weight 1\u{20}
        unicast 10.8.0.0/16 via 10.0.1.9 dev lan1\u{20}
        blackhole 10.7.0.0/16\u{20}
        unreachable 10.6.0.0/16\u{20}
        198.18.0.1 dev tun0 scope link\u{20}
        198.18.1.0/24 dev wan proto kernel scope link src 198.18.1.1\u{20}

        """

    @Test func mainTableListingParses() {
        let routes = PolicyRouting.routes(shownBy: Self.mainTable)
        #expect(routes.map { "\($0.destination) \($0.devices.joined(separator: ","))" } == [
            "0.0.0.0/0 wan", "10.0.1.0/24 lan1", "10.0.2.0/24 lan2", "10.9.0.0/16 lan1,lan3", "10.8.0.0/16 lan1",
            "198.18.0.1/32 tun0", "198.18.1.0/24 wan",
        ])
    }

    /// The private side is where the main table routes destinations inside the private prefixes: never the default
    /// route's interface for that alone, never lo or the TUN.
    @Test(arguments: [
        (mainTable, ["10.0.0.0/8"], ["lan1", "lan2", "lan3"]),
        (mainTable, ["10.0.1.0/24"], ["lan1"]),
        (mainTable, ["172.16.0.0/12"], []),
        // A route wider than the prefix is not inside it: the default route never makes wan private.
        ("default via 198.18.1.254 dev wan\n10.0.0.0/8 via 198.18.1.9 dev wan\n", ["10.0.1.0/24"], []),
        // One interface for both sides (a one-ENI NAT instance): found, and it carries the default route too.
        ("default via 10.0.0.1 dev eth0 proto dhcp src 10.0.0.5 metric 100\n10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.5\n",
         ["10.0.0.0/16"], ["eth0"]),
        ("10.1.0.0/16 dev lo scope link\n10.2.0.0/16 dev tun0 scope link\n", ["10.0.0.0/8"], []),
    ])
    func privateInterfacesComeFromRoutesIntoThePrivatePrefixes(table: String, prefixes: [String], expected: [String]) {
        let found = PolicyRouting.privateInterfaces(routes: PolicyRouting.routes(shownBy: table),
                                                    prefixes: prefixes.map { IPv4Prefix($0)! }, excluding: "tun0")
        #expect(found == expected)
    }
}
