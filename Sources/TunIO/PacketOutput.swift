import Glibc
import PacketKit
import SystemCalls

/// Where translated packets go. The worker is generic over it, so the per-packet calls are direct.
public protocol PacketOutput: AnyObject {
    /// True when packets pass through the kernel's forwarding a second time on their way out (tun mode).
    var compensatesForwardingHop: Bool { get }
    /// Sends, or queues until `flush`, a translated frame: a virtio-net header (as `header` says it now) then the
    /// packet. The frame's memory stays valid until `flush` returns.
    func send(frame: UnsafeMutableRawBufferPointer, header: VirtioNetHeader, counters: inout IOCounters)
    /// Sends a bare IP packet with complete checksums (a released fragment).
    func send(packet: UnsafeMutableRawBufferPointer, counters: inout IOCounters)
    /// Sends whatever is queued.
    func flush(counters: inout IOCounters)
}

/// Output back into the TUN, virtio-net header and all: GSO super-packets stay whole and the kernel finishes
/// partial checksums, so a 64 KB TCP super-packet costs one write (3.7x the raw socket's rate: docs/benchmarks.md,
/// "Design measurements").
public final class TunOutput<Queue: PacketQueue>: PacketOutput {
    let queue: Queue
    let headers: Bool
    /// A frame for bare packets: a zeroed virtio-net header, then the packet.
    let scratch: UnsafeMutableRawBufferPointer

    public init(queue: Queue, virtioHeaders: Bool) {
        self.queue = queue
        headers = virtioHeaders
        scratch = .allocate(byteCount: VirtioNetHeader.size + 65_536, alignment: 16)
    }
    deinit { scratch.deallocate() }

    public var compensatesForwardingHop: Bool { true }

    @inline(__always)
    public func send(frame: UnsafeMutableRawBufferPointer, header: VirtioNetHeader, counters: inout IOCounters) {
        if headers {
            header.write(to: frame)
            write(UnsafeRawBufferPointer(frame), counters: &counters)
        } else {
            write(UnsafeRawBufferPointer(frame.suffix(from: VirtioNetHeader.size)), counters: &counters)
        }
    }

    public func send(packet: UnsafeMutableRawBufferPointer, counters: inout IOCounters) {
        guard headers else { return write(UnsafeRawBufferPointer(packet), counters: &counters) }
        guard packet.count <= scratch.count - VirtioNetHeader.size else {
            counters.writeErrors &+= 1
            counters.lastWriteErrno = EMSGSIZE
            return
        }
        VirtioNetHeader().write(to: scratch)
        scratch.suffix(from: VirtioNetHeader.size).copyMemory(from: UnsafeRawBufferPointer(packet))
        write(UnsafeRawBufferPointer(rebasing: scratch[..<(VirtioNetHeader.size + packet.count)]), counters: &counters)
    }

    public func flush(counters: inout IOCounters) {}

    @inline(__always)
    func write(_ bytes: UnsafeRawBufferPointer, counters: inout IOCounters) {
        do {
            try queue.write(bytes)
            counters.packetsWritten &+= 1
            counters.bytesWritten &+= UInt64(bytes.count)
        } catch {
            counters.writeErrors &+= 1
            counters.lastWriteErrno = error.code
        }
    }
}

/// Output through a raw IPv4 socket (IPPROTO_RAW, which implies IP_HDRINCL): the kernel routes each packet as
/// if this host sent it. It takes no GSO super-packets and finishes no checksums, so both are done here, and
/// packets go out in batches through sendmmsg(2).
public final class RawOutput: PacketOutput {
    /// Sends up to `count` datagrams as sendmmsg(2) does: how many went, or the error of the first.
    public typealias Transmit = (UnsafeMutablePointer<RawDatagram>, Int) -> Result<Int, Errno>
    let socket: FileDescriptor?
    let transmit: Transmit
    static var batch: Int { RawIPSocket.batch }
    let pending: UnsafeMutablePointer<RawDatagram>
    var pendingCount = 0
    /// GSO segments are written here, one after another, until the next flush; 256 KB holds four 64 KB
    /// super-packets' worth.
    let segments: UnsafeMutableRawBufferPointer
    var segmentsUsed = 0

