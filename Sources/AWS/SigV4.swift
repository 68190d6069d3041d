import Glibc
import Hashing
import SystemCalls

/// AWS credentials: an access key, its secret, and for temporary credentials (an instance role, STS) a session
/// token. `description` never shows the secret or the token, so logging a value of this type leaks nothing.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String {
        "AWSCredentials(\(accessKeyID), secret: <hidden>\(sessionToken == nil ? "" : ", session token: <hidden>"))"
    }
}

/// An HTTP request to be signed: method, path and raw query (as they go on the request line), headers in order
/// (a name may repeat), and the body.
public struct SignableRequest: Sendable, Equatable {
    public var method: String
    public var path: String
    public var query: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, path: String, query: String = "", headers: [(name: String, value: String)],
                body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    public static func == (a: SignableRequest, b: SignableRequest) -> Bool {
        a.method == b.method && a.path == b.path && a.query == b.query && a.body == b.body
            && a.headers.elementsEqual(b.headers) { $0.name == $1.name && $0.value == $1.value }
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// AWS Signature Version 4 with the signature in the Authorization header ("Signature Version 4 signing
/// process", AWS General Reference): canonical request, string to sign, derived signing key, signature.
public enum SigV4 {
    public struct Options: Sendable {
        public var region: String
        public var service: String
        /// Remove "." and ".." segments and repeated slashes from the path before signing (every service but S3).
        public var normalizePath = true
        /// Add and sign X-Amz-Content-Sha256 (the body's hash; S3 requires it, others accept it).
        public var signBodyHeader = false
        /// Add the session token after signing instead of signing it (a few services want that).
        public var omitSessionTokenFromSignature = false

        public init(region: String, service: String) {
            self.region = region
            self.service = service
        }
    }

    /// What signing produced, for tests and for debugging a rejected signature (nothing secret in it).
    public struct Result: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signature: String
        public var authorization: String
    }

    /// Signs `request` in place at `time` (seconds since 1970, UTC): adds X-Amz-Date, X-Amz-Security-Token (with
    /// a session token), X-Amz-Content-Sha256 (if asked) and Authorization.
    @discardableResult
    public static func sign(_ request: inout SignableRequest, credentials: AWSCredentials, options: Options,
                            time: Int) -> Result {
        let (amzDate, day) = timestamps(time)
        let payloadHash = Digest.hex(Digest.sha256(request.body))
        request.headers.append((name: "X-Amz-Date", value: amzDate))
        if options.signBodyHeader { request.headers.append((name: "X-Amz-Content-Sha256", value: payloadHash)) }
        if let token = credentials.sessionToken, !options.omitSessionTokenFromSignature {
            request.headers.append((name: "X-Amz-Security-Token", value: token))
        }
        let (canonicalHeaders, signedHeaders) = canonicalize(headers: request.headers)
        let canonicalRequest = [
            request.method,
            canonicalPath(request.path, normalize: options.normalizePath),
            canonicalQuery(request.query),
            canonicalHeaders,
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(options.region)/\(options.service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope,
                            Digest.hex(Digest.sha256(Array(canonicalRequest.utf8)))].joined(separator: "\n")
        var key = Digest.hmacSHA256(key: Array("AWS4\(credentials.secretAccessKey)".utf8), Array(day.utf8))
        for part in [options.region, options.service, "aws4_request"] { key = Digest.hmacSHA256(key: key, Array(part.utf8)) }
        let signature = Digest.hex(Digest.hmacSHA256(key: key, Array(stringToSign.utf8)))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
        request.headers.append((name: "Authorization", value: authorization))
        if let token = credentials.sessionToken, options.omitSessionTokenFromSignature {
            request.headers.append((name: "X-Amz-Security-Token", value: token))
        }
        return Result(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
                      authorization: authorization)
    }

    /// ("20150830T123600Z", "20150830") for a time in seconds since 1970.
    static func timestamps(_ time: Int) -> (String, String) {
        var t = time_t(time)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let day = "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))"
        return ("\(day)T\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z", day)
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters (and "/" when `keepSlash`).
    static func encode(_ text: String, keepSlash: Bool) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                 UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                let digits = Array("0123456789ABCDEF")
                out.append("%")
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0xF)])
            }
        }
        return out
    }

    /// Decodes %XX escapes; anything else is kept as it is.
    static func decode(_ text: String) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2,
               let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func canonicalPath(_ path: String, normalize: Bool) -> String {
        guard normalize else { return encode(path.isEmpty ? "/" : path, keepSlash: true) }
        var segments: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch segment {
            case ".": continue
            case "..": _ = segments.popLast()
            default: segments.append(segment)
            }
        }
        var result = "/" + segments.joined(separator: "/")
        if !segments.isEmpty, path.hasSuffix("/") || path.hasSuffix("/.") || path.hasSuffix("/..") { result += "/" }
        return encode(result, keepSlash: true)
    }

    static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        let pairs = query.split(separator: "&", omittingEmptySubsequences: true).map { item -> (String, String) in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = encode(decode(String(parts[0])), keepSlash: false)
            let value = parts.count > 1 ? encode(decode(String(parts[1])), keepSlash: false) : ""
            return (key, value)
        }
        return pairs.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }.map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// Lower-case names, sorted; values trimmed with runs of spaces folded to one; a repeated name's values
    /// joined with commas in the order given.
    static func canonicalize(headers: [(name: String, value: String)]) -> (String, String) {
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            let folded = value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
                .joined(separator: " ")
            merged[name.lowercased(), default: []].append(folded)
        }
        let names = merged.keys.sorted()
        let lines = names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
        return (lines, names.joined(separator: ";"))
    }
}
