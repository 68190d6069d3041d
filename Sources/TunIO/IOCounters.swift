/// What the I/O side of the data plane saw, beside the NAT's own counters. Workers keep their own and add them
/// to the shared total once per batch.
public struct IOCounters: Sendable, Equatable {
    public var framesRead: UInt64 = 0
    public var bytesRead: UInt64 = 0
    /// Frames read that were GSO super-packets (each stands for several packets on the wire).
    public var gsoFramesRead: UInt64 = 0
    public var packetsWritten: UInt64 = 0
    public var bytesWritten: UInt64 = 0
    /// Segments made by splitting GSO super-packets for the raw socket.
    public var segmentsSplit: UInt64 = 0
    /// Transport checksums finished in software (raw output, or an unusual partial checksum).
    public var checksumsCompleted: UInt64 = 0
    /// Frames whose virtio-net header made no sense for the packet: dropped.
    public var badVirtioHeader: UInt64 = 0
    /// GSO types tunnat does not translate (IPv6, UFO): dropped.
    public var unsupportedGSO: UInt64 = 0
    /// Packets the kernel refused on output (by errno: the last one is kept for the log).
    public var writeErrors: UInt64 = 0
    public var lastWriteErrno: Int32 = 0
    /// Packet output: frames sent straight out of the egress interface, frames given back to the TUN instead
    /// (no usable route or neighbour yet, TTL expiring, larger than the egress MTU, lookups over budget), and
    /// netlink questions asked (route, neighbour, link).
    public var framesDirect: UInt64 = 0
    public var framesFallback: UInt64 = 0
    public var egressLookups: UInt64 = 0
    /// Read errors other than "nothing to read".
    public var readErrors: UInt64 = 0
    /// The longest a worker waited for the table's lock before a batch (nanoseconds; a maximum, not a sum).
    public var lockWaitMax: UInt64 = 0

    public init() {}

    @inline(__always) public mutating func noteLockWait(_ nanoseconds: UInt64) {
        if nanoseconds > lockWaitMax { lockWaitMax = nanoseconds }
    }

    public static func += (lhs: inout IOCounters, rhs: IOCounters) {
        lhs.framesRead &+= rhs.framesRead
        lhs.bytesRead &+= rhs.bytesRead
        lhs.gsoFramesRead &+= rhs.gsoFramesRead
        lhs.packetsWritten &+= rhs.packetsWritten
        lhs.bytesWritten &+= rhs.bytesWritten
        lhs.segmentsSplit &+= rhs.segmentsSplit
        lhs.checksumsCompleted &+= rhs.checksumsCompleted
        lhs.badVirtioHeader &+= rhs.badVirtioHeader
        lhs.unsupportedGSO &+= rhs.unsupportedGSO
        lhs.writeErrors &+= rhs.writeErrors
        if rhs.lastWriteErrno != 0 { lhs.lastWriteErrno = rhs.lastWriteErrno }
        lhs.framesDirect &+= rhs.framesDirect
        lhs.framesFallback &+= rhs.framesFallback
        lhs.egressLookups &+= rhs.egressLookups
        lhs.readErrors &+= rhs.readErrors
        lhs.noteLockWait(rhs.lockWaitMax)
    }

    /// The one table of names: every counter as `tunnat status`, its JSON and the metrics name it, in a fixed
    /// order. `lock-wait-max-us` is `lockWaitMax` in microseconds (`scale` 1000).
    public static let fields: [(name: String, value: WritableKeyPath<IOCounters, UInt64> & Sendable, scale: UInt64)] = [
        ("frames-read", \.framesRead, 1), ("bytes-read", \.bytesRead, 1), ("gso-frames-read", \.gsoFramesRead, 1),
        ("packets-written", \.packetsWritten, 1), ("bytes-written", \.bytesWritten, 1), ("segments-split", \.segmentsSplit, 1),
        ("checksums-completed", \.checksumsCompleted, 1), ("bad-virtio-header", \.badVirtioHeader, 1),
        ("unsupported-gso", \.unsupportedGSO, 1), ("write-errors", \.writeErrors, 1), ("frames-direct", \.framesDirect, 1),
        ("frames-fallback", \.framesFallback, 1), ("egress-lookups", \.egressLookups, 1), ("read-errors", \.readErrors, 1),
        ("lock-wait-max-us", \.lockWaitMax, 1000),
    ]

    /// Name and value of every counter, in the table's order and unit.
    public var named: [(name: String, value: UInt64)] { Self.fields.map { ($0.name, self[keyPath: $0.value] / $0.scale) } }
}