    /// Opens the socket: needs CAP_NET_RAW.
    public convenience init() throws(TunError) {
        let socket: FileDescriptor
        do { socket = try RawIPSocket.open() } catch {
            if error.code == Errno.notPermitted || error.code == Errno.accessDenied {
                throw TunError("\(error): the raw output needs CAP_NET_RAW (run as root, or setcap cap_net_admin,cap_net_raw+ep tunnat)", errno: error)
            }
            throw TunError("\(error)", errno: error)
        }
        let fd = socket.rawValue
        self.init(socket: socket) { datagrams, count in RawIPSocket.send(fd, datagrams, count: count) }
    }

    /// Tests pass their own `transmit` (and no socket) to see exactly what would have been sent.
    init(socket: consuming FileDescriptor?, transmit: @escaping Transmit) {
        self.socket = socket
        self.transmit = transmit
        pending = .allocate(capacity: Self.batch)
        segments = .allocate(byteCount: 256 << 10, alignment: 16)
    }

    deinit {
        pending.deallocate()
        segments.deallocate()
    }

    public var compensatesForwardingHop: Bool { false }

    @inline(__always)
    public func send(frame: UnsafeMutableRawBufferPointer, header: VirtioNetHeader, counters: inout IOCounters) {
        let packet = frame.suffix(from: VirtioNetHeader.size)
        guard packet.count >= 20, packet[0] >> 4 == 4 else {
            // A raw IPv4 socket cannot send IPv6; the configuration refuses NAT64 with this output.
            counters.writeErrors &+= 1
            counters.lastWriteErrno = EAFNOSUPPORT
            return
        }
        if header.isGSO {
            do throws(OffloadError) {
                try Offload.segment(packet, header, capacity: segments.count, space: { length in
                    // Flush before handing out memory, never between writing a segment and queueing it: a
                    // flush starts the segment memory over.
                    if segmentsUsed &+ length > segments.count || pendingCount == Self.batch {
                        flush(counters: &counters)
                    }
                    defer { segmentsUsed &+= length }
                    return UnsafeMutableRawBufferPointer(rebasing: segments[segmentsUsed..<(segmentsUsed &+ length)])
                }, emit: { segment in
                    counters.segmentsSplit &+= 1
                    enqueue(segment, counters: &counters)
                })
            } catch {
                if error == .unsupportedGSO { counters.unsupportedGSO &+= 1 } else { counters.badVirtioHeader &+= 1 }
            }
            return
        }
        if header.flags & VirtioNetHeader.needsChecksum != 0 {
            Offload.completeChecksum(packet, header)
            counters.checksumsCompleted &+= 1
        }
        enqueue(packet, counters: &counters)
    }

    public func send(packet: UnsafeMutableRawBufferPointer, counters: inout IOCounters) {
        // Released fragments are copies owned by the caller until it returns: send at once.
        enqueue(packet, counters: &counters)
        flush(counters: &counters)
    }

