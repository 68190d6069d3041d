import Hashing
import PacketKit

/// The replication wire format, versions 2 to 4: one UDP datagram per message, encrypted and authenticated with
/// AES-256-GCM under a key of its session, and protected against replay. docs/replication-wire-format.md is the
/// full description; the layout (big-endian):
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     magic "TNSY" (0x544E5359)                 |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | version (2-4) |     type      |    key id     |     flags     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                           sender id                           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          receiver id                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                sender's session nonce (64 bits)               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |               receiver's session nonce (64 bits)              |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       sequence (64 bits)                      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    acknowledgement (64 bits)                  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |        payload length         |           reserved (0)        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |               payload, encrypted (length bytes)               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |            AES-256-GCM tag over all of it (16 bytes)          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
public struct SyncMessage: Sendable, Equatable {
    public static let magic: UInt32 = 0x544E_5359
    /// The versions this node speaks. Hellos go out in the oldest, carrying the newest the sender speaks; a session
    /// uses the newest both speak (`negotiated`), so one node may be upgraded while its peer still runs the previous
    /// release. Version 3 is version 2 with that negotiation; version 4 adds NAT64's records (host records, and
    /// flows of IPv6 hosts' aliases), which are never sent in a session of an older version.
    public static let versions: ClosedRange<UInt8> = 2...4
    /// The first version whose sessions carry NAT64's records.
    public static let nat64Version: UInt8 = 4
    public static var currentVersion: UInt8 { versions.upperBound }
    public static var oldestVersion: UInt8 { versions.lowerBound }
    /// The version of every hello, in every release from this one on: a node of any release reads another's hellos
    /// and learns from them the newest version it speaks, whatever versions their sessions may speak.
    public static let helloVersion: UInt8 = 2

    /// The version of a session between a node that speaks up to `own` and a peer whose hello said it speaks up to
    /// `peerNewest` (nil: it said nothing, so it speaks the oldest alone).
    public static func negotiated(own: UInt8 = currentVersion, peerNewest: UInt8?) -> UInt8 {
        min(own, max(oldestVersion, peerNewest ?? oldestVersion))
    }
    public static let headerLength = 52
    public static let tagLength = AEADKey.tagLength
    /// Keeps a whole message inside one unfragmented datagram on a 1500-byte path (IPv4 + UDP headers: 28 bytes).
    public static let maxPayload = 1500 - 28 - headerLength - tagLength

    public enum Kind: UInt8, Sendable, CaseIterable {
        case heartbeat = 1
        case entries = 2
        case ack = 3
        case resyncRequest = 4
        /// Starts or confirms a session (SessionHandshake).
        case hello = 5
        /// From the active to a synced standby: take over now, the active is leaving (a planned handover).
        case handover = 6
    }

    /// A hello's flag: the sender holds no session with the receiver yet and wants an answer.
    public static let answerWanted: UInt8 = 1

    public var version: UInt8
    public var kind: Kind
    public var keyID: UInt8
    public var flags: UInt8 = 0
    public var sender: UInt32
    public var receiver: UInt32
    public var senderNonce: UInt64
    public var receiverNonce: UInt64
    public var sequence: UInt64
    public var acknowledgement: UInt64
    public var payload: [UInt8]

    public init(version: UInt8 = SyncMessage.currentVersion, kind: Kind, keyID: UInt8, flags: UInt8 = 0, sender: UInt32,
                receiver: UInt32, senderNonce: UInt64, receiverNonce: UInt64, sequence: UInt64, acknowledgement: UInt64 = 0,
                payload: [UInt8] = []) {
        self.version = version
        self.kind = kind
        self.keyID = keyID
        self.flags = flags
        self.sender = sender
        self.receiver = receiver
        self.senderNonce = senderNonce
        self.receiverNonce = receiverNonce
        self.sequence = sequence
        self.acknowledgement = acknowledgement
        self.payload = payload
    }

