import SystemCalls

/// A peer: its node id and the address and port it sends from. A message is taken only from that address under
/// that id.
public struct ReplicationPeer: Sendable, Equatable, CustomStringConvertible {
    public var node: UInt32
    public var endpoint: UDPEndpoint

    public init(node: UInt32, endpoint: UDPEndpoint) {
        self.node = node
        self.endpoint = endpoint
    }

    /// A peer given by address alone has the default id of a node: its listen address as a number.
    public init(_ endpoint: UDPEndpoint) { self.init(node: endpoint.address, endpoint: endpoint) }

    public var description: String { "node \(node) at \(endpoint)" }
}

/// The `replication` section: this node, its peers, the shared keys, and the timing of the role machine.
public struct ReplicationConfiguration: Sendable, Equatable {
    /// This node's id, unique in the group; the lower id wins ties. Default: the listen address as a number.
    public var node: UInt32
    /// The address and UDP port this node sends from and listens on (a specific address, not 0.0.0.0).
    public var listen: UDPEndpoint
    public var peers: [ReplicationPeer]
    /// A file holding at least 32 bytes of shared key material: the key this node seals with.
    public var keyFile: String
    /// The id of `keyFile`'s key on the wire (1-255).
    public var keyID = 1
    /// A second key, accepted on receipt but never sealed with: the other half of a key rotation.
    public var acceptKeyFile: String?
    public var acceptKeyID: Int?
    public var heartbeatMilliseconds = 100
    /// A peer not heard from for this long is gone; an active gone this long is taken over.
    public var peerTimeoutMilliseconds = 600
    /// How long a starting node listens for an active before it cold-starts as the active itself.
    public var startupWaitMilliseconds = 2000
    /// Hold a batch of packets that created flows until the standbys acknowledge the flows, at most this long
    /// (milliseconds); 0: never hold.
    public var holdNewFlowsMilliseconds = 0

    public init(node: UInt32, listen: UDPEndpoint, peers: [ReplicationPeer], keyFile: String) {
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
        for (i, peer) in peers.enumerated() {
            if peer.endpoint == listen || peers[..<i].contains(where: { $0.endpoint == peer.endpoint }) {
                found.append(("peers", "'\(peer.endpoint)' is this node's own address or given twice"))
            }
            if peer.node == node || peers[..<i].contains(where: { $0.node == peer.node }) {
                found.append(("peers", "node id \(peer.node) (\(peer.endpoint)) is this node's own id or another peer's; every node needs its own (node_id)"))
            }
        }
        if let zero = peers.first(where: { $0.endpoint.address == 0 }) {
            found.append(("peers", "expected ADDRESS:PORT with a specific IPv4 address, got '\(zero.endpoint)'"))
        }
        if let zero = peers.first(where: { $0.node == 0 }) {
            found.append(("peers", "expected a node_id from 1 to \(UInt32.max) for \(zero.endpoint), got 0"))
        }
        if !keyFile.hasPrefix("/") { found.append(("key_file", "expected an absolute path, got '\(keyFile)'")) }
        range("key_id", keyID, 1...255)
        if let file = acceptKeyFile {
            if !file.hasPrefix("/") { found.append(("accept_key_file", "expected an absolute path, got '\(file)'")) }
            if let id = acceptKeyID {
                range("accept_key_id", id, 1...255)
                if id == keyID { found.append(("accept_key_id", "must differ from key_id (\(keyID))")) }
            } else {
                found.append(("accept_key_id", "missing; give the id of accept_key_file's key (1-255, not key_id)"))
            }
        } else if acceptKeyID != nil {
            found.append(("accept_key_file", "missing; accept_key_id needs the file of that key"))
        }
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
        /// As its last heartbeat said; nil before one arrived.
        public var role: Role?
        public var synced: Bool
        /// A session with it is established (SessionHandshake).
        public var session: Bool
        /// Batches sent to it and not yet acknowledged; records waiting to be sent to it.
        public var inFlight: Int
        public var pending: Int
        /// A bulk resync to it is under way.
        public var resyncing: Bool
        /// The wire-format version of the session with it (the newest both speak); nil without a session, and in
        /// the status of a tunnat older than version 3.
        public var wireVersion: UInt8?

        enum CodingKeys: String, CodingKey { case endpoint, node, alive, role, synced, session, inFlight, pending, resyncing, wireVersion }

        /// `role` is "unknown" in JSON before the peer's first heartbeat, as it always was.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(endpoint, forKey: .endpoint)
            try c.encode(node, forKey: .node)
            try c.encode(alive, forKey: .alive)
            try c.encode(role?.description ?? "unknown", forKey: .role)
            try c.encode(synced, forKey: .synced)
            try c.encode(session, forKey: .session)
            try c.encode(inFlight, forKey: .inFlight)
            try c.encode(pending, forKey: .pending)
            try c.encode(resyncing, forKey: .resyncing)
            try c.encodeIfPresent(wireVersion, forKey: .wireVersion)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            endpoint = try c.decode(String.self, forKey: .endpoint)
            node = try c.decode(UInt32.self, forKey: .node)
            alive = try c.decode(Bool.self, forKey: .alive)
            let name = try c.decodeIfPresent(String.self, forKey: .role)
            role = Role.allCases.first { $0.description == name }
            synced = try c.decode(Bool.self, forKey: .synced)
            session = try c.decode(Bool.self, forKey: .session)
            inFlight = try c.decode(Int.self, forKey: .inFlight)
            pending = try c.decode(Int.self, forKey: .pending)
            resyncing = try c.decode(Bool.self, forKey: .resyncing)
            wireVersion = try c.decodeIfPresent(UInt8.self, forKey: .wireVersion)
        }

