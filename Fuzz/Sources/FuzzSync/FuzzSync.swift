// libFuzzer target: the replication wire format, version 2, and the node that receives it (Replication/). A real
// peer's datagrams are sealed with AES-256-GCM under a key of their session (HKDF of the shared key, both ids and
// both session nonces), so mutated datagrams stop at the header checks or the tag. To reach the parsers behind the
// tag, the target plays the peers (nodes 1 and 3) of the node under test (node 2), as peers holding the shared
// keys would: it runs the hello handshake with the node, then seals the input's messages with the session's
// nonces and message key (`SyncKeyring.messageKey`). The node draws its nonces from a seeded generator, and each
// input starts from a new node, so every input reproduces alone.
//
// The input is a control byte, then data for one of four modes (bits 0-1):
//   0  raw datagrams, unsealed, to a standby in session with nodes 1 and 3 and following node 1:
//      [flags][u16 length][bytes]... where flags bit 0 writes a header that parses (magic, version, the payload
//      length; padded to 68 bytes), bit 1 writes node 1's id, node 2's and the session's nonces (bytes 8-31), so
//      that the bytes reach the tag, bit 2 makes them node 3's (its address too); control bit 2 passes a `length`
//      larger than the bytes. Every one must be counted under one rejection and change nothing.
//   1  sealed messages to that standby: [desc][variant][ack][u16 payload length][payload]... where
//        desc    bits 0-2  heartbeat, entries, ack, resync request, hello, handover, entries, or no message: the
//                          node begins a planned handover
//                bit 3     from node 3 (else node 1)
//                bit 4     acknowledgement 2^64-1-ack (else ack)
//                bit 5     0.3 s pass first (else 5 ms)
//                bit 6     tick the node after it
//                bit 7     the node's health verdict flips (for this tick and later ones)
//        variant bits 0-2  as is; to the other peer's id (wrong receiver); as node 2 (own id); from another port
//                          (wrong address); with the peer's previous session's nonces (stale); key id 9 (not
//                          held); key id 2 (held: the other half of a rotation); key id 1 with other key material
//                bit 3     repeat the peer's last sequence number
//                bits 4-5  hello: echo none (answer wanted), the node's latest challenge (completing a handshake:
//                          a new session), the session's nonces (a repeated confirmation), a stale nonce
//                bit 6     hello: a new run id (the peer restarted)
//                bit 7     flip a bit of the sealed datagram
//        A hello's "answer wanted" is bit 0 of ack (always with no echo), its version bit 1 (2 or 3); its empty
//        payload becomes the run id (a hello of version 2's form: the session then speaks version 2).
//   2  the same, to a node that cold-started as the active and holds a few flows (acks, resyncs, handovers,
//      step-downs)
//   3  the decoders alone: Batch and FlowRecord (with an encode round trip), `SyncMessage(header:length:)`
//      against the layout, `SyncKeyring.open` (a seal and open round trip, tampering, other keys), and the replay
//      window against a plain model
//
// Checked besides "no crash": every datagram the node sends opens under the keyring, says it comes from node 2 to
// the peer it goes to, carries the session's nonces (all but hellos), and its batches decode; a datagram that fails
// authentication (no `received` counter moves) is answered with nothing and changes neither the node's role, term,
// leader or synced flag nor its table's flow count; the target's tampered messages all fail it.
import CFuzzerDriver
import FuzzSupport
import Logging
import NatTable
import PacketKit
import Replication
import SystemCalls
import TunIO

let keyOne = Array("0123456789abcdef0123456789abcdef-fuzz-key".utf8)
let keyTwo = Array("the second fuzz key, for a key rotation".utf8)
let otherKey = Array("not the shared key, but 32 bytes long at least".utf8)
/// What the node and its peers hold: keys 1 and 2, sealing with 1.
let keyring = SyncKeyring(keys: [1: keyOne, 2: keyTwo], sendingID: 1)!
/// A key id the node does not hold, and other material under the id it seals with.
let stranger = SyncKeyring(keys: [9: otherKey], sendingID: 9)!
let forger = SyncKeyring(otherKey)!

func endpoint(_ node: UInt32) -> UDPEndpoint { UDPEndpoint(address: 0x0A00_0000 | node, port: 7800) }
let logger: Logger = {
    var l = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    l.logLevel = .critical
    return l
}()

