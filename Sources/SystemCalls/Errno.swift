import Glibc

/// A failed system call: the call's name and its errno. The only error type of the system layer.
public struct Errno: Error, CustomStringConvertible, Equatable, Sendable {
    public let call: String
    public let code: Int32

    public init(_ call: String, _ code: Int32 = Glibc.errno) {
        self.call = call
        self.code = code
    }

    /// The system's own text for `code` ("Permission denied").
    public var reason: String { String(cString: strerror(code)) }

    public var description: String { "\(call): \(reason)" }
}

/// The errno values that code above the system layer tells apart, by name: it compares `Errno.code` with these
/// and needs no C module of its own.
extension Errno {
    /// EPERM, EACCES: the call needs a privilege (CAP_NET_ADMIN, CAP_NET_RAW) or a file mode it lacks.
    public static let notPermitted = EPERM
    public static let accessDenied = EACCES
    /// ENOENT: no such file, route, rule or neighbour.
    public static let noEntry = ENOENT
    /// EEXIST: the route or rule is there already.
    public static let exists = EEXIST
    /// ESRCH: no such process, or (netlink) no such entry to delete.
    public static let noSuchEntry = ESRCH
    /// ENOBUFS: a socket's queue overflowed (netlink: changes were lost) or no buffer space.
    public static let noBufferSpace = ENOBUFS
    /// ELOOP: a symbolic link where none may be (O_NOFOLLOW).
    public static let symbolicLinkLoop = ELOOP
    /// EMFILE, ENFILE: the process's or the system's descriptor table is full.
    public static let processDescriptorsFull = EMFILE
    public static let systemDescriptorsFull = ENFILE
}

extension Errno {
    /// ENOMEM: the kernel could not allocate.
    public static let outOfMemory = ENOMEM
    /// ENETUNREACH: no route to the destination in this host's tables.
    public static let networkUnreachable = ENETUNREACH

    /// The call failed for want of something on this host (descriptors, buffers, memory, a route), not because
    /// of anything the destination did.
    public var isLocalShortage: Bool {
        [EMFILE, ENFILE, ENOBUFS, ENOMEM, ENETUNREACH].contains(code)
    }
}

extension Syscall {
    /// Whether this host could reach `address` now, asking nothing of the network: a UDP socket is opened and
    /// connected to it (connect(2) on UDP sends nothing; it only picks a route and a source). Throws what was
    /// missing: a descriptor (EMFILE, ENFILE), memory or buffers, or a route (ENETUNREACH). With no address, only
    /// the socket is opened.
    public static func localPathCheck(to address: UInt32?) throws(Errno) {
        let socket = try Syscall.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0, call: "socket")
        guard let address else { return }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = in_port_t(9).bigEndian
        sa.sin_addr = in_addr(s_addr: address.bigEndian)
        try Syscall.connect(socket.rawValue, sa, call: "connect")
    }
}
