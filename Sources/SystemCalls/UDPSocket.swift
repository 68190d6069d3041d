import CSystemShim
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

    /// With `admitting`, the socket takes datagrams from those peers only (see `admitOnly`), with the filter
    /// attached before the bind: until then no datagram can reach the socket, so none gets past the filter.
    public init(bind endpoint: UDPEndpoint, receiveBuffer: Int32 = 4 << 20, admitting peers: [UDPEndpoint]? = nil) throws(Errno) {
        descriptor = try Syscall.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0,
                                        call: "socket(AF_INET, SOCK_DGRAM)")
        // Larger buffers are a wish, not a need: the kernel caps them at net.core.[rw]mem_max.
        try? Syscall.setOption(fd, SOL_SOCKET, SO_RCVBUF, receiveBuffer, call: "setsockopt SO_RCVBUF")
        try? Syscall.setOption(fd, SOL_SOCKET, SO_SNDBUF, receiveBuffer, call: "setsockopt SO_SNDBUF")
        if let peers { try attachPeerFilter(peers) }
        try Syscall.bind(fd, endpoint.sockaddr, call: "bind \(endpoint)")
    }

    /// A socket bound elsewhere (passed by the service manager): made non-blocking, given the buffers, and with
    /// `admitting`, the peer filter, after which what was queued before it is discarded (`admitOnly`).
    public init(adopting socket: consuming FileDescriptor, receiveBuffer: Int32 = 4 << 20, admitting peers: [UDPEndpoint]? = nil) throws(Errno) {
        descriptor = socket
        try Syscall.setNonBlocking(descriptor.rawValue)
        try? Syscall.setOption(fd, SOL_SOCKET, SO_RCVBUF, receiveBuffer, call: "setsockopt SO_RCVBUF")
        try? Syscall.setOption(fd, SOL_SOCKET, SO_SNDBUF, receiveBuffer, call: "setsockopt SO_SNDBUF")
        if let peers { try admitOnly(peers) }
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

    /// Up to `limit` datagrams (and at most `buffers.count`) in one recvmmsg(2), without waiting: how many arrived,
    /// also kept as `buffers.received`. 0 when nothing is waiting, or on an error, which retransmission recovers
    /// from as for `receive(into:)`. A datagram longer than its buffer shows its real length (MSG_TRUNC).
    @discardableResult
    public func receiveMany(into buffers: inout DatagramBuffers, max limit: Int = .max) -> Int {
        let count = Swift.min(limit, buffers.count)
        buffers.received = 0
        guard count > 0 else { return 0 }
        let slots = UnsafeMutableBufferPointer(rebasing: buffers.slots[..<count])
        let got = (try? Syscall.recvmmsg(fd, slots)) ?? nil  // nil: nothing waiting, or an error
        buffers.received = got ?? 0
        return buffers.received
    }

    // MARK: - Peer filter

    /// How many peers `admitOnly` takes: a replication group is a handful of nodes, and each peer costs five
    /// instructions that every datagram may run through.
    public static let maximumAdmittedPeers = 64

    /// Has the kernel drop every datagram whose IPv4 source address and UDP source port are not those of one of
    /// `peers` (a classic BPF socket filter, SO_ATTACH_FILTER), so that traffic from anyone else costs no wake-up
    /// and no copy. An empty list admits nothing; a second call replaces the filter.
    ///
    /// The kernel filters only datagrams that arrive after the filter is attached; those already queued are
    /// drained here and discarded, a peer's too (replication retransmits what it needs). A datagram that a
    /// softirq on another CPU had let past the old filter an instant before, and queues after the drain, still
    /// gets through: `init(bind:admitting:)` has no such window.
    public func admitOnly(_ peers: [UDPEndpoint]) throws(Errno) {
        try attachPeerFilter(peers)
        try discardQueued()
    }

    func attachPeerFilter(_ peers: [UDPEndpoint]) throws(Errno) {
        guard peers.count <= Self.maximumAdmittedPeers else {
            throw Errno("socket filter: \(peers.count) peers given, at most \(Self.maximumAdmittedPeers) are supported", EINVAL)
        }
        try Syscall.attachFilter(fd, Self.peerFilter(peers).map(\.sockFilter))
    }

    /// Reads and drops what is queued. Each queued datagram is charged at least its `sk_buff` (well over 256 bytes)
    /// against the receive buffer, so the buffer's size bounds the loop even while peers keep sending.
    func discardQueued() throws(Errno) {
        let bufferBytes = try Syscall.intOption(fd, SOL_SOCKET, SO_RCVBUF, call: "getsockopt SO_RCVBUF")
        try withUnsafeTemporaryAllocation(byteCount: 1, alignment: 1) { (scratch) throws(Errno) in
            for _ in 0...(Int(bufferBytes) / 256) {
                if try Syscall.recvfrom(fd, scratch, flags: Int32(MSG_DONTWAIT)) == nil { return }
            }
        }
    }

    /// The peer filter: for each peer five instructions that keep the datagram when both its source address and
    /// its source port are the peer's, then a drop:
    ///
    ///     ld  [net+12]          A = IPv4 source address
    ///     jeq #address, 0, 3    another address: on to the next peer
    ///     ldh [0]               A = UDP source port
    ///     jeq #port, 0, 1       another port: on to the next peer
    ///     ret #0xffffffff       keep all of the datagram
    ///     ...                   the next peer
    ///     ret #0                no peer's: drop
    ///
    /// A load the kernel cannot make ends the program with 0, so the filter fails closed.
    static func peerFilter(_ peers: [UDPEndpoint]) -> [BPFInstruction] {
        var program: [BPFInstruction] = []
        for peer in peers {
            program += [
                .loadWord(at: FilterField.sourceAddress),
                .continueIfEqual(peer.address, elseSkip: 3),
                .loadHalfword(at: FilterField.sourcePort),
                .continueIfEqual(UInt32(peer.port), elseSkip: 1),
                .returning(BPFInstruction.keepAll),
            ]
        }
        return program + [.returning(BPFInstruction.drop)]
    }

    /// Waits until a datagram arrives, `other` (if not -1) is readable, or `milliseconds` pass.
    public func wait(milliseconds: Int32, other: Int32 = -1) {
        _ = try? Syscall.pollIn(fd, other, timeoutMilliseconds: milliseconds)
    }
}

