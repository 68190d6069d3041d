import Foundation
import Glibc

/// The local control socket (AF_UNIX, stream): `tunnat run` answers every connection with one status report
/// in JSON and closes it; `tunnat status` connects and reads. The socket is made mode 0600: the counters are the
/// operator's business.
public enum ControlSocket {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

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

    static func connect(_ path: String) -> Int32? {
        guard var address = address(path) else { return nil }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 {
            close(fd)
            return nil
        }
        return fd
    }

    /// Asks a running data plane for its status.
    public static func query(_ path: String) throws(Failure) -> [UInt8] {
        guard let fd = connect(path) else {
            let reason = String(cString: strerror(errno))
            throw Failure(description: "cannot reach a running tunnat at \(path): \(reason) (is 'tunnat run' running, with this control_socket?)")
        }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                result += chunk[0..<n]
            } else if n == 0 {
                return result
            } else if errno != EINTR {
                throw Failure(description: "reading from \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// A listening socket at `path`. A stale socket file (nobody answers) is replaced; a live one is refused.
    public final class Server: @unchecked Sendable {
        public let path: String
        let fd: Int32

        public init(path: String) throws(Failure) {
            if let other = ControlSocket.connect(path) {
                close(other)
                throw Failure(description: "control socket \(path) is in use by another tunnat; set control_socket to another path")
            }
            guard var address = ControlSocket.address(path) else {
                throw Failure(description: "control socket path \(path) is too long")
            }
            var info = stat()
            if lstat(path, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFSOCK else {
                    throw Failure(description: "control socket path \(path) exists and is not a socket; remove it or choose another control_socket")
                }
                unlink(path)
            }
            let directory = (path as NSString).deletingLastPathComponent
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Failure(description: "socket(AF_UNIX): \(String(cString: strerror(errno)))") }
            let old = umask(0o077)
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            umask(old)
            guard rc == 0, listen(fd, 16) == 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw Failure(description: "cannot listen on control socket \(path): \(reason)")
            }
            self.path = path
            self.fd = fd
        }

        /// Answers connections with `report()` until `stopFD` becomes readable.
        public func serve(stopFD: Int32, report: () -> [UInt8]) {
            while true {
                var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
                let n = poll(&fds, 2, -1)
                if n < 0 && errno == EINTR { continue }
                if n < 0 || fds[1].revents != 0 { return }
                guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
                let client = accept(fd, nil, nil)
                guard client >= 0 else { continue }
                var timeout = timeval(tv_sec: 2, tv_usec: 0)
                setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                let bytes = report()
                var sent = 0
                while sent < bytes.count {
                    let w = bytes[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if w <= 0 { break }
                    sent += w
                }
                close(client)
            }
        }

        deinit {
            close(fd)
            unlink(path)
        }
    }
}
