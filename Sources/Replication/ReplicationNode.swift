import Hashing
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
/// `tick`), sealed datagrams come out. It owns the role machine, a session (`PeerSession`) with each peer, one
/// `OutboundStream` per peer (while active) and the `InboundStream` from its active (while standby), and reaches
/// the table only through `ReplicaPort`. It reads no clock, draws no randomness and opens no socket: `Replicator`
/// is the loop around it, and tests drive it directly.
///
/// The active sends each standby the table's changes as numbered batches; a standby applies them strictly in
/// order and acknowledges the highest batch it holds everything up to. A standby that follows a new active, falls
/// behind by more than `OutboundStream.maxPending` records, or finds its replica in conflict, gets a bulk resync
/// (a walk over the table in parts, while changes stream on); after its end the standby is synced and may take
/// over. A planned handover (`beginHandover`) has the active tell a synced standby to take over and keep applying
/// the active's changes until the routes are the new active's, so that no flow is lost.
public final class ReplicationNode {
    final class Peer {
        let node: UInt32
        let endpoint: UDPEndpoint
        var session = PeerSession()
        var view: PeerView?
        var out = OutboundStream()
        /// Why this peer's next resync is due (logged when it starts).
        var resyncReason = ""
        /// When a datagram of it last authenticated as a message of the session.
        var authenticated = -Double.infinity
        /// When datagrams from its address last failed to authenticate: hellos, and messages of a session.
        var unverifiedHello = -Double.infinity
        var unverifiedSession = -Double.infinity
        /// The log has said that it keeps this node from starting.
        var unverifiedSaid = false

        init(_ peer: ReplicationPeer) {
            node = peer.node
            endpoint = peer.endpoint
        }

        func isAlive(now: Double, within: Double) -> Bool { view.map { now - $0.heard < within } ?? false }
    }

    /// A planned handover under way from this node (the active) to `target`.
    public struct Handover: Sendable, Equatable {
        public enum State: Sendable, Equatable {
            case underway
            /// The target is active, holds the routes, and has every change: this node may go.
            case complete
            case failed(String)
        }
        public var target: UInt32
        public var started: Double
        public var state = State.underway
    }

    public let config: ReplicationConfiguration
    let keyring: SyncKeyring
    let table: any ReplicaPort
    let logger: Logger
    /// This process's run id (random): in every hello, so that peers can tell a restart from a new session.
    let run: UInt64
    let random: () -> UInt64
    /// Numbers every message this node sends; with random session nonces, an IV never repeats under a key.
    var sequence: UInt64 = 0
    /// The wire-format versions this node speaks: all of `SyncMessage.versions`; a test narrows it to play a node of
    /// an older release (which speaks the oldest alone, and says nothing of versions in its hellos).
    var wireVersions = SyncMessage.versions
    var machine: RoleMachine
    var peers: [Peer]
    var inbound = InboundStream()
    /// After a planned handover to this node: the former active, whose changes this node still applies.
    var predecessor: UInt32?
    public private(set) var handover: Handover?
    /// A role change decided while receiving (a handover), reported by the next `tick`.
    var changedWhileReceiving: Role?
    /// What happened, counted (`ReplicationCounters`).
    public internal(set) var counters = ReplicationCounters()
    var lastHeartbeat = -Double.infinity
    /// Every change up to this serial is acknowledged by every standby in sync (or there is none to wait for).
    public private(set) var confirmedSerial: UInt64 = .max
    /// The last health verdict and route state the owner gave (`tick`); heartbeats carry them.
    var healthy = false
    var routesHeld = false

    /// The table becomes a replica until this node is the active one. `random` draws session nonces.
    public init(config: ReplicationConfiguration, keyring: SyncKeyring, run: UInt64, random: @escaping () -> UInt64,
                table: any ReplicaPort, logger: Logger, now: Double) {
        self.config = config
        self.keyring = keyring
        self.run = run
        self.random = random
        self.table = table
        self.logger = logger
        machine = RoleMachine(node: config.node, deadAfter: Double(config.peerTimeoutMilliseconds) / 1000,
                              startupWait: Double(config.startupWaitMilliseconds) / 1000, now: now)
        peers = config.peers.map(Peer.init)
        table.setLive(false, clearing: false, now: NatInstant(nanoseconds: 0))
    }

