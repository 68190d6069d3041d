import Glibc
@testable import Netlink
import Testing

/// Rules and routes as rtnetlink carries them: the requests byte for byte as iproute2 writes them (captured with
/// `strace -e write=3 ip ...`), and listings read from what the kernel sent (captured from its dumps). No socket, no
/// privilege: the real kernel's side is SystemCallsTests' RouteNetlinkTablesTests.
@Suite struct TablesTests {
    static let lan1 = Netlink.Rule(priority: 100, source: prefix("10.0.0.0", 8), inputInterface: "lan1",
                                        action: .lookup(table: 100))
    static let hostsOwn = Netlink.Rule(priority: 101, source: prefix("10.0.0.0", 8), inputInterface: "lo",
                                            action: .lookup(table: 254))
    static let spoofed = Netlink.Rule(priority: 102, source: prefix("10.0.0.0", 8), inputInterface: nil,
                                           action: .blackhole)
    static let bigTable = Netlink.Rule(priority: 100, source: prefix("172.16.0.0", 12), inputInterface: "lan2",
                                            action: .lookup(table: 300))

    static let throughLo = Netlink.TableRoute(type: .unicast, table: 100, destination: prefix("0.0.0.0", 0), interfaces: [1])
    static let fence = Netlink.TableRoute(type: .blackhole, table: 100, destination: prefix("0.0.0.0", 0), metric: .max)
    static let throwPrivate = Netlink.TableRoute(type: .throw, table: 100, destination: prefix("10.0.0.0", 8))
    static let pool = Netlink.TableRoute(type: .unicast, table: 254, destination: prefix("198.18.0.1", 32), interfaces: [1])

    @Test(arguments: [
        // ip rule add from 10.0.0.0/8 iif lan1 lookup 100 pref 100
        (Netlink.Entry.rule(lan1), "0200 0800 6400 0001 0000 0000  0800 0200 0a00 0000  0900 0300 6c61 6e31 0000 0000  0800 0600 6400 0000"),
        // ip rule add from 10.0.0.0/8 iif lo lookup main pref 101
        (.rule(hostsOwn), "0200 0800 fe00 0001 0000 0000  0800 0200 0a00 0000  0700 0300 6c6f 0000  0800 0600 6500 0000"),
        // ip rule add from 10.0.0.0/8 blackhole pref 102
        (.rule(spoofed), "0200 0800 0000 0006 0000 0000  0800 0200 0a00 0000  0800 0600 6600 0000"),
        // ip rule add from 172.16.0.0/12 iif lan2 lookup 300 pref 100: a table over 255 goes in FRA_TABLE
        (.rule(bigTable), "0200 0c00 0000 0001 0000 0000  0800 0200 ac10 0000  0900 0300 6c61 6e32 0000 0000  0800 0f00 2c01 0000  0800 0600 6400 0000"),
        // ip rule add to 198.18.0.1/32 goto 106 pref 104
        (.rule(Netlink.Rule(priority: 104, source: nil, destination: prefix("198.18.0.1", 32), inputInterface: nil,
                            action: .goto(priority: 106))),
         "0220 0000 0000 0002 0000 0000  0800 0100 c612 0001  0800 0400 6a00 0000  0800 0600 6800 0000"),
        // ip rule add nop pref 106
        (.rule(Netlink.Rule(priority: 106, source: nil, inputInterface: nil, action: .nop)),
         "0200 0000 0000 0003 0000 0000  0800 0600 6a00 0000"),
        // ip route add default dev lo table 100
        (.route(throughLo), "0200 0000 6403 fd01 0000 0000  0800 0400 0100 0000"),
        // ip route add blackhole default table 100 metric 4294967295
        (.route(fence), "0200 0000 6403 0006 0000 0000  0800 0600 ffff ffff"),
        // ip route add throw 10.0.0.0/8 table 100
        (.route(throwPrivate), "0208 0000 6403 0009 0000 0000  0800 0100 0a00 0000"),
        // ip route add 198.18.0.1/32 dev lo
        (.route(pool), "0220 0000 fe03 fd01 0000 0000  0800 0100 c612 0001  0800 0400 0100 0000"),
    ])
    func additionsAreWrittenAsIproute2WritesThem(entry: Netlink.Entry, hex: String) {
        let expected = Self.bytes(hex)
        let written = Self.written { b in
            switch entry {
            case .rule(let rule): Netlink.write(rule, into: b)
            case .route(let route): Netlink.write(route, adding: true, into: b)
            }
        }
        #expect(written == expected)
    }

