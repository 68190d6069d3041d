import Glibc

/// A failed system call: the call's name and its errno. The only error type of the system layer.
public struct Errno: Error, CustomStringConvertible, Equatable, Sendable {
    public let call: String
    public let code: Int32

    public init(_ call: String, _ code: Int32 = Glibc.errno) {
        self.call = call
        self.code = code
    }

    /// The system's own text for `code` ("Permission denied").
    public var reason: String { String(cString: strerror(code)) }

    public var description: String { "\(call): \(reason)" }
}
