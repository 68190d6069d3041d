import PacketKit

/// The virtio-net header that precedes every packet on a TUN opened with IFF_VNET_HDR (virtio spec 1.2
/// section 5.1.6, `struct virtio_net_hdr` in <linux/virtio_net.h>). tun uses the host's byte order unless told
/// otherwise (TUNSETVNETLE/BE); tunnat runs on little-endian hosts, so the fields are little-endian.
public struct VirtioNetHeader: Equatable, Sendable {
    public static let size = 10

    /// VIRTIO_NET_HDR_F_NEEDS_CSUM: the transport checksum is not computed yet; the field at
    /// `checksumStart + checksumOffset` holds the pseudo-header sum, and whoever sends the packet finishes it.
    public static let needsChecksum: UInt8 = 1
    /// VIRTIO_NET_HDR_F_DATA_VALID: the kernel verified the transport checksum.
    public static let dataValid: UInt8 = 2

    /// VIRTIO_NET_HDR_GSO_*: what kind of super-packet this is. The 0x80 bit (ECN) may be or-ed in.
    public enum GSO {
        public static let none: UInt8 = 0
        public static let tcpv4: UInt8 = 1
        public static let udp: UInt8 = 3
        public static let tcpv6: UInt8 = 4
        /// VIRTIO_NET_HDR_GSO_UDP_L4 (USO, Linux 6.2).
        public static let udpL4: UInt8 = 5
        public static let ecn: UInt8 = 0x80
    }

    public var flags: UInt8
    public var gsoType: UInt8
    /// Bytes of headers (IP + transport) in each segment.
    public var headerLength: UInt16
    /// Payload bytes per segment.
    public var gsoSize: UInt16
    public var checksumStart: UInt16
    public var checksumOffset: UInt16

    public init(flags: UInt8 = 0, gsoType: UInt8 = GSO.none, headerLength: UInt16 = 0, gsoSize: UInt16 = 0,
                checksumStart: UInt16 = 0, checksumOffset: UInt16 = 0) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    /// Reads the header at the start of `frame`, which must hold at least `size` bytes.
    @inlinable
    public init(_ frame: UnsafeMutableRawBufferPointer) {
        flags = frame[0]
        gsoType = frame[1]
        headerLength = UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        gsoSize = UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        checksumStart = UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        checksumOffset = UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
    }

    @inlinable
    public func write(to frame: UnsafeMutableRawBufferPointer) {
        frame[0] = flags
        frame[1] = gsoType
        frame.storeBytes(of: headerLength.littleEndian, toByteOffset: 2, as: UInt16.self)
        frame.storeBytes(of: gsoSize.littleEndian, toByteOffset: 4, as: UInt16.self)
        frame.storeBytes(of: checksumStart.littleEndian, toByteOffset: 6, as: UInt16.self)
        frame.storeBytes(of: checksumOffset.littleEndian, toByteOffset: 8, as: UInt16.self)
    }

    @inlinable public var isGSO: Bool { gsoType & ~GSO.ecn != GSO.none }
}

/// Why a frame from the TUN could not be used. Counted, never fatal.
public enum OffloadError: Error, Sendable {
    /// Shorter than a virtio-net header, or a checksum position or GSO layout outside the packet.
    case badVirtioHeader
    /// A GSO type tunnat does not translate (IPv6, UFO) or asks the kernel not to send.
    case unsupportedGSO
}

/// What the worker remembers about a frame between reading it and sending it.
public struct PreparedFrame {
    public var header: VirtioNetHeader
    /// For a TCP/UDP packet whose checksum the kernel will finish: where the transport header starts and where
    /// the partial sum sits in it, the sum, and the sum of the address words it covers, so that it can follow
    /// the addresses through translation (and a change of family, which moves the transport header).
    var transportStart: Int
    var checksumOffset: Int
    var partialSum: UInt16
    var addressSum: UInt64
    /// True when the transport checksum need not be verified (NEEDS_CSUM or DATA_VALID).
    public var checksumTrusted: Bool

