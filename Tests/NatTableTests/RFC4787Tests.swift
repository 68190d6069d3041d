import NatTable
import PacketKit
import Testing

/// RFC 4787 (NAT behavioural requirements for unicast UDP), one test per requirement.
@Suite struct RFC4787Tests {
    @Test func rfc4787Req1EndpointIndependentMapping() throws {
        let nat = try makeNAT()
        let first = send(nat, udp(hostA, 5000, server, 9000))
        let second = send(nat, udp(hostA, 5000, server2, 123))
        let third = send(nat, udp(hostA, 5000, server, 54))
        #expect(first.verdict == .forward(.outbound))
        #expect(first.source == pool1)
        #expect(second.source == first.source && second.sourcePort == first.sourcePort)
        #expect(third.source == first.source && third.sourcePort == first.sourcePort)
        #expect(nat.mappingCount == 1 && nat.flowCount == 3)
    }

    @Test func rfc4787Req2PairedAddressPooling() throws {
        let nat = try makeNAT(pool: [pool1, pool2])
        var used: Set<IPv4Address> = []
        for host in 1...64 {
            let address = IPv4Address(10, 1, 0, UInt8(host))
            let external = Set((0..<4).map { i in
                send(nat, udp(address, UInt16(4000 + i), IPv4Address(198, 19, 0, UInt8(i + 1)), 9000)).source
            })
            #expect(external.count == 1, "every mapping of \(address) uses one pool address")
            used.formUnion(external)
        }
        #expect(used == [pool1, pool2], "hosts are spread over the pool")
    }

    @Test func rfc4787Req3NoPortOverloading() throws {
        let nat = try makeNAT(ports: 20000...20001)
        let a = send(nat, udp(hostA, 20000, server, 9000))
        let b = send(nat, udp(hostB, 20000, server, 9000))
        #expect(a.sourcePort == 20000, "preserved")
        #expect(b.sourcePort == 20001, "the only other port in range, never shared with host A")
        let c = send(nat, udp(IPv4Address(10, 0, 0, 3), 20000, server, 9000))
        #expect(c.verdict == .drop(.portsExhausted))
        #expect(nat.counters[.portsExhausted] == 1)
        // The refusal costs existing flows nothing.
        #expect(send(nat, udp(hostA, 20000, server, 9000)).verdict == .forward(.outbound))
        let reply = send(nat, udp(server, 9000, pool1, 20001))
        #expect(reply.verdict == .forward(.inbound) && reply.destination == hostB && reply.destinationPort == 20000)
        // Another protocol has its own port space.
        #expect(send(nat, tcp(IPv4Address(10, 0, 0, 3), 20000, server, 80, [.syn])).sourcePort == 20000)
    }

    @Test(arguments: [UInt16(53), 123, 1023, 1])
    func rfc4787Req3aLowPortsMapBelow1024(port: UInt16) throws {
        let nat = try makeNAT()
        #expect(send(nat, udp(hostA, port, server, 9000)).sourcePort == port, "preserved when free")
        let other = send(nat, udp(hostB, port, server, 9000))
        #expect(other.verdict == .forward(.outbound))
        #expect((1...1023).contains(other.sourcePort) && other.sourcePort != port)
    }

    @Test func rfc4787Req3aHighPortsMapWithinRange() throws {
        let nat = try makeNAT(ports: 40000...40999)
        for i in 0..<200 {
            let out = send(nat, udp(IPv4Address(10, 0, 1, UInt8(i % 250)), UInt16(50000 + i / 250 + i), server, 9000))
            #expect((40000...40999).contains(out.sourcePort))
        }
    }

    @Test func portPreservedWhenFreeOtherwiseRandomRFC6056() throws {
        let nat = try makeNAT()
        #expect(send(nat, udp(hostA, 33333, server, 9000)).sourcePort == 33333)
        // Fifty other hosts all asking for 33333 get fifty distinct ports, not a predictable run.
        let ports = (1...50).map { send(nat, udp(IPv4Address(10, 2, 0, UInt8($0)), 33333, server, 9000)).sourcePort }
        #expect(Set(ports).count == 50 && !ports.contains(33333))
        let sorted = ports.sorted()
        let consecutive = zip(sorted, sorted.dropFirst()).filter { $1 == $0 + 1 }.count
        #expect(consecutive < 10, "random starting points (RFC 6056 algorithm 1), not sequential: \(sorted)")
        #expect(nat.counters.portsPreserved == 1)
    }