    /// A deletion names the route as `ip route del` does: any protocol, any scope (RT_SCOPE_NOWHERE).
    @Test func aDeletionMatchesAnyProtocolAndScope() {
        let written = Self.written { Netlink.write(Self.throughLo, adding: false, into: $0) }
        #expect(written == Self.bytes("0200 0000 6400 ff01 0000 0000  0800 0400 0100 0000"))
    }

    @Test(arguments: [
        // 100: from 10.0.0.0/8 fwmark 0x1 lookup 100: a selector the type does not name
        ("0200 0800 6400 0001 0000 0000  0800 0f00 6400 0000  0800 0e00 ffff ffff  0500 1500 0000 0000  0800 0600 6400 0000  0800 0a00 0100 0000  0800 1000 ffff ffff  0800 0200 0a00 0000",
         Netlink.Rule(priority: 100, source: prefix("10.0.0.0", 8), inputInterface: nil, action: .lookup(table: 100), hasOtherSelectors: true)),
        // 100: from 10.0.0.0/8 iif eth9 [detached] lookup 100: the same rule as with eth9 present
        ("0200 0800 6400 0001 0800 0000  0800 0f00 6400 0000  0800 0e00 ffff ffff  0500 1500 0000 0000  0900 0300 6574 6839 0000 0000  0800 0600 6400 0000  0800 0200 0a00 0000",
         Netlink.Rule(priority: 100, source: prefix("10.0.0.0", 8), inputInterface: "eth9", action: .lookup(table: 100))),
        // 0: from all lookup local (a priority of 0 has no FRA_PRIORITY)
        ("0200 0000 ff00 0001 0000 0000  0800 0f00 ff00 0000  0800 0e00 ffff ffff  0500 1500 0200 0000",
         Netlink.Rule(priority: 0, source: nil, inputInterface: nil, action: .lookup(table: 255))),
        // 100: from 10.0.0.0/8 lookup 100 suppress_prefixlength 0
        ("0200 0800 6400 0001 0000 0000  0800 0f00 6400 0000  0800 0e00 0000 0000  0800 0600 6400 0000  0800 0200 0a00 0000",
         Netlink.Rule(priority: 100, source: prefix("10.0.0.0", 8), inputInterface: nil, action: .lookup(table: 100), hasOtherSelectors: true)),
        // 100: not from 10.0.0.0/8 lookup 100 (FIB_RULE_INVERT)
        ("0200 0800 6400 0001 0200 0000  0800 0f00 6400 0000  0800 0600 6400 0000  0800 0200 0a00 0000",
         Netlink.Rule(priority: 100, source: prefix("10.0.0.0", 8), inputInterface: nil, action: .lookup(table: 100), hasOtherSelectors: true)),
        // 104: from all to 198.18.0.1 goto 106
        ("0220 0000 0000 0002 0000 0000  0800 0100 c612 0001  0800 0400 6a00 0000  0800 0600 6800 0000",
         Netlink.Rule(priority: 104, source: nil, destination: prefix("198.18.0.1", 32), inputInterface: nil,
                      action: .goto(priority: 106))),
        // 106: from all nop
        ("0200 0000 0000 0003 0000 0000  0800 0600 6a00 0000",
         Netlink.Rule(priority: 106, source: nil, inputInterface: nil, action: .nop)),
        // 100: from 10.0.0.0/8 unreachable
        ("0200 0800 0000 0007 0000 0000  0800 0600 6400 0000  0800 0200 0a00 0000",
         Netlink.Rule(priority: 100, source: prefix("10.0.0.0", 8), inputInterface: nil, action: .other(7))),
    ])
    func listedRulesParse(hex: String, expected: Netlink.Rule) {
        #expect(Self.bytes(hex).withUnsafeBytes(Netlink.rule(parsing:)) == expected)
    }