    public var role: Role { machine.role }
    public var term: UInt64 { machine.term }
    public var leader: UInt32 { machine.leader }
    public var synced: Bool { machine.synced }
    var heartbeatInterval: Double { Double(config.heartbeatMilliseconds) / 1000 }

    func count(_ event: ReplicationCounters.Event, _ n: UInt64 = 1) { counters.count(event, n) }
    func count(_ rejection: SyncRejection) { counters.count(rejection) }

    func instant(_ now: Double) -> NatInstant { NatInstant(nanoseconds: UInt64(max(0, now) * 1e9)) }

    // MARK: - Time

    /// Steps the role machine, streams changes while active, sends heartbeats (or hellos, to a peer without a
    /// session) when due, and moves a handover on. `routesHeld`: the route manager holds every route and the pool
    /// address (true without one). Returns what to send and the new role, if it changed.
    public func tick(now: Double, healthy: Bool, routesHeld: Bool = true) -> (datagrams: [OutgoingDatagram], roleChange: Role?) {
        self.healthy = healthy
        self.routesHeld = routesHeld && machine.role == .active
        var out: [OutgoingDatagram] = []
        var change = changedWhileReceiving
        changedWhileReceiving = nil
        // A node handing over keeps its role (and its table live) until it leaves.
        if handover == nil, let stepped = step(now: now, into: &out) { change = stepped }
        endSuccession(now: now)
        if machine.role == .active { stream(now: now, into: &out) }
        if now - lastHeartbeat >= heartbeatInterval {
            lastHeartbeat = now
            dropOrphanedSessions(now: now)
            heartbeat(into: &out)
            requestResyncIfWaiting(now: now, into: &out)
            if handover?.state == .underway { moveHandover(now: now, into: &out) }
        }
        return (out, change)
    }

    func step(now: Double, into out: inout [OutgoingDatagram]) -> Role? {
        let views = peers.compactMap(\.view)
        guard let transition = machine.step(now: now, peers: views, healthy: healthy, unverified: unverifiedPeers(now: now))
        else { return nil }
        return enter(transition, now: now, into: &out)
    }

    /// Carries out a transition of the role machine: the table, the streams, the log.
    func enter(_ transition: RoleMachine.Transition, now: Double, into out: inout [OutgoingDatagram],
               handedOverBy: UInt32? = nil) -> Role {
        switch transition {
        case .becomeActive(let term, let coldStart):
            let flows = table.setLive(true, clearing: false, now: instant(now)).flows
            for peer in peers { peer.out = OutboundStream() }
            predecessor = handedOverBy
            // After a handover the former active's stream goes on until it leaves; otherwise it is over.
            if handedOverBy == nil { inbound = InboundStream() }
            if let handedOverBy {
                count(.handoversTaken)
                logger.notice("replication: node \(handedOverBy) hands over; active now (term \(term)) with \(flows) replicated flows")
            } else if coldStart {
                count(.coldStarts)
                logger.notice("replication: no active peer; starting as the active (term \(term)) with \(flows) flows")
            } else {
                count(.takeovers)
                logger.notice("replication: taking over as the active (term \(term)) with \(flows) replicated flows")
            }
        case .follow(let leader, let term):
            let wasActive = table.setLive(false, clearing: true, now: instant(now)).wasLive
            for peer in peers { peer.out = OutboundStream() }
            inbound = InboundStream(leader: leader)
            predecessor = nil
            if wasActive { count(.stepDowns) }
            logger.notice("replication: \(wasActive ? "stepping down; " : "")following active node \(leader) (term \(term)), resyncing")
            if let peer = peers.first(where: { $0.node == leader }) { send(.resyncRequest, to: peer, into: &out) }
            inbound.lastRequest = now
        case .restart:
            logger.warning("replication: active node \(inbound.leader) is gone before this replica was complete; starting over")
            inbound = InboundStream()
            predecessor = nil
        }
        confirmedSerial = machine.role == .active ? 0 : .max
        return machine.role
    }