extension SplitMix64 {
    /// The node's nonces are never 0 (0 means "none").
    mutating func nonzero() -> UInt64 {
        var n = next()
        while n == 0 { n = next() }
        return n
    }
}

/// A peer as the target plays it: the session the node holds with it (known from the node's counter of
/// established sessions, since the node establishes one only on a hello), and its send side.
struct FuzzPeer {
    let node: UInt32
    /// This peer's nonce and the node's, of the session the node holds; 0: none.
    var local: UInt64 = 0
    var remote: UInt64 = 0
    /// The session before, for stale nonces.
    var previous: (local: UInt64, remote: UInt64)?
    /// The nonce this peer's hellos carry until a session starts.
    var challenge: UInt64 = 0
    /// The nonce of the node's latest hello that wants an answer: what a hello echoes to complete a handshake.
    var nodeChallenge: UInt64 = 0
    var run: UInt64
    var sequence: UInt64 = 0
    /// The wire-format version of the session the node holds: the newest both speak, from the establishing hello.
    var version = SyncMessage.currentVersion
    /// The session's message keys, by key id, as sealing functions.
    var sealers: [UInt8: (SyncMessage) -> [UInt8]] = [:]

    init(node: UInt32) {
        self.node = node
        run = 0x5255_4E00 | UInt64(node)
    }
}

/// The node under test, the table it replicates into, and the peers the target plays.
final class Harness {
    let node: ReplicationNode
    let table: LockedNAT
    var peers = [FuzzPeer(node: 1), FuzzPeer(node: 3)]
    var random = SplitMix64(seed: 0x7065_6572)
    var now = 0.01
    var healthy = true

    /// Node 2, peers 1 and 3, over a fresh table.
    init(active: Bool) {
        var config = ReplicationConfiguration(node: 2, listen: endpoint(2),
                                              peers: [ReplicationPeer(node: 1, endpoint: endpoint(1)),
                                                      ReplicationPeer(node: 3, endpoint: endpoint(3))], keyFile: "/k")
        config.heartbeatMilliseconds = 20
        config.peerTimeoutMilliseconds = 200
        config.startupWaitMilliseconds = active ? 0 : 300
        table = LockedNAT(nat: try! NAT(configuration: NatConfiguration(
            privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: [IPv4Address(198, 18, 0, 1)], maxFlows: 64,
            seed: 9)))
        var generator = SplitMix64(seed: 2)
        node = ReplicationNode(config: config, keyring: keyring, run: 0x5255_4E02, random: { generator.next() },
                               table: table, logger: logger, now: 0)
    }

    func index(of node: UInt32) -> Int { node == 1 ? 0 : 1 }

    var accepted: UInt64 { node.counters[.received] + node.counters[.receivedHellos] }
    var rejections: UInt64 { SyncRejection.allCases.reduce(0) { $0 + node.counters[$1] } }

    /// Checks a datagram the node sends and learns from it what a peer would (the node's challenge), then reports
    /// it sent.
    func check(_ d: OutgoingDatagram) {
        guard let message = try? keyring.open(d.bytes) else {
            fatalError("node sent a datagram that does not open: \(hex(d.bytes))")
        }
        require(message.sender == 2, "node sent as \(message.sender)")
        require(d.to == endpoint(message.receiver) && (message.receiver == 1 || message.receiver == 3),
                "node sent a message for \(message.receiver) to \(d.to)")
        require(message.kind == d.kind, "node sent a \(message.kind) labelled \(d.kind)")
        let i = index(of: message.receiver)
        if message.kind == .hello {
            if message.flags & SyncMessage.answerWanted != 0 { peers[i].nodeChallenge = message.senderNonce }
        } else {
            require(message.senderNonce == peers[i].remote && message.receiverNonce == peers[i].local,
                    "node sent a \(message.kind) to \(message.receiver) outside the session it holds")
        }
        if message.kind == .entries { require(Batch(message.payload) != nil, "node sent an undecodable batch") }
        node.sent(d, ok: true)
    }

    func tick() {
        for d in node.tick(now: now, healthy: healthy).datagrams { check(d) }
    }

