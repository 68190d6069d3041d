/// AWS: the client tunnat needs of AWS, and nothing else. SigV4 signing (over Hashing), the EC2 Query API
/// (2016-11-15) over HTTP, its XML answers, credentials (environment, shared file, the instance role through
/// IMDSv2), the instance's identity from IMDSv2, and retries with capped exponential backoff and full jitter.
///
/// It knows nothing of routes, health or NAT state. It never logs a secret: `AWSCredentials` hides them, and
/// errors carry AWS's code and message, never a signed request.
public enum AWS {}
