import Glibc
import Logging
import NatTable
import PacketKit
import Synchronization

/// The `replication` section: this node, its peers, the shared key, and the timing of the role machine.
public struct ReplicationConfiguration: Sendable, Equatable {
    /// This node's id, unique in the group; the lower id wins ties. Default: the listen address as a number.
    public var node: UInt32
    /// The address and UDP port this node sends from and listens on (a specific address, not 0.0.0.0).
    public var listen: UDPEndpoint
    public var peers: [UDPEndpoint]
    /// A file holding at least 32 bytes of shared key material.
    public var keyFile: String
    public var heartbeatMilliseconds = 100
    /// A peer not heard from for this long is gone; an active gone this long is taken over.
    public var peerTimeoutMilliseconds = 600
    /// How long a starting node listens for an active before it cold-starts as the active itself.
    public var startupWaitMilliseconds = 2000
    /// Hold a batch of packets that created flows until the standbys acknowledge the flows, at most this long
    /// (milliseconds); 0: never hold.
    public var holdNewFlowsMilliseconds = 0

    public init(node: UInt32, listen: UDPEndpoint, peers: [UDPEndpoint], keyFile: String) {
        self.node = node
        self.listen = listen
        self.peers = peers
        self.keyFile = keyFile
    }
}

/// Access to the NAT that the data plane's workers share (behind their lock).
public protocol NatAccess: Sendable {
    func withNAT<R>(_ body: (NAT) -> R) -> R
}

/// What `tunnat status` shows of replication (its `replication` object).
public struct ReplicationStatus: Codable, Sendable, Equatable {
    public struct PeerStatus: Codable, Sendable, Equatable {
        public var endpoint: String
        public var node: UInt32
        public var alive: Bool
        public var role: String
        public var synced: Bool
        /// Batches sent to it and not yet acknowledged; records waiting to be sent to it.
        public var inFlight: Int
        public var pending: Int
    }
    public var node: UInt32 = 0
    /// starting, standby or active.
    public var role = Role.starting.description
    public var term: UInt64 = 0
    /// The active a standby follows.
    public var leader: UInt32 = 0
    /// A standby's replica is complete.
    public var synced = false
    /// Messages and bytes sent and received, records sent and applied, retransmits, resyncs, takeovers, and
    /// rejected messages by reason.
    public var counters: [String: UInt64] = [:]
    public var peers: [PeerStatus] = []
}

/// State replication and the role of this node, on one thread.
///
/// The active sends each standby the table's changes as numbered batches of `FlowRecord`s (the `entries`
/// messages), at most `window` unacknowledged at a time, retransmitting each after 50 ms, doubling up to 1 s. A
/// standby applies batches strictly in order (buffering up to `window` ahead) and acknowledges the highest batch
/// it holds everything up to. A standby that follows a new active, falls behind by more than `maxPending`
/// records, or finds its replica in conflict, gets a bulk resync: a snapshot of the table whose first batch says
/// "reset" and whose last says "end"; after the end the standby is synced and may take over. Every message is
/// sealed with the shared key and checked against the sender's replay window (SyncMessage.swift).
public final class Replicator: ReplicationGate, @unchecked Sendable {
    public static let window = 128
    public static let maxPending = 1 << 18
    static let recordsPerBatch = (SyncMessage.maxPayload - 12) / FlowRecord.encodedSize

    public let config: ReplicationConfiguration
    let key: SyncKey
    let table: NatAccess
    let health: @Sendable () -> Bool?
    let logger: Logger
    let socket: UDPSocket
    /// This run's start: a restart is a new epoch to the peers' replay windows.
    let epoch: UInt32
    var sequence: UInt64 = 0
    var machine: RoleMachine
    var peers: [Peer]
    var inbound = InboundStream()
    var counters: [String: UInt64] = [:]
    var lastHeartbeat = -Double.infinity
    var lastStatus = -Double.infinity
    let stopping = Atomic<Bool>(false)
    let published = Mutex(ReplicationStatus())
    let currentRole = Atomic<UInt8>(Role.starting.rawValue)
    /// Every change up to this serial is acknowledged by every standby in sync (or there is none to wait for).
    let confirmedSerial = Atomic<UInt64>(0)
    let wakeRead: Int32
    let wakeWrite: Int32
    public var holdMilliseconds: Int { config.holdNewFlowsMilliseconds }
    /// Called on the replicator's thread after each change of role (the route manager's wake-up). Set before `run`.
    public var onRoleChange: (@Sendable (Role) -> Void)?