    @Test(arguments: [
        // 10.9.0.0/16 nexthop via 10.0.1.2 dev if3 weight 1 nexthop via 10.0.3.3 dev if5 weight 1
        ("0210 0000 fe03 0001 0000 0000  0800 0f00 fe00 0000  0800 0100 0a09 0000  2400 0900 1000 0000 0300 0000 0800 0500 0a00 0102 1000 0000 0500 0000 0800 0500 0a00 0303",
         Netlink.TableRoute(type: .unicast, table: 254, destination: prefix("10.9.0.0", 16), interfaces: [3, 5])),
        // 10.8.0.0/16 via 10.0.1.9 dev if3
        ("0210 0000 fe03 0001 0000 0000  0800 0f00 fe00 0000  0800 0100 0a08 0000  0800 0500 0a00 0109  0800 0400 0300 0000",
         Netlink.TableRoute(type: .unicast, table: 254, destination: prefix("10.8.0.0", 16), interfaces: [3])),
        // unreachable 10.6.0.0/16
        ("0210 0000 fe03 0007 0000 0000  0800 0f00 fe00 0000  0800 0100 0a06 0000",
         Netlink.TableRoute(type: .unreachable, table: 254, destination: prefix("10.6.0.0", 16))),
        // blackhole default table 1000 metric 4294967295: the header says RT_TABLE_COMPAT (252), RTA_TABLE the rest
        ("0200 0000 fc03 0006 0000 0000  0800 0f00 e803 0000  0800 0600 ffff ffff",
         Netlink.TableRoute(type: .blackhole, table: 1000, destination: prefix("0.0.0.0", 0), metric: .max)),
    ])
    func listedRoutesParse(hex: String, expected: Netlink.TableRoute) {
        #expect(Self.bytes(hex).withUnsafeBytes(Netlink.route(parsing:)) == expected)
    }

    /// A cached exception (RTM_F_CLONED), another family and a payload cut short are no routes or rules of ours.
    @Test func whatIsNotARouteOrRuleIsLeftOut() {
        let cloned = Self.bytes("0220 0000 fe03 0001 0002 0000  0800 0100 c612 0001")
        #expect(cloned.withUnsafeBytes(Netlink.route(parsing:)) == nil)
        let bridge = Self.bytes("0700 0000 fe03 0001 0000 0000")
        #expect(bridge.withUnsafeBytes(Netlink.route(parsing:)) == nil)
        #expect(bridge.withUnsafeBytes(Netlink.rule(parsing:)) == nil)
        #expect(Self.bytes("0200 0800 6400").withUnsafeBytes(Netlink.rule(parsing:)) == nil)
        #expect(Self.bytes("0221 0000 fe03 0001 0000 0000").withUnsafeBytes(Netlink.route(parsing:)) == nil)
    }

    /// IPv6 (NAT64's prefix route and rule): `64:ff9b::/96 dev 3 table 100` and `to 64:ff9b::/96 lookup 100
    /// pref 100` written as iproute2 writes them, and read back.
    @Test func ipv6RoutesAndRulesRoundTrip() {
        let prefix = Netlink.Prefix(high: 0x0064_ff9b_0000_0000, low: 0, length: 96)
        let route = Netlink.TableRoute(type: .unicast, table: 100, destination: prefix, interfaces: [3])
        var b = [UInt8](repeating: 0, count: 128)
        let length = b.withUnsafeMutableBytes { Netlink.write(route, adding: true, into: $0) }
        #expect(b[0] == 10 && b[1] == 96, "AF_INET6, dst_len 96")
        #expect(Array(b[..<length]).withUnsafeBytes(Netlink.route(parsing:)) == route)
        let rule = Netlink.Rule(priority: 100, source: nil, destination: prefix, inputInterface: nil, action: .lookup(table: 100))
        var r = [UInt8](repeating: 0, count: 128)
        let ruleLength = r.withUnsafeMutableBytes { Netlink.write(rule, into: $0) }
        let parsed = Array(r[..<ruleLength]).withUnsafeBytes(Netlink.rule(parsing:))
        #expect(parsed?.isIPv6 == true && parsed == rule)
    }

    // MARK: Helpers

    static func prefix(_ address: String, _ length: UInt8) -> Netlink.Prefix {
        var parsed = in_addr()
        precondition(inet_pton(AF_INET, address, &parsed) == 1)
        return Netlink.Prefix(address: parsed.s_addr, length: length)
    }

    /// Grouped hex ("0200 0800 ..."), spaces ignored.
    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.filter { !$0.isWhitespace })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    /// What `write` wrote into a buffer filled with 0xA5 first, so that a byte it forgot shows.
    static func written(_ write: (UnsafeMutableRawBufferPointer) -> Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0xA5, count: 512)
        let length = buffer.withUnsafeMutableBytes(write)
        return Array(buffer[..<length])
    }

}