    /// The former active of a handover is gone or no longer active: its stream is over.
    func endSuccession(now: Double) {
        guard let p = predecessor, let peer = peers.first(where: { $0.node == p }) else { return }
        if !peer.isAlive(now: now, within: machine.deadAfter) || peer.view?.role != .active {
            predecessor = nil
            inbound = InboundStream()
            logger.info("replication: node \(p) has left; the handover is over")
        }
    }

    // MARK: - Receiving

    /// One datagram from `from` (`length` is its real length, which may exceed `datagram.count` when it was cut
    /// short on receipt). Returns what to send in answer.
    public func receive(_ datagram: [UInt8], length: Int, from: UDPEndpoint, now: Double) -> [OutgoingDatagram] {
        let header: SyncMessage
        let peer: Peer
        do throws(SyncRejection) {
            (header, peer) = try identify(datagram, length: length, from: from)
        } catch {
            count(error)
            return []
        }
        var out: [OutgoingDatagram] = []
        let message: SyncMessage
        do throws(SyncRejection) {
            message = try authenticate(datagram, header: header, peer: peer, now: now, into: &out)
        } catch {
            count(error)
            unverified(error, header: header, from: peer, now: now)
            return out
        }
        // A hello is authentic but may be a replay of an old one: counted apart from the session's messages.
        count(message.kind == .hello ? .receivedHellos : .received)
        count(.receivedBytes, UInt64(datagram.count))
        switch message.kind {
        case .hello:
            hello(message, from: peer, now: now, into: &out)
        case .heartbeat:
            guard message.payload.count >= 16, let role = Role(rawValue: message.payload[0]) else {
                count(.rejectedBadHeartbeat)
                return []
            }
            let flags = message.payload[1]
            let term = message.payload.loadBE(UInt64.self, at: 4)
            let leader = message.payload.loadBE(UInt32.self, at: 12)
            peer.view = PeerView(node: peer.node, role: role, term: term, healthy: flags & 1 != 0,
                                 synced: flags & 2 != 0, leader: leader, heard: now, routesHeld: flags & 4 != 0)
            acknowledged(message.acknowledgement, by: peer, now: now)
        case .ack:
            peer.view?.heard = now
            acknowledged(message.acknowledgement, by: peer, now: now)
        case .resyncRequest:
            peer.view?.heard = now
            // A repeated request for a resync that has just begun is the same request.
            if machine.role == .active, !peer.out.resyncing || now - peer.out.resyncStarted > 1 {
                peer.out.wantsResync = true
                peer.resyncReason = "it asked for one"
            }
        case .entries:
            peer.view?.heard = now
            entries(message, from: peer, now: now, into: &out)
        case .handover:
            peer.view?.heard = now
            takeHandover(from: peer, now: now, into: &out)
        }
        return out
    }

    /// The checks every datagram passes before anything in it is used, cheapest first: the header, the ids and
    /// address (`identify`); the session and the replay window's pre-check (comparisons, no decryption), then the
    /// tag, then the replay window (`authenticate`).
    func identify(_ datagram: [UInt8], length: Int, from: UDPEndpoint) throws(SyncRejection) -> (SyncMessage, Peer) {
        let header = try SyncMessage(header: datagram, length: length)
        guard wireVersions.contains(header.version) || (header.kind == .hello && header.version == SyncMessage.helloVersion)
        else { throw .badVersion }
        guard header.receiver == config.node else { throw .wrongReceiver }
        guard header.sender != config.node else { throw .ownID }
        guard let peer = peers.first(where: { $0.node == header.sender }) else { throw .unknownSender }
        guard peer.endpoint == from else { throw .wrongAddress }
        return (header, peer)
    }