    /// Hands the node a datagram; whether it was authenticated. One that is not is answered with nothing and
    /// changes nothing that matters; `mustFail`: it must not be authenticated.
    @discardableResult
    func deliver(_ datagram: [UInt8], length: Int? = nil, from: UDPEndpoint, mustFail: Bool = false) -> Bool {
        let before = (node.role, node.term, node.leader, node.synced, table.flowCount, accepted, rejections)
        let answers = node.receive(datagram, length: length ?? datagram.count, from: from, now: now)
        for d in answers { check(d) }
        guard accepted == before.5 else {
            require(!mustFail, "a tampered datagram was accepted: \(hex(datagram))")
            return true
        }
        require(rejections == before.6 + 1, "a datagram was dropped without being counted once")
        require(answers.isEmpty, "a datagram that failed authentication was answered")
        require(node.role == before.0 && node.term == before.1 && node.leader == before.2 && node.synced == before.3,
                "a datagram that failed authentication changed the role: \(before.0) term \(before.1) -> "
                + "\(node.role) term \(node.term)")
        require(table.flowCount == before.4, "a datagram that failed authentication changed the flow count")
        return false
    }

    /// `message` of peer `i`, sealed under `ring`'s key of its key id; `cache`: the message is in the session, whose
    /// key is derived once, as the node caches it.
    func seal(_ message: SyncMessage, peer i: Int, with ring: SyncKeyring = keyring, cache: Bool = false) -> [UInt8] {
        if cache, let sealer = peers[i].sealers[message.keyID] { return sealer(message) }
        guard let key = ring.messageKey(version: message.version, id: message.keyID, sender: message.sender,
                                        receiver: message.receiver,
                                        senderNonce: message.senderNonce, receiverNonce: message.receiverNonce) else {
            fatalError("the sealing key id \(message.keyID) is not held")
        }
        let sealer = { (m: SyncMessage) in SyncKeyring.seal(m, with: key) }
        if cache { peers[i].sealers[message.keyID] = sealer }
        return sealer(message)
    }

    func nextSequence(_ i: Int, repeating: Bool = false) -> UInt64 {
        if !repeating || peers[i].sequence == 0 { peers[i].sequence += 1 }
        return peers[i].sequence
    }

    /// A hello from peer `i`: its nonce, the nonce it echoes; tracks the session the node establishes from it.
    @discardableResult
    func hello(from i: Int, nonce: UInt64, echo: UInt64, answerWanted: Bool) -> Bool {
        var runID: [UInt8] = []
        runID.appendBE(peers[i].run)
        runID.append(SyncMessage.currentVersion)
        let message = SyncMessage(version: SyncMessage.oldestVersion, kind: .hello, keyID: 1,
                                  flags: answerWanted ? SyncMessage.answerWanted : 0,
                                  sender: peers[i].node, receiver: 2, senderNonce: nonce, receiverNonce: echo,
                                  sequence: nextSequence(i), payload: runID)
        return deliver(hello: seal(message, peer: i), from: i, nonce: nonce, echo: echo, mustFail: false,
                       newest: SyncMessage.currentVersion)
    }

    /// Delivers a sealed hello from peer `i`, and when the node establishes a session from it, takes it up.
    func deliver(hello datagram: [UInt8], from i: Int, nonce: UInt64, echo: UInt64, mustFail: Bool,
              address: UDPEndpoint? = nil, newest: UInt8?) -> Bool {
        let established = node.counters[.sessionsEstablished]
        deliver(datagram, from: address ?? endpoint(peers[i].node), mustFail: mustFail)
        guard node.counters[.sessionsEstablished] > established else { return false }
        require(echo != 0 && echo == peers[i].nodeChallenge,
                "a session started from a hello that did not echo the node's challenge")
        if peers[i].local != 0 { peers[i].previous = (peers[i].local, peers[i].remote) }
        peers[i].local = nonce
        peers[i].remote = echo
        peers[i].challenge = 0
        peers[i].sealers = [:]
        peers[i].version = SyncMessage.negotiated(peerNewest: newest)
        return true
    }

    /// The handshake, as a peer without a session runs it: a hello with no echo, answered by the node's challenge,
    /// echoed back.
    func handshake(_ i: Int) {
        peers[i].challenge = random.nonzero()
        hello(from: i, nonce: peers[i].challenge, echo: 0, answerWanted: true)
        require(hello(from: i, nonce: peers[i].challenge, echo: peers[i].nodeChallenge, answerWanted: false),
                "the handshake with node \(peers[i].node) did not establish a session")
    }

