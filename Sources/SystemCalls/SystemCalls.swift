/// SystemCalls: the system layer. Every call tunnat makes into the kernel goes through this module (and the C
/// shim below it, for what Swift cannot call directly: the TUN ioctls, eventfd, sendmmsg).
///
/// The rules, in the manner of swift-nio's `System.swift` and swift-system:
/// - one wrapper per C call, named after it; EINTR is retried; EAGAIN comes back as a value (`nil`), never an error;
/// - EBADF and EFAULT are programmer errors and stop the process (`Syscall.check`);
/// - everything else throws the one `Errno`, which names the call, and stays typed up to the CLI;
/// - descriptors are owned by `FileDescriptor` (not copyable, closed in `deinit`);
/// - one wake-up primitive, `Wakeup` (an eventfd), for every thread that sleeps until told otherwise.
///
/// apple/swift-system's `FileDescriptor` covers open/read/write, but it reports EAGAIN by throwing an untyped error
/// (an existential box per empty read of the packet loop) and has no sockets, ioctls or eventfd; so the wrappers
/// here are our own, and small.
///
/// Above this module nothing imports Glibc for a call: only for types and constants.
public enum SystemCalls {}
