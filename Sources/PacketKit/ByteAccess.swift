/// Big-endian field access on packet buffers. Callers check bounds once (in a view's validating initializer);
/// these only add the debug-build precondition the standard library already has.
extension UnsafeMutableRawBufferPointer {
    @inlinable public func loadBE16(at offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inlinable public func loadBE32(at offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    @inlinable public func storeBE16(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }
    @inlinable public func storeBE32(_ value: UInt32, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }
    /// The bytes from `start` to the end, as a buffer of their own.
    @inlinable public func suffix(from start: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: self[start...])
    }
    /// The first `count` bytes, as a buffer of their own.
    @inlinable public func prefix(upTo count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: self[..<count])
    }
}

/// Big-endian integers in byte arrays (messages built and parsed off the packet path: replication).
extension RandomAccessCollection where Element == UInt8, Index == Int {
    /// The `T` stored big-endian at `offset` from the start; the caller has checked the length.
    @inlinable public func loadBE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size { value = value << 8 | T(self[startIndex + offset + i]) }
        return value
    }
}

extension Array where Element == UInt8 {
    @inlinable public mutating func appendBE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }
}
