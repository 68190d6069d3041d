import Foundation
import Glibc
import Synchronization

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
        let result = run(argv, timeoutMilliseconds: timeoutMilliseconds, capturingStandardError: capturingStandardError,
                         capturingStandardOutput: false)
        return (result.outcome, result.standardError)
    }

    /// As above; with `capturingStandardOutput`, what the command printed is returned too (`ip rule show`). It is
    /// read while the command runs, so a long listing cannot fill the pipe and stall the command.
    public static func run(_ argv: [String], timeoutMilliseconds: Int, capturingStandardError: Bool,
                           capturingStandardOutput: Bool) -> (outcome: Outcome, standardOutput: String, standardError: String) {
        guard let program = argv.first, !program.isEmpty else { return (.failedToStart("empty command"), "", "") }
        let process = Process()
        if program.contains("/") {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(argv.dropFirst())
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = argv
        }
        process.standardInput = FileHandle.nullDevice
        let stdout = capturingStandardOutput ? Pipe() : nil
        process.standardOutput = stdout ?? FileHandle.nullDevice
        let stderr = capturingStandardError ? Pipe() : nil
        if let stderr { process.standardError = stderr }
        do { try process.run() } catch { return (.failedToStart("\(program): \(error.localizedDescription)"), "", "") }
        let printed = Printed()
        let reading = DispatchGroup()
        if let reader = stdout?.fileHandleForReading {
            DispatchQueue.global().async(group: reading) {
                let data = reader.readDataToEndOfFile()
                printed.data.withLock { $0 = data }
            }
        }
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
        reading.wait()
        let output = printed.data.withLock { String(decoding: $0, as: UTF8.self) }
        if let outcome { return (outcome, output, text) }
        if process.terminationReason == .uncaughtSignal { return (.exited(128 + process.terminationStatus), output, text) }
        return (.exited(process.terminationStatus), output, text)
    }

    /// What a command printed, handed from the thread that reads it to the one that waits for the command.
    final class Printed: Sendable {
        let data = Mutex(Data())
    }

    /// The first of `candidates` that is an executable file.
    public static func executable(_ candidates: [String]) -> String? {
        candidates.first { access($0, X_OK) == 0 }
    }
}
