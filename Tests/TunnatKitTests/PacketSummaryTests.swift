import PacketKit
import Testing
import TunnatKit

/// `tunnat replay --list` names every packet; a packet cut short must never be read past its end.
@Suite struct PacketSummaryTests {
    /// A 22-byte IPv4/TCP packet: a 20-byte IP header and 2 bytes of TCP header. The guard of
    /// `case .tcp, .udp where l4.count >= 4` bound to .udp only, so this read past the buffer (a trap in debug).
    @Test func aTwoByteTCPHeaderIsNamedWithoutPorts() {
        var packet = PacketBuilder.tcp(from: (IPv4Address(10, 0, 0, 1), 1234), to: (IPv4Address(198, 19, 0, 1), 80),
                                       flags: [.syn], sequence: 1, payload: [])
        packet = Array(packet[0..<22])
        packet[2] = 0
        packet[3] = 22  // total length
        packet[10] = 0
        packet[11] = 0
        let sum = packet[0..<20].withUnsafeBytes { ~Checksum.sum($0) }
        packet[10] = UInt8(sum >> 8)
        packet[11] = UInt8(sum & 0xFF)
        #expect(PacketSummary.describe(packet) == "tcp 10.0.0.1 > 198.19.0.1")
    }

    @Test(arguments: [0, 1, 2, 3]) func shortUDPAndTCPHeadersNeverReadPastTheEnd(_ l4: Int) {
        for proto: UInt8 in [6, 17] {
            var packet: [UInt8] = [0x45, 0, 0, UInt8(20 + l4), 0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 198, 19, 0, 1]
            packet += [UInt8](repeating: 0xA5, count: l4)
            let sum = packet[0..<20].withUnsafeBytes { ~Checksum.sum($0) }
            packet[10] = UInt8(sum >> 8)
            packet[11] = UInt8(sum & 0xFF)
            #expect(PacketSummary.describe(packet).hasSuffix("10.0.0.1 > 198.19.0.1"))
        }
    }

    @Test func aWholeHeaderIsNamedWithPorts() {
        let packet = PacketBuilder.udp(from: (IPv4Address(10, 0, 0, 1), 5353), to: (IPv4Address(198, 19, 0, 1), 53), payload: [1])
        #expect(PacketSummary.describe(packet) == "udp 10.0.0.1:5353 > 198.19.0.1:53")
    }

    /// IPv6 packets (replays with NAT64 list them): endpoints in brackets with ports, ICMPv6 by type.
    @Test func ipv6PacketsAreNamed() {
        let source = IPv6Address("fd00:1::a")!, destination = IPv6Address("2001:db8:64::c613:7")!
        #expect(PacketSummary.describe(PacketBuilder.udp6(from: (source, 4000), to: (destination, 53)))
                    == "udp [fd00:1::a]:4000 > [2001:db8:64::c613:7]:53")
        let echo = PacketBuilder.icmpv6(from: source, to: destination, type: ICMPv6Type.echoRequest, word: 0x0001_0001, body: [])
        #expect(PacketSummary.describe(echo) == "icmp6 fd00:1::a > 2001:db8:64::c613:7 type=128 code=0")
        let udp = PacketBuilder.udp6(from: (source, 4000), to: (destination, 53))
        #expect(PacketSummary.describe(Array(udp.prefix(30))) == "(30 bytes, not a valid IPv6 packet)")
    }
}
