import NatTable
import PacketKit
import Testing
import SystemCalls
@testable import TunIO

let client = IPv4Address("10.0.0.1")!
let server = IPv4Address("198.19.0.10")!
let pool = IPv4Address("198.18.0.1")!

func makeNAT() throws -> NAT {
    try NAT(configuration: NatConfiguration(privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: [pool], seed: 3))
}

/// A frame as the TUN hands it over: virtio-net header, then the packet.
func frame(_ header: VirtioNetHeader, _ packet: [UInt8]) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: VirtioNetHeader.size) + packet
    bytes.withUnsafeMutableBytes { header.write(to: $0) }
    return bytes
}

/// Turns a packet with a full transport checksum into what the kernel sends with CHECKSUM_PARTIAL: the field
/// holds the folded pseudo-header sum, not complemented (Linux `tcp_v4_send_check`, `udp4_hwcsum`).
func makePartial(_ packet: inout [UInt8], field: Int) {
    packet.withUnsafeMutableBytes { b in
        let ip = IPv4Packet(unchecked: b)
        b.storeBE16(Checksum.fold(UInt64(ip.pseudoHeaderSum)), at: field)
    }
}

func payload(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) } }

@Suite struct OffloadTests {
    @Test func virtioHeaderRoundTripsLittleEndian() {
        let header = VirtioNetHeader(flags: 1, gsoType: VirtioNetHeader.GSO.tcpv4 | VirtioNetHeader.GSO.ecn,
                                     headerLength: 0x0134, gsoSize: 1448, checksumStart: 20, checksumOffset: 16)
        var bytes = [UInt8](repeating: 0xA5, count: 10)
        bytes.withUnsafeMutableBytes { header.write(to: $0) }
        #expect(bytes == [0x01, 0x81, 0x34, 0x01, 0xA8, 0x05, 0x14, 0x00, 0x10, 0x00])
        let back = bytes.withUnsafeMutableBytes { VirtioNetHeader($0) }
        #expect(back == header)
        #expect(back.isGSO)
    }

    /// A partial checksum moves with the address change only; finished afterwards, it verifies.
    @Test(arguments: [IPProtocol.tcp, IPProtocol.udp])
    func partialChecksumFollowsTheAddressRewrite(proto: IPProtocol) throws {
        let nat = try makeNAT()
        var packet = proto == .tcp
            ? PacketBuilder.tcp(from: (client, 40000), to: (server, 80), flags: [.ack, .psh], payload: payload(300))
            : PacketBuilder.udp(from: (client, 40000), to: (server, 53), payload: payload(300))
        let offset: UInt16 = proto == .tcp ? 16 : 6
        makePartial(&packet, field: 20 + Int(offset))
        // The partial field fails ordinary verification: the NAT must be told to trust it.
        #expect(!ChecksumAudit.problems(in: packet).isEmpty)
        let header = VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, checksumStart: 20, checksumOffset: offset)
        var bytes = frame(header, packet)
        var counters = IOCounters()
        let outcome = bytes.withUnsafeMutableBytes {
            FrameProcessor.process($0, nat: nat, now: .seconds(1), compensateHop: false, counters: &counters)
        }
        #expect(outcome == .send(header))
        var out = Array(bytes[VirtioNetHeader.size...])
        out.withUnsafeMutableBytes { Offload.completeChecksum($0, header) }
        #expect(ChecksumAudit.problems(in: out) == [])
        out.withUnsafeMutableBytes { #expect(IPv4Packet(unchecked: $0).source == pool) }
    }

    /// Without the trust flag a partial checksum is a bad checksum, as conntrack would see it.
    @Test func partialChecksumWithoutNeedsCsumIsDropped() throws {
        let nat = try makeNAT()
        var packet = PacketBuilder.tcp(from: (client, 40000), to: (server, 80), flags: [.syn])
        makePartial(&packet, field: 36)
        var bytes = frame(VirtioNetHeader(), packet)
        var counters = IOCounters()
        let outcome = bytes.withUnsafeMutableBytes {
            FrameProcessor.process($0, nat: nat, now: .seconds(1), compensateHop: false, counters: &counters)
        }
        #expect(outcome == .drop)
        #expect(nat.counters[.badTransportChecksum] == 1)
    }

