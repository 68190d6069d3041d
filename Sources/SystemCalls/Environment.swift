import Glibc

/// The process environment.
public enum Environment {
    /// An environment variable; unset and empty both read as nil.
    public static func value(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }
}
