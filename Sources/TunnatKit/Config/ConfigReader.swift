import Yams

/// The one YAML reader of every configuration section: it walks Yams' node tree, names each value by its dotted
/// key, remembers the line of every key it has seen (so that a rule checked later by a domain type still points
/// at its line), and turns every mistake into one `ConfigError`.
///
/// Syntax is checked here (is it a number, a duration, an address); ranges and RFC rules are the domain types'
/// own (`NatConfiguration.problems()` and the like), reported through `validate`.
final class ConfigReader {
    let file: String
    /// The line of every key read so far, by dotted name.
    private(set) var lines: [String: Int] = [:]

    init(file: String) { self.file = file }

    func fail(_ node: Node?, _ key: String, _ message: String) -> ConfigError {
        ConfigError(file: file, line: node?.mark.map { $0.line } ?? line(of: key), key: key, message: message)
    }

    /// The line of `key`, or of the nearest key above it that was read.
    func line(of key: String) -> Int? {
        var name = Substring(key)
        while !name.isEmpty {
            if let line = lines[String(name)] { return line }
            guard let cut = name.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
            name = name[..<cut]
        }
        return nil
    }

    /// Reports the first problem a domain type found (keys relative to `prefix`).
    func validate(_ problems: [(key: String, problem: String)], prefix: String) throws(ConfigError) {
        guard let (key, problem) = problems.first else { return }
        let full = prefix.isEmpty ? key : "\(prefix).\(key)"
        throw ConfigError(file: file, line: line(of: full), key: full, message: problem)
    }

    /// A mapping whose keys must all be in `accepted` (or be an alias of one). `aliases` maps an alias to the key it
    /// stands for; giving both is a mistake that names both, and the result holds the value under the key.
    func mapping(_ node: Node, key: String, accepted: [String], aliases: [String: String] = [:]) throws(ConfigError) -> [String: Node] {
        let names = accepted + aliases.keys.sorted()
        guard case .mapping(let mapping) = node else {
            throw fail(node, key, "expected a mapping with keys \(names.joined(separator: ", "))")
        }
        var result: [String: Node] = [:]
        var givenAs: [String: String] = [:]
        for (k, v) in mapping {
            guard let name = k.string else { throw fail(k, key, "keys must be plain strings") }
            let full = key.isEmpty ? name : "\(key).\(name)"
            guard names.contains(name) else {
                throw fail(k, full, "unknown key; accepted here: \(names.joined(separator: ", "))")
            }
            let canonical = aliases[name] ?? name
            if let earlier = givenAs[canonical] {
                let message = earlier == name ? "given twice" : "'\(earlier)' and '\(name)' mean the same; give one of them"
                throw fail(k, full, message)
            }
            givenAs[canonical] = name
            result[canonical] = v
            let line = k.mark.map { $0.line }
            lines[full] = line
            lines[key.isEmpty ? canonical : "\(key).\(canonical)"] = line
        }
        return result
    }

    /// A mapping of name -> definition.
    func named(_ node: Node, _ key: String) throws(ConfigError) -> [(String, Node)] {
        guard case .mapping(let mapping) = node else { throw fail(node, key, "expected a mapping of names to definitions") }
        var result: [(String, Node)] = []
        for (k, v) in mapping {
            guard let name = k.string, !name.isEmpty else { throw fail(k, key, "names must be plain strings") }
            lines["\(key).\(name)"] = k.mark.map { $0.line }
            result.append((name, v))
        }
        return result
    }

    func scalar(_ node: Node, _ key: String, expected: String) throws(ConfigError) -> String {
        guard case .scalar(let scalar) = node else { throw fail(node, key, "expected \(expected)") }
        return scalar.string
    }

    /// A list of scalars; a single scalar counts as a list of one.
    func list(_ node: Node, _ key: String, expected: String) throws(ConfigError) -> [(String, Node)] {
        switch node {
        case .scalar(let scalar): return [(scalar.string, node)]
        case .sequence(let sequence):
            var items: [(String, Node)] = []
            for item in sequence { items.append((try scalar(item, key, expected: "a list of \(expected)"), item)) }
            return items
        default: throw fail(node, key, "expected a list of \(expected)")
        }
    }

    /// A list of values that each parse as `T` (a single value counts as a list of one); one that does not is
    /// refused with `invalid(text)`, at its own line.
    func values<T>(_ node: Node, _ key: String, expected: String, invalid: (String) -> String,
                   parse: (String) -> T?) throws(ConfigError) -> [T] {
        var result: [T] = []
        for (text, item) in try list(node, key, expected: expected) {
            guard let value = parse(text) else { throw fail(item, key, invalid(text)) }
            result.append(value)
        }
        return result
    }

    /// A whole number; its range is the domain type's to check.
    func integer(_ node: Node, _ key: String) throws(ConfigError) -> Int {
        let text = try scalar(node, key, expected: "a whole number")
        guard let value = Int(text) else { throw fail(node, key, "expected a whole number, got '\(text)'") }
        return value
    }

    /// One boolean policy for every key: YAML 1.1's words, as AWSnycast's parser (yaml.v2) took them, so that an
    /// AWSnycast file reads as it did there: true/false, yes/no, on/off, y/n, in any case.
    func boolean(_ node: Node, _ key: String) throws(ConfigError) -> Bool {
        let text = try scalar(node, key, expected: "true or false")
        switch text.lowercased() {
        case "true", "yes", "on", "y": return true
        case "false", "no", "off", "n": return false
        default: throw fail(node, key, "expected true or false, got '\(text)'")
        }
    }

    /// Seconds: `300`, `300s`, `5m`, `2h4m`, `1h30m15s`.
    func duration(_ node: Node, _ key: String) throws(ConfigError) -> UInt32 {
        let text = try scalar(node, key, expected: "a duration")
        guard let seconds = Self.parseDuration(text) else {
            throw fail(node, key, "expected a duration such as 300, 300s, 5m or 2h4m, got '\(text)'")
        }
        return seconds
    }

    static func parseDuration(_ text: String) -> UInt32? {
        if let plain = UInt32(text) { return plain }
        var total: UInt64 = 0
        var digits = ""
        var lastUnit = 4
        for ch in text {
            if ch.isASCII && ch.isNumber {
                digits.append(ch)
                continue
            }
            let units: [Character: (Int, UInt64)] = ["h": (3, 3600), "m": (2, 60), "s": (1, 1)]
            // Each part is at most UInt32.max, so that the sum cannot overflow before the check below.
            guard let (rank, scale) = units[ch], rank < lastUnit, let n = UInt64(digits), n <= UInt64(UInt32.max)
            else { return nil }
            total += n * scale
            lastUnit = rank
            digits = ""
        }
        guard digits.isEmpty, lastUnit < 4, total <= UInt64(UInt32.max) else { return nil }
        return UInt32(total)
    }

    /// A command as AWSnycast takes it: a list, the program first. A single string is split at spaces.
    func argv(_ node: Node, _ key: String) throws(ConfigError) -> [String] {
        let items = try list(node, key, expected: "strings (the program, then its arguments)").map(\.0)
        let words = items.count == 1 ? items[0].split(separator: " ").map(String.init) : items
        guard let first = words.first, !first.isEmpty else { throw fail(node, key, "expected a command, got nothing") }
        return words
    }
}
