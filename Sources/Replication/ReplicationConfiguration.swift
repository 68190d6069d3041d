import SystemCalls

/// The `replication` section: this node, its peers, the shared key, and the timing of the role machine.
public struct ReplicationConfiguration: Sendable, Equatable {
    /// This node's id, unique in the group; the lower id wins ties. Default: the listen address as a number.
    public var node: UInt32
    /// The address and UDP port this node sends from and listens on (a specific address, not 0.0.0.0).
    public var listen: UDPEndpoint
    public var peers: [UDPEndpoint]
    /// A file holding at least 32 bytes of shared key material.
    public var keyFile: String
    public var heartbeatMilliseconds = 100
    /// A peer not heard from for this long is gone; an active gone this long is taken over.
    public var peerTimeoutMilliseconds = 600
    /// How long a starting node listens for an active before it cold-starts as the active itself.
    public var startupWaitMilliseconds = 2000
    /// Hold a batch of packets that created flows until the standbys acknowledge the flows, at most this long
    /// (milliseconds); 0: never hold.
    public var holdNewFlowsMilliseconds = 0

    public init(node: UInt32, listen: UDPEndpoint, peers: [UDPEndpoint], keyFile: String) {
        self.node = node
        self.listen = listen
        self.peers = peers
        self.keyFile = keyFile
    }

    /// Everything that would make the group misbehave, as (key, what is accepted) pairs; empty when valid.
    public func problems() -> [(key: String, problem: String)] {
        var found: [(String, String)] = []
        func range(_ key: String, _ value: Int, _ accepted: ClosedRange<Int>) {
            if !accepted.contains(value) {
                found.append((key, "expected a whole number from \(accepted.lowerBound) to \(accepted.upperBound), got \(value)"))
            }
        }
        if listen.address == 0 {
            found.append(("listen", "expected ADDRESS:PORT with a specific IPv4 address, such as 10.0.1.10:7800, got '\(listen)'"))
        } else if node == 0 {
            found.append(("node_id", "expected a whole number from 1 to \(UInt32.max), got 0"))
        }
        if peers.isEmpty { found.append(("peers", "expected at least one peer")) }
        for (i, peer) in peers.enumerated() where peer == listen || peers[..<i].contains(peer) {
            found.append(("peers", "'\(peer)' is this node's own address or given twice"))
        }
        if let zero = peers.first(where: { $0.address == 0 }) {
            found.append(("peers", "expected ADDRESS:PORT with a specific IPv4 address, got '\(zero)'"))
        }
        if !keyFile.hasPrefix("/") { found.append(("key_file", "expected an absolute path, got '\(keyFile)'")) }
        range("heartbeat_ms", heartbeatMilliseconds, 10...10_000)
        range("peer_timeout_ms", peerTimeoutMilliseconds, 50...600_000)
        range("startup_wait_ms", startupWaitMilliseconds, 0...600_000)
        range("hold_new_flows_ms", holdNewFlowsMilliseconds, 0...1000)
        // Only for a heartbeat in range (reported above if not): 3 times any Int may overflow.
        if (10...10_000).contains(heartbeatMilliseconds), peerTimeoutMilliseconds < 3 * heartbeatMilliseconds {
            found.append(("peer_timeout_ms", "must be at least 3 heartbeats (\(3 * heartbeatMilliseconds) ms), got \(peerTimeoutMilliseconds)"))
        }
        return found
    }
}

/// What `tunnat status` shows of replication (its `replication` object).
public struct ReplicationStatus: Codable, Sendable, Equatable {
    public struct PeerStatus: Codable, Sendable, Equatable {
        public var endpoint: String
        public var node: UInt32
        public var alive: Bool
        public var role: String
        public var synced: Bool
        /// Batches sent to it and not yet acknowledged; records waiting to be sent to it.
        public var inFlight: Int
        public var pending: Int
    }
    public var node: UInt32 = 0
    /// starting, standby or active.
    public var role = Role.starting.description
    public var term: UInt64 = 0
    /// The active a standby follows.
    public var leader: UInt32 = 0
    /// A standby's replica is complete.
    public var synced = false
    /// Messages and bytes sent and received, records sent and applied, retransmits, resyncs, takeovers, and
    /// rejected messages by reason.
    public var counters: [String: UInt64] = [:]
    public var peers: [PeerStatus] = []
}