    public init(config: ReplicationConfiguration, key: SyncKey, table: NatAccess, health: @escaping @Sendable () -> Bool?,
                logger: Logger) throws(FailoverError) {
        self.config = config
        self.key = key
        self.table = table
        self.health = health
        self.logger = logger
        socket = try UDPSocket(bind: config.listen)
        epoch = Self.currentEpoch()
        machine = RoleMachine(node: config.node, deadAfter: Double(config.peerTimeoutMilliseconds) / 1000,
                              startupWait: Double(config.startupWaitMilliseconds) / 1000, now: monotonicSeconds())
        peers = config.peers.map { Peer(endpoint: $0) }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw FailoverError("replication: pipe: \(String(cString: strerror(errno)))") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        table.withNAT { nat in
            nat.setLive(false, now: NatInstant(nanoseconds: 0))
            nat.recordChanges(false)
        }
        publish(now: monotonicSeconds())
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    /// The start time in sixteenths of a second since 2024-01-01 (32 bits last 8.5 years): a process cannot
    /// restart within 1/16 s, so each run's epoch is larger than the last one's while the clock is not set back.
    static func currentEpoch() -> UInt32 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let sixteenths = (Int64(ts.tv_sec) - 1_704_067_200) * 16 + Int64(ts.tv_nsec) / 62_500_000
        return UInt32(clamping: max(sixteenths, 1))
    }

    public var role: Role { Role(rawValue: currentRole.load(ordering: .acquiring)) ?? .starting }
    public var status: ReplicationStatus { published.withLock { $0 } }

    public func stop() {
        stopping.store(true, ordering: .releasing)
        wake()
    }

    func wake() {
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
    }

    func count(_ name: String, _ n: UInt64 = 1) { counters[name, default: 0] &+= n }

    // MARK: - The loop

    /// Runs until `stop()`: receives, steps the role machine, streams changes, sends heartbeats.
    public func run() {
        logger.notice("replication: node \(config.node) listening on \(config.listen), peers \(config.peers.map(\.description).joined(separator: ", "))")
        var buffer = [UInt8](repeating: 0, count: 2048)
        var drain = [UInt8](repeating: 0, count: 64)
        while !stopping.load(ordering: .acquiring) {
            socket.wait(milliseconds: 5, other: wakeRead)
            while read(wakeRead, &drain, drain.count) > 0 {}
            while let (length, from) = socket.receive(into: &buffer) {
                receive(Array(buffer[0..<min(length, buffer.count)]), length: length, from: from)
            }
            let now = monotonicSeconds()
            step(now: now)
            if machine.role == .active { stream(now: now) }
            if now - lastHeartbeat >= Double(config.heartbeatMilliseconds) / 1000 {
                lastHeartbeat = now
                heartbeat()
                requestResyncIfWaiting(now: now)
            }
            if now - lastStatus >= 0.1 { publish(now: now) }
        }
        publish(now: monotonicSeconds())
        socket.close()
    }

