import Glibc

/// An open file descriptor, owned: it cannot be copied, and it is closed when its owner goes away.
/// Borrow `rawValue` for a call; never close it by hand.
public struct FileDescriptor: ~Copyable, Sendable {
    public let rawValue: Int32

    /// Takes ownership of `rawValue`, which must be open.
    public init(owning rawValue: Int32) {
        precondition(rawValue >= 0, "FileDescriptor(owning:) needs an open descriptor")
        self.rawValue = rawValue
    }

    deinit { Syscall.close(rawValue) }

    /// Gives the descriptor up without closing it, to an owner outside this module's types (swift-nio's channel).
    public consuming func release() -> Int32 {
        let raw = rawValue
        discard self
        return raw
    }

    /// close(2) where the caller must know that the data reached the file (a file just written): the error, if
    /// any. On Linux the descriptor is closed even then.
    public consuming func close() throws(Errno) {
        let raw = rawValue
        discard self
        if Glibc.close(raw) != 0 {
            let e = errno
            Syscall.check("close", e)
            throw Errno("close", e)
        }
    }
}
