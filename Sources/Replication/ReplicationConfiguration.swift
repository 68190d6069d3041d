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