/// Where the peer filter reads. A UDP socket's filter runs with the datagram starting at its UDP header
/// (`udp_queue_rcv_one_skb` calls `sk_filter_trim_cap` before pulling that header); the IP header in front of it is
/// reached through SKF_NET_OFF, an offset relative to the network header (linux/filter.h).
enum FilterField {
    /// The IPv4 source address: bytes 12..<16 of the IP header (RFC 791, section 3.1).
    static let sourceAddress = SKF_NET_OFF + 12
    /// The UDP source port: bytes 0..<2 of the UDP header (RFC 768).
    static let sourcePort: Int32 = 0
}

/// One classic BPF instruction, as the kernel's `struct sock_filter` (linux/filter.h) holds it. A load turns the
/// packet's network byte order into a number, so `k` holds plain numbers: 10.0.0.1 is 0x0A000001.
public struct BPFInstruction: Equatable, Sendable, CustomStringConvertible {
    public var code: UInt16
    /// How many instructions to skip when a jump's comparison is true (`jt`) or false (`jf`).
    public var jt: UInt8
    public var jf: UInt8
    public var k: UInt32

    public init(code: UInt16, jt: UInt8 = 0, jf: UInt8 = 0, k: UInt32) {
        self.code = code
        self.jt = jt
        self.jf = jf
        self.k = k
    }

