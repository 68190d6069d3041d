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

    /// Everything out of range, as (key, what is accepted) pairs; empty when valid.
    public func problems() -> [(key: String, problem: String)] {
        var found: [(String, String)] = []
        if !(1...20).contains(retry.maxAttempts) {
            found.append(("max_attempts", "expected a whole number from 1 to 20, got \(retry.maxAttempts)"))
        }
        if timeoutSeconds < 1 { found.append(("timeout", "expected at least 1 second")) }
        for (key, url) in [("endpoint", endpoint), ("metadata_endpoint", metadataEndpoint)] {
            if let url, !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
                found.append((key, "expected an http:// or https:// URL, got '\(url)'"))
            }
        }
        return found
    }
}
