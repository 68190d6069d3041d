#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Which external ports are taken, one bit per port, per (pool address, protocol): 8 KiB each.
///
/// A port is held by exactly one mapping: no "port overloading" (RFC 4787 REQ-3). Allocation first tries the
/// internal port itself (port preservation, RFC 4787 section 4.2.1) and otherwise starts at a random point of the
/// range and takes the next free port, wrapping around: RFC 6056 section 3.3.1, "Algorithm 1", with the scan done
/// 64 ports per step over the bitmap.
@usableFromInline final class PortAllocator {
    static let wordsPerSpace = 65536 / 64
    let words: UnsafeMutablePointer<UInt64>

    init(poolSize: Int) {
        let spaces = poolSize * ProtocolClass.count
        guard let raw = calloc(spaces * Self.wordsPerSpace, MemoryLayout<UInt64>.stride) else {
            fatalError("out of memory for port bitmaps")
        }
        words = raw.bindMemory(to: UInt64.self, capacity: spaces * Self.wordsPerSpace)
    }

    deinit { free(words) }

    @inline(__always) func base(_ pool: UInt8, _ cls: UInt8) -> UnsafeMutablePointer<UInt64> {
        words + (Int(pool) * ProtocolClass.count + Int(cls)) * Self.wordsPerSpace
    }

    func isFree(_ pool: UInt8, _ cls: UInt8, _ port: UInt16) -> Bool {
        base(pool, cls)[Int(port >> 6)] & (1 << UInt64(port & 63)) == 0
    }

    func take(_ pool: UInt8, _ cls: UInt8, _ port: UInt16) {
        base(pool, cls)[Int(port >> 6)] |= 1 << UInt64(port & 63)
    }

    func release(_ pool: UInt8, _ cls: UInt8, _ port: UInt16) {
        base(pool, cls)[Int(port >> 6)] &= ~(1 << UInt64(port & 63))
    }

    /// Takes `preferred` if it lies in `range` and is free, else a free port of `range` found from a random start.
    func allocate(_ pool: UInt8, _ cls: UInt8, preferred: UInt16, range: ClosedRange<UInt16>,
                  random: inout SplitMix64) -> UInt16? {
        if range.contains(preferred) && isFree(pool, cls, preferred) {
            take(pool, cls, preferred)
            return preferred
        }
        let low = Int(range.lowerBound)
        let high = Int(range.upperBound)
        let start = low + random.next(below: high - low + 1)
        guard let port = firstFree(pool, cls, from: start, through: high)
            ?? (start > low ? firstFree(pool, cls, from: low, through: start - 1) : nil)
        else { return nil }
        let p = UInt16(port)
        take(pool, cls, p)
        return p
    }

    /// The lowest free port in `from...through`, scanning a 64-bit word at a time.
    func firstFree(_ pool: UInt8, _ cls: UInt8, from: Int, through: Int) -> Int? {
        let bits = base(pool, cls)
        var word = from >> 6
        let lastWord = through >> 6
        while word <= lastWord {
            var free = ~bits[word]
            if word == from >> 6 { free &= ~UInt64(0) << UInt64(from & 63) }
            if word == lastWord && through & 63 != 63 { free &= (UInt64(1) << UInt64((through & 63) + 1)) - 1 }
            if free != 0 { return word << 6 | free.trailingZeroBitCount }
            word += 1
        }
        return nil
    }
}