    func authenticate(_ datagram: [UInt8], header: SyncMessage, peer: Peer, now: Double,
                      into out: inout [OutgoingDatagram]) throws(SyncRejection) -> SyncMessage {
        guard keyring.holds(header.keyID) else { throw .unknownKey }
        if header.kind == .hello { return try openOutsideSession(datagram, header: header, peer: peer, now: now) }
        guard peer.session.holds(senderNonce: header.senderNonce, receiverNonce: header.receiverNonce) else {
            // The peer's first message of a session whose confirming hello was lost: it echoes this node's
            // challenge. Its tag proves it; a message of any other session is refused.
            guard peer.session.mayConfirm(senderNonce: header.senderNonce, receiverNonce: header.receiverNonce) else {
                throw .noSession
            }
            let message = try openOutsideSession(datagram, header: header, peer: peer, now: now)
            // Its version is the one the peer negotiated (authenticated: it is in the key and the tag).
            peer.session.confirm(senderNonce: header.senderNonce, version: header.version)
            try peer.session.window.accept(sequence: message.sequence)
            count(.sessionsEstablished)
            count(.sessionsConfirmedByMessage)
            // Its run id is not in the message: what it was sent starts over, as after a restart (a standby is
            // resynced). Its view stays: the next heartbeat replaces it, and a standby whose view of its active
            // vanished would take over.
            peer.out = OutboundStream()
            peer.authenticated = now
            logger.notice("replication: session with \(peer.endpoint) (node \(peer.node)) established by its first message (the confirming hello was lost)")
            return message
        }
        guard peer.session.window.mayAccept(header.sequence) else { throw .replayed }
        // A session speaks one version; its receiving keys are that version's.
        guard header.version == peer.session.version else { throw .badVersion }
        let key: AEADKey
        if let cached = peer.session.receiveKeys[header.keyID] {
            key = cached
        } else {
            guard let made = keyring.messageKey(for: header) else { throw .unknownKey }
            peer.session.receiveKeys[header.keyID] = made
            key = made
        }
        let message = try SyncKeyring.open(datagram, header: header, with: key)
        try peer.session.window.accept(sequence: message.sequence)
        peer.authenticated = now
        return message
    }

    /// Derives the key of a datagram outside the session and checks its tag, within the peer's opening budget.
    func openOutsideSession(_ datagram: [UInt8], header: SyncMessage, peer: Peer, now: Double) throws(SyncRejection) -> SyncMessage {
        guard peer.session.opened.take(now: now, limit: PeerSession.opensPerSecond) else { throw .openRate }
        guard let key = keyring.messageKey(for: header) else { throw .unknownKey }
        return try SyncKeyring.open(datagram, header: header, with: key)
    }

    /// A datagram from a peer's address that did not authenticate (wrong key, tag, or session; replays of an older
    /// session among them): someone is there. Noted, so that this node does not cold-start past a peer it cannot
    /// verify (`RoleMachine.step`). A replay within the session, or of an old handshake, is not.
    func unverified(_ rejection: SyncRejection, header: SyncMessage, from peer: Peer, now: Double) {
        switch rejection {
        case .unknownKey, .noSession, .badTag, .openRate:
            if header.kind == .hello { peer.unverifiedHello = now } else { peer.unverifiedSession = now }
        default:
            break
        }
    }

    /// The peers heard lately (within the peer timeout) whose role this node cannot know: their datagrams do not
    /// authenticate (and no authentic message came since), or a session with them has just been made and their
    /// first heartbeat has not come yet. Said in the log when one first keeps this node from starting.
    func unverifiedPeers(now: Double) -> [UInt32] {
        let within = machine.deadAfter
        return peers.compactMap { p in
            guard !p.isAlive(now: now, within: within) else { return nil }
            if p.view == nil && now - p.authenticated < within { return p.node }
            let last = max(p.unverifiedSession, p.unverifiedHello)
            guard now - last < within, last > p.authenticated else { return nil }
            if machine.role == .starting && !p.unverifiedSaid {
                p.unverifiedSaid = true
                logger.warning("replication: node \(p.node) at \(p.endpoint) sends datagrams this node cannot authenticate (a wrong key on one side, or a forger): not starting as the active while it does")
            }
            return p.node
        }
    }

