import Synchronization
import SystemCalls

/// The datagrams of the sync link, as the replicator's loop sees them: the peer-filtered UDP socket in the
/// program (`UDPSyncLink`), an in-memory network in tests (`MemorySyncNetwork`), so that the loop itself runs in a
/// test without sockets and, with a hand-turned clock, without waiting.
public protocol SyncLink: Sendable {
    /// Waits until a datagram is there, `other` (if not -1) is readable, or `milliseconds` pass.
    func wait(milliseconds: Int32, other: Int32)
    /// The datagrams waiting, `limit` at most, without waiting; each with its real length (longer than its bytes
    /// when it did not fit) and its source.
    func receive(limit: Int) -> [ReceivedDatagram]
    /// Sends one datagram; false if it could not (the caller counts it, and retransmission recovers).
    func send(_ bytes: [UInt8], to endpoint: UDPEndpoint) -> Bool
}

public struct ReceivedDatagram: Sendable, Equatable {
    public var bytes: [UInt8]
    public var length: Int
    public var source: UDPEndpoint

    public init(bytes: [UInt8], length: Int, source: UDPEndpoint) {
        self.bytes = bytes
        self.length = length
        self.source = source
    }
}

/// The UDP socket, bound to `listen`, admitting only the peers' addresses (the kernel drops the rest before
/// they are queued), read 64 datagrams to a recvmmsg(2).
// @unchecked: the buffers are used by the one thread that runs the replicator's loop.
public final class UDPSyncLink: SyncLink, @unchecked Sendable {
    let socket: UDPSocket
    /// Larger than any valid message, so that a longer one shows as such (its real length is reported).
    var buffers = DatagramBuffers(count: 64, size: 2048)

    public init(listen: UDPEndpoint, peers: [UDPEndpoint]) throws(Errno) {
        // The filter is attached before the socket is bound: nothing from elsewhere is ever queued.
        socket = try UDPSocket(bind: listen, admitting: peers)
    }

    public var localEndpoint: UDPEndpoint { socket.localEndpoint }

    public func wait(milliseconds: Int32, other: Int32) { socket.wait(milliseconds: milliseconds, other: other) }

    public func receive(limit: Int) -> [ReceivedDatagram] {
        let got = socket.receiveMany(into: &buffers, max: limit)
        return (0..<got).map { i in
            let d = buffers[i]
            return ReceivedDatagram(bytes: buffers.withBytes(of: i) { Array($0.prefix(d.length)) }, length: d.length, source: d.source)
        }
    }

    public func send(_ bytes: [UInt8], to endpoint: UDPEndpoint) -> Bool { socket.send(bytes, to: endpoint) }
}

/// An in-memory network of sync links, for tests: a datagram sent to an endpoint with a link is queued there at
/// once, unless `drop` says otherwise (a partition, a lossy link). Nothing waits: `wait` returns at once.
public final class MemorySyncNetwork: Sendable {
    private let queues = Mutex<[UDPEndpoint: [ReceivedDatagram]]>([:])
    private let filter = Mutex<@Sendable (UDPEndpoint, UDPEndpoint) -> Bool>({ _, _ in false })

    public init() {}

    /// The link of the node at `endpoint`.
    public func link(_ endpoint: UDPEndpoint) -> any SyncLink {
        queues.withLock { $0[endpoint] = $0[endpoint] ?? [] }
        return Link(network: self, endpoint: endpoint)
    }

    /// From now on a datagram from the first endpoint to the second is lost when `drop` says so.
    public func drop(_ drop: @escaping @Sendable (_ from: UDPEndpoint, _ to: UDPEndpoint) -> Bool) {
        filter.withLock { $0 = drop }
    }

    struct Link: SyncLink {
        let network: MemorySyncNetwork
        let endpoint: UDPEndpoint

        func wait(milliseconds: Int32, other: Int32) {}

        func receive(limit: Int) -> [ReceivedDatagram] {
            network.queues.withLock { queues in
                let waiting = queues[endpoint] ?? []
                let taken = Array(waiting.prefix(limit))
                queues[endpoint] = Array(waiting.dropFirst(taken.count))
                return taken
            }
        }

        func send(_ bytes: [UInt8], to destination: UDPEndpoint) -> Bool {
            let lost = network.filter.withLock { $0 }(endpoint, destination)
            return network.queues.withLock { queues in
                guard queues[destination] != nil else { return false }
                if !lost { queues[destination]!.append(ReceivedDatagram(bytes: bytes, length: bytes.count, source: endpoint)) }
                return true
            }
        }
    }
}