        public init(endpoint: String, node: UInt32, alive: Bool, role: Role?, synced: Bool, session: Bool, inFlight: Int,
                    pending: Int, resyncing: Bool, wireVersion: UInt8? = nil) {
            self.endpoint = endpoint
            self.node = node
            self.alive = alive
            self.role = role
            self.synced = synced
            self.session = session
            self.inFlight = inFlight
            self.pending = pending
            self.resyncing = resyncing
            self.wireVersion = wireVersion
        }
    }
    public var node: UInt32 = 0
    public var role = Role.starting
    public var term: UInt64 = 0
    /// The active a standby follows.
    public var leader: UInt32 = 0
    /// A standby's replica is complete.
    public var synced = false
    /// A planned handover from this node.
    public var handover = HandoverStatus.none
    /// Messages and bytes sent and received, records sent and applied, retransmits, resyncs, takeovers, and
    /// rejected messages by reason.
    public var counters = ReplicationCounters()
    public var peers: [PeerStatus] = []
}

/// A planned handover from this node, as `tunnat status` shows it.
public enum HandoverStatus: Sendable, Equatable, CustomStringConvertible {
    case none
    case underway(to: UInt32)
    case complete
    case failed(String)

    /// "" (none), "underway to node N", "complete" or "failed: why": the JSON form too.
    public var description: String {
        switch self {
        case .none: ""
        case .underway(let node): "underway to node \(node)"
        case .complete: "complete"
        case .failed(let why): "failed: \(why)"
        }
    }

    init(parsing text: String) {
        if text.isEmpty { self = .none }
        else if text == "complete" { self = .complete }
        else if text.hasPrefix("underway to node "), let node = UInt32(text.dropFirst("underway to node ".count)) { self = .underway(to: node) }
        else { self = .failed(text.hasPrefix("failed: ") ? String(text.dropFirst("failed: ".count)) : text) }
    }
}

extension HandoverStatus: Codable {
    public init(from decoder: any Decoder) throws { self.init(parsing: try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// JSON: the role's name ("starting", "standby", "active").
extension Role: Codable {
    public init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let role = Role.allCases.first(where: { $0.description == name }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "no role '\(name)'"))
        }
        self = role
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