    /// A return value that keeps the whole datagram: the kernel keeps max(8, this) bytes of it (sk_filter_trim_cap).
    public static let keepAll = UInt32.max
    /// The return value that drops the datagram.
    public static let drop: UInt32 = 0

    /// A = the 32-bit word at `offset` (BPF_LD | BPF_W | BPF_ABS).
    static func loadWord(at offset: Int32) -> BPFInstruction {
        BPFInstruction(code: UInt16(BPF_LD | BPF_W | BPF_ABS), k: UInt32(bitPattern: offset))
    }

    /// A = the 16-bit halfword at `offset` (BPF_LD | BPF_H | BPF_ABS).
    static func loadHalfword(at offset: Int32) -> BPFInstruction {
        BPFInstruction(code: UInt16(BPF_LD | BPF_H | BPF_ABS), k: UInt32(bitPattern: offset))
    }

    /// On to the next instruction when A == `value`, else `skip` instructions further (BPF_JMP | BPF_JEQ | BPF_K).
    static func continueIfEqual(_ value: UInt32, elseSkip skip: UInt8) -> BPFInstruction {
        BPFInstruction(code: UInt16(BPF_JMP | BPF_JEQ | BPF_K), jt: 0, jf: skip, k: value)
    }

    /// Ends the program with `value` (BPF_RET | BPF_K).
    static func returning(_ value: UInt32) -> BPFInstruction {
        BPFInstruction(code: UInt16(BPF_RET | BPF_K), k: value)
    }

    var sockFilter: sock_filter { sock_filter(code: code, jt: jt, jf: jf, k: k) }

    /// As `tcpdump -dd` prints it, for test failures.
    public var description: String {
        "{ 0x\(String(code, radix: 16)), \(jt), \(jf), 0x\(String(k, radix: 16)) }"
    }
}

/// Caller-owned storage for `UDPSocket.receiveMany`: `count` buffers of `size` bytes and what the last receive put
/// in them. Allocated once and reused, so that a receive allocates nothing.
public struct DatagramBuffers: ~Copyable {
    /// One datagram received: its real length (more than `size` when it was cut) and its sender.
    public struct Datagram: Equatable, Sendable {
        public let length: Int
        public let source: UDPEndpoint
    }

    /// The most recvmmsg takes in one call here (the C shim's batch).
    public static let maximumCount = 64

    public let size: Int
    /// How many datagrams the last receive filled in.
    public internal(set) var received = 0
    let slots: UnsafeMutableBufferPointer<tunnat_receive_slot>
    let storage: UnsafeMutableRawBufferPointer

    public init(count: Int, size: Int) {
        precondition((1...Self.maximumCount).contains(count) && size > 0, "DatagramBuffers needs 1...\(Self.maximumCount) buffers of 1 or more bytes")
        self.size = size
        storage = .allocate(byteCount: count * size, alignment: 16)
        slots = .allocate(capacity: count)
        for i in 0..<count {
            let bytes = UnsafeMutableRawPointer(storage.baseAddress!) + i * size
            slots[i] = tunnat_receive_slot(bytes: bytes, capacity: size, length: 0, source_address: 0, source_port: 0)
        }
    }

    deinit {
        storage.deallocate()
        slots.deallocate()
    }

    public var count: Int { slots.count }

    /// Datagram `i` of the last receive.
    public subscript(i: Int) -> Datagram {
        precondition(i < received, "datagram \(i) of \(received) received")
        let slot = slots[i]
        return Datagram(length: slot.length,
                        source: UDPEndpoint(address: UInt32(bigEndian: slot.source_address), port: UInt16(bigEndian: slot.source_port)))
    }

    /// Runs `body` with the bytes of datagram `i` that fit in its buffer (all of them unless it was cut). They stay
    /// valid until the next receive.
    public func withBytes<R, E: Error>(of i: Int, _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let length = Swift.min(self[i].length, size)
        return try body(UnsafeRawBufferPointer(start: slots[i].bytes, count: length))
    }
}
