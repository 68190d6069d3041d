// libFuzzer entry point for every parser tunnat has and for the NAT engine behind them (scripts/fuzz.sh builds it
// with `swiftc -sanitize=fuzzer,address`). One input is used three ways: as a packet for the header views and the
// engine (whose state carries over from input to input, so sequences are explored too), and as a pcap file.
import NatTable
import PacketKit

nonisolated(unsafe) let nat: NAT = try! NAT(configuration: NatConfiguration(
    privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: [IPv4Address(198, 18, 0, 1), IPv4Address(198, 18, 0, 2)],
    portRange: 40000...40063, filtering: .addressDependent, maxFlows: 256, maxFlowsPerHost: 32, maxHeldFragments: 8, seed: 1))
nonisolated(unsafe) var clock: UInt64 = 0

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))

    var views = input
    views.withUnsafeMutableBytes { b in
        if let ip = try? IPv4Packet(validating: b, verifyChecksum: false) {
            _ = (ip.source, ip.destination, ip.options.count, ip.fragmentOffset, ip.pseudoHeaderSum)
            if let tcp = try? TCPSegment(validating: ip.payload) { _ = (tcp.flags, tcp.options.count, tcp.payload.count) }
            if let udp = try? UDPDatagram(validating: ip.payload) { _ = udp.payload.count }
            if let icmp = try? ICMPv4Message(validating: ip.payload), let quoted = try? IPv4Packet(quoted: icmp.body) {
                _ = (quoted.payload.count, quoted.declaredPayloadLength)
            }
        }
    }
    _ = ChecksumAudit.problems(in: input)

    var packet = input
    clock &+= 7
    packet.withUnsafeMutableBytes { b in
        _ = nat.readdressCapturedReply(b)
        let verdict = nat.translate(b, now: NatInstant(nanoseconds: clock &* 1_000_000_000))
        if case .forward = verdict {
            // Whatever was forwarded still parses: translation never breaks a header it accepted.
            precondition((try? IPv4Packet(validating: b)) != nil, "forwarded packet no longer valid")
        }
    }
    _ = nat.takeReleasedFragments()

    if var reader = try? PcapReader(bytes: input) {
        while let record = try? reader.next() { _ = reader.linkType.payload(of: record.data) }
    }
    return 0
}