    @Test func nonsenseVirtioHeadersAreCountedAndDropped() throws {
        let nat = try makeNAT()
        let packet = PacketBuilder.tcp(from: (client, 40000), to: (server, 80), flags: [.syn])
        let bad: [VirtioNetHeader] = [
            VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, checksumStart: 20, checksumOffset: 200),
            VirtioNetHeader(gsoType: VirtioNetHeader.GSO.tcpv4, gsoSize: 1448),  // GSO without NEEDS_CSUM
            // UFO (VIRTIO_NET_HDR_GSO_UDP): never asked for, never translated.
            VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, gsoType: VirtioNetHeader.GSO.udp, gsoSize: 1448,
                            checksumStart: 20, checksumOffset: 16),
            // TCPv6 GSO on an IPv4 packet.
            VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, gsoType: VirtioNetHeader.GSO.tcpv6, gsoSize: 1448,
                            checksumStart: 20, checksumOffset: 16),
        ]
        var counters = IOCounters()
        for header in bad {
            var bytes = frame(header, packet)
            let outcome = bytes.withUnsafeMutableBytes {
                FrameProcessor.process($0, nat: nat, now: .seconds(1), compensateHop: false, counters: &counters)
            }
            #expect(outcome == .drop)
        }
        var short: [UInt8] = [1, 2, 3]
        _ = short.withUnsafeMutableBytes {
            FrameProcessor.process($0, nat: nat, now: .seconds(1), compensateHop: false, counters: &counters)
        }
        #expect(counters.badVirtioHeader == 4)
        #expect(counters.unsupportedGSO == 1)
        #expect(nat.counters.packets == 4)
    }

    /// In tun mode the kernel decrements the TTL twice; tunnat gives one back, keeping the header checksum right.
    @Test func forwardingHopCompensationKeepsTheHeaderChecksum() throws {
        let nat = try makeNAT()
        let packet = PacketBuilder.udp(from: (client, 40000), to: (server, 53), payload: payload(20))
        var bytes = frame(VirtioNetHeader(), packet)
        var counters = IOCounters()
        _ = bytes.withUnsafeMutableBytes {
            FrameProcessor.process($0, nat: nat, now: .seconds(1), compensateHop: true, counters: &counters)
        }
        let out = Array(bytes[VirtioNetHeader.size...])
        #expect(out[8] == 65)
        #expect(ChecksumAudit.problems(in: out) == [])
    }

    // MARK: GSO splitting

    static func split(_ packet: [UInt8], _ header: VirtioNetHeader) throws -> [[UInt8]] {
        var packet = packet
        let arena = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { arena.deallocate() }
        var used = 0
        var segments: [[UInt8]] = []
        try packet.withUnsafeMutableBytes { b throws in
            try Offload.segment(b, header, capacity: arena.count, space: { length in
                defer { used += length }
                return UnsafeMutableRawBufferPointer(rebasing: arena[used..<(used + length)])
            }, emit: { segments.append(Array($0)) })
        }
        return segments
    }

    @Test func tcpSuperPacketSplitsAsTheKernelDoes() throws {
        let data = payload(10_000)
        var packet = PacketBuilder.tcp(from: (pool, 40000), to: (server, 80), flags: [.ack, .psh, .fin, .cwr],
                                       sequence: 0xFFFF_F000, payload: data, identification: 0xFFFE)
        makePartial(&packet, field: 36)
        let header = VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, gsoType: VirtioNetHeader.GSO.tcpv4,
                                     headerLength: 40, gsoSize: 1448, checksumStart: 20, checksumOffset: 16)
        let segments = try Self.split(packet, header)
        #expect(segments.count == 7)
        var joined: [UInt8] = []
        for (i, segment) in segments.enumerated() {
            #expect(ChecksumAudit.problems(in: segment) == [], "segment \(i)")
            var s = segment
            s.withUnsafeMutableBytes { b in
                let ip = IPv4Packet(unchecked: b)
                let tcp = TCPSegment(unchecked: ip.payload)
                #expect(ip.totalLength == b.count)
                #expect(ip.identification == 0xFFFE &+ UInt16(i))
                #expect(tcp.sequenceNumber.value == 0xFFFF_F000 &+ UInt32(i * 1448))
                let last = i == segments.count - 1
                #expect(tcp.flags.contains(.fin) == last && tcp.flags.contains(.psh) == last)
                #expect(tcp.flags.contains(.cwr) == (i == 0))
                #expect(tcp.flags.contains(.ack))
                joined += Array(tcp.payload)
            }
            #expect(segment.count == (i < 6 ? 40 + 1448 : 40 + 10_000 - 6 * 1448))
        }
        let sameBytes = joined == data
        #expect(sameBytes)
    }

    @Test func udpSuperPacketSplitsIntoDatagrams() throws {
        let data = payload(3000)
        var packet = PacketBuilder.udp(from: (pool, 40000), to: (server, 443), payload: data)
        makePartial(&packet, field: 26)
        let header = VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, gsoType: VirtioNetHeader.GSO.udpL4,
                                     headerLength: 28, gsoSize: 1200, checksumStart: 20, checksumOffset: 6)
        let segments = try Self.split(packet, header)
        #expect(segments.map(\.count) == [1228, 1228, 628])
        var joined: [UInt8] = []
        for segment in segments {
            #expect(ChecksumAudit.problems(in: segment) == [])
            joined += segment[28...]
            #expect(Int(segment[24]) << 8 | Int(segment[25]) == segment.count - 20)
        }
        let sameBytes = joined == data
        #expect(sameBytes)
    }

    @Test func splittingRefusesWhatItCannotDo() throws {
        let packet = PacketBuilder.tcp(from: (pool, 40000), to: (server, 80), flags: [.ack], payload: payload(100))
        let zeroSize = VirtioNetHeader(flags: 1, gsoType: VirtioNetHeader.GSO.tcpv4, gsoSize: 0, checksumStart: 20,
                                       checksumOffset: 16)
        #expect(throws: OffloadError.badVirtioHeader) { try Self.split(packet, zeroSize) }
        let wrongProtocol = VirtioNetHeader(flags: 1, gsoType: VirtioNetHeader.GSO.udpL4, gsoSize: 10,
                                            checksumStart: 20, checksumOffset: 6)
        #expect(throws: OffloadError.badVirtioHeader) { try Self.split(packet, wrongProtocol) }
        let ufo = VirtioNetHeader(flags: 1, gsoType: VirtioNetHeader.GSO.udp, gsoSize: 10)
        #expect(throws: OffloadError.unsupportedGSO) { try Self.split(packet, ufo) }
    }
}

