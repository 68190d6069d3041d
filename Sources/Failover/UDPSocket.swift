import Glibc

/// An IPv4 address and UDP port.
public struct UDPEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var address: UInt32
    public var port: UInt16

    public init(address: UInt32, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// "10.0.0.1:7800".
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let port = UInt16(parts[1]), port > 0 else { return nil }
        let octets = parts[0].split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
        guard octets.count == 4, parts[0].split(separator: ".").count == 4 else { return nil }
        address = octets.reduce(0) { $0 << 8 | UInt32($1) }
        self.port = port
    }

    public var description: String {
        "\(address >> 24).\(address >> 16 & 0xFF).\(address >> 8 & 0xFF).\(address & 0xFF):\(port)"
    }

    var sockaddr: sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = address.bigEndian
        return sa
    }

    init(_ sa: sockaddr_in) {
        address = UInt32(bigEndian: sa.sin_addr.s_addr)
        port = UInt16(bigEndian: sa.sin_port)
    }
}

/// A non-blocking UDP socket bound to one address: datagrams in and out, and a wait for the next one.
final class UDPSocket {
    private(set) var fd: Int32

    init(bind endpoint: UDPEndpoint, receiveBuffer: Int32 = 4 << 20) throws(FailoverError) {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FailoverError("replication socket: \(String(cString: strerror(errno)))") }
        var size = receiveBuffer
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var sa = endpoint.sockaddr
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let message = String(cString: strerror(errno))
            Glibc.close(fd)
            throw FailoverError("replication: cannot bind \(endpoint): \(message)")
        }
    }

    deinit { close() }

    /// Releases the address at once (a restarted node binds it again).
    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// False if the kernel refused it (a full buffer, no route): the caller counts it, retransmission recovers.
    func send(_ bytes: [UInt8], to endpoint: UDPEndpoint) -> Bool {
        var sa = endpoint.sockaddr
        let n = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT), $0,
                           socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        return n == bytes.count
    }

    /// One datagram if there is one; `buffer` must be larger than any valid message, so that a longer one shows
    /// as such (MSG_TRUNC reports its real length).
    func receive(into buffer: inout [UInt8]) -> (length: Int, from: UDPEndpoint)? {
        var sa = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = buffer.withUnsafeMutableBytes { b in
            withUnsafeMutablePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(fd, b.baseAddress, b.count, Int32(MSG_DONTWAIT | MSG_TRUNC), $0, &length)
                }
            }
        }
        guard n >= 0 else { return nil }
        return (n, UDPEndpoint(sa))
    }

    /// Waits until a datagram arrives, `other` (if not -1) is readable, or `milliseconds` pass.
    func wait(milliseconds: Int32, other: Int32 = -1) {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: other, events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, other >= 0 ? 2 : 1, milliseconds)
    }
}