    func step(now: Double) {
        let views = peers.compactMap(\.view)
        let healthy = health() ?? false
        guard let transition = machine.step(now: now, peers: views, healthy: healthy) else { return }
        let nanoseconds = UInt64(now * 1e9)
        switch transition {
        case .becomeActive(let term, let coldStart):
            let flows = table.withNAT { nat -> Int in
                nat.setLive(true, now: NatInstant(nanoseconds: nanoseconds))
                nat.recordChanges(true)
                return nat.flowCount
            }
            for peer in peers { peer.out = OutboundStream() }
            inbound = InboundStream()
            count(coldStart ? "cold-starts" : "takeovers")
            if coldStart {
                logger.notice("replication: no active peer; starting as the active (term \(term)) with \(flows) flows")
            } else {
                logger.notice("replication: taking over as the active (term \(term)) with \(flows) replicated flows")
            }
        case .follow(let leader, let term):
            let wasActive = table.withNAT { nat -> Bool in
                let live = nat.isLive
                nat.setLive(false, now: NatInstant(nanoseconds: nanoseconds))
                nat.recordChanges(false)
                nat.removeAll()
                return live
            }
            for peer in peers { peer.out = OutboundStream() }
            inbound = InboundStream(leader: leader)
            if wasActive { count("step-downs") }
            logger.notice("replication: \(wasActive ? "stepping down; " : "")following active node \(leader) (term \(term)), resyncing")
            if let peer = peers.first(where: { $0.view?.node == leader }) { send(.resyncRequest, to: peer) }
            inbound.lastRequest = now
        case .restart:
            logger.warning("replication: active node \(inbound.leader) is gone before this replica was complete; starting over")
            inbound = InboundStream()
        }
        currentRole.store(machine.role.rawValue, ordering: .releasing)
        confirmedSerial.store(machine.role == .active ? 0 : .max, ordering: .releasing)
        publish(now: now)
        onRoleChange?(machine.role)
    }

    // MARK: - Receiving

    func receive(_ datagram: [UInt8], length: Int, from: UDPEndpoint) {
        guard let peer = peers.first(where: { $0.endpoint == from }) else {
            count("rejected-unknown-peer")
            return
        }
        guard length <= datagram.count else {
            count("rejected-\(SyncRejection.badLength)")
            return
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
            return
        }
        count("received")
        count("received-bytes", UInt64(datagram.count))
        let now = monotonicSeconds()
        switch message.kind {
        case .heartbeat:
            guard message.payload.count >= 16, let role = Role(rawValue: message.payload[0]) else {
                count("rejected-bad-heartbeat")
                return
            }
            let flags = message.payload[1]
            let term = message.payload.loadBE(UInt64.self, at: 4)
            let leader = message.payload.loadBE(UInt32.self, at: 12)
            peer.view = PeerView(node: message.sender, role: role, term: term, healthy: flags & 1 != 0,
                                 synced: flags & 2 != 0, leader: leader, heard: now)
            acknowledged(message.acknowledgement, by: peer)
        case .ack:
            peer.view?.heard = now
            acknowledged(message.acknowledgement, by: peer)
        case .resyncRequest:
            peer.view?.heard = now
            // A repeated request for a resync that has just begun is the same request.
            if machine.role == .active, !peer.out.resyncing || now - peer.out.resyncRequested > 1 {
                logger.info("replication: \(peer.endpoint) asks for a resync")
                peer.out.wantsResync = true
            }
        case .entries:
            peer.view?.heard = now
            entries(message, from: peer, now: now)
        }
    }

    /// A batch of the active's changes, applied strictly in order.
    func entries(_ message: SyncMessage, from peer: Peer, now: Double) {
        guard machine.role == .standby, message.sender == machine.leader, inbound.leader == machine.leader else {
            count("entries-not-from-leader")
            return
        }
        guard let batch = Batch(message.payload) else {
            count("rejected-bad-entries")
            return
        }
        if batch.flags & Batch.reset != 0, inbound.expected == 0 || batch.number >= inbound.expected {
            // The start of a bulk resync: everything before it is superseded.
            table.withNAT { $0.removeAll() }
            inbound.buffer.removeAll()
            inbound.expected = batch.number
            machine.synced = false
        }
        if inbound.expected == 0 || batch.number < inbound.expected {
            count(inbound.expected == 0 ? "entries-before-resync" : "entries-duplicate")
        } else if batch.number > inbound.expected {
            if batch.number - inbound.expected < UInt64(Self.window) {
                inbound.buffer[batch.number] = batch
                count("entries-out-of-order")
            }
        } else {
            var next: Batch? = batch
            while let b = next {
                guard apply(b) else { break }
                inbound.expected += 1
                next = inbound.buffer.removeValue(forKey: inbound.expected)
            }
        }
        send(.ack, to: peer)
    }

