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
/// partial checksums, so a 64 KB TCP super-packet costs one write (DESIGN.md: 3.7x the raw socket's rate).
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
            if error.code == EPERM || error.code == EACCES {
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

    /// sendmmsg stops at the first datagram the kernel refuses; that one is counted and skipped.
    public func flush(counters: inout IOCounters) {
        var sent = 0
        while sent < pendingCount {
            switch transmit(pending + sent, pendingCount - sent) {
            case .success(let n) where n > 0:
                for i in sent..<(sent + n) {
                    counters.packetsWritten &+= 1
                    counters.bytesWritten &+= UInt64(pending[i].length)
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
        pendingCount = 0
        segmentsUsed = 0
    }
}
