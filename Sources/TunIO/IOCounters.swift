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

    /// Name and value of every counter, in a fixed order, for `tunnat status`.
    public var fields: [(String, UInt64)] {
        [("frames-read", framesRead), ("bytes-read", bytesRead), ("gso-frames-read", gsoFramesRead),
         ("packets-written", packetsWritten), ("bytes-written", bytesWritten), ("segments-split", segmentsSplit),
         ("checksums-completed", checksumsCompleted), ("bad-virtio-header", badVirtioHeader),
         ("unsupported-gso", unsupportedGSO), ("write-errors", writeErrors), ("frames-direct", framesDirect),
         ("frames-fallback", framesFallback), ("egress-lookups", egressLookups), ("read-errors", readErrors),
         ("lock-wait-max-us", lockWaitMax / 1000)]
    }
}