    @inline(__always)
    func enqueue(_ packet: UnsafeMutableRawBufferPointer, counters: inout IOCounters) {
        if pendingCount == Self.batch { flush(counters: &counters) }
        pending[pendingCount] = RawDatagram(
            bytes: UnsafeRawPointer(packet.baseAddress), length: packet.count,
            destination: packet.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        pendingCount &+= 1
    }

    public func flush(counters: inout IOCounters) {
        transmitAll(pending, count: pendingCount, through: transmit, counters: &counters) { $0.length }
        pendingCount = 0
        segmentsUsed = 0
    }
}

/// Sends `count` queued items through a sendmmsg(2)-like `transmit`, which stops at the first item the kernel
/// refuses: that one is counted and skipped, and the rest are sent on. `length` gives an item's bytes.
@inline(__always)
func transmitAll<Item>(
    _ pending: UnsafeMutablePointer<Item>, count: Int,
    through transmit: (UnsafeMutablePointer<Item>, Int) -> Result<Int, Errno>, counters: inout IOCounters,
    length: (Item) -> Int
) {
    var sent = 0
    while sent < count {
        switch transmit(pending + sent, count - sent) {
        case .success(let n) where n > 0:
            for i in sent..<(sent + n) {
                counters.packetsWritten &+= 1
                counters.bytesWritten &+= UInt64(length(pending[i]))
            }
            sent += n
        case .success:
            // Nothing taken and no error: count it as refused rather than spin.
            counters.writeErrors &+= 1
            sent += 1
        case .failure(let error):
            counters.writeErrors &+= 1
            counters.lastWriteErrno = error.code
            sent += 1
        }
    }
}

/// Output straight out of the egress interface through a packet socket with virtio-net headers (packet(7),
/// PACKET_VNET_HDR): the translated packet skips the kernel's second pass through receive, routing and
/// forwarding that the TUN write-back costs. GSO super-packets stay whole and partial checksums stay partial,
/// as in tun mode. The interface and the Ethernet header come from the kernel's route and neighbour tables
/// (`EgressCache`). The kernel took the NAT's hop (TTL one less) on the way into the TUN, so a packet sent here
/// leaves as it was read. Whatever this output cannot send itself (no usable route or neighbour yet, larger
/// than the egress MTU, a released fragment) goes back into the TUN, TTL compensated as in tun mode, after what
/// is queued, so a flow's packets leave in the order they came.
public final class PacketSocketOutput<Queue: PacketQueue>: PacketOutput {
    /// Sends up to `count` frames as sendmmsg(2) does: how many went, or the error of the first.
    public typealias Transmit = (UnsafeMutablePointer<PacketFrame>, Int) -> Result<Int, Errno>
    static var batch: Int { PacketSocket.batch }
    /// A virtio-net header and an Ethernet header (and 2 bytes of room that `writeEthernetHeader` needs).
    static var prefixSize: Int { VirtioNetHeader.size + 14 }
    static var prefixStride: Int { 32 }

    let fallback: TunOutput<Queue>
    let cache: EgressCache
    let socket: FileDescriptor?
    let transmit: Transmit
    let pending: UnsafeMutablePointer<PacketFrame>
    let prefixes: UnsafeMutableRawPointer
    var pendingCount = 0

    /// Opens the packet socket (CAP_NET_RAW) and a netlink socket for the cache.
    public convenience init(queue: Queue, virtioHeaders: Bool, tunInterface: Int32, changes: EgressChanges) throws(TunError) {
        func failure(_ error: Errno) -> TunError {
            if error.code == Errno.notPermitted || error.code == Errno.accessDenied {
                return TunError("\(error): the packet output needs CAP_NET_RAW (run as root, or setcap cap_net_admin,cap_net_raw+ep tunnat)", errno: error)
            }
            return TunError("\(error)", errno: error)
        }
        let netlink: RouteNetlink
        do { netlink = try RouteNetlink() } catch { throw failure(error) }
        let socket: FileDescriptor
        do { socket = try PacketSocket.open() } catch { throw failure(error) }
        let fd = socket.rawValue
        self.init(fallback: TunOutput(queue: queue, virtioHeaders: virtioHeaders),
                  cache: EgressCache(tunInterface: tunInterface, changes: changes, resolver: netlink), socket: socket) {
            frames, count in PacketSocket.send(fd, frames, count: count)
        }
    }

    init(fallback: TunOutput<Queue>, cache: EgressCache, socket: consuming FileDescriptor?, transmit: @escaping Transmit) {
        self.fallback = fallback
        self.cache = cache
        self.socket = socket
        self.transmit = transmit
        pending = .allocate(capacity: Self.batch)
        prefixes = .allocate(byteCount: Self.batch * Self.prefixStride, alignment: 16)
    }

