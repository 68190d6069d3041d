import CSystemShim
import Glibc

/// Thin wrappers, one per C call, in the manner of swift-nio's `System.swift`: EINTR is retried, EAGAIN comes
/// back as `nil`, EBADF and EFAULT are programmer errors and stop the process, anything else throws `Errno`.
public enum Syscall {
    @inline(__always)
    public static func check(_ call: String, _ code: Int32) {
        if code == EBADF || code == EFAULT { fatalError("\(call): \(String(cString: strerror(code))) (a bug in tunnat)") }
    }

    /// A call that returns a count or a descriptor (>= 0), or -1 with errno: the result, nil for EAGAIN, retried
    /// on EINTR.
    @inline(__always)
    public static func retrying<T: BinaryInteger>(_ call: StaticString, _ body: () -> T) throws(Errno) -> T? {
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

    /// A batched send (sendmmsg(2) through the shim): how many the kernel took, or the error of the first item
    /// when it took none; retried on EINTR.
    @inline(__always)
    public static func batchedSend(_ call: StaticString, _ body: () -> Int32) -> Result<Int, Errno> {
        while true {
            let n = Int(body())
            if n >= 0 { return .success(n) }
            let e = errno
            if e == EINTR { continue }
            check("\(call)", e)
            return .failure(Errno("\(call)", e))
        }
    }

    /// A call that returns 0, or -1 with errno, and never EAGAIN (setup calls, ioctls): retried on EINTR.
    public static func zeroOrErrno(_ call: String, _ body: () -> Int32) throws(Errno) {
        while true {
            if body() == 0 { return }
            let e = errno
            if e == EINTR { continue }
            check(call, e)
            throw Errno(call, e)
        }
    }

    // MARK: - Bytes

    /// read(2); nil when the descriptor is non-blocking and nothing is ready.
    @inline(__always)
    public static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        try retrying("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// write(2); nil when the descriptor is non-blocking and would block.
    @inline(__always)
    public static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(Errno) -> Int? {
        try retrying("write") { Glibc.write(fd, buffer.baseAddress, buffer.count) }
    }

    /// write(2) until all of `bytes` is written (a blocking descriptor), or send(2) with `flags` for a socket.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], sendFlags: Int32? = nil) throws(Errno) {
        var written = 0
        var failure: Errno?
        bytes.withUnsafeBytes { buffer in
            while written < buffer.count {
                let rest = UnsafeRawBufferPointer(rebasing: buffer[written...])
                do throws(Errno) {
                    let n = if let flags = sendFlags { try send(fd, rest, flags: flags) } else { try write(fd, rest) }
                    // A timeout (SO_SNDTIMEO) or a full non-blocking descriptor: give up rather than spin.
                    guard let n, n > 0 else { throw Errno(sendFlags == nil ? "write" : "send", EAGAIN) }
                    written += n
                } catch {
                    failure = error
                    return
                }
            }
        }
        if let failure { throw failure }
    }

    /// Reads until end of file (or the peer closes).
    public static func readAll(_ fd: Int32) throws(Errno) -> [UInt8] {
        var bytes: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)
        defer { chunk.deallocate() }
        while true {
            // nil: a receive timeout (SO_RCVTIMEO).
            guard let n = try read(fd, chunk) else { throw Errno("read", EAGAIN) }
            if n == 0 { return bytes }
            bytes.append(contentsOf: chunk[..<n])
        }
    }

    // MARK: - Descriptors