    /// One fuzzed message (or the handover control), from the sealed modes' layout.
    func message(_ input: inout FuzzInput) {
        let desc = input.byte()
        let variant = input.byte()
        let ackByte = UInt64(input.byte())
        var payload = input.take(min(Int(input.uint16()), SyncMessage.maxPayload))
        let i = desc & 8 != 0 ? 1 : 0
        now += desc & 0x20 != 0 ? 0.3 : 0.005
        if desc & 0x80 != 0 { healthy.toggle() }
        defer { if desc & 0x40 != 0 { tick() } }
        let kinds: [SyncMessage.Kind?] = [.heartbeat, .entries, .ack, .resyncRequest, .hello, .handover, .entries, nil]
        guard let kind = kinds[Int(desc & 7)] else {
            _ = node.beginHandover(now: now)
            return
        }
        let tampering = variant & 7
        let me = peers[i].node
        var sender = me
        var receiver: UInt32 = 2
        var address = endpoint(me)
        var keyID: UInt8 = 1
        var ring = keyring
        var nonces = (peers[i].local, peers[i].remote)
        var flags: UInt8 = 0
        var mustFail = true
        switch tampering {
        case 1: receiver = peers[1 - i].node
        case 2: sender = 2
        case 3: address = UDPEndpoint(address: address.address, port: 7801)
        case 4: nonces = peers[i].previous.map { ($0.local, $0.remote) } ?? (peers[i].local ^ 1, peers[i].remote)
        case 5: (keyID, ring) = (9, stranger)
        case 6: (keyID, mustFail) = (2, false)
        case 7: ring = forger
        default: mustFail = false
        }
        if kind == .hello {
            // A hello's nonces are its own: its challenge (or the session's, confirming), and what it echoes.
            if peers[i].challenge == 0 { peers[i].challenge = random.nonzero() }
            let challenge = peers[i].challenge
            switch variant >> 4 & 3 {
            case 0: nonces = (challenge, 0)
            case 1: nonces = (challenge, peers[i].nodeChallenge)
            case 2: nonces = (peers[i].local, peers[i].remote)
            default: nonces = (challenge, peers[i].previous?.remote ?? peers[i].remote ^ 0x5A5A)
            }
            if tampering == 4 {
                // An old session's confirmation, replayed: authentic, and stale.
                nonces = peers[i].previous.map { ($0.local, $0.remote) } ?? (challenge, peers[i].remote ^ 0x5A5A)
                mustFail = false
            }
            flags = nonces.1 == 0 || ackByte & 1 != 0 ? SyncMessage.answerWanted : 0
            if variant & 0x40 != 0 { peers[i].run &+= 1 }
            if payload.isEmpty { payload.appendBE(peers[i].run) }
        }
        let ack = desc & 0x10 != 0 ? .max - ackByte : ackByte
        // Hellos in either version the node speaks (bit 1 of ack picks); the session's messages in the session's.
        let version = kind != .hello ? peers[i].version
            : ackByte & 2 != 0 ? SyncMessage.currentVersion : SyncMessage.oldestVersion
        let message = SyncMessage(version: version, kind: kind, keyID: keyID, flags: flags, sender: sender,
                                  receiver: receiver, senderNonce: nonces.0, receiverNonce: nonces.1,
                                  sequence: nextSequence(i, repeating: variant & 8 != 0), acknowledgement: ack,
                                  payload: payload)
        let inSession = peers[i].local != 0 && nonces == (peers[i].local, peers[i].remote)
        var datagram = seal(message, peer: i, with: ring, cache: inSession && (tampering == 0 || tampering == 6))
        if variant & 0x80 != 0 {
            datagram[Int(ackByte &* 7 &+ 1) % datagram.count] ^= 1 << (ackByte & 7)
            mustFail = true
        }
        if kind == .hello {
            _ = deliver(hello: datagram, from: i, nonce: nonces.0, echo: nonces.1, mustFail: mustFail, address: address,
                        newest: payload.count >= 9 ? payload[8] : nil)
        } else {
            deliver(datagram, from: address, mustFail: mustFail)
        }
    }
}

func heartbeat(role: Role, term: UInt64, leader: UInt32) -> [UInt8] {
    var payload: [UInt8] = [role.rawValue, 1, 0, 0]
    payload.appendBE(term)
    payload.appendBE(leader)
    return payload
}

