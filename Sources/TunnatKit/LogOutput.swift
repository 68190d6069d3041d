import Foundation
import Logging
import Synchronization
import SystemCalls

/// tunnat's log lines, on standard error, in the shape the place they go to wants:
/// - text to a terminal or a file: `2026-11-22T10:00:00Z notice tunnat: message key=value`;
/// - text to the journal (standard error is the stream `$JOURNAL_STREAM` names): `<5>message key=value`, the
///   syslog priority prefix journald reads, and no timestamp (journald adds its own);
/// - json: one object per line, `{"time":..., "level":..., "label":..., "message":..., "metadata": {...}}`.
///
/// The level is shared by every logger and can change while running (SIGHUP).
public struct LogOutput: LogHandler {
    public enum Format: String, Sendable { case text, json }

    /// The level of every tunnat logger, changed by `setLevel`.
    static let level = Atomic<UInt8>(UInt8(Logger.Level.info.index))
    static let levels = Logger.Level.allCases

    let label: String
    let format: Format
    let journal: Bool
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level {
        get { Self.levels[Int(Self.level.load(ordering: .relaxed))] }
        set { Self.setLevel(newValue) }
    }

    public static func setLevel(_ level: Logger.Level) { self.level.store(UInt8(level.index), ordering: .relaxed) }

    /// Bootstraps swift-log with this handler; call once.
    public static func bootstrap(level: Logger.Level, format: Format) {
        setLevel(level)
        let journal = standardErrorIsJournal()
        LoggingSystem.bootstrap { label in LogOutput(label: label, format: format, journal: journal) }
    }

    /// `$JOURNAL_STREAM` is `DEVICE:INODE` of the stream systemd connected to journald; standard error is the
    /// journal when it is that stream (a redirection in between makes it something else).
    static func standardErrorIsJournal() -> Bool {
        guard let stream = Environment.value("JOURNAL_STREAM") else { return false }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]),
              let status = try? Syscall.fstat(2) else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let line = Self.render(level: event.level, label: label, message: "\(event.message)", metadata: merged,
                               format: format, journal: journal, time: Date())
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// One line, without its newline.
    static func render(level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, format: Format,
                       journal: Bool, time: Date) -> String {
        let keys = metadata.keys.sorted()
        switch format {
        case .json:
            var object: [String: Any] = ["time": timestamp(time), "level": level.rawValue, "label": label, "message": message]
            if !keys.isEmpty { object["metadata"] = Dictionary(uniqueKeysWithValues: keys.map { ($0, "\(metadata[$0]!)") }) }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        case .text:
            // One event, one line: a newline in a message would read as a second event.
            let fields = keys.map { "\($0)=\(metadata[$0]!)" }.joined(separator: " ")
            let text = (fields.isEmpty ? message : "\(message) \(fields)").replacingOccurrences(of: "\n", with: " ")
            return journal ? "<\(priority(level))>\(text)" : "\(timestamp(time)) \(level.rawValue) \(label): \(text)"
        }
    }

    /// syslog(3) priorities: swift-log's levels in order, trace and debug both 7 (debug).
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    static func timestamp(_ time: Date) -> String {
        time.ISO8601Format(.iso8601.year().month().day().dateTimeSeparator(.standard).time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}

extension Logger.Level {
    var index: Int { Logger.Level.allCases.firstIndex(of: self)! }
}
