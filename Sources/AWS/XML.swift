import SystemCalls

/// A small XML reader for AWS API responses: elements, attributes skipped, text with the five predefined entities
/// and numeric character references, CDATA, comments and processing instructions skipped. Namespaces are ignored
/// (EC2 puts one default namespace on the root). Input is untrusted: depth and size are bounded, and anything
/// malformed is an `XMLError`, never a crash.
public struct XMLElement: Sendable, Equatable {
    public var name: String
    public var children: [XMLElement] = []
    public var text = ""

    public func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }
    /// The text of a child element, trimmed; nil when the child is missing.
    public func value(_ name: String) -> String? { child(name).map { $0.text.trimmed } }
    /// EC2 lists: `<routeTableSet><item>...</item><item>...</item></routeTableSet>`.
    public func items(_ setName: String) -> [XMLElement] {
        child(setName)?.children.filter { $0.name == "item" } ?? []
    }
    /// The first element with this name anywhere below (depth first), self included.
    public func first(_ name: String) -> XMLElement? {
        if self.name == name { return self }
        for c in children { if let found = c.first(name) { return found } }
        return nil
    }
}

public struct XMLError: Error, CustomStringConvertible, Sendable {
    public var offset: Int
    public var message: String
    public var description: String { "malformed XML at byte \(offset): \(message)" }
}

public enum XML {
    static let maxDepth = 64

    public static func parse(_ bytes: [UInt8]) throws(XMLError) -> XMLElement {
        var parser = Parser(bytes: bytes)
        return try parser.document()
    }

    struct Parser {
        let bytes: [UInt8]
        var i = 0

        func fail(_ message: String) -> XMLError { XMLError(offset: i, message: message) }

        mutating func document() throws(XMLError) -> XMLElement {
            try skipMisc()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "<") else { throw fail("expected the root element") }
            let root = try element(depth: 0)
            try skipMisc()
            guard i == bytes.count else { throw fail("content after the root element") }
            return root
        }

        /// Whitespace, `<?...?>`, `<!--...-->` and `<!DOCTYPE ...>` between elements.
        mutating func skipMisc() throws(XMLError) {
            while i < bytes.count {
                if isSpace(bytes[i]) { i += 1; continue }
                if starts("<?") { try skip(past: "?>"); continue }
                if starts("<!--") { try skip(past: "-->"); continue }
                if starts("<!DOCTYPE") { try skip(past: ">"); continue }
                return
            }
        }

        func starts(_ s: StaticString) -> Bool {
            let n = s.utf8CodeUnitCount
            guard i + n <= bytes.count else { return false }
            return s.withUTF8Buffer { Array(bytes[i..<i + n]).elementsEqual($0) }
        }

        mutating func skip(past s: StaticString) throws(XMLError) {
            while i < bytes.count {
                if starts(s) { i += s.utf8CodeUnitCount; return }
                i += 1
            }
            throw fail("unterminated markup, expected \(s)")
        }

        mutating func name() throws(XMLError) -> String {
            let start = i
            while i < bytes.count, !isSpace(bytes[i]), !"/>=".utf8.contains(bytes[i]) { i += 1 }
            guard i > start else { throw fail("expected a name") }
            var text = String(decoding: bytes[start..<i], as: UTF8.self)
            if let colon = text.lastIndex(of: ":") { text = String(text[text.index(after: colon)...]) }
            return text
        }

        mutating func element(depth: Int) throws(XMLError) -> XMLElement {
            guard depth < XML.maxDepth else { throw fail("nested deeper than \(XML.maxDepth)") }
            i += 1  // '<'
            var element = XMLElement(name: try name())
            // Attributes: skipped, but quoted values are honoured so that a '>' inside one does not end the tag.
            while true {
                guard i < bytes.count else { throw fail("unterminated start tag <\(element.name)>") }
                let c = bytes[i]
                if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                    i += 1
                    while i < bytes.count, bytes[i] != c { i += 1 }
                    guard i < bytes.count else { throw fail("unterminated attribute value") }
                    i += 1
                } else if c == UInt8(ascii: "/") {
                    guard i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: ">") else { throw fail("expected />") }
                    i += 2
                    return element
                } else if c == UInt8(ascii: ">") {
                    i += 1
                    break
                } else {
                    i += 1
                }
            }
            var text: [UInt8] = []
            while true {
                guard i < bytes.count else { throw fail("unterminated element <\(element.name)>") }
                if bytes[i] != UInt8(ascii: "<") {
                    if bytes[i] == UInt8(ascii: "&") { try entity(into: &text) } else { text.append(bytes[i]); i += 1 }
                    continue
                }
                if starts("</") {
                    i += 2
                    let closing = try name()
                    while i < bytes.count, isSpace(bytes[i]) { i += 1 }
                    guard closing == element.name, i < bytes.count, bytes[i] == UInt8(ascii: ">") else {
                        throw fail("</\(closing)> does not close <\(element.name)>")
                    }
                    i += 1
                    element.text = String(decoding: text, as: UTF8.self)
                    return element
                }
                if starts("<![CDATA[") {
                    i += 9
                    let start = i
                    try skip(past: "]]>")
                    text.append(contentsOf: bytes[start..<i - 3])
                    continue
                }
                if starts("<!--") { try skip(past: "-->"); continue }
                if starts("<?") { try skip(past: "?>"); continue }
                element.children.append(try self.element(depth: depth + 1))
            }
        }

        mutating func entity(into text: inout [UInt8]) throws(XMLError) {
            let start = i
            while i < bytes.count, bytes[i] != UInt8(ascii: ";"), i - start < 12 { i += 1 }
            guard i < bytes.count, bytes[i] == UInt8(ascii: ";") else { throw fail("unterminated character reference") }
            let body = String(decoding: bytes[start + 1..<i], as: UTF8.self)
            i += 1
            let named: [String: String] = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'"]
            if let s = named[body] { text.append(contentsOf: s.utf8); return }
            var scalar: UInt32?
            if body.hasPrefix("#x") { scalar = UInt32(body.dropFirst(2), radix: 16) }
            else if body.hasPrefix("#") { scalar = UInt32(body.dropFirst(1)) }
            guard let value = scalar, let u = Unicode.Scalar(value) else { throw fail("unknown reference &\(body);") }
            text.append(contentsOf: String(Character(u)).utf8)
        }
    }
}

@inline(__always) func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }

extension String {
    var trimmed: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
