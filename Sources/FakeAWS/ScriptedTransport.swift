import HTTP
import Synchronization

/// An HTTP transport that answers from a script, in order, and keeps every request: for tests of the AWS clients'
/// signing, error mapping and retries without a server. A request past the end of the script fails as a refused
/// connection (curl error 7) would.
public final class ScriptedTransport: HTTPTransport {
    public enum Answer: Sendable {
        case status(Int, String)
        case transportError(code: Int, message: String)
    }

    private let state: Mutex<(answers: [Answer], requests: [HTTPRequest])>

    public init(_ answers: [Answer]) { state = Mutex((answers, [])) }

    public var requests: [HTTPRequest] { state.withLock { $0.requests } }

    public func perform(_ request: HTTPRequest) throws(HTTPTransportError) -> HTTPResponse {
        let answer = state.withLock { s -> Answer? in
            s.requests.append(request)
            return s.answers.isEmpty ? nil : s.answers.removeFirst()
        }
        switch answer {
        case .status(let status, let body)?: return HTTPResponse(status: status, body: Array(body.utf8))
        case .transportError(let code, let message)?: throw HTTPTransportError(code: code, message: message, url: request.url)
        case nil: throw HTTPTransportError(code: 7, message: "Failed to connect: the script has no more answers", url: request.url)
        }
    }
}
