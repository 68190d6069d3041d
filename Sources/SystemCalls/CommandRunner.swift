import CSystemShim
import Glibc

/// Runs a command (argv, no shell) with a time limit: health-check commands and route hooks. tunnat holds
/// CAP_NET_ADMIN and CAP_NET_RAW and perhaps AWS credentials in its environment, so a command gets as little of
/// it as works. Each is started with posix_spawn(3):
/// - in a process group of its own (POSIX_SPAWN_SETPGROUP), so that when its time is up one kill(-pgid, SIGKILL)
///   ends it with everything it started (a shell's background jobs), and it is reaped;
/// - with an empty signal mask and every signal at its default action (POSIX_SPAWN_SETSIGMASK, SETSIGDEF): what
///   tunnat blocks or ignores (SIGPIPE) is not passed on;
/// - with a clean environment, `PATH=cleanPath` and `LANG=C.UTF-8` and nothing else: none of tunnat's own
///   (AWS_SECRET_ACCESS_KEY above all). A bare program name is looked up on that PATH;
/// - with standard input on /dev/null, standard output on /dev/null or a pipe when captured, standard error a pipe
///   when captured (else tunnat's own, so that what a command says shows in tunnat's log), and no other descriptor
///   of tunnat's (closefrom 3, although tunnat opens every descriptor close-on-exec).
/// Waiting is one poll(2) on a pidfd (pidfd_open(2), Linux 5.3) and the captured pipes, until the command exits or
/// its time is up: no polling loop, and the pipes are read as the command writes, so a long output never fills a
/// pipe and stalls it.
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

    /// The whole PATH a command sees, the directories of programs on a Debian or Ubuntu system.
    public static let cleanPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    /// The whole environment a command sees.
    static let environment = ["PATH=" + cleanPath, "LANG=C.UTF-8"]
    /// The most kept of what a command writes to a captured stream; the rest is read and dropped.
    static let captureLimit = 1 << 20

    /// Runs `argv` (a bare program name is looked up on `cleanPath`) with standard input and output on /dev/null;
    /// when `timeoutMilliseconds` pass, SIGKILL to its process group. With `capturingStandardError`, what the
    /// command wrote there is returned too, without leading and trailing white space.
    public static func run(_ argv: [String], timeoutMilliseconds: Int) -> Outcome {
        run(argv, timeoutMilliseconds: timeoutMilliseconds, capturingStandardError: false).outcome
    }

    public static func run(_ argv: [String], timeoutMilliseconds: Int, capturingStandardError: Bool) -> (outcome: Outcome, standardError: String) {
        let result = run(argv, timeoutMilliseconds: timeoutMilliseconds, capturingStandardError: capturingStandardError,
                         capturingStandardOutput: false)
        return (result.outcome, result.standardError)
    }

    /// As above; with `capturingStandardOutput`, what the command printed is returned too.
    public static func run(_ argv: [String], timeoutMilliseconds: Int, capturingStandardError: Bool,
                           capturingStandardOutput: Bool) -> (outcome: Outcome, standardOutput: String, standardError: String) {
        guard let program = argv.first, !program.isEmpty else { return (.failedToStart("empty command"), "", "") }
        let deadline = SystemClock.monotonicSeconds() + Double(max(0, timeoutMilliseconds)) / 1000
        guard let path = program.contains("/") ? program : lookUp(program) else {
            return (.failedToStart("\(program): no such program in PATH=\(cleanPath)"), "", "")
        }
        let output: Capture?
        let error: Capture?
        do {
            output = capturingStandardOutput ? try Capture() : nil
            error = capturingStandardError ? try Capture() : nil
        } catch {
            return (.failedToStart("\(program): \(error)"), "", "")
        }
        let child: pid_t
        do {
            child = try posixSpawn(path, argv, standardOutput: output?.writingEnd, standardError: error?.writingEnd)
        } catch {
            return (.failedToStart("\(program): \(error.reason)"), "", "")
        }
        // The command holds the write ends now; with ours closed, the pipes end when it (and its children) exit.
        output?.closeWritingEnd()
        error?.closeWritingEnd()
        let outcome = wait(for: child, until: deadline, reading: [output, error].compactMap { $0 })
        return (outcome, output?.text ?? "", error.map { trimmed($0.text) } ?? "")
    }

    /// The first of `candidates` that is an executable file.
    public static func executable(_ candidates: [String]) -> String? {
        candidates.first { access($0, X_OK) == 0 }
    }

    /// `program` in the first directory of `cleanPath` that holds it as an executable regular file, as execvp(3)
    /// would look it up with that PATH (posix_spawnp(3) would use tunnat's own).
    static func lookUp(_ program: String) -> String? {
        executable(cleanPath.split(separator: ":").map { "\($0)/\(program)" }.filter {
            (try? Syscall.mode(of: $0)).map { $0 & S_IFMT == S_IFREG } ?? false
        })
    }

    /// posix_spawn(3) of `path` with `argv` and `environment`, set up as the type's comment says; the child's pid.
    /// The child's standard output goes to `standardOutput` (else /dev/null), its standard error to `standardError`
    /// (else tunnat's). glibc reports a program that cannot be executed (ENOENT, EACCES, ENOEXEC) as posix_spawn's
    /// error.
    static func posixSpawn(_ path: String, _ argv: [String], standardOutput: Int32?, standardError: Int32?) throws(Errno) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        func step(_ call: String, _ code: Int32) throws(Errno) {
            if code != 0 { throw Errno(call, code) }
        }
        try step("posix_spawn_file_actions_addopen", posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0))
        if let standardOutput {
            try step("posix_spawn_file_actions_adddup2", posix_spawn_file_actions_adddup2(&actions, standardOutput, 1))
        } else {
            try step("posix_spawn_file_actions_addopen", posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0))
        }
        if let standardError {
            try step("posix_spawn_file_actions_adddup2", posix_spawn_file_actions_adddup2(&actions, standardError, 2))
        }
        try step("posix_spawn_file_actions_addclosefrom_np", tunnat_spawn_actions_close_from(&actions, 3))
        var signals = sigset_t()
        sigemptyset(&signals)
        try step("posix_spawnattr_setsigmask", posix_spawnattr_setsigmask(&attributes, &signals))
        sigfillset(&signals)
        try step("posix_spawnattr_setsigdefault", posix_spawnattr_setsigdefault(&attributes, &signals))
        try step("posix_spawnattr_setpgroup", posix_spawnattr_setpgroup(&attributes, 0))
        try step("posix_spawnattr_setflags", posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)))
        var pid: pid_t = 0
        var failure: Int32 = 0
        withCStrings(argv) { arguments in
            withCStrings(environment) { environment in
                failure = posix_spawn(&pid, path, &actions, &attributes, arguments, environment)
            }
        }
        try step("posix_spawn", failure)
        return pid
    }

    /// Waits in poll(2) on the child's pidfd and the captured pipes, reading the pipes as they fill, until the
    /// child exits or `deadline` (CLOCK_MONOTONIC seconds) passes; then, at the deadline, SIGKILL to its process
    /// group, and in both cases the child is reaped. What the child wrote before it exited is read; a background
    /// job of its that still holds a pipe is not waited for.
    static func wait(for child: pid_t, until deadline: Double, reading captures: [Capture]) -> Outcome {
        let exited: FileDescriptor
        do { exited = try Syscall.pidfdOpen(child) } catch {
            Syscall.kill(child, group: true, SIGKILL)
            _ = Syscall.waitpid(child)
            return .failedToStart("\(error)")
        }
        var timedOut = false
        while true {
            let left = deadline - SystemClock.monotonicSeconds()
            if left <= 0 {
                timedOut = true
                break
            }
            let open = captures.filter(\.isOpen)
            var fds = [pollfd(fd: exited.rawValue, events: Int16(POLLIN), revents: 0)]
                + open.map { pollfd(fd: $0.readingEnd, events: Int16(POLLIN), revents: 0) }
            guard (try? Syscall.poll(&fds, timeoutMilliseconds: Int32(min(left * 1000 + 1, 3_600_000)))) != nil else {
                timedOut = true
                break
            }
            for (capture, fd) in zip(open, fds.dropFirst()) where fd.revents != 0 { capture.read() }
            if fds[0].revents != 0 { break }
        }
        if timedOut {
            Syscall.kill(child, group: true, SIGKILL)
            // And the command itself, should it have moved to another group (setpgid): the wait below needs it gone.
            Syscall.kill(child, SIGKILL)
        }
        let status = Syscall.waitpid(child)
        for capture in captures { capture.read() }
        if timedOut { return .timedOut }
        guard let status else { return .failedToStart("the command was reaped elsewhere (SIGCHLD ignored?)") }
        // The wait status (sys/wait.h's macros): the low 7 bits are the signal that ended it, if any; else the
        // exit status is in the next byte. A signal reads as 128 + its number, as a shell reports it.
        return status & 0x7F == 0 ? .exited((status >> 8) & 0xFF) : .exited(128 + status & 0x7F)
    }

    /// One stream of a command's captured through a pipe: the command writes into one end, and tunnat reads the
    /// other (non-blocking) while it waits.
    final class Capture {
        private let reading: FileDescriptor
        private var writing: FileDescriptor?
        private var bytes: [UInt8] = []
        /// Until the pipe has ended: every writer (the command and its children) has closed it.
        private(set) var isOpen = true

        init() throws(Errno) {
            let (reading, writing) = try Syscall.pipe()
            self.reading = FileDescriptor(owning: reading)
            self.writing = FileDescriptor(owning: writing)
            try Syscall.setNonBlocking(reading)
        }

        var readingEnd: Int32 { reading.rawValue }
        var writingEnd: Int32? { writing?.rawValue }
        var text: String { String(decoding: bytes, as: UTF8.self) }

        func closeWritingEnd() { writing = nil }

        /// Reads what is in the pipe, at most 16 reads (1 MiB): a command that writes without end is not
        /// followed forever.
        func read() {
            guard isOpen else { return }
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)
            defer { chunk.deallocate() }
            for _ in 0..<16 {
                guard let n = try? Syscall.read(reading.rawValue, chunk) else { return }
                if n == 0 {
                    isOpen = false
                    return
                }
                bytes.append(contentsOf: chunk[..<min(n, max(0, CommandRunner.captureLimit - bytes.count))])
            }
        }
    }

    /// `strings` as a NULL-terminated array of C strings, for `body`.
    static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        let copies = strings.map { strdup($0) } + [nil]
        defer { for copy in copies { free(copy) } }
        return copies.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// `text` without leading and trailing spaces, tabs and line ends.
    static func trimmed(_ text: String) -> String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        return String(text.drop(while: blank).reversed().drop(while: blank).reversed())
    }
}