    var isPartial: Bool { transportStart >= 0 }
}

/// Offload handling, kept in one file as wireguard-go keeps `tun/offload_linux.go`: partial checksums on the way
/// through the NAT, checksum completion, and GSO splitting for outputs that cannot take super-packets.
public enum Offload {
    /// Looks at a frame's virtio-net header before translation. A packet with NEEDS_CSUM whose partial checksum is
    /// not the ordinary TCP/UDP one is finished here in software (and may then not be GSO); the ordinary case is
    /// left partial, and `finish(_:_:)` moves its pseudo-header sum after translation.
    public static func prepare(_ packet: UnsafeMutableRawBufferPointer, _ header: VirtioNetHeader)
        throws(OffloadError) -> PreparedFrame {
        var prepared = PreparedFrame(header: header, transportStart: -1, checksumOffset: 0, partialSum: 0,
                                     addressSum: 0, checksumTrusted: header.flags & VirtioNetHeader.dataValid != 0)
        let gsoKind = header.gsoType & ~VirtioNetHeader.GSO.ecn
        if header.flags & VirtioNetHeader.needsChecksum == 0 {
            guard gsoKind == VirtioNetHeader.GSO.none else { throw .badVirtioHeader }
            return prepared
        }
        let start = Int(header.checksumStart)
        let field = start &+ Int(header.checksumOffset)
        guard packet.count >= 20, field &+ 2 <= packet.count, start < field || header.checksumOffset == 0 else {
            throw .badVirtioHeader
        }
        let six = packet[0] >> 4 == 6
        // The IP header's length and the protocol right after it; IPv6 only without extension headers.
        let ipLength = six ? IPv6Packet.headerLength : Int(packet[0] & 0x0F) &* 4
        let proto = six ? (packet.count >= 40 ? packet[6] : 0) : packet[9]
        let unfragmented = six || packet.loadBE16(at: 6) & 0x3FFF == 0
        let ordinary = (packet[0] >> 4 == 4 || six) && start == ipLength && unfragmented
            && ((proto == IPProtocol.tcp.value && header.checksumOffset == 16)
                || (proto == IPProtocol.udp.value && header.checksumOffset == 6))
        if ordinary {
            switch gsoKind {
            case VirtioNetHeader.GSO.none: break
            case VirtioNetHeader.GSO.tcpv4 where !six, VirtioNetHeader.GSO.tcpv6 where six:
                guard proto == IPProtocol.tcp.value else { throw .badVirtioHeader }
            case VirtioNetHeader.GSO.udpL4: guard proto == IPProtocol.udp.value else { throw .badVirtioHeader }
            case VirtioNetHeader.GSO.tcpv4, VirtioNetHeader.GSO.tcpv6: throw .badVirtioHeader
            default: throw .unsupportedGSO
            }
            prepared.transportStart = start
            prepared.checksumOffset = Int(header.checksumOffset)
            prepared.partialSum = packet.loadBE16(at: field)
            prepared.addressSum = addressSum(packet)
            prepared.checksumTrusted = true
            return prepared
        }
        guard gsoKind == VirtioNetHeader.GSO.none else {
            throw gsoKind == VirtioNetHeader.GSO.tcpv6 ? .unsupportedGSO : .badVirtioHeader
        }
        completeChecksum(packet, start: start, field: field, udp: six && header.checksumOffset == 6 && proto == IPProtocol.udp.value)
        prepared.header.flags &= ~VirtioNetHeader.needsChecksum
        prepared.header.flags |= VirtioNetHeader.dataValid
        prepared.checksumTrusted = false
        return prepared
    }

    /// The one's-complement sum of the source and destination address words (what they add to a pseudo-header).
    @inline(__always)
    static func addressSum(_ packet: UnsafeMutableRawBufferPointer) -> UInt64 {
        if packet[0] >> 4 == 6 { return IPv6Address(packet, at: 8).wordSum &+ IPv6Address(packet, at: 24).wordSum }
        let s = packet.loadBE32(at: 12), d = packet.loadBE32(at: 16)
        return UInt64(s >> 16) &+ UInt64(s & 0xFFFF) &+ UInt64(d >> 16) &+ UInt64(d & 0xFFFF)
    }

