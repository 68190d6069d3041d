@testable import Netlink
import Testing

/// The next-hop cache's questions and the kernel's answers and change notices, as bytes: what is written into a
/// buffer pre-filled with 0xA5 (a byte the writer forgot shows), and what a cut-short or foreign message parses to.
@Suite struct QuestionsTests {
    /// ip route get 198.18.0.9 from 10.0.0.2 iif if3: struct rtmsg (AF_INET, /32, /32), RTA_DST, RTA_SRC, RTA_IIF. The
    /// rest of the rtmsg is left as the buffer was: `writeRequest` zeroes it first.
    @Test func aRouteQuestionIsAnRtmsgWithDestinationSourceAndInputInterface() {
        let written = TablesTests.written {
            Netlink.writeRouteQuestion($0, destination: 0x0900_12C6, source: 0x0200_000A, inputInterface: 3)
        }
        #expect(written == TablesTests.bytes("0220 2000 0000 0000 0000 0000  0800 0100 c612 0009  0800 0200 0a00 0002  0800 0300 0300 0000")
            .enumerated().map { $0.offset < 12 && ![0, 1, 2].contains($0.offset) ? 0xA5 : $0.element })
    }

    /// The kernel's answer: type unicast, RTA_OIF 4, RTA_GATEWAY 10.0.1.1; a multipath route says so.
    @Test func aRouteAnswerGivesTypeInterfaceGatewayAndMultipath() throws {
        let answer = TablesTests.bytes("0220 2000 fe00 0001 0000 0000  0800 0400 0400 0000  0800 0500 0a00 0101")
        let route = try #require(answer.withUnsafeBytes(Netlink.route(answer:)))
        #expect(route == Netlink.Route(type: 1, outputInterface: 4, gateway: 0x0101_000A, multipath: false))
        let multipath = TablesTests.bytes("0220 2000 fe00 0001 0000 0000  0400 0900")
        #expect(multipath.withUnsafeBytes(Netlink.route(answer:))?.multipath == true)
        #expect(TablesTests.bytes("0220 2000").withUnsafeBytes(Netlink.route(answer:)) == nil)
    }

    /// RTM_NEWNEIGH: state REACHABLE (0x02) and a 6-byte NDA_LLADDR is usable; FAILED (0x20), or no address, is not.
    @Test func aNeighbourAnswerIsUsableOnlyWithAnAddressInAValidState() throws {
        let reachable = TablesTests.bytes("0200 0000 0400 0000 0200 0001  0a00 0200 0211 2233 4455 0000")
        let neighbour = try #require(reachable.withUnsafeBytes(Netlink.neighbour(answer:)))
        #expect(neighbour.isUsable && neighbour.ethernet == 0x5544_3322_1102)
        let failed = TablesTests.bytes("0200 0000 0400 0000 2000 0001  0a00 0200 0211 2233 4455 0000")
        #expect(failed.withUnsafeBytes(Netlink.neighbour(answer:))?.isUsable == false)
        let noAddress = TablesTests.bytes("0200 0000 0400 0000 0200 0001")
        #expect(noAddress.withUnsafeBytes(Netlink.neighbour(answer:))?.isUsable == false)
    }

    /// RTM_NEWLINK: ARPHRD_ETHER with IFLA_ADDRESS and IFLA_MTU.
    @Test func aLinkAnswerGivesTypeAddressAndMTU() throws {
        let answer = TablesTests.bytes("0000 0100 0300 0000 4310 0100 0000 0000  0a00 0100 0211 2233 4455 0000  0800 0400 dc05 0000")
        let link = try #require(answer.withUnsafeBytes(Netlink.link(answer:)))
        #expect(link == Netlink.Link(type: 1, mtu: 1500, ethernet: 0x5544_3322_1102))
    }

    /// Change notices: an IPv4 neighbour is named, an IPv6 one concerns nothing, anything else is "routing".
    @Test func changeNoticesNameIPv4NeighboursAndCallAllElseRouting() {
        let v4 = TablesTests.bytes("0200 0000 0400 0000 0200 0001  0800 0100 0a00 0101")
        #expect(v4.withUnsafeBytes { Netlink.change(type: Netlink.newNeighbour, payload: $0) } == .neighbour(interface: 4, address: 0x0101_000A))
        let v6 = TablesTests.bytes("0a00 0000 0400 0000 0200 0001  1400 0100 fe80 0000 0000 0000 0000 0000 0000 0001")
        #expect(v6.withUnsafeBytes { Netlink.change(type: Netlink.newNeighbour, payload: $0) } == nil)
        #expect([UInt8]().withUnsafeBytes { Netlink.change(type: Netlink.newRoute, payload: $0) } == .routing)
        #expect([UInt8]().withUnsafeBytes { Netlink.change(type: Netlink.done, payload: $0) } == nil)
    }

    /// The header of every request: length, type, NLM_F_REQUEST with the flags, the sequence number.
    @Test func aRequestHeaderCarriesLengthTypeFlagsAndSequence() {
        let written = TablesTests.written { b in
            Netlink.writeRequest(into: UnsafeMutableRawBufferPointer(rebasing: b[..<64]), type: Netlink.newRule,
                                 flags: Netlink.acknowledge | Netlink.create | Netlink.exclusive, sequence: 7) { _ in 4 }
        }
        #expect(written == TablesTests.bytes("1400 0000 2000 0506 0700 0000 0000 0000  0000 0000"))
    }

    /// NLMSG_ERROR carries a negative errno (0 is an acknowledgement); one cut short is EPROTO; other kinds none.
    @Test func errorsCarryTheKernelsCode() {
        #expect(TablesTests.bytes("feff ffff").withUnsafeBytes { Netlink.errorCode(kind: Netlink.error, payload: $0) } == 2)
        #expect(TablesTests.bytes("0000 0000").withUnsafeBytes { Netlink.errorCode(kind: Netlink.error, payload: $0) } == 0)
        #expect([UInt8]().withUnsafeBytes { Netlink.errorCode(kind: Netlink.error, payload: $0) } == 71)
        #expect([UInt8]().withUnsafeBytes { Netlink.errorCode(kind: Netlink.newRoute, payload: $0) } == nil)
    }

    /// A message whose length runs past the bytes, or is shorter than a header, ends the walk; a sequence filter
    /// skips late answers to earlier requests.
    @Test func messagesStopAtALengthThatDoesNotFitAndFilterBySequence() {
        let two = TablesTests.bytes("1400 0000 1800 0000 0100 0000 0000 0000 aaaa aaaa  1400 0000 1800 0000 0200 0000 0000 0000 bbbb bbbb")
        var seen: [UInt8] = []
        two.withUnsafeBytes { Netlink.messages($0, sequence: 2) { _, _, payload in seen.append(payload[0]) } }
        #expect(seen == [0xBB])
        let overlong = TablesTests.bytes("ff00 0000 1800 0000 0100 0000 0000 0000 aaaa aaaa")
        var count = 0
        overlong.withUnsafeBytes { Netlink.messages($0) { _, _, _ in count += 1 } }
        #expect(count == 0)
    }
}
