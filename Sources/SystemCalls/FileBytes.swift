import Glibc

/// Reading and writing whole files with the system's own error text (strerror), which names the actual
/// problem ("No such file or directory", "Permission denied") where Foundation's wording does not.
public enum FileBytes {
    public struct Failure: Error, CustomStringConvertible {
        public let path: String
        public let verb: String
        /// The call that failed, errno included.
        public let cause: Errno
        public var errno: Int32 { cause.code }
        public var reason: String { cause.reason }
        public var description: String { "cannot \(verb) \(path): \(reason)" }
    }

    public static func read(_ path: String) throws(Failure) -> [UInt8] {
        do throws(Errno) {
            let fd = try Syscall.open(path, O_RDONLY)
            return try Syscall.readAll(fd.rawValue)
        } catch {
            throw Failure(path: path, verb: "read", cause: error)
        }
    }

    /// Reads a secret (a key, a token) that no one but this process's user can read or replace, and refuses any
    /// other file, so that a key left readable to others is noticed instead of used (ssh treats its keys so).
    /// O_NOFOLLOW refuses a symbolic link as the last part of the path; O_NONBLOCK keeps a FIFO from holding up
    /// the open. The checks (fstat) and the read use one descriptor, so the file checked is the file read.
    public static func readSecret(_ path: String) throws(SecretFileError) -> [UInt8] {
        let owner = Syscall.effectiveUserID
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try Syscall.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
        } catch {
            throw SecretFileError(path: path, problem: error.code == Errno.symbolicLinkLoop ? .symbolicLink : .failed(error), expectedOwner: owner)
        }
        let info: stat
        do throws(Errno) {
            info = try Syscall.fstat(fd.rawValue)
        } catch {
            throw SecretFileError(path: path, problem: .failed(error), expectedOwner: owner)
        }
        if info.st_mode & S_IFMT != S_IFREG {
            throw SecretFileError(path: path, problem: .notRegularFile(mode: info.st_mode), expectedOwner: owner)
        }
        if info.st_uid != owner {
            throw SecretFileError(path: path, problem: .wrongOwner(owner: info.st_uid, mode: info.st_mode), expectedOwner: owner)
        }
        if info.st_mode & 0o077 != 0 {
            throw SecretFileError(path: path, problem: .openToOthers(mode: info.st_mode), expectedOwner: owner)
        }
        do throws(Errno) {
            return try Syscall.readAll(fd.rawValue)
        } catch {
            throw SecretFileError(path: path, problem: .failed(error), expectedOwner: owner)
        }
    }

    /// Why a secret file was refused, in one line that names the file, what was found, what is accepted and how
    /// to fix it.
    public struct SecretFileError: Error, CustomStringConvertible, Equatable, Sendable {
        public enum Problem: Equatable, Sendable {
            /// open, fstat or read failed: a missing file is ENOENT.
            case failed(Errno)
            /// The last part of the path is a symbolic link (open with O_NOFOLLOW: ELOOP).
            case symbolicLink
            /// A directory, a device, a FIFO or a socket.
            case notRegularFile(mode: mode_t)
            /// Owned by a user other than the process's effective user.
            case wrongOwner(owner: uid_t, mode: mode_t)
            /// Group or others have some permission on it.
            case openToOthers(mode: mode_t)
        }

        public let path: String
        public let problem: Problem
        /// The process's effective uid, which must own the file.
        public let expectedOwner: uid_t

        public var errno: Int32? {
            if case .failed(let cause) = problem { cause.code } else { nil }
        }

        public var description: String {
            let accepted = "accepted: a regular file owned by uid \(expectedOwner) (this process's effective uid) "
                + "that group and others have no permission on (mode 0600 or 0400)"
            let fix = "fix: chown \(expectedOwner) \(path) && chmod 600 \(path)"
            return switch problem {
            case .failed(let cause):
                "cannot read secret \(path): \(cause.reason)"
            case .symbolicLink:
                "refusing secret \(path): it is a symbolic link; \(accepted); fix: name the file itself, not a link to it"
            case .notRegularFile(let mode):
                "refusing secret \(path): it is not a regular file (mode \(Self.octal(mode))); \(accepted); "
                    + "fix: name a regular file"
            case .wrongOwner(let owner, let mode):
                "refusing secret \(path): it is owned by uid \(owner) with mode \(Self.octal(mode)); \(accepted); \(fix)"
            case .openToOthers(let mode):
                "refusing secret \(path): it has mode \(Self.octal(mode)), which lets group or others at it; \(accepted); "
                    + "fix: chmod 600 \(path)"
            }
        }

        /// The permission bits and, for anything but a regular file, the type bits, in octal as chmod and stat
        /// write them: "0640", "040700".
        static func octal(_ mode: mode_t) -> String {
            let shown = mode & S_IFMT == S_IFREG ? mode & 0o7777 : mode
            let digits = String(shown, radix: 8)
            return "0" + String(repeating: "0", count: Swift.max(0, 3 - digits.count)) + digits
        }
    }

    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(Failure) {
        do throws(Errno) {
            let fd = try Syscall.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
            try Syscall.writeAll(fd.rawValue, bytes)
            try fd.close()
        } catch {
            throw Failure(path: path, verb: "write", cause: error)
        }
    }
}
