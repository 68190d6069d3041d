import Foundation
import Glibc

/// Runs a command (argv, no shell) with a time limit: health-check commands, route hooks, `ip`.
public enum CommandRunner {
    public enum Outcome: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case timedOut
        case failedToStart(String)
        public var description: String {
            switch self {
            case .exited(let s): "exit status \(s)"
            case .timedOut: "timed out"
            case .failedToStart(let why): "could not start: \(why)"
            }
        }
    }

    /// Runs `argv` (a bare program name is looked up on PATH) with standard input and output on /dev/null;
    /// SIGKILL after `timeoutMilliseconds`. With `capturingStandardError`, what the command wrote there is returned too.
    public static func run(_ argv: [String], timeoutMilliseconds: Int) -> Outcome {
        run(argv, timeoutMilliseconds: timeoutMilliseconds, capturingStandardError: false).outcome
    }

    public static func run(_ argv: [String], timeoutMilliseconds: Int, capturingStandardError: Bool) -> (outcome: Outcome, standardError: String) {
        guard let program = argv.first, !program.isEmpty else { return (.failedToStart("empty command"), "") }
        let process = Process()
        if program.contains("/") {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(argv.dropFirst())
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = argv
        }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        let stderr = capturingStandardError ? Pipe() : nil
        if let stderr { process.standardError = stderr }
        do { try process.run() } catch { return (.failedToStart("\(program): \(error.localizedDescription)"), "") }
        let deadline = SystemClock.monotonicSeconds() + Double(timeoutMilliseconds) / 1000
        var outcome: Outcome?
        var polls = 0
        while process.isRunning {
            if SystemClock.monotonicSeconds() > deadline {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                outcome = .timedOut
                break
            }
            // 1 ms at first (an `ip` call is over in a few), then 10 ms.
            polls += 1
            Syscall.sleep(milliseconds: polls < 50 ? 1 : 10)
        }
        // A command that says more than a pipe holds (64 KB) on standard error stalls until its time is up.
        let said = stderr?.fileHandleForReading.readDataToEndOfFile() ?? Data()
        let text = String(decoding: said, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if let outcome { return (outcome, text) }
        if process.terminationReason == .uncaughtSignal { return (.exited(128 + process.terminationStatus), text) }
        return (.exited(process.terminationStatus), text)
    }

    /// The first of `candidates` that is an executable file.
    public static func executable(_ candidates: [String]) -> String? {
        candidates.first { access($0, X_OK) == 0 }
    }
}