/// A standby in session with both peers, following node 1 (term 1); or an active (cold-started, three flows) in
/// session with both.
func makeHarness(active: Bool) -> Harness {
    let h = Harness(active: active)
    if active {
        h.tick()
        require(h.node.role == .active, "a lone node with no startup wait did not cold-start")
        for host: UInt8 in 1...3 {
            var packet = PacketBuilder.udp(from: (IPv4Address(10, 0, 0, host), 5000), to: (IPv4Address(198, 19, 0, 1), 53),
                                           payload: [host])
            _ = h.table.state.withLock { s in packet.withUnsafeMutableBytes { s.nat.translate($0, now: .seconds(1)) } }
        }
    }
    h.handshake(0)
    h.handshake(1)
    if !active {
        let message = SyncMessage(kind: .heartbeat, keyID: 1, sender: 1, receiver: 2, senderNonce: h.peers[0].local,
                                  receiverNonce: h.peers[0].remote, sequence: h.nextSequence(0),
                                  payload: heartbeat(role: .active, term: 1, leader: 1))
        h.deliver(h.seal(message, peer: 0, cache: true), from: endpoint(1))
        h.tick()
        require(h.node.role == .standby && h.node.leader == 1, "the node did not follow an active peer")
    }
    return h
}

func sealedMessages(_ input: inout FuzzInput, active: Bool) {
    let h = makeHarness(active: active)
    while input.remaining >= 5 { h.message(&input) }
    _ = h.node.status(now: h.now)
}

func rawDatagrams(_ input: inout FuzzInput, badLength: Bool) {
    let h = makeHarness(active: false)
    let header = SyncMessage.headerLength
    while input.remaining >= 3 {
        let flags = input.byte()
        var datagram = input.take(Int(input.uint16()))
        let peer = h.peers[flags & 4 != 0 ? 1 : 0]
        if flags & 1 != 0 {
            if datagram.count < header + SyncMessage.tagLength {
                datagram += [UInt8](repeating: 0, count: header + SyncMessage.tagLength - datagram.count)
            }
            datagram.replaceSubrange(0..<5, with: [0x54, 0x4E, 0x53, 0x59, SyncMessage.currentVersion])
            let length = datagram.count - header - SyncMessage.tagLength
            datagram[48] = UInt8(length >> 8)
            datagram[49] = UInt8(length & 0xFF)
        }
        if flags & 2 != 0 && datagram.count >= 32 {
            var ids: [UInt8] = []
            ids.appendBE(peer.node)
            ids.appendBE(UInt32(2))
            ids.appendBE(peer.local)
            ids.appendBE(peer.remote)
            datagram.replaceSubrange(8..<32, with: ids)
        }
        h.now += 0.005
        h.deliver(datagram, length: badLength ? datagram.count + 1 : datagram.count, from: endpoint(peer.node),
                  mustFail: true)
    }
}

/// The batch layout with its reserved bytes cleared: what `Batch.encode` must give back for a decoded batch.
func canonical(_ payload: [UInt8]) -> [UInt8] {
    var c = payload
    c[9] = 0
    var at = 12
    while at + FlowRecord.encodedSize <= c.count {
        c[at + 3] = 0
        c[at + 22] = 0
        c[at + 23] = 0
        at += FlowRecord.encodedSize
    }
    return c
}

