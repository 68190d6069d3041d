import NatTable
import PacketKit

/// The payload of an `entries` message: batch number, flags, count, then the records (24 bytes each).
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     batch number (64 bits)                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     flags     |       0       |         record count          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 records (24 bytes each, FlowRecord)           |
/// ```
public struct Batch: Sendable, Equatable {
    /// The first batch of a bulk resync: the replica starts over from it.
    public static let reset: UInt8 = 1
    /// The last batch of a bulk resync: once it is applied the replica is complete.
    public static let end: UInt8 = 2
    /// As many records as fit one message.
    public static let recordsPerBatch = (SyncMessage.maxPayload - 12) / FlowRecord.encodedSize

    public var number: UInt64
    public var flags: UInt8
    public var records: [FlowRecord]

    public init(number: UInt64, flags: UInt8, records: [FlowRecord]) {
        self.number = number
        self.flags = flags
        self.records = records
    }

    public static func encode(number: UInt64, flags: UInt8, records: ArraySlice<FlowRecord>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(12 + records.count * FlowRecord.encodedSize)
        out.appendBE(number)
        out.append(flags)
        out.append(0)
        out.appendBE(UInt16(records.count))
        for r in records { r.encode(into: &out) }
        return out
    }

    /// Decodes a payload; nil if it is cut short, too long, numbered 0 or 2^64-1 (no batch could follow it: the
    /// standby's next expected number would overflow), or holds a record that does not decode.
    public init?(_ payload: [UInt8]) {
        guard payload.count >= 12 else { return nil }
        number = payload.loadBE(UInt64.self, at: 0)
        flags = payload[8]
        let count = Int(payload.loadBE(UInt16.self, at: 10))
        guard number > 0, number < .max, payload.count == 12 + count * FlowRecord.encodedSize else { return nil }
        records = []
        records.reserveCapacity(count)
        for i in 0..<count {
            guard let r = FlowRecord(decoding: payload[...], at: 12 + i * FlowRecord.encodedSize) else { return nil }
            records.append(r)
        }
    }
}