/// The raw socket output, with sendmmsg replaced by a recorder: what it would have sent, in order.
@Suite struct RawOutputTests {
    final class Recorder {
        var sent: [[UInt8]] = []
        var calls = 0
    }

    /// Many super-packets in one batch: segment memory and the sendmmsg queue fill and flush many times over,
    /// and every segment must still go out intact and in order (a flush between writing a segment and queueing
    /// it once let later segments overwrite it).
    @Test func manySuperPacketsGoOutWholeAndInOrder() throws {
        let recorder = Recorder()
        let output = RawOutput(socket: nil) { datagrams, count in
            recorder.calls += 1
            for i in 0..<count {
                let d = datagrams[i]
                recorder.sent.append(Array(UnsafeRawBufferPointer(start: d.bytes, count: d.length)))
            }
            return .success(count)
        }
        var frames: [[UInt8]] = []
        var expected: [UInt8] = []
        var sequence: UInt32 = 1
        for k in 0..<12 {
            let data = payload(20_000 + k * 3001)
            var packet = PacketBuilder.tcp(from: (pool, 40000), to: (server, 80), flags: [.ack], sequence: sequence,
                                           payload: data)
            makePartial(&packet, field: 36)
            sequence &+= UInt32(data.count)
            expected += data
            frames.append(frame(VirtioNetHeader(flags: 1, gsoType: VirtioNetHeader.GSO.tcpv4, headerLength: 40,
                                                gsoSize: 1448, checksumStart: 20, checksumOffset: 16), packet))
        }
        var counters = IOCounters()
        for i in frames.indices {
            frames[i].withUnsafeMutableBytes { b in
                output.send(frame: b, header: VirtioNetHeader(b), counters: &counters)
            }
        }
        output.flush(counters: &counters)
        var joined: [UInt8] = []
        var next: UInt32 = 1
        for segment in recorder.sent {
            #expect(ChecksumAudit.problems(in: segment) == [])
            #expect(UInt32(segment[24]) << 24 | UInt32(segment[25]) << 16 | UInt32(segment[26]) << 8 | UInt32(segment[27]) == next)
            next &+= UInt32(segment.count - 40)
            joined += segment[40...]
        }
        let sameBytes = joined == expected
        #expect(sameBytes, "the payload sent differs from the payload read")
        #expect(counters.segmentsSplit == UInt64(recorder.sent.count))
        #expect(counters.packetsWritten == UInt64(recorder.sent.count))
        #expect(recorder.calls > 4)
    }

    @Test func refusedDatagramsAreCountedAndSkipped() {
        var attempts = 0
        let output = RawOutput(socket: nil) { _, count in
            attempts += 1
            if attempts == 1 { return .failure(Errno("sendmmsg", EPERM)) }
            return .success(count)
        }
        var counters = IOCounters()
        var packets = (0..<3).map { _ in PacketBuilder.udp(from: (pool, 1), to: (server, 2), payload: payload(10)) }
        for i in packets.indices {
            packets[i].withUnsafeMutableBytes { output.send(packet: $0, counters: &counters) }
        }
        #expect(counters.writeErrors == 1)
        #expect(counters.lastWriteErrno == EPERM)
        #expect(counters.packetsWritten == 2)
    }
}

import Glibc