    /// A session that the peer no longer holds: nothing of it authenticated for three heartbeats (or half the peer
    /// timeout, if that is shorter) while the peer's messages of another session keep coming. Dropped, so that the
    /// next heartbeat sends a hello and the two handshake again, whatever was lost, before either takes the other
    /// for dead.
    func dropOrphanedSessions(now: Double) {
        let silence = min(3 * heartbeatInterval, machine.deadAfter / 2)
        for peer in peers where peer.session.established && now - peer.authenticated > silence
            && now - peer.unverifiedSession < silence && peer.unverifiedSession > peer.authenticated {
            peer.session.drop()
            count(.sessionsDropped)
            logger.notice("replication: node \(peer.node) sends messages of another session; handshaking again")
        }
    }

    func hello(_ message: SyncMessage, from peer: Peer, now: Double, into out: inout [OutgoingDatagram]) {
        guard message.payload.count >= 8 else { return count(.rejectedBadHello) }
        let run = message.payload.loadBE(UInt64.self, at: 0)
        // From version 3 on, the run id is followed by the newest version the sender speaks; a version 2 node sends
        // the run id alone (and ignores what follows it in ours).
        let newest = message.payload.count >= 9 ? message.payload[8] : nil
        let outcome: PeerSession.HelloOutcome
        do throws(SyncRejection) {
            outcome = try peer.session.hello(senderNonce: message.senderNonce, echo: message.receiverNonce,
                                             answerWanted: message.flags & SyncMessage.answerWanted != 0, run: run,
                                             version: SyncMessage.negotiated(own: wireVersions.upperBound, peerNewest: newest),
                                             now: now, answerInterval: heartbeatInterval / 2, random: random)
        } catch {
            return count(error)
        }
        switch outcome {
        case .established(let restarted, let confirm):
            count(.sessionsEstablished)
            peer.authenticated = now
            if restarted {
                // The peer restarted: whatever it held or was sent is gone.
                count(.peerRestarts)
                peer.view = nil
                peer.out = OutboundStream()
                logger.notice("replication: \(peer.endpoint) (node \(peer.node)) restarted; new session")
            } else {
                logger.info("replication: session with \(peer.endpoint) (node \(peer.node)) established, wire format version \(peer.session.version)")
            }
            if peer.session.version < wireVersions.upperBound {
                logger.notice("replication: node \(peer.node) speaks wire format version \(peer.session.version) at most; this node speaks it with that node (upgrade it too)")
            }
            if confirm { sendHello(to: peer, nonce: peer.session.local, echo: peer.session.remote, flags: 0, into: &out) }
        case .answer:
            sendHello(to: peer, nonce: peer.session.pending, echo: message.senderNonce, flags: SyncMessage.answerWanted,
                      into: &out)
        case .nothing:
            break
        }
    }

    /// Whether batches from `peer` are this node's to apply: from the active it follows, or from the former active
    /// of a handover.
    func followsStream(of peer: Peer) -> Bool {
        guard inbound.leader == peer.node else { return false }
        return (machine.role == .standby && machine.leader == peer.node) || (machine.role == .active && predecessor == peer.node)
    }

    /// A batch of the active's changes, applied strictly in order.
    func entries(_ message: SyncMessage, from peer: Peer, now: Double, into out: inout [OutgoingDatagram]) {
        guard followsStream(of: peer) else { return count(.entriesNotFromLeader) }
        guard let batch = Batch(message.payload) else { return count(.rejectedBadEntries) }
        let outcome = inbound.receive(batch, reset: {
            table.removeAll()
            machine.synced = false
        }, apply: { apply($0, now: now) })
        switch outcome {
        case .applied: break
        case .duplicate: count(.entriesDuplicate)
        case .beforeResync: count(.entriesBeforeResync)
        case .outOfOrder: count(.entriesOutOfOrder)
        case .tooFarAhead: count(.entriesTooFarAhead)
        case .conflict:
            // The replica disagrees with the active: only a full resync can mend it.
            machine.synced = false
            if machine.role == .standby { send(.resyncRequest, to: peer, into: &out) }
            inbound.lastRequest = now
        }
        send(.ack, to: peer, into: &out)
    }