    /// False if the replica refused a record (and a resync was asked for).
    func apply(_ batch: Batch) -> Bool {
        let nanoseconds = UInt64(monotonicSeconds() * 1e9)
        let failures = table.withNAT { nat -> [ApplyFailure] in
            var failures: [ApplyFailure] = []
            for r in batch.records {
                do throws(ApplyFailure) { try nat.apply(r, now: NatInstant(nanoseconds: nanoseconds)) } catch { failures.append(error) }
            }
            return failures
        }
        count("records-applied", UInt64(batch.records.count - failures.count))
        if !failures.isEmpty {
            for f in failures { count("apply-\(f)") }
            // The replica disagrees with the active: only a full resync can mend it.
            logger.warning("replication: \(failures.count) record(s) could not be applied (\(failures[0])); asking for a resync")
            machine.synced = false
            inbound.expected = 0
            inbound.buffer.removeAll()
            if let peer = peers.first(where: { $0.view?.node == machine.leader }) { send(.resyncRequest, to: peer) }
            inbound.lastRequest = monotonicSeconds()
            return false
        }
        if batch.flags & Batch.end != 0 && !machine.synced {
            machine.synced = true
            count("resyncs-completed")
            let flows = table.withNAT { $0.flowCount }
            logger.notice("replication: replica of node \(machine.leader) complete (\(flows) flows); eligible to take over")
        }
        return true
    }

    func requestResyncIfWaiting(now: Double) {
        guard machine.role == .standby, inbound.expected == 0, now - inbound.lastRequest >= 0.5,
              let peer = peers.first(where: { $0.view?.node == machine.leader }) else { return }
        inbound.lastRequest = now
        send(.resyncRequest, to: peer)
    }

    // MARK: - The active's side

    func acknowledged(_ ack: UInt64, by peer: Peer) {
        guard machine.role == .active, ack > peer.out.acked else { return }
        peer.out.acked = min(ack, peer.out.next - 1)
        while let first = peer.out.inFlight.first, first.number <= peer.out.acked {
            peer.out.ackedSerial = max(peer.out.ackedSerial, first.serial)
            peer.out.inFlight.removeFirst()
        }
        if peer.out.resyncing, peer.out.acked >= peer.out.endNumber, peer.out.endNumber != 0 {
            peer.out.resyncing = false
            logger.notice("replication: \(peer.endpoint) holds the whole table")
        }
        updateConfirmed()
    }

    /// The serial every standby in sync has acknowledged; the data plane's hold waits on it.
    func updateConfirmed() {
        let followers = peers.filter { $0.out.started && $0.isAlive(now: monotonicSeconds(), within: machine.deadAfter) }
        let confirmed = followers.map { $0.out.resyncing ? 0 : $0.out.ackedSerial }.min() ?? .max
        confirmedSerial.store(confirmed, ordering: .releasing)
    }

    func stream(now: Double) {
        let me = config.node
        for peer in peers {
            guard let view = peer.view, peer.isAlive(now: now, within: machine.deadAfter) else { continue }
            // A new follower; one that needs a resync later asks for it (resyncRequest).
            if view.role == .standby && view.leader == me && !view.synced && !peer.out.started && !peer.out.wantsResync {
                peer.out.wantsResync = true
            }
        }
        // One lock for the changes and the snapshot, so that the snapshot holds exactly the changes taken so far.
        let (changes, overflowed, serial, snapshot) = table.withNAT { nat in
            let (records, overflowed) = nat.takeChanges()
            // Lost changes: every standby needs the whole table again.
            if overflowed { for peer in peers where peer.out.started { peer.out.wantsResync = true } }
            let wanted = peers.contains(where: \.out.wantsResync)
            return (records, overflowed, nat.changeSerial, wanted ? nat.snapshot() : [])
        }
        if overflowed {
            logger.warning("replication: more than \(NAT.maxPendingChanges) changes waited; resyncing every standby")
        }
        let resyncing = peers.filter(\.out.wantsResync)
        for peer in resyncing { startResync(peer, snapshot: snapshot, serial: serial, now: now) }
        let resynced = Set(resyncing.map(\.endpoint))
        for peer in peers where peer.out.started && !resynced.contains(peer.endpoint) && !changes.isEmpty {
            peer.out.pending.append(contentsOf: changes)
            peer.out.pendingSerial = serial
            if peer.out.pending.count - peer.out.head > Self.maxPending {
                logger.warning("replication: \(peer.endpoint) is more than \(Self.maxPending) records behind; resyncing it")
                peer.out.wantsResync = true
            }
        }
        for peer in peers where peer.out.started && peer.isAlive(now: now, within: machine.deadAfter) {
            fill(peer, now: now)
            retransmit(peer, now: now)
        }
        updateConfirmed()
    }

