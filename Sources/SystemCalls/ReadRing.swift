import CSystemShim
import Glibc

/// A TUN queue's reads through io_uring (liburing, Linux 6.7 and later): one multishot read keeps the queue
/// drained into a ring of buffers the caller owns, so a busy queue is read without a system call per frame and an
/// idle one is waited on with one. The kernel fills buffer `i` (at `base + i * stride + offset`, `length` bytes)
/// as frames arrive, in their order; `take` hands over the filled ones, `release` gives them back. Made on any
/// thread; from `start` on, used by the thread that started it alone.
public final class ReadRing {
    let ring: OpaquePointer

    /// Throws when the kernel refuses: ENOSYS (no io_uring), EPERM (kernel.io_uring_disabled, or a seccomp filter),
    /// EINVAL (a kernel before 6.7, which has no multishot read). `count`: a power of two from 1 to 256.
    public init(fd: Int32, stop: StopSignal, base: UnsafeMutableRawPointer, stride: Int, offset: Int, length: Int,
                count: Int) throws(Errno) {
        guard let ring = tunnat_read_ring_open(fd, stop.fd, base, stride, offset, UInt32(length), UInt32(count)) else {
            throw Errno("io_uring_setup")
        }
        self.ring = ring
    }

    deinit { tunnat_read_ring_close(ring) }

    /// Starts reading. The calling thread is the only one that may use the ring from then on.
    public func start() throws(Errno) {
        let rc = tunnat_read_ring_start(ring)
        if rc < 0 { throw Errno("io_uring_enter", -rc) }
    }

    /// Waits up to `milliseconds` for a filled buffer: true when there is one, false when the time passed or
    /// `stop` was given.
    public func wait(milliseconds: Int32) throws(Errno) -> Bool {
        let rc = tunnat_read_ring_wait(ring, milliseconds)
        if rc < 0 { throw Errno("io_uring_enter", -rc) }
        return rc > 0
    }

    /// Up to `max` filled buffers, without waiting: their ids into `ids` and lengths into `lengths`, in the order
    /// the frames were read. Reads that failed are added to `errors`.
    @inline(__always)
    public func take(ids: UnsafeMutablePointer<UInt16>, lengths: UnsafeMutablePointer<Int>, max: Int,
                     errors: inout UInt64) -> Int {
        var failed: UInt32 = 0
        var last: Int32 = 0
        let n = tunnat_read_ring_take(ring, ids, lengths, UInt32(max), &failed, &last)
        errors &+= UInt64(failed)
        return Int(n)
    }

    /// Gives `count` buffers back to the kernel.
    @inline(__always)
    public func release(ids: UnsafePointer<UInt16>, count: Int) {
        tunnat_read_ring_release(ring, ids, UInt32(count))
    }
}