    /// False if the replica refused a record.
    func apply(_ batch: Batch, now: Double) -> Bool {
        let failures = table.apply(batch.records, now: instant(now))
        count(.recordsApplied, UInt64(batch.records.count - failures.count))
        if !failures.isEmpty {
            for f in failures { counters.count(f) }
            logger.warning("replication: \(failures.count) record(s) could not be applied (\(failures[0])); asking for a resync")
            return false
        }
        if batch.flags & Batch.end != 0 && !machine.synced && machine.role == .standby {
            machine.synced = true
            count(.resyncsCompleted)
            logger.notice("replication: replica of node \(machine.leader) complete (\(table.flowCount) flows); eligible to take over")
        }
        return true
    }

    func requestResyncIfWaiting(now: Double, into out: inout [OutgoingDatagram]) {
        guard machine.role == .standby, inbound.awaitingResync, now - inbound.lastRequest >= 0.5,
              let peer = peers.first(where: { $0.node == machine.leader }) else { return }
        inbound.lastRequest = now
        send(.resyncRequest, to: peer, into: &out)
    }

    // MARK: - Planned handover

    /// Starts a planned handover to the lowest-numbered synced, healthy standby that follows this node; nil when
    /// one has begun, or why none can (not the active, or no such standby).
    public func beginHandover(now: Double) -> String? {
        guard handover == nil else { return nil }
        guard machine.role == .active else { return "this node is \(machine.role), not the active" }
        let me = config.node
        let candidates = peers.filter {
            guard let v = $0.view, $0.isAlive(now: now, within: machine.deadAfter) else { return false }
            return v.role == .standby && v.leader == me && v.synced && v.healthy && $0.out.started && !$0.out.resyncing
        }
        guard let target = candidates.min(by: { $0.node < $1.node }) else {
            return "no synced, healthy standby follows this node"
        }
        handover = Handover(target: target.node, started: now)
        count(.handoversBegun)
        logger.notice("replication: handing over to node \(target.node) (\(target.endpoint)); translating until it holds the routes")
        return nil
    }

    /// Every heartbeat of a handover: tell the target again, until it is active, holds the routes and has every
    /// change; give up after `handoverTimeout`.
    func moveHandover(now: Double, into out: inout [OutgoingDatagram]) {
        guard var h = handover, let peer = peers.first(where: { $0.node == h.target }) else { return }
        defer { handover = h }
        if let v = peer.view, v.role == .active, v.term > machine.term, v.routesHeld,
           peer.out.waiting == 0, peer.out.unacknowledged == 0, !peer.out.resyncing {
            h.state = .complete
            count(.handoversComplete)
            logger.notice("replication: node \(h.target) is active and holds the routes and every flow; handover complete after \(Int((now - h.started) * 1000)) ms")
            return
        }
        if now - h.started > handoverTimeout {
            h.state = .failed("node \(h.target) did not take over within \(Int(handoverTimeout)) s")
            count(.handoversFailed)
            logger.error("replication: handover to node \(h.target) failed: no takeover within \(Int(handoverTimeout)) s")
            return
        }
        guard peer.view?.role != .active else { return }
        var payload: [UInt8] = []
        payload.appendBE(machine.term)
        send(.handover, to: peer, payload: payload, into: &out)
    }

    /// How long a handover may take: the takeover, then the route switch (AWS API calls, retried).
    var handoverTimeout: Double { Self.handoverTimeout(config) }

    public static func handoverTimeout(_ config: ReplicationConfiguration) -> Double {
        max(10, 4 * Double(config.peerTimeoutMilliseconds) / 1000)
    }

