import CCurlShim
import Glibc

/// One HTTP exchange over libcurl. The client follows no redirects, verifies TLS unless told otherwise, and honours
/// the proxy variables (http_proxy, https_proxy, no_proxy) except where `useProxy` is false.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// The whole exchange, connecting included.
    public var timeoutMilliseconds = 10_000
    public var connectTimeoutMilliseconds = 3_000
    /// False for the instance metadata service and health checks: they must go direct.
    public var useProxy = true
    public var verifyTLS = true
    public var caFile: String?
    public var maxBody = 16 << 20
    /// Connect to another address than the URL's host, which TLS still verifies: "name:port:address:port".
    public var connectTo: String?

    public init(method: String, url: String, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var body: [UInt8]
    public init(status: Int, body: [UInt8]) {
        self.status = status
        self.body = body
    }
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// The transfer failed before an HTTP status came back: no connection, a timeout, a TLS failure.
public struct HTTPTransportError: Error, CustomStringConvertible, Sendable {
    /// libcurl's CURLcode (7: could not connect, 28: timeout, 60: certificate not trusted, ...).
    public var code: Int
    public var message: String
    public var url: String
    public var description: String { "\(url): \(message) (curl error \(code))" }

    public init(code: Int, message: String, url: String) {
        self.code = code
        self.message = message
        self.url = url
    }
}

/// Whatever carries an HTTP exchange for the AWS clients: libcurl in the program (`CurlTransport`), a scripted
/// stand-in in tests, so a client's signing, error mapping and retries are tested without a server.
public protocol HTTPTransport: Sendable {
    func perform(_ request: HTTPRequest) throws(HTTPTransportError) -> HTTPResponse
}

/// libcurl, through `HTTPClient.perform`.
public struct CurlTransport: HTTPTransport {
    public init() {}
    public func perform(_ request: HTTPRequest) throws(HTTPTransportError) -> HTTPResponse { try HTTPClient.perform(request) }
}

public enum HTTPClient {
    private static let initialised: Bool = tunnat_http_global_init() == 1

    public static func perform(_ request: HTTPRequest) throws(HTTPTransportError) -> HTTPResponse {
        precondition(initialised, "curl_global_init failed")
        let headerLines = request.headers.map { "\($0.name): \($0.value)" }
        var response = tunnat_http_response()
        let rc: Int32 = withCStrings(headerLines) { headerPointers in
            request.body.withUnsafeBytes { body in
                request.method.withCString { method in
                    request.url.withCString { url in
                        withOptionalCString(request.caFile) { caFile in
                          withOptionalCString(request.connectTo) { connectTo in
                            var c = tunnat_http_request(
                                method: method, url: url, headers: headerPointers, header_count: headerLines.count,
                                body: body.baseAddress, body_length: body.count,
                                timeout_ms: request.timeoutMilliseconds,
                                connect_timeout_ms: request.connectTimeoutMilliseconds,
                                no_proxy: request.useProxy ? 0 : 1, verify_tls: request.verifyTLS ? 1 : 0,
                                ca_file: caFile, max_body: request.maxBody, connect_to: connectTo)
                            return tunnat_http_perform(&c, &response)
                          }
                        }
                    }
                }
            }
        }
        defer { tunnat_http_free(&response) }
        guard rc == 0 else {
            let message = withUnsafeBytes(of: response.error) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            throw HTTPTransportError(code: Int(rc), message: message, url: request.url)
        }
        let body = response.body_length == 0 ? [] : Array(UnsafeBufferPointer(start: response.body, count: response.body_length))
        return HTTPResponse(status: Int(response.status), body: body)
    }

    /// A send/expect probe over TCP or TLS (CURLOPT_CONNECT_ONLY). Returns nil when healthy, else why not.
    public static func probeTCP(host: String, port: Int, tls: Bool, verifyTLS: Bool, caFile: String?,
                                serverName: String?, send: String, expect: String,
                                timeoutMilliseconds: Int) -> String? {
        precondition(initialised, "curl_global_init failed")
        var error = [CChar](repeating: 0, count: 256)
        let healthy = withOptionalCString(caFile) { ca in
            withOptionalCString(serverName) { name in
                tunnat_tcp_probe(host, Int32(port), tls ? 1 : 0, verifyTLS ? 1 : 0, ca, name, send, expect,
                                 timeoutMilliseconds, &error)
            }
        }
        if healthy == 1 { return nil }
        return String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Runs `body` with C strings for every element of `strings`, alive for the call.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    if strings.isEmpty { return body(nil) }
    let owned: [UnsafePointer<CChar>?] = strings.map { UnsafePointer(strdup($0)) }
    defer { owned.forEach { free(UnsafeMutablePointer(mutating: $0)) } }
    return owned.withUnsafeBufferPointer { body($0.baseAddress) }
}

func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}
