import SystemCalls

/// Everything that can go wrong talking to AWS, with what the operator needs to act on it: the action, and for an
/// API error the code and message exactly as AWS sent them.
public enum AWSError: Error, CustomStringConvertible, Sendable, Equatable {
    /// AWS answered with an error document (`<Response><Errors><Error><Code>...`).
    case api(action: String, status: Int, code: String, message: String)
    /// No HTTP answer at all: connection refused, timeout, TLS failure.
    case transport(action: String, code: Int, message: String)
    /// An answer that is not what the API documents.
    case badResponse(action: String, String)
    /// None of the credential sources had credentials.
    case noCredentials(String)
    /// The instance metadata service (IMDSv2) failed or lacks something needed.
    case metadata(String)

    public var description: String {
        switch self {
        case .api(let action, let status, let code, let message): "\(action): \(code): \(message) (HTTP \(status))"
        case .transport(let action, let code, let message): "\(action): \(message) (curl error \(code))"
        case .badResponse(let action, let what): "\(action): unexpected response: \(what)"
        case .noCredentials(let why): "no AWS credentials: \(why)"
        case .metadata(let why): "instance metadata: \(why)"
        }
    }

    /// The error code AWS sent, if this is an API error.
    public var code: String? {
        if case .api(_, _, let code, _) = self { return code }
        return nil
    }

    /// Throttling, server-side failures and lost connections are worth another try; anything the caller got wrong
    /// (not found, auth failure, bad parameter) is not.
    public var isRetryable: Bool {
        switch self {
        case .api(_, let status, let code, _):
            return AWSError.throttlingCodes.contains(code) || AWSError.transientCodes.contains(code) || status >= 500
        case .transport: return true
        case .badResponse, .noCredentials, .metadata: return false
        }
    }

    static let throttlingCodes: Set<String> = [
        "RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled", "RequestThrottledException",
        "TooManyRequestsException", "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
    ]
    static let transientCodes: Set<String> = ["InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable"]
}

/// Capped exponential backoff with full jitter ("Exponential Backoff And Jitter", AWS Architecture Blog): the n-th
/// retry waits a random time in [0, min(cap, base * 2^n)].
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included.
    public var maxAttempts = 5
    public var baseMilliseconds = 200
    public var capMilliseconds = 5_000

    public init(maxAttempts: Int = 5, baseMilliseconds: Int = 200, capMilliseconds: Int = 5_000) {
        self.maxAttempts = maxAttempts
        self.baseMilliseconds = baseMilliseconds
        self.capMilliseconds = capMilliseconds
    }

    /// The longest wait before retry number `retry` (0 for the first retry).
    public func ceilingMilliseconds(retry: Int) -> Int {
        let shift = min(retry, 20)
        return min(capMilliseconds, baseMilliseconds << shift)
    }

    public func delayMilliseconds<G: RandomNumberGenerator>(retry: Int, using generator: inout G) -> Int {
        Int.random(in: 0...ceilingMilliseconds(retry: retry), using: &generator)
    }

    /// Runs `body` until it succeeds, fails with an error that is not retryable, or the attempts run out.
    /// `onRetry` hears of each retry before its wait (for logging).
    public func run<T>(sleep: (Int) -> Void = { Syscall.sleep(milliseconds: $0) },
                       onRetry: (AWSError, Int, Int) -> Void = { _, _, _ in },
                       _ body: () throws(AWSError) -> T) throws(AWSError) -> T {
        var generator = SystemRandomNumberGenerator()
        var attempt = 0
        while true {
            do {
                return try body()
            } catch {
                attempt += 1
                guard error.isRetryable, attempt < maxAttempts else { throw error }
                let delay = delayMilliseconds(retry: attempt - 1, using: &generator)
                onRetry(error, attempt, delay)
                sleep(delay)
            }
        }
    }
}
