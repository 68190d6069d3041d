import Glibc
import SystemCalls

/// The local control socket (AF_UNIX, stream): a client sends one request line, `status` (or nothing) or
/// `handover`; `tunnat run` answers with the status report in JSON, or with the handover's outcome in one line,
/// and closes. The socket is made mode 0600: the counters and the handover are the operator's business.
public enum ControlSocket {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        /// The system call that failed, if one did.
        public let errno: Errno?
    }

    /// Asks a running data plane for its status (`request` "status") or to hand over ("handover"), waiting for
    /// the answer at most `timeout` seconds.
    public static func query(_ path: String, request: String = "status", timeout: Int = 5) throws(Failure) -> [UInt8] {
        let fd: FileDescriptor
        do { fd = try UnixSocket.connect(path) } catch {
            throw Failure(description: "cannot reach a running tunnat at \(path): \(error.reason) (is 'tunnat run' running, with this control_socket?)", errno: error)
        }
        UnixSocket.setTimeout(fd.rawValue, seconds: timeout, sending: false)
        UnixSocket.setTimeout(fd.rawValue, seconds: 2, sending: true)
        do {
            try Syscall.writeAll(fd.rawValue, Array("\(request)\n".utf8), sendFlags: Int32(MSG_NOSIGNAL))
            return try Syscall.readAll(fd.rawValue)
        } catch {
            throw Failure(description: "talking to \(path): \(error.reason)", errno: error)
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

        /// Answers connections with `report()` (or `handover()`, asked for) until `stop` is given, one at a time.
        /// An accept that fails (for want of descriptors, EMFILE or ENFILE, which are counted; of memory, of
        /// buffers) leaves the client waiting in the backlog: the loop tells `shortage` (first time, then once a
        /// minute at most) and waits, 10 ms at first and doubling up to a second while it lasts, instead of
        /// polling the still-readable socket again at once.
        public func serve(stop: StopSignal, report: () -> [UInt8], handover: () -> [UInt8] = { Array("no handover here\n".utf8) },
                          counters: LocalServiceCounters = LocalServiceCounters(),
                          clock: any MonotonicClock = SystemMonotonicClock(),
                          shortage: (_ count: UInt64, _ error: Errno) -> Void = { _, _ in }) {
            var fault = RecurringFault()
            while !stop.isStopped {
                guard let (ready, stopped) = try? Syscall.pollIn(descriptor.rawValue, stop.fd, timeoutMilliseconds: -1),
                      !stopped else { return }
                guard ready else { continue }
                do {
                    guard let client = try Syscall.accept(descriptor.rawValue) else { continue }
                    fault.cleared()
                    Self.answer(client, report: report, handover: handover)
                } catch {
                    // A client that gave up before it was accepted is nothing; anything else (no descriptor, no
                    // memory, no buffer) would come back at once: counted, and waited on.
                    guard error.code != ECONNABORTED else { continue }
                    if error.code == Errno.processDescriptorsFull || error.code == Errno.systemDescriptorsFull {
                        counters.descriptorShortages.add(1, ordering: .relaxed)
                    }
                    if let count = fault.occurred(now: clock.seconds()) { shortage(count, error) }
                    // Woken early only to stop.
                    _ = try? Syscall.pollIn(stop.fd, timeoutMilliseconds: Int32(fault.delay * 1000))
                }
            }
        }

        /// One client: its request line, if it sends one soon (a client that sends nothing gets the status), and
        /// the answer. A client that went away gets nothing; the next one is served.
        static func answer(_ client: borrowing FileDescriptor, report: () -> [UInt8], handover: () -> [UInt8]) {
            UnixSocket.setTimeout(client.rawValue, seconds: 2, sending: true)
            var request = [UInt8](repeating: 0, count: 64)
            var got = 0
            if let (readable, _) = try? Syscall.pollIn(client.rawValue, timeoutMilliseconds: 200), readable {
                got = request.withUnsafeMutableBytes { ((try? Syscall.read(client.rawValue, $0)) ?? nil) ?? 0 }
            }
            let answer = request[..<got].starts(with: Array("handover".utf8)) ? handover() : report()
            try? Syscall.writeAll(client.rawValue, answer, sendFlags: Int32(MSG_NOSIGNAL))
        }

        deinit { Syscall.unlink(path) }
    }
}
