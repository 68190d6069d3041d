import SystemCalls

/// The `failover.aws` settings: who this instance is, where the EC2 API and IMDSv2 are, and how to retry.
public struct AWSSettings: Sendable, Equatable {
    /// Empty: from IMDSv2. Each one set here is not asked of the metadata service.
    public var identity = InstanceIdentity()
    /// nil: https://ec2.<region>.amazonaws.com.
    public var endpoint: String?
    /// nil: AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254.
    public var metadataEndpoint: String?
    /// A profile of the shared credentials file; nil: AWS_PROFILE or "default".
    public var profile: String?
    public var retry = RetryPolicy()
    public var timeoutSeconds: UInt32 = 10
    public init() {}
}
