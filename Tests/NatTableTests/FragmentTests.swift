import NatTable
import PacketKit
import Testing

/// RFC 4787 REQ-14: fragments in order and out of order.
@Suite struct FragmentTests {
    /// A UDP datagram from hostA split in three fragments (two of 24 bytes, then the rest).
    func fragments(id: UInt16 = 0x4242) -> (whole: [UInt8], pieces: [[UInt8]]) {
        let payload = (0..<60).map { UInt8($0) }
        let datagram = PacketBuilder.udpDatagram(from: (hostA, 6000), to: (server, 7000), payload: payload)
        let cuts = [0, 24, 48, datagram.count]
        let pieces = (0..<3).map { i in
            PacketBuilder.ipv4(source: hostA, destination: server, protocol: .udp,
                               transport: Array(datagram[cuts[i]..<cuts[i + 1]]), identification: id,
                               moreFragments: i < 2, fragmentOffset: cuts[i])
        }
        return (datagram, pieces)
    }

    /// Reassembles translated fragments and checks the UDP checksum over the whole datagram.
    func reassembledChecksumIsValid(_ outputs: [[UInt8]]) -> Bool {
        var parts: [(Int, [UInt8])] = []
        var source = IPv4Address(0), destination = IPv4Address(0)
        for var bytes in outputs {
            bytes.withUnsafeMutableBytes { b in
                let ip = IPv4Packet(unchecked: b)
                source = ip.source
                destination = ip.destination
                parts.append((ip.fragmentOffset, Array(ip.payload)))
            }
        }
        var datagram = parts.sorted { $0.0 < $1.0 }.flatMap(\.1)
        let pseudo = Checksum.pseudoHeaderSum(source: source, destination: destination, protocol: .udp,
                                              length: datagram.count)
        return datagram.withUnsafeMutableBytes { UDPDatagram(unchecked: $0).isChecksumValid(pseudoHeaderSum: pseudo) }
    }

    @Test func inOrderFragmentsFollowTheFirst() throws {
        let nat = try makeNAT()
        let (_, pieces) = fragments()
        let outputs = pieces.map { send(nat, $0) }
        #expect(outputs.map(\.verdict) == Array(repeating: .forward(.outbound), count: 3))
        #expect(outputs.allSatisfy { $0.source == pool1 })
        #expect(reassembledChecksumIsValid(outputs.map(\.bytes)))
        // The reply comes back through the mapping the first fragment made.
        let reply = send(nat, udp(server, 7000, pool1, outputs[0].sourcePort))
        #expect(reply.destination == hostA && reply.destinationPort == 6000)
    }

    @Test func outOfOrderFragmentsAreHeldUntilTheFirstArrives() throws {
        let nat = try makeNAT()
        let (_, pieces) = fragments()
        #expect(send(nat, pieces[2]).verdict == .held)
        #expect(send(nat, pieces[1]).verdict == .held)
        let first = send(nat, pieces[0])
        #expect(first.verdict == .forward(.outbound))
        let released = nat.takeReleasedFragments()
        #expect(released.count == 2 && released.allSatisfy { $0.direction == .outbound })
        #expect(reassembledChecksumIsValid([first.bytes] + released.map(\.bytes)))
        #expect(nat.takeReleasedFragments().isEmpty)
    }

    @Test func heldFragmentsAreBoundedInCountAndTime() throws {
        let nat = try makeNAT { $0.maxHeldFragments = 2 }
        let lost = (0..<3).map { fragments(id: UInt16(100 + $0)).pieces[1] }
        #expect(send(nat, lost[0], at: 0).verdict == .held)
        // One source may hold a quarter of the buffer (at least one fragment).
        #expect(send(nat, lost[1], at: 0).verdict == .drop(.fragmentQuota))
        nat.expire(now: .seconds(30), budget: 10)
        #expect(nat.counters[.fragmentTimeout] == 1)
        #expect(send(nat, lost[2], at: 31).verdict == .held, "room again")
        #expect(nat.fragmentState.held == 1)
    }

    /// Later fragments from many sources (spoofed ones, say): the buffer never grows past its bound, the oldest
    /// go first, and a datagram whose pieces arrive together is still put together.
    @Test func aFullHoldBufferEvictsTheOldest() throws {
        let nat = try makeNAT { $0.maxHeldFragments = 8 }
        for i in 0..<1000 {
            let source = IPv4Address(198, 19, UInt8(i >> 8), UInt8(i & 0xFF))
            let piece = PacketBuilder.ipv4(source: source, destination: pool1, protocol: .udp, transport: [UInt8](repeating: 7, count: 16),
                                           identification: UInt16(i), fragmentOffset: 24)
            #expect(send(nat, piece).verdict == .held)
        }
        #expect(nat.fragmentState.held == 8)
        #expect(nat.counters[.fragmentEvicted] == 992)
        #expect(nat.counters.outbound + nat.counters.inbound + nat.counters.heldFragments + nat.counters.arrivalDrops
                == nat.counters.packets)
        let (_, pieces) = fragments(id: 7)
        #expect(send(nat, pieces[2]).verdict == .held)
        #expect(send(nat, pieces[0]).verdict == .forward(.outbound))
        #expect(nat.takeReleasedFragments().count == 1)
    }

    /// The same first fragment again and again (the same datagram identity) is one remembered translation, not
    /// one entry per copy.
    @Test func aRepeatedFirstFragmentIsRememberedOnce() throws {
        let nat = try makeNAT()
        let (_, pieces) = fragments(id: 0x99)
        for _ in 0..<100_000 { #expect(send(nat, pieces[0]).verdict == .forward(.outbound)) }
        let state = nat.fragmentState
        #expect(state.translations == 1 && state.orderEntries == 1)
        // Many datagrams: bounded by the tracker's size, the oldest forgotten first.
        for id in 0..<10_000 { send(nat, fragments(id: UInt16(id)).pieces[0]) }
        #expect(nat.fragmentState.translations <= 4096 && nat.fragmentState.orderEntries <= 4096)
    }

    @Test func inboundFragmentsFollowTheFirstToTheHost() throws {
        let nat = try makeNAT()
        let out = send(nat, udp(hostA, 6000, server, 7000))
        let datagram = PacketBuilder.udpDatagram(from: (server, 7000), to: (pool1, out.sourcePort),
                                                 payload: (0..<40).map { UInt8($0) })
        let first = PacketBuilder.ipv4(source: server, destination: pool1, protocol: .udp,
                                       transport: Array(datagram[..<24]), identification: 9, moreFragments: true)
        let rest = PacketBuilder.ipv4(source: server, destination: pool1, protocol: .udp,
                                      transport: Array(datagram[24...]), identification: 9, fragmentOffset: 24)
        #expect(send(nat, rest).verdict == .held)
        let translated = send(nat, first)
        #expect(translated.verdict == .forward(.inbound) && translated.destination == hostA)
        let released = nat.takeReleasedFragments()
        #expect(released.count == 1 && released[0].direction == .inbound)
        #expect(reassembledChecksumIsValid([translated.bytes, released[0].bytes]))
    }

    @Test func firstFragmentTooShortForPortsIsDropped() throws {
        let nat = try makeNAT()
        let tiny = PacketBuilder.ipv4(source: hostA, destination: server, protocol: .udp, transport: [0x17, 0x70, 0x1B],
                                      identification: 5, moreFragments: true)
        #expect(send(nat, tiny).verdict == .drop(.fragmentTooShort))
    }
}