    /// The active this node follows hands over: take over if synced and healthy.
    func takeHandover(from peer: Peer, now: Double, into out: inout [OutgoingDatagram]) {
        guard machine.role == .standby, machine.leader == peer.node else {
            return count(machine.role == .active && predecessor == peer.node ? .handoverRepeated : .handoverNotFromLeader)
        }
        guard let transition = machine.handover(from: peer.node, now: now, peers: peers.compactMap(\.view), healthy: healthy) else {
            count(.handoverRefused)
            logger.warning("replication: node \(peer.node) asks this node to take over, but it is \(machine.synced ? "unhealthy" : "not synced")")
            return
        }
        changedWhileReceiving = enter(transition, now: now, into: &out, handedOverBy: peer.node)
    }

    // MARK: - The active's side

    func acknowledged(_ ack: UInt64, by peer: Peer, now: Double) {
        guard machine.role == .active else { return }
        if peer.out.acknowledge(ack) { logger.notice("replication: \(peer.endpoint) holds the whole table") }
        updateConfirmed(now: now)
    }

    /// The serial every standby in sync has acknowledged; the data plane's hold waits on it. A standby still
    /// resyncing holds nothing up: it is not a takeover candidate yet.
    func updateConfirmed(now: Double) {
        let followers = peers.filter {
            $0.out.started && !$0.out.resyncing && $0.session.established && $0.isAlive(now: now, within: machine.deadAfter)
        }
        confirmedSerial = followers.map(\.out.ackedSerial).min() ?? .max
    }

    func stream(now: Double, into out: inout [OutgoingDatagram]) {
        let me = config.node
        for peer in peers {
            guard let view = peer.view, peer.isAlive(now: now, within: machine.deadAfter) else { continue }
            // A new follower; one that needs a resync later asks for it (resyncRequest).
            if view.role == .standby && view.leader == me && !view.synced && !peer.out.started && !peer.out.wantsResync {
                peer.out.wantsResync = true
                peer.resyncReason = "a new follower"
            }
        }
        // A resync starts at once for a standby that was in sync; one under way restarts at most once a second.
        for peer in peers where peer.out.wantsResync && peer.session.established
            && (!peer.out.resyncing || now - peer.out.resyncStarted >= 1) {
            peer.out.beginResync(now: now)
            count(.resyncsStarted)
            logger.notice("replication: bulk resync to \(peer.endpoint) (\(peer.resyncReason)), \(table.flowCount) flows in the table")
        }
        // The changes and the parts of the table the resyncs want, taken in one call so that each part is newer
        // than every change taken with it.
        let wanting = peers.compactMap { peer in peer.out.wantsSnapshot.map { (peer: peer, cursor: $0) } }
        let changes = table.takeChanges(snapshotFrom: wanting.map(\.cursor))
        if changes.overflowed {
            for peer in peers where peer.out.started {
                peer.out.wantsResync = true
                peer.resyncReason = "more than \(NAT.maxPendingChanges) changes waited"
            }
        }
        for peer in peers {
            let part = wanting.firstIndex { $0.peer === peer }.map { changes.parts[$0] }
            if part != nil { count(.snapshotParts) }
            // A peer on an older wire format gets no NAT64 record: it could not read them (its NAT64 sessions are
            // not replicated until it is upgraded).
            var records = changes.records
            var snapshot = part
            if peer.session.version < SyncMessage.nat64Version {
                let before = records.count + (snapshot?.records.count ?? 0)
                records.removeAll(where: \.isNAT64)
                snapshot?.records.removeAll(where: \.isNAT64)
                count(.nat64RecordsWithheld, UInt64(before - records.count - (snapshot?.records.count ?? 0)))
            }
            if !peer.out.enqueue(records, part: snapshot, serial: changes.serial) {
                peer.out.wantsResync = true
                peer.resyncReason = "more than \(OutboundStream.maxPending) records behind"
            }
        }
        for peer in peers where peer.out.started && peer.session.established && peer.isAlive(now: now, within: machine.deadAfter) {
            let sends = peer.out.tick(now: now)
            count(.recordsSent, UInt64(sends.recordsSent))
            count(.retransmits, UInt64(sends.retransmits))
            for payload in sends.batches { send(.entries, to: peer, payload: payload, into: &out) }
        }
        updateConfirmed(now: now)
    }