    /// After translation: the partial sum covers the pseudo-header only, so it follows the address changes and
    /// nothing else (the kernel's `inet_proto_csum_replace4` with `pseudohdr` on a CHECKSUM_PARTIAL skb). The
    /// engine's own incremental updates, which assumed a full checksum, are overwritten. A packet that changed
    /// family (NAT64) has its transport header elsewhere: the virtio-net header's checksum start, header length
    /// and GSO type follow it.
    public static func finish(_ packet: UnsafeMutableRawBufferPointer, _ prepared: inout PreparedFrame) {
        guard prepared.isPartial else { return }
        let start = packet[0] >> 4 == 6 ? IPv6Packet.headerLength : Int(packet[0] & 0x0F) &* 4
        let sum = UInt64(prepared.partialSum) &+ UInt64(~Checksum.fold(prepared.addressSum)) &+ addressSum(packet)
        packet.storeBE16(Checksum.fold(sum), at: start &+ prepared.checksumOffset)
        guard start != prepared.transportStart else { return }
        let shift = start &- prepared.transportStart
        prepared.header.checksumStart = UInt16(start)
        if prepared.header.headerLength != 0 {
            prepared.header.headerLength = UInt16(truncatingIfNeeded: Int(prepared.header.headerLength) &+ shift)
        }
        let ecn = prepared.header.gsoType & VirtioNetHeader.GSO.ecn
        switch prepared.header.gsoType & ~VirtioNetHeader.GSO.ecn {
        case VirtioNetHeader.GSO.tcpv4: prepared.header.gsoType = VirtioNetHeader.GSO.tcpv6 | ecn
        case VirtioNetHeader.GSO.tcpv6: prepared.header.gsoType = VirtioNetHeader.GSO.tcpv4 | ecn
        default: break
        }
    }

    /// Writes the full checksum of a packet whose field at `field` holds the partial (pseudo-header) sum: the
    /// sum from `start` to the end, as the kernel's `skb_checksum_help` computes it. For UDP, 0 is sent as 0xFFFF.
    public static func completeChecksum(_ packet: UnsafeMutableRawBufferPointer, start: Int, field: Int, udp: Bool) {
        var value = Checksum.finish(Checksum.sum(packet.suffix(from: start)))
        if udp && value == 0 { value = 0xFFFF }
        packet.storeBE16(value, at: field)
    }

    /// Finishes the checksum of a NEEDS_CSUM packet that goes out where nobody will (a raw socket).
    public static func completeChecksum(_ packet: UnsafeMutableRawBufferPointer, _ header: VirtioNetHeader) {
        guard header.flags & VirtioNetHeader.needsChecksum != 0 else { return }
        let start = Int(header.checksumStart)
        completeChecksum(packet, start: start, field: start &+ Int(header.checksumOffset),
                         udp: packet[9] == IPProtocol.udp.value)
    }

    /// In tun output mode the kernel forwards a packet twice (into the TUN, then out of it), taking two off its
    /// TTL where a NAT takes one; adding one back makes tunnat a single hop, as the kernel's NAT is. The kernel
    /// never hands over a packet whose TTL it would not forward, so the result is at most 255.
    public static func compensateForwardingHop(_ packet: UnsafeMutableRawBufferPointer) {
        if packet[0] >> 4 == 6 {
            // The hop limit has no checksum to keep.
            if packet.count >= 40 && packet[7] < 255 { packet[7] &+= 1 }
            return
        }
        let ttl = packet[8]
        guard ttl < 255 else { return }
        let old = packet.loadBE16(at: 8)
        packet[8] = ttl &+ 1
        packet.storeBE16(Checksum.update(packet.loadBE16(at: 10), old: old, new: packet.loadBE16(at: 8)), at: 10)
    }