    /// Reads the header of `datagram` (`length`: its real length, larger than `datagram.count` when it was cut
    /// short on receipt), checking its length, magic, version and type; the payload stays empty until
    /// `SyncKeyring.open` has checked the tag. Enough to pick the session and its key, and to drop what cannot be
    /// ours without spending a decryption on it, but nothing here may be trusted yet.
    public init(header datagram: [UInt8], length: Int) throws(SyncRejection) {
        let h = SyncMessage.headerLength
        guard datagram.count >= 5 else { throw .truncated }
        guard datagram.loadBE(UInt32.self, at: 0) == SyncMessage.magic else { throw .badMagic }
        guard SyncMessage.versions.contains(datagram[4]) else { throw .badVersion }
        guard length <= datagram.count else { throw .badLength }
        guard datagram.count >= h + SyncMessage.tagLength else { throw .truncated }
        let payloadLength = Int(datagram.loadBE(UInt16.self, at: 48))
        guard datagram.count == h + payloadLength + SyncMessage.tagLength else {
            throw datagram.count < h + payloadLength + SyncMessage.tagLength ? .truncated : .badLength
        }
        guard let kind = Kind(rawValue: datagram[5]) else { throw .unknownType }
        self.init(version: datagram[4], kind: kind, keyID: datagram[6], flags: datagram[7], sender: datagram.loadBE(UInt32.self, at: 8),
                  receiver: datagram.loadBE(UInt32.self, at: 12), senderNonce: datagram.loadBE(UInt64.self, at: 16),
                  receiverNonce: datagram.loadBE(UInt64.self, at: 24), sequence: datagram.loadBE(UInt64.self, at: 32),
                  acknowledgement: datagram.loadBE(UInt64.self, at: 40))
    }
}

/// Why a datagram was not accepted. Each is counted by the receiver; none is ever applied.
public enum SyncRejection: Int, Error, Sendable, Equatable, CaseIterable {
    case truncated
    case badMagic
    case badVersion
    case unknownType
    case badLength
    /// Not addressed to this node's id.
    case wrongReceiver
    /// The sender id is this node's own (a reflected datagram).
    case ownID
    /// The sender id is no configured peer's.
    case unknownSender
    /// The sender id is a peer's, but the datagram came from another address or port.
    case wrongAddress
    /// A key id this node does not hold.
    case unknownKey
    /// The session nonces are not those of the session with this peer (an old session, or none).
    case noSession
    /// The tag does not match: forged, corrupted, or sealed with another key.
    case badTag
    case replayed
    /// A hello echoing a nonce this node does not hold (a replay of an old handshake).
    case staleHello
    /// Authentic hellos beyond the rate a peer can need: not handled.
    case helloRate
    /// Datagrams to open outside a session (hellos, confirmations) beyond `PeerSession.opensPerSecond`: not opened.
    case openRate
}

/// The shared keys (each from a file, by key id) and the message keys derived from them.
///
/// A message key is derived per direction and session, HKDF-SHA256 (RFC 5869): the extract step turns the key
/// file's bytes into a pseudorandom key once; the expand step binds it to
/// "tunnat sync vN" (N: the message's version) ‖ sender id ‖ receiver id ‖ sender nonce ‖ receiver nonce. The nonces are random per session
/// (64 bits each), so keys never repeat across sessions or restarts, and the IV is the message's sequence, which
/// never repeats within a sender's run.
public struct SyncKeyring: Sendable {
    /// The extract step's salt, the same for every version (named after the version that introduced it).
    static let salt = Array("tunnat sync key v2".utf8)
    static func label(_ version: UInt8) -> [UInt8] { Array("tunnat sync v\(version)".utf8) }

    /// The key id this node seals with.
    public let sendingID: UInt8
    let extracted: [UInt8: [UInt8]]

    /// `keys` by id; the one to seal with is `sendingID` (it must be among them). Each key is at least 32 bytes
    /// (a trailing newline is not part of it); nil otherwise.
    public init?(keys: [UInt8: [UInt8]], sendingID: UInt8) {
        var extracted: [UInt8: [UInt8]] = [:]
        for (id, bytes) in keys {
            guard let key = Self.material(bytes) else { return nil }
            extracted[id] = Digest.hmacSHA256(key: Self.salt, key)
        }
        guard extracted[sendingID] != nil else { return nil }
        self.sendingID = sendingID
        self.extracted = extracted
    }

    /// One key, id 1.
    public init?(_ bytes: [UInt8]) { self.init(keys: [1: bytes], sendingID: 1) }

    /// The key material of a key file's bytes: without trailing newlines, at least 32 bytes; nil if shorter.
    public static func material(_ bytes: [UInt8]) -> [UInt8]? {
        var k = bytes
        while let last = k.last, last == 0x0A || last == 0x0D { k.removeLast() }
        return k.count >= 32 ? k : nil
    }

    public func holds(_ id: UInt8) -> Bool { extracted[id] != nil }

    /// The message key of one direction of one session under key `id`; nil for an id not held.
    public func messageKey(version: UInt8 = SyncMessage.currentVersion, id: UInt8, sender: UInt32, receiver: UInt32,
                           senderNonce: UInt64, receiverNonce: UInt64) -> AEADKey? {
        guard let prk = extracted[id] else { return nil }
        var info = Self.label(version)
        info.appendBE(sender)
        info.appendBE(receiver)
        info.appendBE(senderNonce)
        info.appendBE(receiverNonce)
        return AEADKey(Digest.hkdfExpand(prk: prk, info: info, length: AEADKey.keyLength))
    }