    // MARK: - Sending

    /// A heartbeat to each peer in session; a hello (answer wanted) to each peer without one.
    func heartbeat(into out: inout [OutgoingDatagram]) {
        let flags: UInt8 = (healthy ? 1 : 0) | (machine.synced && machine.role == .standby ? 2 : 0) | (routesHeld ? 4 : 0)
        var payload: [UInt8] = [machine.role.rawValue, flags, 0, 0]
        payload.appendBE(machine.term)
        payload.appendBE(machine.leader)
        for peer in peers {
            if peer.session.established {
                send(.heartbeat, to: peer, payload: payload, into: &out)
            } else {
                sendHello(to: peer, nonce: peer.session.challenge(random), echo: 0, flags: SyncMessage.answerWanted,
                          into: &out)
            }
        }
    }

    func sendHello(to peer: Peer, nonce: UInt64, echo: UInt64, flags: UInt8, into out: inout [OutgoingDatagram]) {
        sequence += 1
        var payload: [UInt8] = []
        payload.appendBE(run)
        if wireVersions.upperBound > 2 { payload.append(wireVersions.upperBound) }
        // In the hello version, which every peer reads; the session then speaks the newest both do.
        let message = SyncMessage(version: SyncMessage.helloVersion, kind: .hello, keyID: keyring.sendingID,
                                  flags: flags, sender: config.node, receiver: peer.node, senderNonce: nonce,
                                  receiverNonce: echo, sequence: sequence, payload: payload)
        out.append(OutgoingDatagram(bytes: keyring.seal(message), to: peer.endpoint, kind: .hello))
    }

    /// A message of the session with `peer`; none without a session (the next hello starts one).
    func send(_ kind: SyncMessage.Kind, to peer: Peer, payload: [UInt8] = [], into out: inout [OutgoingDatagram]) {
        guard peer.session.established else { return count(.unsentNoSession) }
        sequence += 1
        // The acknowledgement goes only to the active whose stream this node applies; to anyone else it means nothing.
        let ack = followsStream(of: peer) ? inbound.acknowledgement : 0
        let message = SyncMessage(version: peer.session.version, kind: kind, keyID: keyring.sendingID,
                                  sender: config.node, receiver: peer.node,
                                  senderNonce: peer.session.local, receiverNonce: peer.session.remote,
                                  sequence: sequence, acknowledgement: ack, payload: payload)
        if peer.session.sendKey == nil { peer.session.sendKey = keyring.messageKey(for: message) }
        guard let key = peer.session.sendKey else { preconditionFailure("the sending key id is always held") }
        out.append(OutgoingDatagram(bytes: SyncKeyring.seal(message, with: key), to: peer.endpoint, kind: kind))
    }

    /// The loop reports each datagram it handed to the kernel, or could not.
    public func sent(_ datagram: OutgoingDatagram, ok: Bool) {
        guard ok else { return count(.sendErrors) }
        count(.sent)
        count(.sentBytes, UInt64(datagram.bytes.count))
        counters.countSent(datagram.kind, bytes: datagram.bytes.count)
    }

    // MARK: - Status

    public func status(now: Double) -> ReplicationStatus {
        var s = ReplicationStatus()
        s.node = config.node
        s.role = machine.role
        s.term = machine.term
        s.leader = machine.leader
        s.synced = machine.synced
        s.counters = counters
        s.handover = switch handover?.state {
        case nil: .none
        case .underway: .underway(to: handover!.target)
        case .complete: .complete
        case .failed(let why): .failed(why)
        }
        s.peers = peers.map { p in
            ReplicationStatus.PeerStatus(
                endpoint: p.endpoint.description, node: p.node, alive: p.isAlive(now: now, within: machine.deadAfter),
                role: p.view?.role, synced: p.view?.synced ?? false,
                session: p.session.established, inFlight: p.out.unacknowledged, pending: p.out.waiting,
                resyncing: p.out.resyncing, wireVersion: p.session.established ? p.session.version : nil)
        }
        return s
    }
}
