/// Failover: health checks, the AWS client (SigV4 over OpenSSL, HTTP over libcurl, the EC2 Query API, credentials,
/// IMDSv2) and the AWSnycast-compatible route manager; replication to standbys joins with issue 5.
///
/// It owns every call tunnat makes to AWS and every health probe. It never touches the packet path: the data plane
/// runs whether or not this module can reach AWS, and nothing here logs a secret (`AWSCredentials` hides them).
public enum Failover {}
