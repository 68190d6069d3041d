// libFuzzer target: the replication wire format and the node that receives it (Replication/). A real peer's
// datagrams are sealed with HMAC-SHA256, so mutated datagrams stop at the MAC; to reach the parsers behind it, the
// fuzz input is also sealed here with the key the node under test holds, as a peer with the key would.
//
// The input is a control byte, then data for one of four modes (bits 0-1):
//   0  raw datagrams, unsealed, to a standby: [u16 length][bytes]... (the MAC, the framing before it, a bad
//      `length` argument when bit 2 is set)
//   1  sealed messages to a standby following node 1 (heartbeats, entries batches, acks, resync requests):
//      [desc][ack][u16 payload length][payload]... where desc bits 0-1 are the kind (heartbeat, entries, ack,
//      resync request), bit 2 sends it as node 3, bits 3-4 the epoch (same, newer, older, 0), bit 5 repeats the
//      last sequence number, bit 6 ticks the node after it, bit 7 lets 0.3 s pass first
//   2  the same, to a node that cold-started as the active and holds a few flows (acks, resyncs, step-down)
//   3  the decoders alone: Batch and FlowRecord (with an encode round trip), SyncKey.open, and the replay window
//      against a plain model
// Each input starts from a new node, so every input reproduces alone.
import FuzzSupport
import Logging
import NatTable
import PacketKit
import Replication
import SystemCalls
import TunIO

let key = SyncKey(Array("0123456789abcdef0123456789abcdef-fuzz-key".utf8))!
func endpoint(_ node: UInt32) -> UDPEndpoint { UDPEndpoint(address: 0x0A00_0000 | node, port: 7800) }
let logger: Logger = {
    var l = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    l.logLevel = .critical
    return l
}()

/// A peer's send side: its epoch and sequence numbers.
struct Peer {
    let node: UInt32
    var epoch: UInt32
    var sequence: UInt64 = 0

    mutating func seal(_ kind: SyncMessage.Kind, ack: UInt64 = 0, payload: [UInt8], repeatSequence: Bool = false,
                       epoch override: UInt32? = nil) -> [UInt8] {
        if !repeatSequence || sequence == 0 { sequence += 1 }
        return key.seal(SyncMessage(kind: kind, sender: node, epoch: override ?? epoch, sequence: sequence,
                                    acknowledgement: ack, payload: payload))
    }
}

func heartbeat(role: Role, term: UInt64, leader: UInt32, healthy: Bool = true, synced: Bool = false) -> [UInt8] {
    var payload: [UInt8] = [role.rawValue, (healthy ? 1 : 0) | (synced ? 2 : 0), 0, 0]
    payload.appendBE(term)
    payload.appendBE(leader)
    return payload
}

/// Node 2, peers 1 and 3, over a fresh table.
func makeNode(active: Bool) -> (ReplicationNode, LockedNAT) {
    var config = ReplicationConfiguration(node: 2, listen: endpoint(2), peers: [endpoint(1), endpoint(3)], keyFile: "/k")
    config.heartbeatMilliseconds = 20
    config.peerTimeoutMilliseconds = 200
    config.startupWaitMilliseconds = active ? 0 : 300
    let table = LockedNAT(nat: try! NAT(configuration: NatConfiguration(
        privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: [IPv4Address(198, 18, 0, 1)], maxFlows: 64, seed: 9)))
    return (ReplicationNode(config: config, key: key, epoch: 100, table: table, logger: logger, now: 0), table)
}

