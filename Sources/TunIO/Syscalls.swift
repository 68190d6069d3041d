import Glibc

/// A failed system call: the call's name and its errno.
public struct Errno: Error, CustomStringConvertible, Equatable, Sendable {
    public let call: String
    public let code: Int32

    public init(_ call: String, _ code: Int32 = Glibc.errno) {
        self.call = call
        self.code = code
    }

    public var description: String { "\(call): \(String(cString: strerror(code)))" }
}

/// Thin wrappers, one per C call, in the manner of swift-nio's `System.swift`: EINTR is retried, EAGAIN comes
/// back as `nil`, EBADF and EFAULT are programmer errors and stop the process, anything else throws `Errno`.
enum Syscall {
    @inline(__always)
    static func check(_ call: String, _ code: Int32) {
        if code == EBADF || code == EFAULT { fatalError("\(call): \(String(cString: strerror(code))) (a bug in tunnat)") }
    }

    /// read(2); nil when the descriptor is non-blocking and nothing is ready.
    @inline(__always)
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        try transfer("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// write(2); nil when the descriptor is non-blocking and would block.
    @inline(__always)
    static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(Errno) -> Int? {
        try transfer("write") { Glibc.write(fd, buffer.baseAddress, buffer.count) }
    }

    /// A call that moves bytes: its count, nil for EAGAIN, retried on EINTR.
    @inline(__always)
    static func transfer(_ call: StaticString, _ body: () -> Int) throws(Errno) -> Int? {
        while true {
            let n = body()
            if n >= 0 { return n }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            check("\(call)", e)
            throw Errno("\(call)", e)
        }
    }

    /// poll(2) on up to two descriptors for POLLIN; returns which of them are readable. A timeout returns both
    /// false. EINTR counts as a timeout, so that a signal gets the caller to look at its stop flag.
    static func pollIn(_ a: Int32, _ b: Int32, timeoutMilliseconds: Int32) throws(Errno) -> (Bool, Bool) {
        let ready = Int16(POLLIN | POLLERR | POLLHUP)
        let result = withUnsafeTemporaryAllocation(of: pollfd.self, capacity: 2) { fds -> (Int32, Bool, Bool) in
            fds[0] = pollfd(fd: a, events: Int16(POLLIN), revents: 0)
            fds[1] = pollfd(fd: b, events: Int16(POLLIN), revents: 0)
            let n = Glibc.poll(fds.baseAddress, 2, timeoutMilliseconds)
            return (n < 0 ? errno : 0, fds[0].revents & ready != 0, fds[1].revents & ready != 0)
        }
        if result.0 != 0 {
            if result.0 == EINTR { return (false, false) }
            check("poll", result.0)
            throw Errno("poll", result.0)
        }
        return (result.1, result.2)
    }

    /// open(2) with O_CLOEXEC.
    static func open(_ path: String, _ flags: Int32) throws(Errno) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC)
            if fd >= 0 { return fd }
            let e = errno
            if e == EINTR { continue }
            throw Errno("open \(path)", e)
        }
    }

    /// close(2). Errors other than EBADF are ignored: the descriptor is gone either way (close(2), NOTES).
    static func close(_ fd: Int32) {
        if Glibc.close(fd) != 0 { check("close", errno) }
    }

    /// fcntl(F_SETFL, O_NONBLOCK).
    static func setNonBlocking(_ fd: Int32) throws(Errno) {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else { throw Errno("fcntl O_NONBLOCK") }
    }

    /// A call that returns 0 or -1 with errno (the ioctl shims), checked.
    static func zeroOrErrno(_ call: String, _ body: () -> Int32) throws(Errno) {
        while true {
            if body() == 0 { return }
            let e = errno
            if e == EINTR { continue }
            check(call, e)
            throw Errno(call, e)
        }
    }
}

/// clock_gettime(CLOCK_MONOTONIC) in nanoseconds: the NAT's clock in the live data plane.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