func decoders(_ input: inout FuzzInput) {
    let bytes = input.rest()
    if let batch = Batch(bytes) {
        let again = Batch.encode(number: batch.number, flags: batch.flags, records: batch.records[...])
        require(again == canonical(bytes), "Batch does not round-trip")
        var stream = InboundStream(leader: 1)
        _ = stream.receive(batch, reset: {}, apply: { _ in true })
    }
    var offset = 0
    while let record = FlowRecord(decoding: bytes[...], at: offset) {
        var out: [UInt8] = []
        record.encode(into: &out)
        require(FlowRecord(decoding: out[...], at: 0) == record, "FlowRecord does not round-trip")
        offset += FlowRecord.encodedSize
    }

    // The header against the layout (docs/replication-wire-format.md): it parses exactly when the length, magic,
    // version, payload length and type are right, and then says what the bytes say.
    let h = SyncMessage.headerLength
    let header = try? SyncMessage(header: bytes, length: bytes.count)
    let wellFormed = bytes.count >= h + SyncMessage.tagLength && bytes.loadBE(UInt32.self, at: 0) == SyncMessage.magic
        && SyncMessage.versions.contains(bytes[4]) && bytes.count == h + Int(bytes.loadBE(UInt16.self, at: 48)) + SyncMessage.tagLength
        && (1...6).contains(bytes[5])
    require((header != nil) == wellFormed,
            "SyncMessage(header:) \(header == nil ? "refused" : "took") \(hex(bytes.prefix(h)))")
    if let m = header {
        require(m.kind.rawValue == bytes[5] && m.keyID == bytes[6] && m.flags == bytes[7]
                && m.sender == bytes.loadBE(UInt32.self, at: 8) && m.receiver == bytes.loadBE(UInt32.self, at: 12)
                && m.senderNonce == bytes.loadBE(UInt64.self, at: 16)
                && m.receiverNonce == bytes.loadBE(UInt64.self, at: 24)
                && m.sequence == bytes.loadBE(UInt64.self, at: 32)
                && m.acknowledgement == bytes.loadBE(UInt64.self, at: 40)
                && m.payload.isEmpty, "SyncMessage(header:) read \(m) from \(hex(bytes.prefix(h)))")
        require((try? SyncMessage(header: bytes, length: bytes.count + 1)) == nil, "a datagram cut short was taken")
    }
    if let message = try? keyring.open(bytes), bytes[50] == 0, bytes[51] == 0 {
        // Only a datagram sealed with the key opens; sealing it again gives it back.
        require(keyring.seal(message) == bytes, "opened message does not seal to the same bytes")
    }
    // A message made of the bytes, sealed: it opens to itself, and not once a bit is flipped, a byte cut off, or
    // under other key material.
    if bytes.count >= h {
        let m = SyncMessage(kind: SyncMessage.Kind.allCases[Int(bytes[5]) % SyncMessage.Kind.allCases.count],
                            keyID: 1 + bytes[6] & 1, flags: bytes[7], sender: bytes.loadBE(UInt32.self, at: 8),
                            receiver: bytes.loadBE(UInt32.self, at: 12), senderNonce: bytes.loadBE(UInt64.self, at: 16),
                            receiverNonce: bytes.loadBE(UInt64.self, at: 24), sequence: bytes.loadBE(UInt64.self, at: 32),
                            acknowledgement: bytes.loadBE(UInt64.self, at: 40),
                            payload: Array(bytes[h...].prefix(SyncMessage.maxPayload)))
        let sealed = keyring.seal(m)
        require((try? keyring.open(sealed)) == m, "a sealed message does not open to itself")
        var flipped = sealed
        let at = Int(bytes.loadBE(UInt16.self, at: 50)) % sealed.count
        flipped[at] ^= 1 << (bytes[4] & 7)
        require((try? keyring.open(flipped)) == nil, "a message with byte \(at) flipped opens")
        require((try? keyring.open(Array(sealed.dropLast()))) == nil, "a message cut short opens")
        require((try? forger.open(sealed)) == nil, "a message opens under other key material")
    }

    // The replay window against a plain model, 3 bytes a sequence: [scale][u16]; the scale (bits 0-1) takes the
    // number as it is, shifted 16 bits left, below 2^64, or below the newest accepted.
    var window = ReplayWindow()
    var newest: UInt64 = 0
    var seen = Set<UInt64>()
    var i = 0
    while i + 3 <= bytes.count {
        let n = UInt64(bytes[i + 1]) << 8 | UInt64(bytes[i + 2])
        let s: UInt64 = switch bytes[i] & 3 {
        case 0: n
        case 1: n << 16
        case 2: .max - n
        default: newest &- n % 2048
        }
        i += 3
        let expected = s > 0 && !seen.contains(s) && !(s <= newest && newest - s >= ReplayWindow.size)
        let accepted = (try? window.accept(sequence: s)) != nil
        require(accepted == expected, "replay window: sequence \(s) accepted \(accepted), model \(expected)")
        if accepted {
            seen.insert(s)
            newest = max(newest, s)
        }
    }
}

/// The process's entry point (SwiftPM links `main` to it): libFuzzer's driver, with the function below.
@_cdecl("fuzz_sync_main")
func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    fuzz_run(argc, argv)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let control = input.byte()
    switch control & 3 {
    case 0: rawDatagrams(&input, badLength: control & 4 != 0)
    case 1: sealedMessages(&input, active: false)
    case 2: sealedMessages(&input, active: true)
    default: decoders(&input)
    }
    return 0
}
