import CSystemShim
import Glibc

/// The kernel's random source, getrandom(2): keys and seeds that an outsider must not guess (port randomisation,
/// hash keys). It blocks only until the kernel's pool is first initialised at boot, then never.
public enum SystemRandom {
    /// Fills `count` bytes from getrandom(2); EINTR and short reads are retried.
    public static func bytes(_ count: Int) throws(Errno) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var failure: Errno?
        out.withUnsafeMutableBytes { b in
            var filled = 0
            while filled < count {
                do throws(Errno) {
                    filled += try Syscall.retrying("getrandom") {
                        tunnat_getrandom(b.baseAddress! + filled, count - filled)
                    } ?? 0
                } catch {
                    failure = error
                    return
                }
            }
        }
        if let failure { throw failure }
        return out
    }

    /// A random 64-bit value. A kernel without getrandom (before 3.17) is not one tunnat runs on: it stops.
    public static func uint64() -> UInt64 {
        do throws(Errno) {
            return try bytes(8).reduce(0) { $0 << 8 | UInt64($1) }
        } catch {
            fatalError("getrandom: \(error): tunnat needs the kernel's random source for its keys")
        }
    }
}
