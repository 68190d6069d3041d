import Synchronization
import SystemCalls

/// The datagrams of the sync link, as the replicator's loop sees them: the peer-filtered UDP socket in the
/// program (`UDPSyncLink`), an in-memory network in tests (ReplicationTests' `MemorySyncNetwork`), so that the loop itself runs in a
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

    /// On a socket bound elsewhere (the service manager kept it across a restart): the same filter, and what was
    /// queued before it discarded.
    public init(adopting descriptor: consuming FileDescriptor, peers: [UDPEndpoint]) throws(Errno) {
        socket = try UDPSocket(adopting: descriptor, admitting: peers)
    }

    public var localEndpoint: UDPEndpoint { socket.localEndpoint }
    /// The socket, for the service manager's store.
    public var fd: Int32 { socket.fd }

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
