import Glibc
import SystemCalls

/// The local control socket (AF_UNIX, stream): `tunnat run` answers every connection with one status report
/// in JSON and closes it; `tunnat status` connects and reads. The socket is made mode 0600: the counters are the
/// operator's business.
public enum ControlSocket {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        /// The system call that failed, if one did.
        public let errno: Errno?
    }

    /// Asks a running data plane for its status.
    public static func query(_ path: String) throws(Failure) -> [UInt8] {
        let fd: FileDescriptor
        do { fd = try UnixSocket.connect(path) } catch {
            throw Failure(description: "cannot reach a running tunnat at \(path): \(error.reason) (is 'tunnat run' running, with this control_socket?)", errno: error)
        }
        UnixSocket.setTimeout(fd.rawValue, seconds: 5, sending: false)
        do { return try Syscall.readAll(fd.rawValue) } catch {
            throw Failure(description: "reading from \(path): \(error.reason)", errno: error)
        }
    }

    /// A listening socket at `path`. A stale socket file (nobody answers) is replaced; a live one is refused.
    public final class Server: Sendable {
        public let path: String
        let descriptor: FileDescriptor

        public init(path: String) throws(Failure) {
            let answered: Bool = { () -> Bool in
                do { _ = try UnixSocket.connect(path); return true } catch { return false }
            }()
            if answered {
                throw Failure(description: "control socket \(path) is in use by another tunnat; set control_socket to another path", errno: nil)
            }
            if let mode = try? Syscall.mode(of: path, followingLinks: false) {
                guard mode & S_IFMT == S_IFSOCK else {
                    throw Failure(description: "control socket path \(path) exists and is not a socket; remove it or choose another control_socket", errno: nil)
                }
                Syscall.unlink(path)
            }
            do { descriptor = try UnixSocket.listen(path) } catch {
                throw Failure(description: "cannot listen on control socket \(path): \(error)", errno: error)
            }
            self.path = path
        }

        /// Answers connections with `report()` until `stop` is given.
        public func serve(stop: StopSignal, report: () -> [UInt8]) {
            while !stop.isStopped {
                guard let (ready, stopped) = try? Syscall.pollIn(descriptor.rawValue, stop.fd, timeoutMilliseconds: -1),
                      !stopped else { return }
                guard ready, let client = try? Syscall.accept(descriptor.rawValue) else { continue }
                UnixSocket.setTimeout(client.rawValue, seconds: 2, sending: true)
                // A client that went away gets nothing; the next one is served.
                try? Syscall.writeAll(client.rawValue, report(), sendFlags: Int32(MSG_NOSIGNAL))
            }
        }

        deinit { Syscall.unlink(path) }
    }
}
