import Glibc

/// A socket for ICMP echo: an unprivileged ICMP datagram socket where the kernel allows it
/// (net.ipv4.ping_group_range), else a raw ICMP socket (CAP_NET_RAW).
public final class ICMPSocket: Sendable {
    let descriptor: FileDescriptor
    /// A raw socket hands over the IP header too; a datagram socket only the ICMP message, with the echo
    /// identifier rewritten to the socket's own.
    public let isRaw: Bool

    public init() throws(Errno) {
        do {
            descriptor = try Syscall.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), Int32(IPPROTO_ICMP), call: "socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)")
            isRaw = false
        } catch {
            descriptor = try Syscall.socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP), call: "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)")
            isRaw = true
        }
    }

    /// Sends one ICMP message to `address` (host order).
    public func send(_ message: [UInt8], to address: UInt32) throws(Errno) {
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_addr.s_addr = address.bigEndian
        let sent = message.withUnsafeBytes { b in Result { () throws(Errno) in try Syscall.sendto(descriptor.rawValue, b, to) } }
        guard try sent.get() == message.count else { throw Errno("sendto", EMSGSIZE) }
    }

    /// The next message within `milliseconds`: its length and its sender (host order); nil on timeout.
    public func receive(into buffer: inout [UInt8], milliseconds: Int32) throws(Errno) -> (length: Int, from: UInt32)? {
        guard try Syscall.pollIn(descriptor.rawValue, timeoutMilliseconds: milliseconds).0 else { return nil }
        let got = try buffer.withUnsafeMutableBytes { b in
            Result { () throws(Errno) in try Syscall.recvfrom(descriptor.rawValue, b, flags: Int32(MSG_DONTWAIT)) }
        }.get()
        return got.map { ($0.0, UInt32(bigEndian: $0.1.sin_addr.s_addr)) }
    }
}
