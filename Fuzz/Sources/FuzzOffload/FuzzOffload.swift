// libFuzzer target: the virtio-net header and the offload code around translation (TunIO/Offload.swift), driven
// the way the data plane drives it: `FrameProcessor.process` (header parse, `Offload.prepare`, translate,
// `Offload.finish`, TTL compensation), then what each output does with the frame: the TUN output writes it as it
// is; the raw output splits a GSO super-packet (`Offload.segment`) or finishes a partial checksum
// (`Offload.completeChecksum`).
//
// The input is a control byte, then (mode 0) a raw 10-byte virtio-net header or (mode 2) a 16-bit GSO size, then
// the packet:
//   bits 0-1  the header: 0 the bytes given, as the kernel might send anything; 1 NEEDS_CSUM as the kernel makes
//             it (checksum start at the IHL, the field holding the pseudo-header sum); 2 the same with GSO
//             (TCPv4 or UDP_L4 by protocol); 3 DATA_VALID
//   bit  2    compensate the forwarding hop (tun output)
//   bit  3    put the source in 10.0.0.0/28, so that the packet is translated outbound
//   bit  4    recompute the transport checksum first (modes 0 and 3)
// In modes 1 and 2 the IP total length (and a UDP length) are set to the bytes given, as a TUN read would have
// them. The IPv4 header checksum is always recomputed.
//
// Checked besides "no crash": a forwarded frame still parses; a well-formed partial checksum (mode 1), moved
// through translation and finished, verifies; every GSO segment verifies, has the length its header says, and the
// segments' payloads add up to the super-packet's.
import CFuzzerDriver
import FuzzSupport
import NatTable
import PacketKit
import TunIO

nonisolated(unsafe) let nat = try! NAT(configuration: NatConfiguration(
    privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: [IPv4Address(198, 18, 0, 1), IPv4Address(198, 18, 0, 2)],
    filtering: .endpointIndependent, maxFlows: 1024, maxHeldFragments: 8, seed: 11))
nonisolated(unsafe) var clockSeconds: UInt64 = 1000
nonisolated(unsafe) var counters = IOCounters()
/// Where GSO segments are written, as RawOutput's 256 KB arena.
nonisolated(unsafe) let arena = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)