    /// The message key of `message`'s key id, ids and nonces (to seal it, or to open the datagram it was read from).
    public func messageKey(for message: SyncMessage) -> AEADKey? {
        messageKey(version: message.version, id: message.keyID, sender: message.sender, receiver: message.receiver,
                   senderNonce: message.senderNonce, receiverNonce: message.receiverNonce)
    }

    static func iv(_ sequence: UInt64) -> [UInt8] {
        var iv: [UInt8] = [0, 0, 0, 0]
        iv.appendBE(sequence)
        return iv
    }

    /// The datagram: the header in clear (authenticated), the payload encrypted, the tag. `key` must be
    /// `messageKey(for: message)`.
    public static func seal(_ message: SyncMessage, with key: AEADKey) -> [UInt8] {
        precondition(message.payload.count <= SyncMessage.maxPayload, "payload too long for one datagram")
        var out: [UInt8] = []
        out.reserveCapacity(SyncMessage.headerLength + message.payload.count + SyncMessage.tagLength)
        out.appendBE(SyncMessage.magic)
        out.append(message.version)
        out.append(message.kind.rawValue)
        out.append(message.keyID)
        out.append(message.flags)
        out.appendBE(message.sender)
        out.appendBE(message.receiver)
        out.appendBE(message.senderNonce)
        out.appendBE(message.receiverNonce)
        out.appendBE(message.sequence)
        out.appendBE(message.acknowledgement)
        out.appendBE(UInt16(message.payload.count))
        out.appendBE(UInt16(0))
        let header = out
        header.withUnsafeBytes { aad in
            message.payload.withUnsafeBytes { plain in
                key.seal(iv: iv(message.sequence), aad: aad, plaintext: plain, into: &out)
            }
        }
        return out
    }

    /// Seals with the message key derived for `message` (sealing a hello, or in tests).
    public func seal(_ message: SyncMessage) -> [UInt8] {
        guard let key = messageKey(for: message) else { preconditionFailure("key id \(message.keyID) is not held") }
        return Self.seal(message, with: key)
    }

    /// Checks the tag of `datagram` (whose `header` was read) under `key` and decrypts it: the message, payload
    /// and all. Only authenticated bytes are interpreted past this point.
    public static func open(_ datagram: [UInt8], header: SyncMessage, with key: AEADKey) throws(SyncRejection) -> SyncMessage {
        let h = SyncMessage.headerLength
        let payload = datagram.withUnsafeBytes { bytes in
            key.open(iv: iv(header.sequence), aad: UnsafeRawBufferPointer(rebasing: bytes[0..<h]),
                     sealed: UnsafeRawBufferPointer(rebasing: bytes[h...]))
        }
        guard let payload else { throw .badTag }
        var message = header
        message.payload = payload
        return message
    }

    /// Reads the header and opens the datagram with the key derived for it (tests and tools; the node caches
    /// its session keys instead).
    public func open(_ datagram: [UInt8]) throws(SyncRejection) -> SyncMessage {
        let header = try SyncMessage(header: datagram, length: datagram.count)
        guard let key = messageKey(for: header) else { throw .unknownKey }
        return try Self.open(datagram, header: header, with: key)
    }
}

/// Replay protection within one session, as IPsec's anti-replay window (RFC 4303 section 3.4.3) does it: a
/// sequence number is accepted once, and only if it is newer than the newest seen minus the window. A new session
/// starts a new window; nothing of an older session passes the session check before it gets here.
public struct ReplayWindow: Sendable, Equatable {
    public static let size: UInt64 = 1024
    public private(set) var newest: UInt64 = 0
    private var seen = [UInt64](repeating: 0, count: Int(ReplayWindow.size / 64))

    public init() {}

    /// Whether `sequence` could be accepted, without recording it: checked before a decryption, so that a flood of
    /// old or repeated sequences costs a comparison each (RFC 4303 section 3.4.3 does the same).
    public func mayAccept(_ sequence: UInt64) -> Bool {
        guard sequence > 0 else { return false }
        if sequence > newest { return true }
        return newest - sequence < Self.size && !isSet(sequence)
    }

    /// Accepts `sequence` (and records it) or says why not. Call only for authenticated messages.
    public mutating func accept(sequence: UInt64) throws(SyncRejection) {
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
