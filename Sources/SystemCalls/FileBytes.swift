import Glibc

/// Reading and writing whole files with the system's own error text (strerror), which names the actual
/// problem ("No such file or directory", "Permission denied") where Foundation's wording does not.
public enum FileBytes {
    public struct Failure: Error, CustomStringConvertible {
        public let path: String
        public let verb: String
        /// The call that failed, errno included.
        public let cause: Errno
        public var errno: Int32 { cause.code }
        public var reason: String { cause.reason }
        public var description: String { "cannot \(verb) \(path): \(reason)" }
    }

    public static func read(_ path: String) throws(Failure) -> [UInt8] {
        do throws(Errno) {
            let fd = try Syscall.open(path, O_RDONLY)
            return try Syscall.readAll(fd.rawValue)
        } catch {
            throw Failure(path: path, verb: "read", cause: error)
        }
    }

    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(Failure) {
        do throws(Errno) {
            let fd = try Syscall.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
            try Syscall.writeAll(fd.rawValue, bytes)
            try fd.close()
        } catch {
            throw Failure(path: path, verb: "write", cause: error)
        }
    }
}