/// The process's entry point (SwiftPM links `main` to it): libFuzzer's driver, with the function below.
@_cdecl("fuzz_offload_main")
func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    fuzz_run(argc, argv)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let control = input.byte()
    let mode = control & 3
    var rawHeader: [UInt8] = []
    var gsoSize: UInt16 = 0
    if mode == 0 { rawHeader = input.take(VirtioNetHeader.size) }
    if mode == 2 { gsoSize = input.uint16() }
    var packet = input.rest()
    if mode == 0 && rawHeader.count < VirtioNetHeader.size {
        // Too short for a header: the frame the worker would count as a bad header.
        var frame = rawHeader
        _ = frame.withUnsafeMutableBytes {
            FrameProcessor.process($0, nat: nat, now: .seconds(clockSeconds), compensateHop: false, counters: &counters)
        }
        return 0
    }

    var header = VirtioNetHeader()
    var wellFormedPartial = false
    packet.withUnsafeMutableBytes { p in
        guard let ihl = declaredHeaderLength(p) else { return }
        if control & 0x08 != 0 { Readdress.set(p, at: 12, 0x0A00_0000 | UInt32(p[15] & 0x0F)) }
        switch mode {
        case 1, 2:
            guard p.count <= 65535 else { break }
            p[2] = UInt8(p.count >> 8)
            p[3] = UInt8(p.count & 0xFF)
            let proto = p[9]
            let offset = transportChecksumOffset(proto) ?? 2
            let l4 = p.count - ihl
            if proto == 17, l4 >= 8 {
                p[ihl + 4] = UInt8(l4 >> 8)
                p[ihl + 5] = UInt8(l4 & 0xFF)
            }
            header.flags = VirtioNetHeader.needsChecksum
            header.checksumStart = UInt16(ihl)
            header.checksumOffset = UInt16(offset)
            if mode == 2 {
                header.gsoType = proto == 17 ? VirtioNetHeader.GSO.udpL4 : VirtioNetHeader.GSO.tcpv4
                header.gsoSize = gsoSize
                header.headerLength = UInt16(min(ihl + (proto == 17 ? 8 : 20), p.count))
            }
            guard l4 >= offset + 2 else { break }
            // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum, not complemented (none for ICMP).
            var partial = proto == 6 || proto == 17 ? pseudoHeaderSum(p, length: l4) : 0
            while partial > 0xFFFF { partial = (partial & 0xFFFF) + (partial >> 16) }
            p[ihl + offset] = UInt8(partial >> 8)
            p[ihl + offset + 1] = UInt8(partial & 0xFF)
            wellFormedPartial = mode == 1
        case 3:
            header.flags = VirtioNetHeader.dataValid
            if control & 0x10 != 0 { fixTransportChecksum(p) }
        default:
            if control & 0x10 != 0 { fixTransportChecksum(p) }
        }
        fixIPv4HeaderChecksum(p)
    }

    var frame = [UInt8](repeating: 0, count: VirtioNetHeader.size) + packet
    frame.withUnsafeMutableBytes { f in
        if mode == 0 {
            rawHeader.withUnsafeBytes { f.copyMemory(from: $0) }
            // The header reads back as it was written.
            let parsed = VirtioNetHeader(f)
            var again = [UInt8](repeating: 0xA5, count: VirtioNetHeader.size)
            again.withUnsafeMutableBytes { parsed.write(to: $0) }
            require(again == rawHeader, "virtio-net header does not round-trip")
        } else {
            header.write(to: f)
        }
    }

    clockSeconds += 1
    let compensate = control & 0x04 != 0
    let outcome = frame.withUnsafeMutableBytes {
        FrameProcessor.process($0, nat: nat, now: .seconds(clockSeconds), compensateHop: compensate, counters: &counters)
    }
    _ = nat.takeReleasedFragments()
    guard case .send(let sent) = outcome else { return 0 }

    frame.withUnsafeMutableBytes { f in
        let out = f.suffix(from: VirtioNetHeader.size)
        require((try? IPv4Packet(validating: out, verifyChecksum: true)) != nil, "forwarded frame no longer valid")
        // The raw output's work: split, or finish the checksum.
        if sent.isGSO {
            let ip = IPv4Packet(unchecked: out)
            let total = min(ip.totalLength, out.count)
            var used = 0
            var payloadBytes = 0
            var headers = -1
            do throws(OffloadError) {
                try Offload.segment(out, sent, capacity: arena.count, space: { length in
                    if used + length > arena.count { used = 0 }
                    defer { used += length }
                    return UnsafeMutableRawBufferPointer(rebasing: arena[used..<(used + length)])
                }, emit: { segment in
                    let problems = ChecksumAudit.problems(in: Array(segment))
                    require(problems.isEmpty, "GSO segment fails its checksums: \(problems)")
                    let s = IPv4Packet(unchecked: segment)
                    require(s.totalLength == segment.count, "GSO segment length \(s.totalLength) in \(segment.count) bytes")
                    let l4Header = s.protocol == .tcp ? Int(segment[s.headerLength + 12] >> 4) * 4 : 8
                    headers = s.headerLength + l4Header
                    payloadBytes += segment.count - headers
                })
                require(payloadBytes == total - headers, "GSO segments carry \(payloadBytes) of \(total - headers) bytes")
            } catch {
                // Counted by the output and dropped; nothing to check.
            }
        } else if sent.flags & VirtioNetHeader.needsChecksum != 0 {
            Offload.completeChecksum(out, sent)
            if wellFormedPartial {
                let problems = ChecksumAudit.problems(in: Array(out))
                require(problems.isEmpty, "finished partial checksum does not verify: \(problems)")
            }
        }
    }
    return 0
}