    deinit {
        pending.deallocate()
        prefixes.deallocate()
    }

    /// Only the packets sent back into the TUN pass the kernel's forwarding again: they are compensated here.
    public var compensatesForwardingHop: Bool { false }

    @inline(__always)
    public func send(frame: UnsafeMutableRawBufferPointer, header: VirtioNetHeader, counters: inout IOCounters) {
        let packet = frame.suffix(from: VirtioNetHeader.size)
        // IPv6 (NAT64 towards an IPv6-only host) goes back through the kernel, which knows its neighbours.
        guard packet.count >= 20, packet[0] >> 4 == 4,
              let hop = cache.nextHop(from: packet.loadUnaligned(fromByteOffset: 12, as: UInt32.self),
                                      to: packet.loadUnaligned(fromByteOffset: 16, as: UInt32.self), counters: &counters),
              Self.fits(packet, header, mtu: hop.pointee.mtu)
        else {
            Offload.compensateForwardingHop(packet)
            transmitPending(counters: &counters)
            counters.framesFallback &+= 1
            fallback.send(frame: frame, header: header, counters: &counters)
            return
        }
        if pendingCount == Self.batch { transmitPending(counters: &counters) }
        let prefix = prefixes + pendingCount &* Self.prefixStride
        // Offsets in the virtio-net header count from the start of the frame, now the Ethernet header.
        var shifted = header
        if shifted.flags & VirtioNetHeader.needsChecksum != 0 { shifted.checksumStart &+= 14 }
        if shifted.headerLength != 0 { shifted.headerLength &+= 14 }
        shifted.write(to: UnsafeMutableRawBufferPointer(start: prefix, count: VirtioNetHeader.size))
        hop.pointee.writeEthernetHeader(to: prefix + VirtioNetHeader.size)
        pending[pendingCount] = PacketFrame(prefix: prefix, prefix_length: Self.prefixSize,
                                            bytes: UnsafeRawPointer(packet.baseAddress), length: packet.count,
                                            ifindex: hop.pointee.interface)
        pendingCount &+= 1
    }

    /// True when the packet, or each segment of a GSO super-packet, fits the egress MTU; larger ones are the
    /// kernel's to fragment or to answer with ICMP "fragmentation needed".
    @inline(__always)
    static func fits(_ packet: UnsafeMutableRawBufferPointer, _ header: VirtioNetHeader, mtu: Int) -> Bool {
        guard header.isGSO else { return packet.count <= mtu }
        let ihl = Int(packet[0] & 0x0F) &* 4
        let kind = header.gsoType & ~VirtioNetHeader.GSO.ecn
        let transport: Int
        if kind == VirtioNetHeader.GSO.tcpv4, packet.count >= ihl &+ 20 {
            transport = Int(packet[ihl &+ 12] >> 4) &* 4
        } else if kind == VirtioNetHeader.GSO.udpL4 {
            transport = 8
        } else {
            return false
        }
        return ihl &+ transport &+ Int(header.gsoSize) <= mtu
    }

    public func send(packet: UnsafeMutableRawBufferPointer, counters: inout IOCounters) {
        transmitPending(counters: &counters)
        counters.framesFallback &+= 1
        Offload.compensateForwardingHop(packet)
        fallback.send(packet: packet, counters: &counters)
    }

    /// The end of a batch: what is queued goes, and the cache takes in what changed in the kernel's tables
    /// since the last batch (and renews its lookup budget).
    public func flush(counters: inout IOCounters) {
        transmitPending(counters: &counters)
        cache.refresh()
    }

    func transmitPending(counters: inout IOCounters) {
        guard pendingCount > 0 else { return }
        let before = counters.packetsWritten
        transmitAll(pending, count: pendingCount, through: transmit, counters: &counters) { $0.length }
        counters.framesDirect &+= counters.packetsWritten &- before
        pendingCount = 0
    }
}
