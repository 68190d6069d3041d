import CSystemShim
import Glibc
import Synchronization

/// The sockets the service manager passed at exec (sd_listen_fds_with_names(3)): from a socket unit
/// (`FileDescriptorName=`) or from the service's own descriptor store (`FDSTORE=1`, `FDNAME=`), which systemd keeps
/// across a restart of the service. Descriptors 3 and up, `$LISTEN_FDS` of them, named by `$LISTEN_FDNAMES`, for
/// the process `$LISTEN_PID` alone. Each is taken once, by the part of tunnat that owns its name; what nobody takes
/// is closed by `closeUntaken()`.
public final class InheritedSockets: Sendable {
    /// The first passed descriptor (SD_LISTEN_FDS_START).
    public static let firstDescriptor: Int32 = 3
    /// More than any unit of tunnat passes: a larger `$LISTEN_FDS` is refused whole.
    public static let most = 64

    private let waiting: Mutex<[(fd: Int32, name: String)]>

    public init(_ sockets: [(fd: Int32, name: String)]) { waiting = Mutex(sockets) }

    /// What `$LISTEN_PID`, `$LISTEN_FDS` and `$LISTEN_FDNAMES` pass to process `pid`: nothing when they are unset,
    /// meant for another process, or malformed. A name list of the wrong length names every descriptor "unknown",
    /// as sd_listen_fds_with_names(3) does.
    public static func parse(listenPID: String?, listenFDs: String?, names: String?, pid: Int32) -> [(fd: Int32, name: String)] {
        guard let listenPID, Int32(listenPID) == pid, let listenFDs, let count = Int(listenFDs), (1...most).contains(count)
        else { return [] }
        var given = names.map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) } ?? []
        if given.count != count { given = Array(repeating: "unknown", count: count) }
        return (0..<count).map { (fd: firstDescriptor + Int32($0), name: given[$0]) }
    }

    /// The sockets passed to this process: to be called before the process opens anything, so that descriptors
    /// 3 and up are still the passed ones. The variables are removed from the environment (commands tunnat runs
    /// must not take them for theirs); each descriptor is marked close-on-exec, and one that is not open (the
    /// variables promised more than was passed) is left out, as sd_listen_fds(3) checks.
    public static func fromEnvironment() -> InheritedSockets {
        let passed = parse(listenPID: Environment.value("LISTEN_PID"), listenFDs: Environment.value("LISTEN_FDS"),
                           names: Environment.value("LISTEN_FDNAMES"), pid: getpid())
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(name) }
        return InheritedSockets(passed.filter { fcntl($0.fd, F_SETFD, FD_CLOEXEC) == 0 })
    }

    /// The first passed socket named `name`, now owned by the caller; nil if there is none.
    public func take(_ name: String) -> FileDescriptor? {
        waiting.withLock { list in
            guard let i = list.firstIndex(where: { $0.name == name }) else { return nil }
            return FileDescriptor(owning: list.remove(at: i).fd)
        }
    }

    /// Closes the passed sockets nobody took; their names.
    public func closeUntaken() -> [String] {
        waiting.withLock { list in
            defer { list.removeAll() }
            for socket in list { Syscall.close(socket.fd) }
            return list.map(\.name)
        }
    }
}

extension NotifySocket {
    /// Hands a duplicate of `fd` to the service manager's descriptor store under `name` (`FDSTORE=1`): systemd
    /// keeps it while the service restarts and passes it back in `$LISTEN_FDS`, so that the port stays bound in
    /// between. Needs `FileDescriptorStoreMax=` in the unit; the error when the manager did not take the message.
    @discardableResult
    public func store(_ fd: Int32, name: String) -> Errno? {
        let bytes = Array("FDSTORE=1\nFDNAME=\(name)".utf8)
        let sent = bytes.withUnsafeBytes { tunnat_send_with_descriptor(descriptor.rawValue, $0.baseAddress, $0.count, fd) }
        return sent < 0 ? Errno("sendmsg FDSTORE \(name)") : nil
    }

    /// Drops the stored descriptors named `name` (`FDSTOREREMOVE=1`): a socket this run no longer uses.
    @discardableResult
    public func forget(_ name: String) -> Errno? { send("FDSTOREREMOVE=1\nFDNAME=\(name)") }
}

