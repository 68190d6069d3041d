/// Replication: the NAT table copied to standby peers, and this node's role in the group.
///
/// The protocol is sans-IO: the wire format (`SyncMessage`, HMAC-sealed, with a replay window), the codecs
/// (`FlowRecord`, `Batch`), the streams (`OutboundStream` for each standby, `InboundStream` from the active), the
/// `RoleMachine`, and `ReplicationNode`, which joins them, take datagrams and the time and return datagrams; none
/// reads a clock or opens a socket, so their tests are deterministic. `Replicator` is the small loop around them
/// (one UDP socket, one wake-up) and the workers' hold.
///
/// It reaches the data plane's table only through NatTable's `ReplicaPort`, and never holds the data plane's lock
/// while it works on its own state.
public enum Replication {}
