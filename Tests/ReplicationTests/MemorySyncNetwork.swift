import Replication
import Synchronization
import SystemCalls

/// An in-memory network of sync links, for tests: a datagram sent to an endpoint with a link is queued there at
/// once, unless `drop` says otherwise (a partition, a lossy link). Nothing waits: `wait` returns at once.
final class MemorySyncNetwork: Sendable {
    private let queues = Mutex<[UDPEndpoint: [ReceivedDatagram]]>([:])
    private let filter = Mutex<@Sendable (UDPEndpoint, UDPEndpoint) -> Bool>({ _, _ in false })

    init() {}

    /// The link of the node at `endpoint`.
    func link(_ endpoint: UDPEndpoint) -> any SyncLink {
        queues.withLock { $0[endpoint] = $0[endpoint] ?? [] }
        return Link(network: self, endpoint: endpoint)
    }

    /// From now on a datagram from the first endpoint to the second is lost when `drop` says so.
    func drop(_ drop: @escaping @Sendable (_ from: UDPEndpoint, _ to: UDPEndpoint) -> Bool) {
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
