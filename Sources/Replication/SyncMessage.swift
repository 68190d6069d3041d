import Hashing
import PacketKit

/// The replication wire format, version 1: one UDP datagram per message, authenticated with HMAC-SHA256 and
/// protected against replay. docs/replication-wire-format.md is the full description; the layout (big-endian):
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     magic "TNSY" (0x544E5359)                 |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |    version    |     type      |             flags             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                           sender id                           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      epoch (sender's start)                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       sequence (64 bits)                      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    acknowledgement (64 bits)                  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |        payload length         |           reserved (0)        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     payload (length bytes)                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |        HMAC-SHA256 of everything above, keyed (32 bytes)      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
public struct SyncMessage: Sendable, Equatable {
    public static let magic: UInt32 = 0x544E_5359
    public static let version: UInt8 = 1
    public static let headerLength = 36
    public static let macLength = 32
    /// Keeps a whole message inside one unfragmented datagram on a 1500-byte path (IPv4 + UDP headers: 28 bytes).
    public static let maxPayload = 1500 - 28 - headerLength - macLength

    public enum Kind: UInt8, Sendable, CaseIterable {
        case heartbeat = 1
        case entries = 2
        case ack = 3
        case resyncRequest = 4
    }

    public var kind: Kind
    public var flags: UInt16 = 0
    public var sender: UInt32
    public var epoch: UInt32
    public var sequence: UInt64
    public var acknowledgement: UInt64
    public var payload: [UInt8]

    public init(kind: Kind, flags: UInt16 = 0, sender: UInt32, epoch: UInt32, sequence: UInt64, acknowledgement: UInt64,
                payload: [UInt8] = []) {
        self.kind = kind
        self.flags = flags
        self.sender = sender
        self.epoch = epoch
        self.sequence = sequence
        self.acknowledgement = acknowledgement
        self.payload = payload
    }
}

/// Why a datagram was not accepted. Each is counted by the receiver; none is ever applied.
public enum SyncRejection: Error, Sendable, Equatable, CaseIterable {
    case truncated
    case badMagic
    case badVersion
    case unknownType
    case badLength
    case badMAC
    case replayed
    case staleEpoch
}

/// The shared key (from a file) and the HMAC over a message. Verification compares in constant time.
public struct SyncKey: Sendable {
    let key: [UInt8]

    /// At least 32 bytes of key material (the file holds it as-is; a trailing newline is dropped).
    public init?(_ bytes: [UInt8]) {
        var k = bytes
        while let last = k.last, last == 0x0A || last == 0x0D { k.removeLast() }
        guard k.count >= 32 else { return nil }
        key = k
    }

    public func seal(_ message: SyncMessage) -> [UInt8] {
        precondition(message.payload.count <= SyncMessage.maxPayload, "payload too long for one datagram")
        var out: [UInt8] = []
        out.reserveCapacity(SyncMessage.headerLength + message.payload.count + SyncMessage.macLength)
        out.appendBE(SyncMessage.magic)
        out.appendBE(SyncMessage.version)
        out.appendBE(message.kind.rawValue)
        out.appendBE(message.flags)
        out.appendBE(message.sender)
        out.appendBE(message.epoch)
        out.appendBE(message.sequence)
        out.appendBE(message.acknowledgement)
        out.appendBE(UInt16(message.payload.count))
        out.appendBE(UInt16(0))
        out += message.payload
        out += Digest.hmacSHA256(key: key, out)
        return out
    }

    /// Parses and authenticates; replay is the receiver's `ReplayWindow`'s to judge.
    public func open(_ datagram: [UInt8]) throws(SyncRejection) -> SyncMessage {
        let h = SyncMessage.headerLength
        guard datagram.count >= h + SyncMessage.macLength else { throw .truncated }
        guard datagram.loadBE(UInt32.self, at: 0) == SyncMessage.magic else { throw .badMagic }
        guard datagram[4] == SyncMessage.version else { throw .badVersion }
        let length = Int(datagram.loadBE(UInt16.self, at: 32))
        guard datagram.count == h + length + SyncMessage.macLength else {
            throw datagram.count < h + length + SyncMessage.macLength ? .truncated : .badLength
        }
        let mac = Digest.hmacSHA256(key: key, datagram[0..<(h + length)])
        var difference: UInt8 = 0
        for (a, b) in zip(mac, datagram[(h + length)...]) { difference |= a ^ b }
        guard difference == 0 else { throw .badMAC }
        // Only authenticated bytes are interpreted past this point.
        guard let kind = SyncMessage.Kind(rawValue: datagram[5]) else { throw .unknownType }
        return SyncMessage(kind: kind, flags: datagram.loadBE(UInt16.self, at: 6), sender: datagram.loadBE(UInt32.self, at: 8), epoch: datagram.loadBE(UInt32.self, at: 12),
                           sequence: datagram.loadBE(UInt64.self, at: 16), acknowledgement: datagram.loadBE(UInt64.self, at: 24),
                           payload: Array(datagram[h..<(h + length)]))
    }
}

/// Replay protection for one peer, as IPsec's anti-replay window (RFC 4303 section 3.4.3) does it: a sequence
/// number is accepted once, and only if it is newer than the newest seen minus the window. A peer that restarts
/// starts a new, larger epoch (its start time); messages of an older epoch are refused.
public struct ReplayWindow: Sendable, Equatable {
    public static let size: UInt64 = 1024
    public private(set) var epoch: UInt32 = 0
    public private(set) var newest: UInt64 = 0
    private var seen = [UInt64](repeating: 0, count: Int(ReplayWindow.size / 64))

    public init() {}

    /// Accepts `sequence` of `epoch` (and records it) or says why not. Call only for authenticated messages.
    public mutating func accept(epoch: UInt32, sequence: UInt64) throws(SyncRejection) {
        if epoch < self.epoch { throw .staleEpoch }
        if epoch > self.epoch {
            self.epoch = epoch
            newest = 0
            for i in seen.indices { seen[i] = 0 }
        }
        guard sequence > 0 else { throw .replayed }
        if sequence > newest {
            let shift = sequence - newest
            if shift >= Self.size {
                for i in seen.indices { seen[i] = 0 }
            } else {
                for s in (newest + 1)...sequence { clear(s) }
            }
            newest = sequence
            set(sequence)
            return
        }
        guard newest - sequence < Self.size, !isSet(sequence) else { throw .replayed }
        set(sequence)
    }

    private func index(_ s: UInt64) -> (Int, UInt64) {
        let bit = s % Self.size
        return (Int(bit / 64), 1 << (bit % 64))
    }
    private func isSet(_ s: UInt64) -> Bool { let (i, m) = index(s); return seen[i] & m != 0 }
    private mutating func set(_ s: UInt64) { let (i, m) = index(s); seen[i] |= m }
    private mutating func clear(_ s: UInt64) { let (i, m) = index(s); seen[i] &= ~m }
}
