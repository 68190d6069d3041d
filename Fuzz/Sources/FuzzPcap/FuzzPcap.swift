// libFuzzer target: capture files, as `tunnat replay` reads them: PcapReader (every classic header variant, and
// pcapng's blocks and options), the link layer (Ethernet with VLAN tags, Linux cooked v1 and v2, raw), the
// listing's `PacketSummary`, and the PacketKit header views and checksum audit on each IPv4 datagram found (the
// IPv6 header view and the summary on each IPv6 packet). (What the one fuzz target before these covered besides
// translation.)
//
// Checked besides "no crash": every record read, written out again with PcapWriter, reads back the same.
import CFuzzerDriver
import FuzzSupport
import PacketKit
import TunnatKit

/// The process's entry point (SwiftPM links `main` to it): libFuzzer's driver, with the function below.
@_cdecl("fuzz_pcap_main")
func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    fuzz_run(argc, argv)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard var reader = try? PcapReader(bytes: bytes) else { return 0 }
    var writer = PcapWriter(linkType: reader.linkType, nanosecondResolution: true)
    var records: [PcapRecord] = []
    while let record = try? reader.next() {
        records.append(record)
        writer.append(record.data, timestamp: record.timestamp, originalLength: record.originalLength)
        let payload = record.linkType.payload(of: record.data)
        if case .ipv6(let range) = payload {
            var packet = Array(bytes[range])
            _ = PacketSummary.describe(packet)
            packet.withUnsafeMutableBytes { b in
                guard let ip = try? IPv6Packet(validating: b) else { return }
                _ = (ip.source, ip.destination, ip.upperProtocol, ip.upperLayer.count, ip.fragmentOffset)
            }
            continue
        }
        guard case .ipv4(let range) = payload else { continue }
        var packet = Array(bytes[range])
        _ = PacketSummary.describe(packet)
        _ = ChecksumAudit.problems(in: packet)
        packet.withUnsafeMutableBytes { b in
            guard let ip = try? IPv4Packet(validating: b, verifyChecksum: false) else { return }
            _ = (ip.source, ip.destination, ip.options.count, ip.fragmentOffset, ip.pseudoHeaderSum)
            if let tcp = try? TCPSegment(validating: ip.payload) { _ = (tcp.flags, tcp.options.count, tcp.payload.count) }
            if let udp = try? UDPDatagram(validating: ip.payload) { _ = udp.payload.count }
            if let icmp = try? ICMPv4Message(validating: ip.payload), let quoted = try? IPv4Packet(quoted: icmp.body) {
                _ = (quoted.payload.count, quoted.declaredPayloadLength)
            }
        }
    }
    var again = try! PcapReader(bytes: writer.bytes)
    for record in records {
        guard let back = try? again.next() else { fatalError("a written record does not read back") }
        require(back.data.elementsEqual(record.data) && back.timestamp == record.timestamp
                     && back.originalLength == record.originalLength, "a record changed through PcapWriter")
    }
    require((try? again.next()) == nil, "PcapWriter wrote more records than it was given")
    return 0
}
