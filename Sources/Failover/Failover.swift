/// Failover: health checks, NAT state replication to standbys, the AWS client (SigV4, EC2 Query API, IMDSv2)
/// and the AWSnycast-compatible route manager.
///
/// Status: not built yet. It arrives with the failover control plane (issue 4) and state replication (issue 5).
public enum Failover {}
