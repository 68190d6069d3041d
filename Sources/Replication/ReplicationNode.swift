import Logging
import NatTable
import PacketKit
import SystemCalls

/// A datagram for a peer, sealed.
public struct OutgoingDatagram: Sendable, Equatable {
    public var bytes: [UInt8]
    public var to: UDPEndpoint
    public var kind: SyncMessage.Kind
}

/// State replication and this node's role, as a sans-IO state machine: datagrams and time go in (`receive`,
/// `tick`), sealed datagrams come out. It owns the role machine, one `OutboundStream` per peer (while active) and
/// the `InboundStream` from its active (while standby), and reaches the table only through `ReplicaPort`. It
/// reads no clock and opens no socket: `Replicator` is the loop around it, and tests drive it directly.
///
/// The active sends each standby the table's changes as numbered batches; a standby applies them strictly in
/// order and acknowledges the highest batch it holds everything up to. A standby that follows a new active, falls
/// behind by more than `OutboundStream.maxPending` records, or finds its replica in conflict, gets a bulk resync;
/// after its end the standby is synced and may take over. Every message is sealed with the shared key and
/// checked against the sender's replay window (SyncMessage.swift).
public final class ReplicationNode {
    final class Peer {
        let endpoint: UDPEndpoint
        var window = ReplayWindow()
        var view: PeerView?
        var out = OutboundStream()

        init(endpoint: UDPEndpoint) { self.endpoint = endpoint }

        func isAlive(now: Double, within: Double) -> Bool { view.map { now - $0.heard < within } ?? false }
    }

    public let config: ReplicationConfiguration
    let key: SyncKey
    let table: any ReplicaPort
    let logger: Logger
    /// This run's start: a restart is a new epoch to the peers' replay windows.
    let epoch: UInt32
    var sequence: UInt64 = 0
    var machine: RoleMachine
    var peers: [Peer]
    var inbound = InboundStream()
    public private(set) var counters: [String: UInt64] = [:]
    var lastHeartbeat = -Double.infinity
    /// Every change up to this serial is acknowledged by every standby in sync (or there is none to wait for).
    public private(set) var confirmedSerial: UInt64 = .max
    /// The last health verdict the owner gave (`tick`); heartbeats carry it.
    var healthy = false

    /// The table becomes a replica until this node is the active one.
    public init(config: ReplicationConfiguration, key: SyncKey, epoch: UInt32, table: any ReplicaPort, logger: Logger,
                now: Double) {
        self.config = config
        self.key = key
        self.epoch = epoch
        self.table = table
        self.logger = logger
        machine = RoleMachine(node: config.node, deadAfter: Double(config.peerTimeoutMilliseconds) / 1000,
                              startupWait: Double(config.startupWaitMilliseconds) / 1000, now: now)
        peers = config.peers.map { Peer(endpoint: $0) }
        table.setLive(false, clearing: false, now: NatInstant(nanoseconds: 0))
    }

    public var role: Role { machine.role }
    public var term: UInt64 { machine.term }
    public var leader: UInt32 { machine.leader }
    public var synced: Bool { machine.synced }

    func count(_ name: String, _ n: UInt64 = 1) {
        if n > 0 { counters[name, default: 0] &+= n }
    }

    func instant(_ now: Double) -> NatInstant { NatInstant(nanoseconds: UInt64(max(0, now) * 1e9)) }

    // MARK: - Time

    /// Steps the role machine, streams changes while active, and sends heartbeats when due. Returns what to send
    /// and the new role, if it changed.
    public func tick(now: Double, healthy: Bool) -> (datagrams: [OutgoingDatagram], roleChange: Role?) {
        self.healthy = healthy
        var out: [OutgoingDatagram] = []
        let change = step(now: now, into: &out)
        if machine.role == .active { stream(now: now, into: &out) }
        if now - lastHeartbeat >= Double(config.heartbeatMilliseconds) / 1000 {
            lastHeartbeat = now
            heartbeat(into: &out)
            requestResyncIfWaiting(now: now, into: &out)
        }
        return (out, change)
    }

    func step(now: Double, into out: inout [OutgoingDatagram]) -> Role? {
        let views = peers.compactMap(\.view)
        guard let transition = machine.step(now: now, peers: views, healthy: healthy) else { return nil }
        switch transition {
        case .becomeActive(let term, let coldStart):
            let flows = table.setLive(true, clearing: false, now: instant(now)).flows
            for peer in peers { peer.out = OutboundStream() }
            inbound = InboundStream()
            count(coldStart ? "cold-starts" : "takeovers")
            if coldStart {
                logger.notice("replication: no active peer; starting as the active (term \(term)) with \(flows) flows")
            } else {
                logger.notice("replication: taking over as the active (term \(term)) with \(flows) replicated flows")
            }
        case .follow(let leader, let term):
            let wasActive = table.setLive(false, clearing: true, now: instant(now)).wasLive
            for peer in peers { peer.out = OutboundStream() }
            inbound = InboundStream(leader: leader)
            if wasActive { count("step-downs") }
            logger.notice("replication: \(wasActive ? "stepping down; " : "")following active node \(leader) (term \(term)), resyncing")
            if let peer = peers.first(where: { $0.view?.node == leader }) { send(.resyncRequest, to: peer, into: &out) }
            inbound.lastRequest = now
        case .restart:
            logger.warning("replication: active node \(inbound.leader) is gone before this replica was complete; starting over")
            inbound = InboundStream()
        }
        confirmedSerial = machine.role == .active ? 0 : .max
        return machine.role
    }

