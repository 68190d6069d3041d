import HTTP
import SystemCalls

/// The AWS Query protocol, which EC2 and CloudWatch both speak: every call is a POST of a form body
/// (`Action=...&Version=...&...`), signed with SigV4, answered with XML. Errors come back as `AWSError.api` with
/// AWS's code and message; throttling, 5xx and lost connections are retried under `retry`. `EC2Client` and
/// `CloudWatchClient` are this with their service name and API version.
public struct QueryClient: Sendable {
    public let endpoint: String
    public let region: String
    /// The SigV4 service name ("ec2", "monitoring") and the API version sent with every call.
    public let service: String
    public let version: String
    let credentials: CredentialProvider
    let retry: RetryPolicy
    let onRetry: @Sendable (AWSError, Int, Int) -> Void
    let timeoutMilliseconds: Int
    let transport: any HTTPTransport
    /// How a retry waits, and the wall clock the signature is dated with: the system's, or a test's.
    let sleep: @Sendable (Int) -> Void
    let wallClock: @Sendable () -> Int

    public init(service: String, version: String, region: String, endpoint: String, credentials: CredentialProvider,
                retry: RetryPolicy = RetryPolicy(), timeoutMilliseconds: Int = 10_000,
                onRetry: @escaping @Sendable (AWSError, Int, Int) -> Void = { _, _, _ in },
                transport: any HTTPTransport = CurlTransport(),
                sleep: @escaping @Sendable (Int) -> Void = { Syscall.sleep(milliseconds: $0) },
                wallClock: @escaping @Sendable () -> Int = { SystemClock.wallClockSeconds() }) {
        self.service = service
        self.version = version
        self.region = region
        var e = endpoint
        while e.hasSuffix("/") { e.removeLast() }
        self.endpoint = e
        self.credentials = credentials
        self.retry = retry
        self.onRetry = onRetry
        self.timeoutMilliseconds = timeoutMilliseconds
        self.transport = transport
        self.sleep = sleep
        self.wallClock = wallClock
    }

    /// One API call, retried as the policy says; returns the response document's root element.
    public func call(_ action: String, _ parameters: [(String, String)] = []) throws(AWSError) -> XMLElement {
        try retry.run(sleep: sleep, onRetry: onRetry) { () throws(AWSError) -> XMLElement in try callOnce(action, parameters) }
    }

    func callOnce(_ action: String, _ parameters: [(String, String)]) throws(AWSError) -> XMLElement {
        let body = Self.formBody([("Action", action), ("Version", version)] + parameters)
        let (host, path) = Self.hostAndPath(endpoint)
        var signable = SignableRequest(method: "POST", path: path, headers: [
            ("Host", host), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
        ], body: Array(body.utf8))
        SigV4.sign(&signable, credentials: try credentials.credentials(),
                   options: SigV4.Options(region: region, service: service), time: wallClock())
        var request = HTTPRequest(method: "POST", url: endpoint + path, headers: signable.headers, body: signable.body)
        request.timeoutMilliseconds = timeoutMilliseconds
        let response: HTTPResponse
        do { response = try transport.perform(request) } catch {
            throw .transport(action: action, code: error.code, message: error.message)
        }
        let document: XMLElement
        do { document = try XML.parse(response.body) } catch {
            let start = String(response.text.prefix(120))
            throw response.status == 200 ? .badResponse(action: action, "\(error)")
                : .api(action: action, status: response.status, code: "HTTP\(response.status)", message: start)
        }
        guard response.status == 200 else {
            // <Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors>...</Response>
            let error = document.first("Error")
            throw .api(action: action, status: response.status, code: error?.value("Code") ?? "HTTP\(response.status)",
                       message: error?.value("Message") ?? "")
        }
        return document
    }

    /// Follows NextToken until the listing is complete.
    func paged(_ action: String, _ parameters: [(String, String)], set: String) throws(AWSError) -> [XMLElement] {
        var items: [XMLElement] = []
        var token: String?
        for _ in 0..<1000 {
            var p = parameters
            if let token { p.append(("NextToken", token)) }
            let document = try call(action, p)
            items += document.items(set)
            token = document.value("nextToken")
            if token?.isEmpty ?? true { return items }
        }
        throw .badResponse(action: action, "more than 1000 pages")
    }

    /// "https://host:port/path" -> ("host:port", "/path"); the Host header is what curl will send.
    static func hostAndPath(_ url: String) -> (String, String) {
        var rest = Substring(url)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var host = String(rest[..<slash])
        if url.hasPrefix("https://"), host.hasSuffix(":443") { host.removeLast(4) }
        if url.hasPrefix("http://"), host.hasSuffix(":80") { host.removeLast(3) }
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        return (host, path)
    }

    static func formBody(_ parameters: [(String, String)]) -> String {
        parameters.map { "\(SigV4.encode($0.0, keepSlash: false))=\(SigV4.encode($0.1, keepSlash: false))" }
            .joined(separator: "&")
    }

    /// The Query API's form of a list: `name.1`, `name.2`, ... (numbered from 1).
    static func numbered(_ name: String, _ values: [String]) -> [(String, String)] {
        values.enumerated().map { ("\(name).\($0.offset + 1)", $0.element) }
    }
}