    /// open(2) with O_CLOEXEC.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(Errno) -> FileDescriptor {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return FileDescriptor(owning: fd) }
            let e = errno
            if e == EINTR { continue }
            throw Errno("open \(path)", e)
        }
    }

    /// close(2). Errors other than EBADF are ignored: the descriptor is gone either way (close(2), NOTES).
    public static func close(_ fd: Int32) {
        if Glibc.close(fd) != 0 { check("close", errno) }
    }

    /// fcntl(F_GETFL) then fcntl(F_SETFL, | O_NONBLOCK).
    public static func setNonBlocking(_ fd: Int32) throws(Errno) {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0 else { throw Errno("fcntl F_GETFL") }
        try zeroOrErrno("fcntl F_SETFL O_NONBLOCK") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    /// fcntl(F_DUPFD_CLOEXEC): a second descriptor of the same open file, closed on exec; the caller owns it.
    public static func duplicate(_ fd: Int32) throws(Errno) -> Int32 {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw Errno("fcntl F_DUPFD_CLOEXEC") }
        return copy
    }

    /// socket(2) with SOCK_CLOEXEC.
    public static func socket(_ domain: Int32, _ type: Int32, _ proto: Int32, call: String) throws(Errno) -> FileDescriptor {
        guard let fd = try retrying("socket", { Glibc.socket(domain, type | Int32(SOCK_CLOEXEC.rawValue), proto) })
        else { throw Errno(call, EAGAIN) }
        return FileDescriptor(owning: fd)
    }

    /// setsockopt(2) of an integer or struct option.
    public static func setOption<T: BitwiseCopyable>(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: T, call: String) throws(Errno) {
        try zeroOrErrno(call) {
            withUnsafeBytes(of: value) { setsockopt(fd, level, name, $0.baseAddress, socklen_t($0.count)) }
        }
    }

    /// getsockopt(2) of an integer option.
    public static func intOption(_ fd: Int32, _ level: Int32, _ name: Int32, call: String) throws(Errno) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        try zeroOrErrno(call) { getsockopt(fd, level, name, &value, &length) }
        return value
    }

    /// setsockopt(SO_ATTACH_FILTER) of a classic BPF program (socket(7); the kernel's
    /// Documentation/networking/filter.rst). It replaces any filter attached before.
    public static func attachFilter(_ fd: Int32, _ program: [sock_filter]) throws(Errno) {
        try zeroOrErrno("setsockopt SO_ATTACH_FILTER") {
            program.withUnsafeBufferPointer { tunnat_attach_filter(fd, $0.baseAddress, UInt16($0.count)) }
        }
    }

    /// Runs `body` with `address` as a `sockaddr` pointer and its length.
    @inline(__always)
    public static func withSockaddr<A, R>(_ address: A, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var address = address
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<A>.size)) }
        }
    }

    /// bind(2).
    public static func bind<A>(_ fd: Int32, _ address: A, call: String) throws(Errno) {
        try zeroOrErrno(call) { withSockaddr(address) { Glibc.bind(fd, $0, $1) } }
    }

    /// connect(2) on a blocking socket.
    public static func connect<A>(_ fd: Int32, _ address: A, call: String) throws(Errno) {
        try zeroOrErrno(call) { withSockaddr(address) { Glibc.connect(fd, $0, $1) } }
    }

    /// listen(2).
    public static func listen(_ fd: Int32, backlog: Int32) throws(Errno) {
        try zeroOrErrno("listen") { Glibc.listen(fd, backlog) }
    }

    /// accept4(2) with SOCK_CLOEXEC (no window in which a spawned command inherits it); nil when nothing waits.
    public static func accept(_ fd: Int32) throws(Errno) -> FileDescriptor? {
        guard let client = try retrying("accept4", { tunnat_accept_cloexec(fd) }) else { return nil }
        return FileDescriptor(owning: client)
    }

    /// sendto(2) of one datagram to an IPv4 address; nil when the socket buffer is full.
    public static func sendto(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ to: sockaddr_in, flags: Int32 = 0) throws(Errno) -> Int? {
        try retrying("sendto") { withSockaddr(to) { Glibc.sendto(fd, bytes.baseAddress, bytes.count, flags, $0, $1) } }
    }

    /// send(2); nil when the socket buffer is full.
    public static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, flags: Int32 = 0) throws(Errno) -> Int? {
        try retrying("send") { Glibc.send(fd, bytes.baseAddress, bytes.count, flags) }
    }

    /// recvfrom(2) from an IPv4 socket: the length (with MSG_TRUNC, the datagram's real length) and the sender;
    /// nil when nothing is waiting.
    public static func recvfrom(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0) throws(Errno) -> (Int, sockaddr_in)? {
        var from = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = try retrying("recvfrom") { () -> Int in
            withUnsafeMutablePointer(to: &from) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.recvfrom(fd, buffer.baseAddress, buffer.count, flags, $0, &length)
                }
            }
        }
        return n.map { ($0, from) }
    }

    /// recvmmsg(2) with MSG_DONTWAIT | MSG_TRUNC into up to 64 `slots`: how many datagrams arrived, nil when none
    /// was waiting. Each slot gets the datagram's real length and its sender.
    public static func recvmmsg(_ fd: Int32, _ slots: UnsafeMutableBufferPointer<tunnat_receive_slot>) throws(Errno) -> Int? {
        try retrying("recvmmsg") { tunnat_recvmmsg(fd, slots.baseAddress, UInt32(slots.count)) }.map(Int.init)
    }

    // MARK: - Waiting

    /// poll(2) for POLLIN on up to `fds.count` descriptors (a negative one is ignored); returns which are readable
    /// (or in error or hung up). A timeout returns all false; so does EINTR, so that a signal gets the caller to
    /// look at its stop flag.
    public static func pollIn(_ a: Int32, _ b: Int32 = -1, timeoutMilliseconds: Int32) throws(Errno) -> (Bool, Bool) {
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

    /// poll(2) on `fds`, each with its events set; fills in their `revents` and returns how many are ready. EINTR
    /// returns 0, as a timeout does: the caller looks at its clock and calls again.
    public static func poll(_ fds: inout [pollfd], timeoutMilliseconds: Int32) throws(Errno) -> Int {
        let n = fds.withUnsafeMutableBufferPointer { Glibc.poll($0.baseAddress, nfds_t($0.count), timeoutMilliseconds) }
        if n >= 0 { return Int(n) }
        let e = errno
        if e == EINTR { return 0 }
        check("poll", e)
        throw Errno("poll", e)
    }

    /// nanosleep(2) for `milliseconds`, the rest of it again after a signal.
    public static func sleep(milliseconds ms: Int) {
        guard ms > 0 else { return }
        var request = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    // MARK: - Files and names

    /// stat(2), or lstat(2) without `followingLinks`: the file's mode, nil when there is no such file.
    public static func mode(of path: String, followingLinks: Bool = true) throws(Errno) -> mode_t? {
        var info = stat()
        let rc = followingLinks ? stat(path, &info) : lstat(path, &info)
        if rc == 0 { return info.st_mode }
        if errno == ENOENT { return nil }
        throw Errno("stat \(path)")
    }

    /// fstat(2).
    public static func fstat(_ fd: Int32) throws(Errno) -> stat {
        var info = stat()
        try zeroOrErrno("fstat") { Glibc.fstat(fd, &info) }
        return info
    }

    /// geteuid(2): the user whose permissions the process's file accesses are checked against.
    public static var effectiveUserID: uid_t { geteuid() }

    /// The uid of a user given by name (getpwnam(3)) or as a number; nil when there is no such user.
    public static func userID(_ user: String) -> uid_t? {
        if let number = uid_t(user) { return number }
        return getpwnam(user).map { $0.pointee.pw_uid }
    }

    /// unlink(2); a missing file is not an error.
    public static func unlink(_ path: String) {
        _ = Glibc.unlink(path)
    }

    /// mkdir(2) of `path` and its parents (mode 0755); existing ones are fine.
    public static func makeDirectories(_ path: String) {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            _ = mkdir(prefix, 0o755)
        }
    }

    /// umask(2) set to `mask` around `body`.
    public static func withUmask<R>(_ mask: mode_t, _ body: () throws(Errno) -> R) throws(Errno) -> R {
        let old = umask(mask)
        defer { umask(old) }
        return try body()
    }

    /// if_nametoindex(3): 0 when there is no such interface.
    public static func interfaceIndex(_ name: String) -> UInt32 { if_nametoindex(name) }

    /// Names the calling thread (at most 15 bytes kept), as ps, top and /proc/PID/task/TID/comm show it.
    public static func nameThisThread(_ name: String) {
        _ = tunnat_name_thread(name)
    }

    /// if_indextoname(3): nil when there is no interface with that index (any more).
    public static func interfaceName(_ index: Int32) -> String? {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(IF_NAMESIZE)) { name in
            guard index > 0, if_indextoname(UInt32(index), name.baseAddress) != nil else { return nil }
            return String(cString: name.baseAddress!)
        }
    }

    /// sysconf(_SC_NPROCESSORS_ONLN).
    public static var onlineProcessors: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// getpid(2).
    public static var processID: Int32 { getpid() }

    // MARK: - Processes

    /// pipe2(2) with O_CLOEXEC (through the shim): the read end and the write end, which the caller owns (a tuple
    /// cannot hold a `FileDescriptor`): it wraps each in one at once.
    public static func pipe() throws(Errno) -> (reading: Int32, writing: Int32) {
        var fds: (Int32, Int32) = (-1, -1)
        try zeroOrErrno("pipe2") {
            withUnsafeMutableBytes(of: &fds) { tunnat_pipe_cloexec($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        }
        return fds
    }

    /// pidfd_open(2) (through the shim): a descriptor poll(2) sees readable once process `pid` has exited.
    public static func pidfdOpen(_ pid: pid_t) throws(Errno) -> FileDescriptor {
        let fd = tunnat_pidfd_open(pid)
        guard fd >= 0 else { throw Errno("pidfd_open") }
        return FileDescriptor(owning: fd)
    }

    /// waitpid(2) for child `pid`, blocking: its wait status; nil when it is not a child to wait for (ECHILD,
    /// as when SIGCHLD is ignored and the kernel reaped it).
    public static func waitpid(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        while Glibc.waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return nil }
        }
        return status
    }

    /// kill(2) of process `pid`, or with `group`, of every process in process group `pid`: kill(-pid, signal).
    /// Errors (ESRCH: gone) are ignored.
    public static func kill(_ pid: pid_t, group: Bool = false, _ signal: Int32) {
        _ = Glibc.kill(group ? -pid : pid, signal)
    }

    // MARK: - Namespaces

    /// unshare(CLONE_NEWNET) (through the shim): moves the calling thread, and only it, into a new network
    /// namespace holding only lo, down. Sockets it opens afterwards belong there for their lifetime, and the
    /// namespace goes with the last of them and the thread. The tests that change routing run on such a thread.
    public static func unshareNetworkNamespace() throws(Errno) {
        try zeroOrErrno("unshare(CLONE_NEWNET)") { tunnat_unshare_network() }
    }
}