/// Listening TCP sockets on an IPv4 address.
public enum TCPListener {
    /// A non-blocking socket listening on `endpoint`, with SO_REUSEADDR (a restart binds again at once, past
    /// connections in TIME_WAIT).
    public static func open(_ endpoint: UDPEndpoint, backlog: Int32 = 16) throws(Errno) -> FileDescriptor {
        let fd = try Syscall.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0,
                                    call: "socket(AF_INET, SOCK_STREAM)")
        try Syscall.setOption(fd.rawValue, SOL_SOCKET, SO_REUSEADDR, Int32(1), call: "setsockopt SO_REUSEADDR")
        try Syscall.bind(fd.rawValue, endpoint.sockaddr, call: "bind \(endpoint)")
        try Syscall.listen(fd.rawValue, backlog: backlog)
        return fd
    }
}

extension Syscall {
    /// What a socket passed from elsewhere is: its type (SOCK_STREAM, SOCK_DGRAM), whether it listens, and the
    /// IPv4 address it is bound to (nil for another family).
    public static func socketShape(_ fd: Int32) throws(Errno) -> (type: Int32, listening: Bool, local: UDPEndpoint?) {
        let type = try intOption(fd, SOL_SOCKET, SO_TYPE, call: "getsockopt SO_TYPE")
        let listening = try intOption(fd, SOL_SOCKET, SO_ACCEPTCONN, call: "getsockopt SO_ACCEPTCONN") != 0
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        try zeroOrErrno("getsockname") {
            withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        }
        guard storage.ss_family == sa_family_t(AF_INET) else { return (type, listening, nil) }
        let address = withUnsafeBytes(of: storage) { $0.loadUnaligned(as: sockaddr_in.self) }
        return (type, listening, UDPEndpoint(address))
    }
}

/// Who holds a port: the owner's uid of the socket bound to it, from the kernel's socket tables of this network
/// namespace (/proc/self/net/tcp, tcp6, udp, udp6; proc(5)), which any user may read. Said when a bind finds the
/// port taken, so that the operator learns which user to look at.
public enum PortHolders {
    /// The uid holding `port` on `address` (or on the wildcard, which takes every address), for a listening TCP
    /// socket (`tcp`) or a bound UDP one; nil when no table names one.
    public static func uid(port: UInt16, address: UInt32, tcp: Bool) -> UInt32? {
        let tables = tcp ? ["tcp", "tcp6"] : ["udp", "udp6"]
        for table in tables {
            guard let bytes = try? FileBytes.read("/proc/self/net/\(table)") else { continue }
            if let uid = uid(inTable: String(decoding: bytes, as: UTF8.self), port: port, address: address, tcp: tcp) { return uid }
        }
        return nil
    }

    /// The uid of the first line of a /proc/net table whose socket holds `port` on `address`: a TCP socket
    /// listening (state 0A), any UDP socket. Addresses are hex of the in-memory (network order) word, IPv6 ones
    /// four such words; an IPv6 socket counts when it is the wildcard or the address mapped (::ffff:a.b.c.d).
    public static func uid(inTable text: String, port: UInt16, address: UInt32, tcp: Bool) -> UInt32? {
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 7 else { continue }
            let local = fields[1].split(separator: ":")
            guard local.count == 2, UInt16(local[1], radix: 16) == port else { continue }
            if tcp && fields[3] != "0A" { continue }
            let hex = local[0]
            let bound: UInt32?
            switch hex.count {
            case 8: bound = UInt32(hex, radix: 16).map { UInt32(bigEndian: $0) }
            case 32:
                let words = stride(from: 0, to: 32, by: 8).map { UInt32(hex.dropFirst($0).prefix(8), radix: 16) ?? 1 }
                if words.allSatisfy({ $0 == 0 }) { bound = 0 }
                else if words[0] == 0, words[1] == 0, UInt32(bigEndian: words[2]) == 0xFFFF { bound = UInt32(bigEndian: words[3]) }
                else { bound = nil }
            default: bound = nil
            }
            guard let bound, bound == 0 || address == 0 || bound == address else { continue }
            return UInt32(fields[7])
        }
        return nil
    }
}
