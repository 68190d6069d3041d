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

    public var sockaddr: sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = address.bigEndian
        return sa
    }

    public init(_ sa: sockaddr_in) {
        address = UInt32(bigEndian: sa.sin_addr.s_addr)
        port = UInt16(bigEndian: sa.sin_port)
    }
}

/// A non-blocking UDP socket bound to one address: datagrams in and out, and a wait for the next one.
public final class UDPSocket: Sendable {
    let descriptor: FileDescriptor
    public var fd: Int32 { descriptor.rawValue }

    public init(bind endpoint: UDPEndpoint, receiveBuffer: Int32 = 4 << 20) throws(Errno) {
        descriptor = try Syscall.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0,
                                        call: "socket(AF_INET, SOCK_DGRAM)")
        // Larger buffers are a wish, not a need: the kernel caps them at net.core.[rw]mem_max.
        try? Syscall.setOption(fd, SOL_SOCKET, SO_RCVBUF, receiveBuffer, call: "setsockopt SO_RCVBUF")
        try? Syscall.setOption(fd, SOL_SOCKET, SO_SNDBUF, receiveBuffer, call: "setsockopt SO_SNDBUF")
        try Syscall.bind(fd, endpoint.sockaddr, call: "bind \(endpoint)")
    }

    /// The address and port the socket is bound to (getsockname(2)): the kernel's choice for port 0.
    public var localEndpoint: UDPEndpoint {
        var sa = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UDPEndpoint(sa)
    }

    /// Sends one datagram. False if the kernel refused it (a full buffer, no route): the caller counts it, and
    /// retransmission recovers.
    public func send(_ bytes: [UInt8], to endpoint: UDPEndpoint) -> Bool {
        let n = bytes.withUnsafeBytes { (try? Syscall.sendto(fd, $0, endpoint.sockaddr, flags: Int32(MSG_DONTWAIT))) ?? nil }
        return n == bytes.count
    }

    /// One datagram if there is one; `buffer` must be larger than any valid message, so that a longer one shows
    /// as such (MSG_TRUNC reports its real length).
    public func receive(into buffer: inout [UInt8]) -> (length: Int, from: UDPEndpoint)? {
        let got = buffer.withUnsafeMutableBytes {
            (try? Syscall.recvfrom(fd, $0, flags: Int32(MSG_DONTWAIT | MSG_TRUNC))) ?? nil
        }
        return got.map { ($0.0, UDPEndpoint($0.1)) }
    }

    /// Waits until a datagram arrives, `other` (if not -1) is readable, or `milliseconds` pass.
    public func wait(milliseconds: Int32, other: Int32 = -1) {
        _ = try? Syscall.pollIn(fd, other, timeoutMilliseconds: milliseconds)
    }
}
