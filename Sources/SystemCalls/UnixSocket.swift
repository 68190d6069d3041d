import Glibc

/// Local stream sockets (AF_UNIX, SOCK_STREAM): the control socket's transport.
public enum UnixSocket {
    /// sockaddr_un for `path`; nil when the path does not fit (108 bytes with its terminator).
    static func address(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    /// A blocking connection to the socket at `path`.
    public static func connect(_ path: String) throws(Errno) -> FileDescriptor {
        guard let address = address(path) else { throw Errno("connect \(path)", ENAMETOOLONG) }
        let fd = try Syscall.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, call: "socket(AF_UNIX)")
        try Syscall.connect(fd.rawValue, address, call: "connect \(path)")
        return fd
    }

    /// A listening socket at `path`, mode 0600 (made under umask 077), its directory created if missing.
    public static func listen(_ path: String, backlog: Int32 = 16) throws(Errno) -> FileDescriptor {
        guard let address = address(path) else { throw Errno("bind \(path)", ENAMETOOLONG) }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            Syscall.makeDirectories(String(path[..<slash]))
        }
        let fd = try Syscall.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, call: "socket(AF_UNIX)")
        try Syscall.withUmask(0o077) { () throws(Errno) in try Syscall.bind(fd.rawValue, address, call: "bind \(path)") }
        try Syscall.listen(fd.rawValue, backlog: backlog)
        return fd
    }

    /// Sets SO_RCVTIMEO or SO_SNDTIMEO: a blocking read or write gives up after `seconds`.
    public static func setTimeout(_ fd: Int32, seconds: Int, sending: Bool) {
        let timeout = timeval(tv_sec: seconds, tv_usec: 0)
        try? Syscall.setOption(fd, SOL_SOCKET, sending ? SO_SNDTIMEO : SO_RCVTIMEO, timeout, call: "setsockopt timeout")
    }
}
