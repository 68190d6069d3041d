import NatTable
import PacketKit
import Testing

/// RFC 6146 (stateful NAT64), one test per requirement: the same table, pool, ports and filtering as NAT44.
@Suite struct RFC6146Tests {
    @Test func rfc6146Sec3_5_1UDPSessionOutAndBack() throws {
        let nat = try makeNAT64()
        let out = send64(nat, udp6(host6A, 5000, to: server, 53))
        #expect(out.verdict == .forward(.outbound) && !out.isIPv6)
        #expect(out.v4.source == pool1 && out.v4.destination == server && out.v4.destinationPort == 53)
        let back = send64(nat, udp(server, 53, pool1, out.v4.sourcePort))
        #expect(back.verdict == .forward(.inbound) && back.isIPv6)
        #expect(back.v6.source == nsp.embed(server.value) && back.v6.destination == host6A)
        #expect(back.v6.sourcePort == 53 && back.v6.destinationPort == 5000)
        #expect(nat.nat64HostCount == 1)
    }

    /// Section 3.3 / RFC 4787 REQ-1: one mapping per IPv6 endpoint whatever the destination.
    @Test func rfc6146Sec3_3EndpointIndependentMapping() throws {
        let nat = try makeNAT64()
        let a = send64(nat, udp6(host6A, 5000, to: server, 9000))
        let b = send64(nat, udp6(host6A, 5000, to: server2, 9001))
        #expect(a.v4.sourcePort == b.v4.sourcePort && a.v4.source == b.v4.source)
        let c = send64(nat, udp6(host6B, 5000, to: server, 9000))
        #expect(c.v4.sourcePort != a.v4.sourcePort, "another IPv6 host gets another external port")
    }

    /// Section 3.5.2: TCP follows the handshake; an unsolicited inbound SYN finds no mapping.
    @Test func rfc6146Sec3_5_2TCPHandshakeAndNoUnsolicitedInbound() throws {
        let nat = try makeNAT64()
        #expect(send64(nat, tcp(server, 443, pool1, 40000, [.syn])).verdict == .drop(.noMapping))
        let syn = send64(nat, tcp6(host6A, 40000, to: server, 443, [.syn]))
        #expect(syn.verdict == .forward(.outbound))
        let synAck = send64(nat, tcp(server, 443, pool1, syn.v4.sourcePort, [.syn, .ack]))
        #expect(synAck.verdict == .forward(.inbound) && synAck.v6.destination == host6A)
        #expect(send64(nat, tcp6(host6A, 40000, to: server, 443, [.ack])).verdict == .forward(.outbound))
        #expect(nat.counters.tcpEstablished == 1)
    }

