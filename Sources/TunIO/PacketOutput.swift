import CTunShim
import Glibc
import PacketKit

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
public final class TunOutput: PacketOutput {
    let queue: TunQueue
    let headers: Bool
    /// A frame for bare packets: a zeroed virtio-net header, then the packet.
    let scratch: UnsafeMutableRawBufferPointer

    public init(queue: TunQueue, virtioHeaders: Bool) {
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
    public let fd: Int32
    let transmit: (UnsafeMutablePointer<tunnat_datagram>, Int) -> Int
    static let batch = 64
    let pending: UnsafeMutablePointer<tunnat_datagram>
    var pendingCount = 0
    /// GSO segments are written here, one after another, until the next flush; 256 KB holds four 64 KB
    /// super-packets' worth.
    let segments: UnsafeMutableRawBufferPointer
    var segmentsUsed = 0

    /// Opens the socket: needs CAP_NET_RAW.
    public convenience init() throws(TunError) {
        let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
        guard fd >= 0 else {
            let e = Errno("socket(AF_INET, SOCK_RAW, IPPROTO_RAW)")
            if e.code == EPERM || e.code == EACCES {
                throw TunError(description: "\(e): the raw output needs CAP_NET_RAW (run as root, or setcap cap_net_admin,cap_net_raw+ep tunnat)")
            }
            throw TunError(description: "\(e)")
        }
        var size: Int32 = 4 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        self.init(fd: fd) { datagrams, count in Int(tunnat_sendmmsg(fd, datagrams, UInt32(count))) }
    }

    /// `transmit` sends up to `count` datagrams as sendmmsg(2) does (how many went, or -1 and errno); tests
    /// pass their own to see exactly what would have been sent.
    init(fd: Int32, transmit: @escaping (UnsafeMutablePointer<tunnat_datagram>, Int) -> Int) {
        self.fd = fd
        self.transmit = transmit
        pending = .allocate(capacity: Self.batch)
        segments = .allocate(byteCount: 256 << 10, alignment: 16)
    }

    deinit {
        if fd >= 0 { Syscall.close(fd) }
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
        pending[pendingCount] = tunnat_datagram(
            bytes: UnsafeRawPointer(packet.baseAddress), length: packet.count,
            destination: packet.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        pendingCount &+= 1
    }

    /// sendmmsg stops at the first datagram the kernel refuses; that one is counted and skipped.
    public func flush(counters: inout IOCounters) {
        var sent = 0
        while sent < pendingCount {
            let n = transmit(pending + sent, pendingCount - sent)
            if n > 0 {
                for i in sent..<(sent + n) {
                    counters.packetsWritten &+= 1
                    counters.bytesWritten &+= UInt64(pending[i].length)
                }
                sent += n
                continue
            }
            let e = errno
            if e == EINTR { continue }
            Syscall.check("sendmmsg", e)
            counters.writeErrors &+= 1
            counters.lastWriteErrno = e
            sent += 1
        }
        pendingCount = 0
        segmentsUsed = 0
    }
}