    func startResync(_ peer: Peer, snapshot records: [FlowRecord], serial: UInt64, now: Double) {
        var out = OutboundStream()
        out.next = peer.out.next
        out.acked = peer.out.next - 1
        out.started = true
        out.resyncing = true
        out.resetNext = true
        out.endRemaining = records.count
        out.pending = records
        out.pendingSerial = serial
        out.resyncRequested = now
        peer.out = out
        count("resyncs-started")
        logger.notice("replication: bulk resync of \(records.count) flows to \(peer.endpoint)")
    }

    /// Sends new batches while the window has room.
    func fill(_ peer: Peer, now: Double) {
        while peer.out.inFlight.count < Self.window && (peer.out.head < peer.out.pending.count || peer.out.resetNext) {
            let take = min(Self.recordsPerBatch, peer.out.pending.count - peer.out.head)
            var flags: UInt8 = 0
            if peer.out.resetNext { flags |= Batch.reset }
            peer.out.resetNext = false
            if let remaining = peer.out.endRemaining, remaining <= take {
                flags |= Batch.end
                peer.out.endRemaining = nil
                peer.out.endNumber = peer.out.next
            } else if let remaining = peer.out.endRemaining {
                peer.out.endRemaining = remaining - take
            }
            let records = peer.out.pending[peer.out.head..<(peer.out.head + take)]
            peer.out.head += take
            let drained = peer.out.head == peer.out.pending.count
            let payload = Batch.encode(number: peer.out.next, flags: flags, records: records)
            if drained {
                peer.out.pending.removeAll(keepingCapacity: true)
                peer.out.head = 0
            } else if peer.out.head > 4096 && peer.out.head * 2 > peer.out.pending.count {
                peer.out.pending.removeFirst(peer.out.head)
                peer.out.head = 0
            }
            // The serial this batch completes: all changes taken so far, once the queue behind it is empty.
            let serial = drained ? peer.out.pendingSerial : 0
            peer.out.inFlight.append(InFlight(number: peer.out.next, payload: payload, serial: serial, sentAt: now, sends: 1))
            peer.out.next += 1
            count("records-sent", UInt64(take))
            send(.entries, to: peer, payload: payload)
        }
    }

    func retransmit(_ peer: Peer, now: Double) {
        for i in peer.out.inFlight.indices {
            let f = peer.out.inFlight[i]
            let timeout = min(0.05 * Double(1 << min(f.sends - 1, 5)), 1.0)
            guard now - f.sentAt >= timeout else { continue }
            peer.out.inFlight[i].sentAt = now
            peer.out.inFlight[i].sends += 1
            count("retransmits")
            send(.entries, to: peer, payload: f.payload)
        }
    }

    // MARK: - Sending

    func heartbeat() {
        let healthy = health() ?? false
        var payload: [UInt8] = [machine.role.rawValue, (healthy ? 1 : 0) | (machine.synced && machine.role == .standby ? 2 : 0), 0, 0]
        payload.appendBE(machine.term)
        payload.appendBE(machine.leader)
        for peer in peers { send(.heartbeat, to: peer, payload: payload) }
    }

    func send(_ kind: SyncMessage.Kind, to peer: Peer, payload: [UInt8] = []) {
        sequence += 1
        // The acknowledgement goes only to the active this node follows; to anyone else it means nothing.
        let ack = machine.role == .standby && peer.view?.node == machine.leader && inbound.expected > 0
            ? inbound.expected - 1 : 0
        let datagram = key.seal(SyncMessage(kind: kind, sender: config.node, epoch: epoch, sequence: sequence,
                                            acknowledgement: ack, payload: payload))
        if socket.send(datagram, to: peer.endpoint) {
            count("sent")
            count("sent-bytes", UInt64(datagram.count))
            count("sent-\(kind)")
            count("sent-\(kind)-bytes", UInt64(datagram.count))
        } else {
            count("send-errors")
        }
    }

