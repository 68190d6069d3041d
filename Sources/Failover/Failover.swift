/// Failover: health checks, NAT state replication to standbys, the AWS client (SigV4, EC2 Query API, IMDSv2)
/// and the AWSnycast-compatible route manager.
///
/// Status: SigV4 signing (`SigV4`, `Digest` over OpenSSL) is built and checked against AWS's test suite. The
/// HTTP client, the EC2 calls, IMDSv2, health checks and the route manager are not built yet (issue 4), nor is
/// replication (issue 5).
public enum Failover {}