    /// Section 3.5.3: ICMPv6 echo is an ICMP query session with the identifier as its port.
    @Test func rfc6146Sec3_5_3EchoQuery() throws {
        let nat = try makeNAT64()
        let out = send64(nat, PacketBuilder.echo6(from: host6A, to: nsp.embed(server.value), identifier: 77))
        #expect(out.verdict == .forward(.outbound) && out.bytes[20] == ICMPv4Type.echoRequest.value)
        let reply = send64(nat, PacketBuilder.icmpQuery(from: server, to: pool1, type: .echoReply, identifier: out.v4.sourcePort))
        #expect(reply.verdict == .forward(.inbound) && reply.isIPv6)
        #expect(reply.bytes[40] == ICMPv6Type.echoReply && reply.v6.sourcePort == 77 && reply.v6.destination == host6A)
        // Only replies come in: an echo request from outside opens nothing.
        #expect(send64(nat, PacketBuilder.icmpQuery(from: server, to: pool1, identifier: out.v4.sourcePort)).verdict
            == .drop(.inboundRequest))
    }

    /// Section 3.5.1.1 and 3.5.2.2: the configured filtering applies to NAT64 sessions as to NAT44 ones.
    @Test func rfc6146Sec3_5_1_1AddressDependentFiltering() throws {
        let nat = try makeNAT64(filtering: .addressDependent)
        let out = send64(nat, udp6(host6A, 5000, to: server, 9000))
        #expect(send64(nat, udp(server, 9999, pool1, out.v4.sourcePort)).verdict == .forward(.inbound))
        #expect(send64(nat, udp(server2, 9000, pool1, out.v4.sourcePort)).verdict == .drop(.filtered))
    }

    /// Section 3.8: an IPv6 host reaching another's mapping through the pool address is hairpinned, and sees the
    /// sender as the sender's external endpoint embedded in the prefix.
    @Test func rfc6146Sec3_8Hairpinning() throws {
        let nat = try makeNAT64()
        let b = send64(nat, udp6(host6B, 6000, to: server, 9000))
        let hairpin = send64(nat, udp6(host6A, 5000, to: pool1, b.v4.sourcePort))
        #expect(hairpin.verdict == .forward(.hairpin) && hairpin.isIPv6)
        #expect(hairpin.v6.destination == host6B && hairpin.v6.destinationPort == 6000)
        let senderExternal = nat.externalEndpoint(protocol: .udp, address: try #require(alias(nat, host6A)), port: Port(5000))
        #expect(hairpin.v6.source == nsp.embed(pool1.value) && hairpin.v6.sourcePort == senderExternal?.port.value)
    }

    /// An IPv4 private host hairpins to an IPv6 host's mapping too.
    @Test func rfc6146Sec3_8HairpinFromIPv4Host() throws {
        let nat = try makeNAT64()
        let b = send64(nat, udp6(host6B, 6000, to: server, 9000))
        let hairpin = send64(nat, udp(hostA, 7000, pool1, b.v4.sourcePort))
        #expect(hairpin.verdict == .forward(.hairpin) && hairpin.isIPv6 && hairpin.v6.destination == host6B)
        #expect(hairpin.v6.source == nsp.embed(pool1.value))
    }

    /// Dual-stack hosts use both at once: every packet in the directions, NAT64 ones counted apart too.
    @Test func dualStackCountedApart() throws {
        let nat = try makeNAT64()
        let four = send64(nat, udp(hostA, 5000, server, 9000))
        let six = send64(nat, udp6(host6A, 5000, to: server, 9000))
        send64(nat, udp(server, 9000, pool1, four.v4.sourcePort))
        send64(nat, udp(server, 9000, pool1, six.v4.sourcePort))
        let c = nat.counters
        #expect(c.outbound == 2 && c.inbound == 2)
        #expect(c.nat64Outbound == 1 && c.nat64Inbound == 1)
        #expect(c.nat64OutboundBytes == 32 && c.nat64InboundBytes == 52, "IPv4 bytes out, IPv6 bytes in")
    }

    /// Never translated: IPv6 sources outside the private prefixes, destinations outside the NAT64 prefix, and
    /// with the Well-Known Prefix, non-global IPv4 addresses (RFC 6052 section 3.1).
    @Test func neverTranslatedOutsideThePrefixes() throws {
        let nat = try makeNAT64()
        #expect(send64(nat, udp6(outsider6, 5000, to: server, 9000)).verdict == .drop(.notPrivateSource))
        let elsewhere = PacketBuilder.udp6(from: (host6A, 5000), to: (IPv6Address("2001:db8:99::1")!, 9000))
        #expect(send64(nat, elsewhere).verdict == .drop(.notNAT64Destination))
        #expect(send64(nat, udp6(host6A, 5000, to: IPv4Address(127, 0, 0, 1), 9000)).verdict == .drop(.notNAT64Destination))
        #expect(send64(nat, udp6(host6A, 5000, to: IPv4Address(224, 0, 0, 1), 9000)).verdict == .drop(.notNAT64Destination))
        let wkp = try makeNAT64(prefix: .wellKnown)
        #expect(send64(wkp, udp6(host6A, 5000, to: IPv4Address(10, 1, 2, 3), 9000, prefix: .wellKnown)).verdict
            == .drop(.notNAT64Destination))
        #expect(send64(wkp, udp6(host6A, 5000, to: server, 9000, prefix: .wellKnown)).verdict == .drop(.notNAT64Destination),
                "198.18.0.0/15 is benchmarking space, not global")
        #expect(send64(wkp, udp6(host6A, 5000, to: IPv4Address(93, 184, 216, 34), 9000, prefix: .wellKnown)).verdict
            == .forward(.outbound))
        #expect(nat.nat64HostCount == 0, "a refused packet leaves no host behind")
    }

    /// Per-host limits count an IPv6 host as one host.
    @Test func perHostLimitAppliesToIPv6Hosts() throws {
        let nat = try makeNAT64(perHost: 2)
        #expect(send64(nat, tcp6(host6A, 1, to: server, 80, [.syn])).verdict == .forward(.outbound))
        send64(nat, tcp(server, 80, pool1, nat.externalEndpoint(protocol: .tcp, address: try #require(alias(nat, host6A)), port: Port(1))!.port.value, [.syn, .ack]))
        send64(nat, tcp6(host6A, 1, to: server, 80, [.ack]))
        #expect(send64(nat, tcp6(host6A, 2, to: server, 80, [.syn])).verdict == .forward(.outbound))
        send64(nat, tcp(server, 80, pool1, nat.externalEndpoint(protocol: .tcp, address: try #require(alias(nat, host6A)), port: Port(2))!.port.value, [.syn, .ack]))
        send64(nat, tcp6(host6A, 2, to: server, 80, [.ack]))
        #expect(send64(nat, tcp6(host6A, 3, to: server, 80, [.syn])).verdict == .drop(.hostLimit))
        #expect(send64(nat, tcp6(host6B, 3, to: server, 80, [.syn])).verdict == .forward(.outbound), "another host is not held back")
    }

    /// The hosts are bounded, counted when full, and a host goes with its last mapping.
    @Test func ipv6HostsAreBoundedAndFreed() throws {
        let nat = try makeNAT64(maxHosts: 2)
        send64(nat, udp6(host6A, 1, to: server, 9000), at: 0)
        send64(nat, udp6(host6B, 1, to: server, 9000), at: 0)
        let third = IPv6Address("fd00:1::c")!
        #expect(send64(nat, udp6(third, 1, to: server, 9000), at: 0).verdict == .drop(.nat64HostsFull))
        #expect(nat.counters[.nat64HostsFull] == 1 && nat.nat64HostCount == 2)
        nat.expire(now: .seconds(10_000), budget: 100)
        #expect(nat.nat64HostCount == 0 && nat.flowCount == 0)
        #expect(send64(nat, udp6(third, 1, to: server, 9000), at: 10_000).verdict == .forward(.outbound))
    }

    /// Found in review: in a full table, making room for a host's new flow could evict that host's only flow and
    /// with it the host, in the middle of its own packet (a trap on the freed slot). The host is pinned now.
    @Test func aFullTableNeverEvictsTheTranslatingHostFromUnderItsPacket() throws {
        let nat = try makeNAT64(maxFlows: 4)
        #expect(send64(nat, udp6(host6A, 1, to: server, 9000), at: 0).verdict == .forward(.outbound))
        for port: UInt16 in 1...3 { send64(nat, udp6(host6B, port, to: server, 9000), at: 1) }
        #expect(nat.flowCount == 4)
        // host6A's one flow is the oldest evictable one: it goes to make room, and host6A's new flow is made.
        let next = send64(nat, udp6(host6A, 2, to: server, 9000), at: 2)
        #expect(next.verdict == .forward(.outbound) && nat.flowCount == 4 && nat.counters.flowsEvicted == 1)
        let back = send64(nat, udp(server, 9000, pool1, next.v4.sourcePort), at: 2)
        #expect(back.verdict == .forward(.inbound) && back.v6.destination == host6A)
        #expect(nat.nat64HostCount == 2)
    }

    /// Found in review: no packet may come from 240.0.0.0/4, where the aliases live, or a sender could pose as
    /// another IPv6 host behind an endpoint-independent mapping.
    @Test func nothingComesFromTheAliasSpace() throws {
        let nat = try makeNAT64()
        let a = send64(nat, udp6(host6A, 5000, to: server, 9000))
        send64(nat, udp6(host6B, 5000, to: server, 9000))
        let other = try #require(alias(nat, host6B))
        let forged = send64(nat, udp(other, 7000, pool1, a.v4.sourcePort))
        #expect(forged.verdict == .drop(.notPrivateSource))
        #expect(send64(nat, udp(IPv4Address(240, 0, 0, 99), 7000, pool1, a.v4.sourcePort)).verdict == .drop(.notPrivateSource))
        #expect(send64(nat, udp(server, 9000, pool1, a.v4.sourcePort)).verdict == .forward(.inbound), "the real server still")
    }

    /// A later fragment from an IPv6 host that holds nothing is dropped, not held under an alias.
    @Test func aLaterFragmentOpensNothing() throws {
        let nat = try makeNAT64()
        let later = PacketBuilder.ipv6(source: host6A, destination: nsp.embed(server.value), nextHeader: 17,
                                       upper: Array(repeating: 7, count: 16),
                                       extensions: [PacketBuilder.fragmentHeader(offset: 24, more: false, identification: 9)])
        #expect(send64(nat, later).verdict == .drop(.noMapping))
        #expect(nat.nat64HostCount == 0 && nat.fragmentState.held == 0)
    }

    /// Found in review: a replica without NAT64 (or with fewer hosts) skips NAT64 records, counted, rather than fail
    /// every batch that holds one (a resync that could never end).
    @Test func aReplicaThatCannotHoldIPv6HostsSkipsThemCounted() throws {
        let active = try makeNAT64()
        active.recordChanges(true)
        send64(active, udp6(host6A, 5000, to: server, 9000))
        send64(active, udp(hostA, 5000, server, 9000))
        let (records, _) = active.takeChanges()
        #expect(records.contains { $0.operation == .host } && records.count == 3)
        let plain = try makeNAT()
        plain.setLive(false, now: .seconds(0))
        for r in records { try plain.apply(r, now: .seconds(1)) }
        #expect(plain.flowCount == 1 && plain.counters.nat64RecordsSkipped == 2)
    }

    /// A replica takes host records in whatever order the active's table walk meets them: from the highest alias
    /// down, at full scale (65,536 hosts), each lands at its alias (the free list gives up any index in O(1)).
    @Test func aReplicaTakesHostRecordsInAnyOrderAtFullScale() throws {
        let replica = try makeNAT64(maxHosts: 65_536)
        replica.setLive(false, now: .seconds(0))
        let count: UInt32 = 65_536
        func host(_ i: UInt32) -> IPv6Address { IPv6Address(high: 0xfd00_0001_0000_0000, low: UInt64(i)) }
        for i in stride(from: count, through: 1, by: -2) {
            try replica.apply(FlowRecord(host: host(i), alias: IPv4Address(0xF000_0000 | i)), now: .seconds(1))
        }
        for i in stride(from: UInt32(1), through: count, by: 2) {
            try replica.apply(FlowRecord(host: host(i), alias: IPv4Address(0xF000_0000 | i)), now: .seconds(1))
        }
        for i: UInt32 in [1, 2, 3, 4097, 65_535, 65_536] {
            #expect(replica.nat64Host(alias: IPv4Address(0xF000_0000 | i)) == host(i))
        }
        #expect(replica.counters.nat64RecordsSkipped == 0)
        // Past the replica's max_hosts: skipped, counted.
        try replica.apply(FlowRecord(host: host(70_000), alias: IPv4Address(0xF000_0000 | 70_000)), now: .seconds(1))
        #expect(replica.counters.nat64RecordsSkipped == 1)
    }

    /// The configuration refuses what would make NAT64 misbehave, naming the key.
    @Test func configurationProblemsNameTheKey() {
        var c = NatConfiguration(privatePrefixes: [IPv4Prefix("240.0.0.0/8")!], poolAddresses: [pool1], seed: 1)
        c.nat64 = Nat64Configuration(prefix: nsp, privatePrefixes: [], maxHosts: 0)
        let keys = Set(c.problems().map(\.key))
        #expect(keys == ["nat64.private_prefixes", "nat64.max_hosts", "private_prefixes"])
        c.nat64 = Nat64Configuration(prefix: nsp, privatePrefixes: [IPv6Prefix("2001:db8::/32")!])
        #expect(c.problems().contains { $0.key == "nat64.private_prefixes" && $0.problem.contains("overlaps") })
    }
}

/// The alias an IPv6 host has in the NAT44 table (the internal address of its mappings).
func alias(_ nat: NAT, _ host: IPv6Address) -> IPv4Address? {
    for i in 1...1024 {
        let a = IPv4Address(0xF000_0000 | UInt32(i))
        if nat.nat64Host(alias: a) == host { return a }
    }
    return nil
}
