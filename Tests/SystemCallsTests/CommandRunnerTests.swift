import Glibc
import Testing
@testable import SystemCalls

/// Commands (health checks, route hooks) run with posix_spawn: a clean environment, a process group of their own
/// killed whole at the time limit, signals at their defaults, nothing inherited but standard error.
@Suite struct CommandRunnerTests {
    /// A command's exit status, what it printed and said, and the reasons it could not start.
    @Test func exitStatusOutputAndFailuresToStart() {
        #expect(CommandRunner.run(["/bin/sh", "-c", "exit 3"], timeoutMilliseconds: 5000) == .exited(3))
        let (outcome, said) = CommandRunner.run(["/bin/sh", "-c", "echo oops >&2; exit 1"], timeoutMilliseconds: 5000,
                                                capturingStandardError: true)
        #expect(outcome == .exited(1) && said == "oops")
        let both = CommandRunner.run(["/bin/sh", "-c", "printf 'out\\n'; printf '  err \\n' >&2"], timeoutMilliseconds: 5000,
                                     capturingStandardError: true, capturingStandardOutput: true)
        #expect(both.outcome == .exited(0) && both.standardOutput == "out\n" && both.standardError == "err")
        #expect(CommandRunner.run(["/bin/sh", "-c", "kill -9 $$"], timeoutMilliseconds: 5000) == .exited(128 + 9))
        #expect(CommandRunner.run(["/nonexistent/tool"], timeoutMilliseconds: 1000)
            == .failedToStart("/nonexistent/tool: No such file or directory"))
        #expect(CommandRunner.run(["no-such-tunnat-tool"], timeoutMilliseconds: 1000)
            == .failedToStart("no-such-tunnat-tool: no such program in PATH=\(CommandRunner.cleanPath)"))
        #expect(CommandRunner.run([], timeoutMilliseconds: 1000) == .failedToStart("empty command"))
    }

    /// More than a pipe holds (64 KiB) is read while the command runs, so it never stalls on a full pipe.
    @Test func aLongOutputIsReadWhileTheCommandRuns() {
        let result = CommandRunner.run(["/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' a; head -c 100000 /dev/zero >&2"],
                                       timeoutMilliseconds: 10_000, capturingStandardError: true, capturingStandardOutput: true)
        #expect(result.outcome == .exited(0))
        #expect(result.standardOutput.utf8.count == 300_000 && result.standardOutput.utf8.allSatisfy { $0 == UInt8(ascii: "a") })
        #expect(result.standardError.utf8.count == 100_000)
    }

    /// tunnat's environment may hold AWS credentials: a command sees PATH and LANG and nothing else, and a bare
    /// program name is found on that PATH.
    @Test func theEnvironmentIsCleanWhateverTunnatsHolds() {
        setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1)
        setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1)
        defer {
            unsetenv("AWS_ACCESS_KEY_ID")
            unsetenv("AWS_SECRET_ACCESS_KEY")
        }
        #expect(Environment.value("AWS_SECRET_ACCESS_KEY") != nil, "the test's own environment holds the secret")
        for program in ["/usr/bin/env", "env"] {
            let result = CommandRunner.run([program], timeoutMilliseconds: 5000, capturingStandardError: false,
                                           capturingStandardOutput: true)
            #expect(result.outcome == .exited(0))
            #expect(result.standardOutput.split(separator: "\n").sorted()
                == ["LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
        }
    }

    /// The command leads a process group of its own, with standard input on /dev/null, no descriptor of tunnat's
    /// beyond standard error (not even one opened without O_CLOEXEC), no signal blocked and none ignored, although
    /// the thread that ran it blocks SIGUSR2 and the process ignores SIGPIPE.
    @Test func aCommandInheritsNoDescriptorsSignalsOrGroup() throws {
        let leaked = open("/dev/null", O_RDONLY)
        defer { close(leaked) }
        signal(SIGPIPE, SIG_IGN)
        var blocked = sigset_t()
        var before = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGUSR2)
        pthread_sigmask(SIG_BLOCK, &blocked, &before)
        let shell = CommandRunner.run(
            ["/bin/sh", "-c", "echo $$ $(cut -d' ' -f5 /proc/$$/stat); readlink /proc/$$/fd/0; ls /proc/$$/fd | tr '\\n' ' '"],
            timeoutMilliseconds: 5000, capturingStandardError: false, capturingStandardOutput: true)
        let status = CommandRunner.run(["cat", "/proc/self/status"], timeoutMilliseconds: 5000, capturingStandardError: false,
                                       capturingStandardOutput: true)
        pthread_sigmask(SIG_SETMASK, &before, nil)
        #expect(shell.outcome == .exited(0) && status.outcome == .exited(0))
        let lines = shell.standardOutput.split(separator: "\n").map(String.init)
        try #require(lines.count == 3, "\(shell)")
        let ids = lines[0].split(separator: " ")
        #expect(ids.count == 2 && ids[0] == ids[1] && Int32(ids[0]) != getpgrp(), "process group: \(lines[0])")
        #expect(lines[1] == "/dev/null")
        #expect(lines[2] == "0 1 2 ")
        func mask(_ name: String) -> UInt64? {
            status.standardOutput.split(separator: "\n").first { $0.hasPrefix(name + ":\t") }
                .flatMap { UInt64($0.dropFirst(name.count + 2), radix: 16) }
        }
        #expect(mask("SigBlk") == 0)
        // Bits 32 and 33 are glibc's own (SIGCANCEL, SIGSETXID): its posix_spawn ignores them in every child.
        #expect(mask("SigIgn").map { $0 & ~0x1_8000_0000 } == 0)
    }

    /// At the time limit the whole process group is killed, a shell's background job too, and the command reaped.
    @Test func aTimeoutKillsTheWholeProcessGroup() throws {
        let file = "/tmp/tunnat-command-\(Syscall.processID)-\(UInt32.random(in: 0...UInt32.max))"
        defer { Syscall.unlink(file) }
        let started = SystemClock.monotonicSeconds()
        let outcome = CommandRunner.run(["/bin/sh", "-c", "sleep 60 & echo $$ $! > \(file); sleep 60"], timeoutMilliseconds: 300)
        let took = SystemClock.monotonicSeconds() - started
        #expect(outcome == .timedOut)
        #expect(took >= 0.3 && took < 3, "took \(took) s")
        let pids = String(decoding: try FileBytes.read(file), as: UTF8.self).split(whereSeparator: \.isWhitespace)
            .compactMap { Int32($0) }
        try #require(pids.count == 2)
        let (shell, background) = (pids[0], pids[1])
        #expect(Self.isDead(shell), "the command itself is reaped: no such process")
        // SIGKILL is queued by kill(2) and acted on when the process next runs: give it up to a second.
        var waited = 0
        while !Self.isDead(background) && waited < 100 {
            Syscall.sleep(milliseconds: 10)
            waited += 1
        }
        #expect(Self.isDead(background), "the background sleep of process group \(shell) still runs")
    }

    /// Gone, or a zombie nobody has reaped yet (a container's init may not reap what is left to it).
    static func isDead(_ pid: Int32) -> Bool {
        guard let stat = try? FileBytes.read("/proc/\(pid)/stat") else { return true }
        let text = String(decoding: stat, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return true }
        return text[text.index(close, offsetBy: 2)...].first == "Z"
    }
}