    // MARK: - Receiving

    /// One datagram from the network (`length` is its real length, which may exceed `datagram.count` when it was
    /// cut short on receipt). Returns what to send in answer.
    public func receive(_ datagram: [UInt8], length: Int, from: UDPEndpoint, now: Double) -> [OutgoingDatagram] {
        guard let peer = peers.first(where: { $0.endpoint == from }) else {
            count("rejected-unknown-peer")
            return []
        }
        guard length <= datagram.count else {
            count("rejected-\(SyncRejection.badLength)")
            return []
        }
        let message: SyncMessage
        do throws(SyncRejection) {
            message = try key.open(datagram)
            if message.epoch > peer.window.epoch && peer.window.epoch != 0 {
                // The peer restarted: whatever it held or we sent it is gone.
                peer.view = nil
                peer.out = OutboundStream()
            }
            try peer.window.accept(epoch: message.epoch, sequence: message.sequence)
        } catch {
            count("rejected-\(error)")
            return []
        }
        count("received")
        count("received-bytes", UInt64(datagram.count))
        var out: [OutgoingDatagram] = []
        switch message.kind {
        case .heartbeat:
            guard message.payload.count >= 16, let role = Role(rawValue: message.payload[0]) else {
                count("rejected-bad-heartbeat")
                return []
            }
            let flags = message.payload[1]
            let term = message.payload.loadBE(UInt64.self, at: 4)
            let leader = message.payload.loadBE(UInt32.self, at: 12)
            peer.view = PeerView(node: message.sender, role: role, term: term, healthy: flags & 1 != 0,
                                 synced: flags & 2 != 0, leader: leader, heard: now)
            acknowledged(message.acknowledgement, by: peer, now: now)
        case .ack:
            peer.view?.heard = now
            acknowledged(message.acknowledgement, by: peer, now: now)
        case .resyncRequest:
            peer.view?.heard = now
            // A repeated request for a resync that has just begun is the same request.
            if machine.role == .active, !peer.out.resyncing || now - peer.out.resyncStarted > 1 {
                logger.info("replication: \(peer.endpoint) asks for a resync")
                peer.out.wantsResync = true
            }
        case .entries:
            peer.view?.heard = now
            entries(message, from: peer, now: now, into: &out)
        }
        return out
    }

    /// A batch of the active's changes, applied strictly in order.
    func entries(_ message: SyncMessage, from peer: Peer, now: Double, into out: inout [OutgoingDatagram]) {
        guard machine.role == .standby, message.sender == machine.leader, inbound.leader == machine.leader else {
            count("entries-not-from-leader")
            return
        }
        guard let batch = Batch(message.payload) else {
            count("rejected-bad-entries")
            return
        }
        let outcome = inbound.receive(batch, reset: {
            table.removeAll()
            machine.synced = false
        }, apply: { apply($0, now: now) })
        switch outcome {
        case .applied: break
        case .duplicate: count("entries-duplicate")
        case .beforeResync: count("entries-before-resync")
        case .outOfOrder: count("entries-out-of-order")
        case .tooFarAhead: count("entries-too-far-ahead")
        case .conflict:
            // The replica disagrees with the active: only a full resync can mend it.
            machine.synced = false
            if let leader = peers.first(where: { $0.view?.node == machine.leader }) {
                send(.resyncRequest, to: leader, into: &out)
            }
            inbound.lastRequest = now
        }
        send(.ack, to: peer, into: &out)
    }

    /// False if the replica refused a record.
    func apply(_ batch: Batch, now: Double) -> Bool {
        let failures = table.apply(batch.records, now: instant(now))
        count("records-applied", UInt64(batch.records.count - failures.count))
        if !failures.isEmpty {
            for f in failures { count("apply-\(f)") }
            logger.warning("replication: \(failures.count) record(s) could not be applied (\(failures[0])); asking for a resync")
            return false
        }
        if batch.flags & Batch.end != 0 && !machine.synced {
            machine.synced = true
            count("resyncs-completed")
            logger.notice("replication: replica of node \(machine.leader) complete (\(table.flowCount) flows); eligible to take over")
        }
        return true
    }

    func requestResyncIfWaiting(now: Double, into out: inout [OutgoingDatagram]) {
        guard machine.role == .standby, inbound.awaitingResync, now - inbound.lastRequest >= 0.5,
              let peer = peers.first(where: { $0.view?.node == machine.leader }) else { return }
        inbound.lastRequest = now
        send(.resyncRequest, to: peer, into: &out)
    }

