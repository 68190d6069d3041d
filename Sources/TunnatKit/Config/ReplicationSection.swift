import Replication
import SystemCalls
import Yams

extension ConfigReader {
    func replication(_ node: Node) throws(ConfigError) -> ReplicationConfiguration {
        let keys = ["node_id", "listen", "peers", "key_file", "key_id", "accept_key_file", "accept_key_id",
                    "heartbeat_ms", "peer_timeout_ms", "startup_wait_ms", "hold_new_flows_ms"]
        let section = try mapping(node, key: "replication", accepted: keys)
        let invalid = { (text: String) in "expected ADDRESS:PORT with a specific IPv4 address, such as 10.0.1.10:7800, got '\(text)'" }
        guard let listenNode = section["listen"] else {
            throw fail(node, "replication.listen", "missing; give this node's address and UDP port, such as 10.0.1.10:7800")
        }
        let listenText = try scalar(listenNode, "replication.listen", expected: "ADDRESS:PORT")
        guard let listen = UDPEndpoint(listenText) else { throw fail(listenNode, "replication.listen", invalid(listenText)) }
        guard let peersNode = section["peers"] else {
            throw fail(node, "replication.peers", "missing; give the other nodes' ADDRESS:PORT, such as [10.0.2.10:7800], or {node_id: 2, address: 10.0.2.10:7800} for each")
        }
        let peers = try self.peers(peersNode, invalid: invalid)
        guard let keyNode = section["key_file"] else {
            throw fail(node, "replication.key_file", "missing; give a file holding at least 32 bytes of shared secret")
        }
        let keyFile = try scalar(keyNode, "replication.key_file", expected: "an absolute path")
        var config = ReplicationConfiguration(node: listen.address, listen: listen, peers: peers, keyFile: keyFile)
        if let v = section["node_id"] {
            let id = try integer(v, "replication.node_id")
            guard let node = UInt32(exactly: id), node > 0 else {
                throw fail(v, "replication.node_id", "expected a whole number from 1 to \(UInt32.max), got \(id)")
            }
            config.node = node
        }
        if let v = section["key_id"] { config.keyID = try integer(v, "replication.key_id") }
        if let v = section["accept_key_file"] {
            config.acceptKeyFile = try scalar(v, "replication.accept_key_file", expected: "an absolute path")
        }
        if let v = section["accept_key_id"] { config.acceptKeyID = try integer(v, "replication.accept_key_id") }
        if let v = section["heartbeat_ms"] { config.heartbeatMilliseconds = try integer(v, "replication.heartbeat_ms") }
        if let v = section["peer_timeout_ms"] { config.peerTimeoutMilliseconds = try integer(v, "replication.peer_timeout_ms") }
        if let v = section["startup_wait_ms"] { config.startupWaitMilliseconds = try integer(v, "replication.startup_wait_ms") }
        if let v = section["hold_new_flows_ms"] { config.holdNewFlowsMilliseconds = try integer(v, "replication.hold_new_flows_ms") }
        try validate(config.problems(), prefix: "replication")
        return config
    }

    /// Each peer as ADDRESS:PORT (its node id is then the default one: the address as a number) or as
    /// {node_id: ID, address: ADDRESS:PORT}.
    func peers(_ node: Node, invalid: (String) -> String) throws(ConfigError) -> [ReplicationPeer] {
        let key = "replication.peers"
        let items: [Node] = if case .sequence(let sequence) = node { Array(sequence) } else { [node] }
        var peers: [ReplicationPeer] = []
        for item in items {
            if case .scalar(let scalar) = item {
                guard let endpoint = UDPEndpoint(scalar.string) else { throw fail(item, key, invalid(scalar.string)) }
                peers.append(ReplicationPeer(endpoint))
                continue
            }
            let fields = try mapping(item, key: key, accepted: ["node_id", "address"])
            guard let addressNode = fields["address"] else { throw fail(item, "\(key).address", "missing; give the peer's ADDRESS:PORT") }
            let text = try scalar(addressNode, "\(key).address", expected: "ADDRESS:PORT")
            guard let endpoint = UDPEndpoint(text) else { throw fail(addressNode, "\(key).address", invalid(text)) }
            var peer = ReplicationPeer(endpoint)
            if let idNode = fields["node_id"] {
                let id = try integer(idNode, "\(key).node_id")
                guard let node = UInt32(exactly: id), node > 0 else {
                    throw fail(idNode, "\(key).node_id", "expected a whole number from 1 to \(UInt32.max), got \(id)")
                }
                peer.node = node
            }
            peers.append(peer)
        }
        return peers
    }
}