    // MARK: GSO splitting

    /// Splits a GSO super-packet into the packets it stands for, each with a full transport checksum and its own
    /// IP header checksum, as the kernel's `tcp_gso_segment` and `__udp_gso_segment` do: TCP segments get
    /// consecutive sequence numbers, FIN and PSH only on the last, CWR only on the first; each IP ID is one more
    /// than the last. Each segment is written into memory that `space(length)` hands out (at most `capacity`
    /// bytes at a time; the caller owns it and keeps it until the segment is sent), then given to `emit`.
    public static func segment(
        _ packet: UnsafeMutableRawBufferPointer, _ header: VirtioNetHeader, capacity: Int,
        space: (Int) -> UnsafeMutableRawBufferPointer, emit: (UnsafeMutableRawBufferPointer) -> Void
    ) throws(OffloadError) {
        let kind = header.gsoType & ~VirtioNetHeader.GSO.ecn
        guard kind == VirtioNetHeader.GSO.tcpv4 || kind == VirtioNetHeader.GSO.udpL4 else { throw .unsupportedGSO }
        guard packet.count >= 20 else { throw .badVirtioHeader }
        let ihl = Int(packet[0] & 0x0F) &* 4
        let total = min(Int(packet.loadBE16(at: 2)), packet.count)
        let tcp = kind == VirtioNetHeader.GSO.tcpv4
        guard ihl >= 20, packet[9] == (tcp ? IPProtocol.tcp.value : IPProtocol.udp.value),
              total >= ihl &+ (tcp ? 20 : 8) else { throw .badVirtioHeader }
        let l4Header = tcp ? Int(packet[ihl &+ 12] >> 4) &* 4 : 8
        let headers = ihl &+ l4Header
        let mss = Int(header.gsoSize)
        guard mss > 0, l4Header >= (tcp ? 20 : 8), headers <= total, headers &+ mss <= capacity else {
            throw .badVirtioHeader
        }
        let source = IPv4Address(packet.loadBE32(at: 12))
        let destination = IPv4Address(packet.loadBE32(at: 16))
        let payload = total &- headers
        let firstID = packet.loadBE16(at: 4)
        let firstSequence = tcp ? packet.loadBE32(at: ihl &+ 4) : 0
        let flags = tcp ? packet[ihl &+ 13] : 0
        var offset = 0
        var index = 0
        repeat {
            let size = min(mss, payload &- offset)
            let length = headers &+ size
            let out = space(length)
            out.copyMemory(from: UnsafeRawBufferPointer(rebasing: packet[0..<headers]))
            UnsafeMutableRawBufferPointer(rebasing: out[headers...])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: packet[(headers &+ offset)..<(headers &+ offset &+ size)]))
            out.storeBE16(UInt16(length), at: 2)
            out.storeBE16(firstID &+ UInt16(truncatingIfNeeded: index), at: 4)
            IPv4Packet(unchecked: out).fillHeaderChecksum()
            let l4 = out.suffix(from: ihl)
            let pseudo = Checksum.pseudoHeaderSum(source: source, destination: destination,
                                                  protocol: tcp ? .tcp : .udp, length: length &- ihl)
            if tcp {
                l4.storeBE32(firstSequence &+ UInt32(truncatingIfNeeded: offset), at: 4)
                var f = flags
                if offset &+ size < payload { f &= ~(TCPFlags.fin.rawValue | TCPFlags.psh.rawValue) }
                if index > 0 { f &= ~TCPFlags.cwr.rawValue }
                l4[13] = f
                TCPSegment(unchecked: l4).fillChecksum(pseudoHeaderSum: pseudo)
            } else {
                l4.storeBE16(UInt16(length &- ihl), at: 4)
                UDPDatagram(unchecked: l4).fillChecksum(pseudoHeaderSum: pseudo)
            }
            emit(out)
            offset &+= size
            index &+= 1
        } while offset < payload
    }
}
