import Glibc
import SystemCalls
import Testing

@Suite struct FileBytesTests {
    /// A file of ours with `mode` under /tmp, named for the test; removed by the caller.
    static func secretFile(_ name: String, mode: mode_t) throws -> String {
        let path = "/tmp/tunnat-secret-\(Syscall.processID)-\(name)"
        Syscall.unlink(path)
        try FileBytes.write([1, 2, 3], to: path, mode: 0o600)
        try #require(chmod(path, mode) == 0)
        return path
    }

    /// The error `readSecret` throws for `path`; nil if it read the file.
    static func refusal(_ path: String) -> FileBytes.SecretFileError? {
        do {
            _ = try FileBytes.readSecret(path)
            return nil
        } catch {
            return error
        }
    }

    /// Only the owner may read (0600 or 0400): the file is read.
    @Test(arguments: [0o600, 0o400] as [mode_t])
    func aPrivateFileOfOursIsRead(mode: mode_t) throws {
        let path = try Self.secretFile("private-\(String(mode, radix: 8))", mode: mode)
        defer { Syscall.unlink(path) }
        #expect(try FileBytes.readSecret(path) == [1, 2, 3])
    }

    /// Any permission for group or others refuses the file, and the message shows the mode and the fix.
    @Test(arguments: [0o640, 0o604, 0o620, 0o602, 0o644, 0o610] as [mode_t])
    func aFileOthersCanReachIsRefused(mode: mode_t) throws {
        let octal = "0" + String(mode, radix: 8)
        let path = try Self.secretFile("open-\(octal)", mode: mode)
        defer { Syscall.unlink(path) }
        let error = try #require(Self.refusal(path))
        #expect(error.problem == .openToOthers(mode: S_IFREG | mode))
        #expect(error.description.contains("\(path): it has mode \(octal)"))
        #expect(error.description.contains("fix: chmod 600 \(path)"))
    }

    /// A file owned by another user is refused even with mode 0600 (the tests run as root, who can chown).
    @Test(.enabled(if: geteuid() == 0, "chown needs root"))
    func aFileOwnedBySomeoneElseIsRefused() throws {
        let path = try Self.secretFile("nobody", mode: 0o600)
        defer { Syscall.unlink(path) }
        try #require(chown(path, 65534, 65534) == 0)
        let error = try #require(Self.refusal(path))
        #expect(error.problem == .wrongOwner(owner: 65534, mode: S_IFREG | 0o600))
        #expect(error.description == "refusing secret \(path): it is owned by uid 65534 with mode 0600; accepted: a regular "
            + "file owned by uid 0 (this process's effective uid) that group and others have no permission on "
            + "(mode 0600 or 0400); fix: chown 0 \(path) && chmod 600 \(path)")
    }

    /// A symbolic link is refused, even to a good file: O_NOFOLLOW.
    @Test func aSymbolicLinkIsRefused() throws {
        let target = try Self.secretFile("target", mode: 0o600)
        let link = target + "-link"
        defer { Syscall.unlink(target); Syscall.unlink(link) }
        Syscall.unlink(link)
        try #require(symlink(target, link) == 0)
        #expect(try #require(Self.refusal(link)).problem == .symbolicLink)
    }

    /// A directory and a FIFO are refused; the FIFO without waiting for a writer (O_NONBLOCK).
    @Test func aDirectoryOrAFIFOIsRefused() throws {
        let fifo = "/tmp/tunnat-secret-\(Syscall.processID)-fifo"
        let directory = "/tmp/tunnat-secret-\(Syscall.processID)-directory"
        defer { Syscall.unlink(fifo); rmdir(directory) }
        Syscall.unlink(fifo)
        rmdir(directory)
        try #require(mkfifo(fifo, 0o600) == 0 && mkdir(directory, 0o700) == 0)
        #expect(try #require(Self.refusal(fifo)).problem == .notRegularFile(mode: S_IFIFO | 0o600))
        let error = try #require(Self.refusal(directory))
        #expect(error.problem == .notRegularFile(mode: S_IFDIR | 0o700))
        #expect(error.description.contains("\(directory): it is not a regular file (mode 040700)"))
    }

    /// A missing file gives its errno.
    @Test func aMissingSecretGivesItsErrno() throws {
        let error = try #require(Self.refusal("/nonexistent/tunnat-secret"))
        #expect(error.errno == ENOENT)
        #expect(error.description == "cannot read secret /nonexistent/tunnat-secret: No such file or directory")
    }
}
