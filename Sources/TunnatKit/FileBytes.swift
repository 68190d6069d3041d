#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading and writing whole files with the system's own error text (strerror), which names the actual
/// problem ("No such file or directory", "Permission denied") where Foundation's wording does not.
public enum FileBytes {
    public struct Failure: Error, CustomStringConvertible {
        public let path: String
        public let verb: String
        public let errno: Int32
        public var description: String { "cannot \(verb) \(path): \(String(cString: strerror(errno)))" }
    }

    public static func read(_ path: String) throws(Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(path: path, verb: "read", errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                bytes.append(contentsOf: chunk[..<n])
            } else if n == 0 {
                return bytes
            } else if errno != EINTR {
                throw Failure(path: path, verb: "read", errno: errno)
            }
        }
    }

    public static func write(_ bytes: [UInt8], to path: String) throws(Failure) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(path: path, verb: "write", errno: errno) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n >= 0 {
                written += n
            } else if errno != EINTR {
                let code = errno
                close(fd)
                throw Failure(path: path, verb: "write", errno: code)
            }
        }
        guard close(fd) == 0 else { throw Failure(path: path, verb: "write", errno: errno) }
    }
}
