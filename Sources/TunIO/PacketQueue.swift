import Glibc
import SystemCalls

/// Where a worker reads frames from and writes them back to: a TUN queue in the data plane, a `MemoryQueue` in
/// tests (as wireguard-go's `tuntest`). Frames are a virtio-net header then the packet when the device has them.
public protocol PacketQueue: AnyObject {
    /// One frame into `buffer`: its length, or nil when none is waiting.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int?
    /// Writes one frame whole.
    func write(_ frame: UnsafeRawBufferPointer) throws(Errno)
    /// Waits until a frame can be read (true), `stop` is given or `milliseconds` pass (false).
    func waitReadable(orStop stop: StopSignal, milliseconds: Int32) throws(Errno) -> Bool
    /// The descriptor a worker may read through io_uring instead (`ReadRing`), or nil when there is none.
    var ringDescriptor: Int32? { get }
}

extension PacketQueue {
    public var ringDescriptor: Int32? { nil }
}

/// An in-memory queue: frames put in are read by the worker, frames the worker writes are kept in order. It
/// never waits: with nothing to read, `waitReadable` returns false at once, so a test drives the worker one
/// `iterate()` at a time with no sleeps.
public final class MemoryQueue: PacketQueue {
    public var incoming: [[UInt8]] = []
    public private(set) var written: [[UInt8]] = []

    public init() {}

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        guard !incoming.isEmpty else { return nil }
        let frame = incoming.removeFirst()
        guard frame.count <= buffer.count else { throw Errno("read", EMSGSIZE) }
        buffer.copyBytes(from: frame)
        return frame.count
    }

    public func write(_ frame: UnsafeRawBufferPointer) throws(Errno) {
        written.append(Array(frame))
    }

    public func waitReadable(orStop stop: StopSignal, milliseconds: Int32) throws(Errno) -> Bool {
        !incoming.isEmpty
    }

    /// Takes what was written so far.
    public func takeWritten() -> [[UInt8]] {
        defer { written.removeAll() }
        return written
    }
}