    @Test func rfc4787Req5UDPMappingTimerDefaultsToFiveMinutes() throws {
        let nat = try makeNAT()
        let out = send(nat, udp(hostA, 5000, server, 9000), at: 1000)
        #expect(send(nat, udp(server, 9000, pool1, out.sourcePort), at: 1299).verdict == .forward(.inbound))
        nat.expire(now: .seconds(1598), budget: 100)
        #expect(nat.flowCount == 1, "299 s idle is not yet 300")
        nat.expire(now: .seconds(1599), budget: 100)
        #expect(nat.flowCount == 0 && nat.mappingCount == 0)
        #expect(send(nat, udp(server, 9000, pool1, out.sourcePort), at: 1600).verdict == .drop(.noMapping))
    }

    @Test func rfc4787Req6OutboundRefreshKeepsMappingAlive() throws {
        let nat = try makeNAT()
        let out = send(nat, udp(hostA, 5000, server, 9000), at: 0)
        for t in stride(from: UInt64(200), through: 2000, by: 200) {
            #expect(send(nat, udp(hostA, 5000, server, 9000), at: t).sourcePort == out.sourcePort)
        }
        #expect(send(nat, udp(server, 9000, pool1, out.sourcePort), at: 2100).verdict == .forward(.inbound))
    }

    /// RFC 4787 section 5 / REQ-8: the three filtering behaviours, against the same three probes.
    @Test(arguments: [
        (NatConfiguration.Filtering.endpointIndependent, true, true),
        (.addressDependent, true, false),
        (.addressAndPortDependent, false, false),
    ])
    func rfc4787Req8Filtering(mode: NatConfiguration.Filtering, otherPortAdmitted: Bool, otherAddressAdmitted: Bool)
        throws {
        let nat = try makeNAT(filtering: mode)
        let out = send(nat, udp(hostA, 5000, server, 3478))
        #expect(send(nat, udp(server, 3478, pool1, out.sourcePort)).verdict == .forward(.inbound), "the contacted endpoint")
        let otherPort = send(nat, udp(server, 3479, pool1, out.sourcePort))
        #expect(otherPort.verdict == (otherPortAdmitted ? .forward(.inbound) : .drop(.filtered)))
        let otherAddress = send(nat, udp(server2, 3478, pool1, out.sourcePort))
        #expect(otherAddress.verdict == (otherAddressAdmitted ? .forward(.inbound) : .drop(.filtered)))
        if otherAddressAdmitted { #expect(otherAddress.destination == hostA && otherAddress.destinationPort == 5000) }
    }

    @Test func rfc4787Req9HairpinningWithExternalSource() throws {
        let nat = try makeNAT()
        let a = send(nat, udp(hostA, 4000, server, 3478))
        let b = send(nat, udp(hostB, 4000, server, 3478))
        // A sends to B's external endpoint: B receives it from A's external endpoint (REQ-9b), not A's private one.
        let hairpin = send(nat, udp(hostA, 4000, b.source, b.sourcePort))
        #expect(hairpin.verdict == .forward(.hairpin))
        #expect(hairpin.destination == hostB && hairpin.destinationPort == 4000)
        #expect(hairpin.source == a.source && hairpin.sourcePort == a.sourcePort)
        // And B's answer goes back the same way.
        let back = send(nat, udp(hostB, 4000, a.source, a.sourcePort))
        #expect(back.verdict == .forward(.hairpin) && back.destination == hostA && back.source == b.source)
    }

    @Test func unsolicitedInboundIsDroppedAndCounted() throws {
        let nat = try makeNAT()
        #expect(send(nat, udp(server, 9000, pool1, 5000)).verdict == .drop(.noMapping))
        #expect(send(nat, tcp(server, 4444, pool1, 22, [.syn])).verdict == .drop(.noMapping))
        #expect(send(nat, ping(server, pool1, id: 9, reply: true)).verdict == .drop(.noMapping))
        #expect(send(nat, ping(server, pool1, id: 9)).verdict == .drop(.inboundRequest))
        #expect(nat.counters[.noMapping] == 3 && nat.counters[.inboundRequest] == 1 && nat.flowCount == 0)
    }

    @Test(arguments: [IPv4Address(172, 16, 0, 1), IPv4Address(192, 168, 1, 1), IPv4Address(198, 19, 0, 10)])
    func sourcesOutsidePrivatePrefixesAreNeverTranslated(source: IPv4Address) throws {
        let nat = try makeNAT()
        let result = send(nat, udp(source, 5000, server2, 9000))
        #expect(result.verdict == .drop(.notPrivateSource))
        #expect(result.bytes == udp(source, 5000, server2, 9000), "left untouched")
        #expect(nat.flowCount == 0)
    }
}