func sealedMessages(_ input: inout FuzzInput, active: Bool) {
    let (node, table) = makeNode(active: active)
    var now = 0.01
    var leader = Peer(node: 1, epoch: 50)
    var other = Peer(node: 3, epoch: 70)
    if active {
        _ = node.tick(now: now, healthy: true)
        require(node.role == .active, "a lone node with no startup wait did not cold-start")
        for host: UInt8 in 1...3 {
            var packet = PacketBuilder.udp(from: (IPv4Address(10, 0, 0, host), 5000), to: (IPv4Address(198, 19, 0, 1), 53),
                                           payload: [host])
            _ = table.state.withLock { s in packet.withUnsafeMutableBytes { s.nat.translate($0, now: .seconds(1)) } }
        }
    } else {
        let hello = leader.seal(.heartbeat, payload: heartbeat(role: .active, term: 1, leader: 1))
        _ = node.receive(hello, length: hello.count, from: endpoint(1), now: now)
        _ = node.tick(now: now, healthy: true)
        require(node.role == .standby && node.leader == 1, "the node did not follow an active peer")
    }
    while input.remaining >= 4 {
        let desc = input.byte()
        let ack = UInt64(input.byte())
        let length = min(Int(input.uint16()), SyncMessage.maxPayload)
        let payload = input.take(length)
        let kind = [SyncMessage.Kind.heartbeat, .entries, .ack, .resyncRequest][Int(desc & 3)]
        let fromOther = desc & 4 != 0
        now += desc & 0x80 != 0 ? 0.3 : 0.005
        let repeatSequence = desc & 0x20 != 0
        let datagram: [UInt8]
        func sealed(_ peer: inout Peer) -> [UInt8] {
            let epoch: UInt32? = switch desc >> 3 & 3 {
            case 1: peer.epoch + 1
            case 2: peer.epoch - 1
            case 3: 0
            default: nil
            }
            if desc >> 3 & 3 == 1 { peer.epoch += 1 }
            return peer.seal(kind, ack: ack, payload: payload, repeatSequence: repeatSequence, epoch: epoch)
        }
        datagram = fromOther ? sealed(&other) : sealed(&leader)
        let answers = node.receive(datagram, length: datagram.count, from: endpoint(fromOther ? 3 : 1), now: now)
        for answer in answers { node.sent(answer, ok: true) }
        if desc & 0x40 != 0 {
            let (out, _) = node.tick(now: now, healthy: true)
            for d in out {
                // What the node sends opens under the same key and says it comes from node 2.
                guard let message = try? key.open(d.bytes) else { fatalError("node sent a datagram that does not open") }
                require(message.sender == 2, "node sent as \(message.sender)")
                if message.kind == .entries { require(Batch(message.payload) != nil, "node sent an undecodable batch") }
                node.sent(d, ok: true)
            }
        }
    }
    _ = node.status(now: now)
}

func rawDatagrams(_ input: inout FuzzInput, badLength: Bool) {
    let (node, _) = makeNode(active: false)
    var leader = Peer(node: 1, epoch: 50)
    let hello = leader.seal(.heartbeat, payload: heartbeat(role: .active, term: 1, leader: 1))
    _ = node.receive(hello, length: hello.count, from: endpoint(1), now: 0.01)
    _ = node.tick(now: 0.01, healthy: true)
    var now = 0.01
    while !input.isEmpty {
        let datagram = input.take(Int(input.uint16()))
        now += 0.005
        _ = node.receive(datagram, length: badLength ? datagram.count + 1 : datagram.count, from: endpoint(1), now: now)
        _ = try? key.open(datagram)
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
    if let message = try? key.open(bytes), message.payload.count <= SyncMessage.maxPayload, bytes[34] == 0, bytes[35] == 0 {
        // Only a datagram sealed with the key opens; sealing it again gives it back.
        require(key.seal(message) == bytes, "opened message does not seal to the same bytes")
    }
    // The replay window against a plain model: (epoch, sequence) pairs of 1 and 2 bytes.
    var window = ReplayWindow()
    var epoch: UInt32 = 0
    var newest: UInt64 = 0
    var seen = Set<UInt64>()
    var i = 0
    while i + 3 <= bytes.count {
        let e = UInt32(bytes[i] >> 6)
        let s = UInt64(bytes[i + 1]) << 8 | UInt64(bytes[i + 2])
        i += 3
        var expected = true
        if e < epoch {
            expected = false
        } else {
            if e > epoch { epoch = e; newest = 0; seen.removeAll() }
            if s == 0 || seen.contains(s) || (s <= newest && newest - s >= ReplayWindow.size) { expected = false }
        }
        let accepted = (try? window.accept(epoch: e, sequence: s)) != nil
        require(accepted == expected, "replay window: epoch \(e) sequence \(s) accepted \(accepted), model \(expected)")
        if accepted { seen.insert(s); newest = max(newest, s) }
    }
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
