import NatTable
import PacketKit
import Testing

@Suite struct LimitsTests {
    @Test func fullTableRefusesNewFlowsAndKeepsExistingOnes() throws {
        let nat = try makeNAT(maxFlows: 4)
        // Streams: nothing here may be evicted.
        let ports = (0..<4).map { stream(nat, hostA, UInt16(5000 + $0)) }
        #expect(nat.flowCount == 4)
        #expect(send(nat, udp(hostA, 6000, server, 9000)).verdict == .drop(.tableFull))
        #expect(send(nat, udp(hostA, 5000, server2, 9000)).verdict == .drop(.tableFull), "a new flow on an old mapping too")
        for port in ports { #expect(send(nat, udp(server, 9000, pool1, port)).verdict == .forward(.inbound)) }
        #expect(nat.counters[.tableFull] == 2 && nat.mappingCount == 4 && nat.counters.flowsEvicted == 0)
    }

    @Test func perHostLimitRefusesOnlyThatHost() throws {
        let nat = try makeNAT(perHost: 2)
        stream(nat, hostA, 5000)
        stream(nat, hostA, 5001)
        #expect(send(nat, udp(hostA, 5002, server, 9000)).verdict == .drop(.hostLimit))
        #expect(send(nat, udp(hostB, 5002, server, 9000)).verdict == .forward(.outbound))
        #expect(nat.mappingCount == 3, "the refused flow left no mapping behind")
        nat.expire(now: .seconds(300), budget: 100)
        #expect(send(nat, udp(hostA, 5002, server, 9000), at: 300).verdict == .forward(.outbound), "room after expiry")
    }

    @Test func expiryIsIncrementalNeverAStopTheTableSweep() throws {
        let nat = try makeNAT()
        for i in 0..<100 { send(nat, udp(hostA, UInt16(10000 + i), server, 9000), at: 0) }
        #expect(nat.expire(now: .seconds(300), budget: 8) == 8)
        #expect(nat.flowCount == 92)
        // Each translated packet retires a few more, so the table drains without any call that does it all.
        send(nat, udp(hostB, 1, server, 9000), at: 300)
        #expect(nat.flowCount == 92 + 1 - NAT.expiryBudgetPerPacket)
    }

    @Test func portsComeBackWhenMappingsExpire() throws {
        let nat = try makeNAT(ports: 30000...30000)
        #expect(send(nat, udp(hostA, 30000, server, 9000), at: 0).sourcePort == 30000)
        #expect(send(nat, udp(hostB, 30000, server, 9000), at: 1).verdict == .drop(.portsExhausted))
        nat.expire(now: .seconds(300), budget: 10)
        #expect(send(nat, udp(hostB, 30000, server, 9000), at: 300).sourcePort == 30000)
    }

    @Test(arguments: [
        ("truncated", [UInt8](hex: "4500 0054 0000")!, DropReason.truncated),
        ("ipv6", [UInt8](hex: "6000 0000 0000 0000 0000 0000 0000 0000 0000 0000")!, .notIPv4),
        ("bad ihl", [UInt8](hex: "4300 0014 0000 0000 4011 0000 0a00 0001 c613 000a")!, .badIPv4Header),
        ("bad ip checksum", [UInt8](hex: "4500 001c 0000 0000 4011 0000 0a00 0001 c613 000a 0001 0002 0008 0000")!, .badIPv4Checksum),
    ])
    func malformedPacketsAreCountedUnderTheirReason(name: String, packet: [UInt8], reason: DropReason) throws {
        let nat = try makeNAT()
        #expect(send(nat, packet).verdict == .drop(reason), "\(name)")
        #expect(nat.counters[reason] == 1)
    }

    @Test func otherProtocolsAreNotTranslated() throws {
        let nat = try makeNAT()
        let gre = PacketBuilder.ipv4(source: hostA, destination: server, protocol: IPProtocol(47), transport: [0, 0, 8, 0])
        #expect(send(nat, gre).verdict == .drop(.unsupportedProtocol))
    }

    @Test func configurationProblemsNameTheirKeys() {
        var configuration = NatConfiguration(privatePrefixes: [], poolAddresses: [IPv4Address(10, 0, 0, 1)], seed: 1)
        configuration.timeouts.udp = 30
        configuration.privatePrefixes = [IPv4Prefix("10.0.0.0/8")!]
        let keys = configuration.problems().map(\.key)
        #expect(keys == ["pool", "timeouts.udp"])
        #expect(throws: NatConfigurationError.self) { try NAT(configuration: configuration) }
    }

    @Test func memoryPerFlowIsAtMost128Bytes() throws {
        let nat = try makeNAT(maxFlows: NatConfiguration.defaultMaxFlows)
        #expect(nat.bytesPerFlowAtCapacity <= 128)
    }
}
