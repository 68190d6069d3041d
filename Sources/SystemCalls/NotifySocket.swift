import Glibc

/// The service manager's notification socket (sd_notify(3)): a datagram socket connected to `$NOTIFY_SOCKET`,
/// a path or, with a leading '@', an abstract address. Each message is one datagram of newline-separated
/// `KEY=value` lines (`READY=1`, `STATUS=...`, `WATCHDOG=1`, `STOPPING=1`).
public final class NotifySocket: Sendable {
    let descriptor: FileDescriptor
    /// Where it sends: the path as given.
    public let path: String

    /// The socket `$NOTIFY_SOCKET` names, or nil when it is unset (not started by systemd with Type=notify).
    /// The variable is removed from the environment, so that commands tunnat starts do not talk to the service
    /// manager in its name.
    public static func fromEnvironment() throws(Errno) -> NotifySocket? {
        guard let path = Environment.value("NOTIFY_SOCKET") else { return nil }
        unsetenv("NOTIFY_SOCKET")
        return try NotifySocket(path: path)
    }

    public init(path: String) throws(Errno) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        let room = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < room, abstract || bytes.first == UInt8(ascii: "/") else {
            throw Errno("NOTIFY_SOCKET \(path): not an absolute path or @abstract name of at most \(room - 1) bytes", EINVAL)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        // An abstract name is exactly its bytes long; a path ends at its terminator.
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let fd = try Syscall.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0, call: "socket(AF_UNIX, SOCK_DGRAM)")
        try Syscall.zeroOrErrno("connect NOTIFY_SOCKET \(path)") {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd.rawValue, $0, length) }
            }
        }
        descriptor = fd
        self.path = path
    }

    /// Sends one message; the error when the manager did not take it (it is not worth more than a log line).
    @discardableResult
    public func send(_ message: String) -> Errno? {
        let bytes = Array(message.utf8)
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(Errno) -> Int? in try Syscall.send(descriptor.rawValue, raw, flags: Int32(MSG_NOSIGNAL)) }
        }
        if case .failure(let error) = result { return error }
        return nil
    }
}

extension NotifySocket {
    /// `$WATCHDOG_USEC` when the watchdog is meant for this process (`$WATCHDOG_PID`, if set, is its pid); both
    /// are removed from the environment, as sd_watchdog_enabled(3) does with `unset_environment`.
    public static func watchdogTimeoutFromEnvironment() -> UInt64? {
        defer {
            unsetenv("WATCHDOG_USEC")
            unsetenv("WATCHDOG_PID")
        }
        guard let text = Environment.value("WATCHDOG_USEC"), let usec = UInt64(text), usec > 0 else { return nil }
        if let pid = Environment.value("WATCHDOG_PID"), Int32(pid) != getpid() { return nil }
        return usec
    }
}