    // MARK: - The active's side

    func acknowledged(_ ack: UInt64, by peer: Peer, now: Double) {
        guard machine.role == .active else { return }
        if peer.out.acknowledge(ack) { logger.notice("replication: \(peer.endpoint) holds the whole table") }
        updateConfirmed(now: now)
    }

    /// The serial every standby in sync has acknowledged; the data plane's hold waits on it.
    func updateConfirmed(now: Double) {
        let followers = peers.filter { $0.out.started && $0.isAlive(now: now, within: machine.deadAfter) }
        confirmedSerial = followers.map { $0.out.resyncing ? 0 : $0.out.ackedSerial }.min() ?? .max
    }

    func stream(now: Double, into out: inout [OutgoingDatagram]) {
        let me = config.node
        for peer in peers {
            guard let view = peer.view, peer.isAlive(now: now, within: machine.deadAfter) else { continue }
            // A new follower; one that needs a resync later asks for it (resyncRequest).
            if view.role == .standby && view.leader == me && !view.synced && !peer.out.started && !peer.out.wantsResync {
                peer.out.wantsResync = true
            }
        }
        // One call for the changes and the snapshot, so that the snapshot holds exactly the changes taken so far;
        // lost changes (an overflow) mean every started standby needs the whole table again.
        let changes = table.takeChanges(snapshot: peers.contains(where: \.out.wantsResync),
                                        snapshotIfOverflowed: peers.contains(where: \.out.started))
        if changes.overflowed {
            for peer in peers where peer.out.started { peer.out.wantsResync = true }
            logger.warning("replication: more than \(NAT.maxPendingChanges) changes waited; resyncing every standby")
        }
        for peer in peers {
            if peer.out.wantsResync, let snapshot = changes.snapshot {
                peer.out.beginResync(snapshot: snapshot, serial: changes.serial, now: now)
                count("resyncs-started")
                logger.notice("replication: bulk resync of \(snapshot.count) flows to \(peer.endpoint)")
            } else if !peer.out.enqueue(changes.records, serial: changes.serial) {
                logger.warning("replication: \(peer.endpoint) is more than \(OutboundStream.maxPending) records behind; resyncing it")
                peer.out.wantsResync = true
            }
        }
        for peer in peers where peer.out.started && peer.isAlive(now: now, within: machine.deadAfter) {
            let sends = peer.out.tick(now: now)
            count("records-sent", UInt64(sends.recordsSent))
            count("retransmits", UInt64(sends.retransmits))
            for payload in sends.batches { send(.entries, to: peer, payload: payload, into: &out) }
        }
        updateConfirmed(now: now)
    }

    // MARK: - Sending

    func heartbeat(into out: inout [OutgoingDatagram]) {
        var payload: [UInt8] = [machine.role.rawValue, (healthy ? 1 : 0) | (machine.synced && machine.role == .standby ? 2 : 0), 0, 0]
        payload.appendBE(machine.term)
        payload.appendBE(machine.leader)
        for peer in peers { send(.heartbeat, to: peer, payload: payload, into: &out) }
    }

    func send(_ kind: SyncMessage.Kind, to peer: Peer, payload: [UInt8] = [], into out: inout [OutgoingDatagram]) {
        sequence += 1
        // The acknowledgement goes only to the active this node follows; to anyone else it means nothing.
        let ack = machine.role == .standby && peer.view?.node == machine.leader ? inbound.acknowledgement : 0
        let bytes = key.seal(SyncMessage(kind: kind, sender: config.node, epoch: epoch, sequence: sequence,
                                         acknowledgement: ack, payload: payload))
        out.append(OutgoingDatagram(bytes: bytes, to: peer.endpoint, kind: kind))
    }

    /// The loop reports each datagram it handed to the kernel, or could not.
    public func sent(_ datagram: OutgoingDatagram, ok: Bool) {
        guard ok else { return count("send-errors") }
        count("sent")
        count("sent-bytes", UInt64(datagram.bytes.count))
        count("sent-\(datagram.kind)")
        count("sent-\(datagram.kind)-bytes", UInt64(datagram.bytes.count))
    }

    // MARK: - Status

    public func status(now: Double) -> ReplicationStatus {
        var s = ReplicationStatus()
        s.node = config.node
        s.role = machine.role.description
        s.term = machine.term
        s.leader = machine.leader
        s.synced = machine.synced
        s.counters = counters
        s.peers = peers.map { p in
            ReplicationStatus.PeerStatus(
                endpoint: p.endpoint.description, node: p.view?.node ?? 0, alive: p.isAlive(now: now, within: machine.deadAfter),
                role: p.view.map { "\($0.role)" } ?? "unknown", synced: p.view?.synced ?? false,
                inFlight: p.out.unacknowledged, pending: p.out.waiting)
        }
        return s
    }
}