    // MARK: - The hold

    public func waitUntilReplicated(_ serial: UInt64) {
        guard holdMilliseconds > 0, confirmedSerial.load(ordering: .acquiring) < serial else { return }
        wake()
        let deadline = monotonicSeconds() + Double(holdMilliseconds) / 1000
        var pause = timespec(tv_sec: 0, tv_nsec: 50_000)
        while confirmedSerial.load(ordering: .acquiring) < serial {
            if monotonicSeconds() >= deadline {
                heldTimeouts.add(1, ordering: .relaxed)
                return
            }
            nanosleep(&pause, nil)
        }
    }
    let heldTimeouts = Atomic<UInt64>(0)

    // MARK: - Status

    func publish(now: Double) {
        lastStatus = now
        var s = ReplicationStatus()
        s.node = config.node
        s.role = machine.role.description
        s.term = machine.term
        s.leader = machine.leader
        s.synced = machine.synced
        s.counters = counters
        s.counters["hold-timeouts"] = heldTimeouts.load(ordering: .relaxed)
        s.peers = peers.map { p in
            ReplicationStatus.PeerStatus(
                endpoint: p.endpoint.description, node: p.view?.node ?? 0, alive: p.isAlive(now: now, within: machine.deadAfter),
                role: p.view.map { "\($0.role)" } ?? "unknown", synced: p.view?.synced ?? false,
                inFlight: p.out.inFlight.count, pending: p.out.pending.count - p.out.head)
        }
        published.withLock { $0 = s }
    }
}

final class Peer {
    let endpoint: UDPEndpoint
    var window = ReplayWindow()
    var view: PeerView?
    var out = OutboundStream()

    init(endpoint: UDPEndpoint) { self.endpoint = endpoint }

    func isAlive(now: Double, within: Double) -> Bool { view.map { now - $0.heard < within } ?? false }
}

struct InFlight {
    var number: UInt64
    var payload: [UInt8]
    /// The change serial this batch completes (0: none).
    var serial: UInt64
    var sentAt: Double
    var sends: Int
}

/// What the active sends one standby.
struct OutboundStream {
    /// The standby gets changes (from its first resync on).
    var started = false
    var next: UInt64 = 1
    var acked: UInt64 = 0
    var ackedSerial: UInt64 = 0
    var inFlight: [InFlight] = []
    var pending: [FlowRecord] = []
    var head = 0
    /// The change serial of the newest record in `pending`.
    var pendingSerial: UInt64 = 0
    var wantsResync = false
    var resyncing = false
    var resyncRequested = -Double.infinity
    var resetNext = false
    var endRemaining: Int?
    var endNumber: UInt64 = 0
}

/// What a standby receives from its active.
struct InboundStream {
    var leader: UInt32 = 0
    /// The next batch to apply; 0 while waiting for the start of a resync.
    var expected: UInt64 = 0
    var buffer: [UInt64: Batch] = [:]
    var lastRequest = -Double.infinity
}

/// The payload of an `entries` message: batch number, flags, count, then the records (24 bytes each).
struct Batch {
    static let reset: UInt8 = 1
    static let end: UInt8 = 2
    var number: UInt64
    var flags: UInt8
    var records: [FlowRecord]

    static func encode(number: UInt64, flags: UInt8, records: ArraySlice<FlowRecord>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(12 + records.count * FlowRecord.encodedSize)
        out.appendBE(number)
        out.append(flags)
        out.append(0)
        out.appendBE(UInt16(records.count))
        for r in records { r.encode(into: &out) }
        return out
    }

    init?(_ payload: [UInt8]) {
        guard payload.count >= 12 else { return nil }
        number = payload.loadBE(UInt64.self, at: 0)
        flags = payload[8]
        let count = Int(payload.loadBE(UInt16.self, at: 10))
        guard number > 0, payload.count == 12 + count * FlowRecord.encodedSize else { return nil }
        records = []
        records.reserveCapacity(count)
        for i in 0..<count {
            guard let r = FlowRecord(decoding: payload[...], at: 12 + i * FlowRecord.encodedSize) else { return nil }
            records.append(r)
        }
    }
}
