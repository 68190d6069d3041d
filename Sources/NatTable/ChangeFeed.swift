import PacketKit

/// One change to the table as the standby needs it: a flow (with its mapping) that exists now in this state, or
/// one that is gone. Records are idempotent, so a replica that applies them in order holds the same flows and
/// mappings as the table that made them. 24 bytes on the wire (`encode`, `init(decoding:)`).
///
/// What is left out on purpose: when a flow was last seen. A replica never expires anything on its own (the active
/// says when a flow ends), and a table that becomes live starts every flow's idle timer afresh (`goLive`).
public struct FlowRecord: Equatable, Sendable, CustomStringConvertible {
    public enum Operation: UInt8, Sendable {
        case upsert = 1
        case delete = 2
        /// NAT64 (wire format v4): the IPv6 host behind an alias (`internalAddress`, in 240.0.0.0/4) is
        /// `hostAddress`. Precedes the first upsert of a mapping from that alias.
        case host = 3
    }

    public static let encodedSize = 24

    public var operation: Operation
    /// 6 TCP, 17 UDP, 1 ICMP (the identifier stands in for both ports).
    public var protocolNumber: UInt8
    /// The TCP tracker's bits (SYN and FIN each way, RST), or the UDP tracker's (who made the flow, answered,
    /// assured, request/response); 0 for ICMP. A UDP flow recorded with 0 (by a node that did not track UDP) is
    /// taken as assured.
    public var tcpState: UInt8
    public var internalAddress: IPv4Address
    public var internalPort: UInt16
    public var externalAddress: IPv4Address
    public var externalPort: UInt16
    public var remoteAddress: IPv4Address
    public var remotePort: UInt16
    /// `.host` records only: the IPv6 address, carried in the bytes where other records have ports and addresses.
    public var hostAddress: IPv6Address?

    /// A `.host` record: `alias` stands for `address`.
    public init(host address: IPv6Address, alias: IPv4Address) {
        self.init(operation: .host, protocolNumber: 0, internalAddress: alias, internalPort: 0,
                  externalAddress: IPv4Address(0), externalPort: 0, remoteAddress: IPv4Address(0), remotePort: 0)
        hostAddress = address
    }

    /// Whether only a node that speaks NAT64's records (wire format v4) may be sent this record: a host record,
    /// or a flow of an IPv6 host's alias.
    public var isNAT64: Bool { operation == .host || internalAddress.value & 0xF000_0000 == 0xF000_0000 }

    public init(operation: Operation, protocolNumber: UInt8, tcpState: UInt8 = 0, internalAddress: IPv4Address,
                internalPort: UInt16, externalAddress: IPv4Address, externalPort: UInt16, remoteAddress: IPv4Address,
                remotePort: UInt16) {
        self.operation = operation
        self.protocolNumber = protocolNumber
        self.tcpState = tcpState
        self.internalAddress = internalAddress
        self.internalPort = internalPort
        self.externalAddress = externalAddress
        self.externalPort = externalPort
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
    }

    public var description: String {
        if operation == .host, let hostAddress { return "host \(internalAddress) is \(hostAddress)" }
        return "\(operation) \(protocolNumber) \(internalAddress):\(internalPort) as \(externalAddress):\(externalPort) "
            + "with \(remoteAddress):\(remotePort) tcp=\(tcpState)"
    }

    /// Appends the 24-byte form: operation, protocol, TCP state, 0, then internal address and port, external port,
    /// external address, remote address and port, 0 (big-endian).
    public func encode(into out: inout [UInt8]) {
        if operation == .host {
            // operation, 0, 0, 0, alias, the IPv6 address (16 bytes).
            out += [operation.rawValue, 0, 0, 0]
            out.appendBE(internalAddress.value)
            let address = hostAddress ?? IPv6Address(high: 0, low: 0)
            out.appendBE(address.high)
            out.appendBE(address.low)
            return
        }
        out.append(operation.rawValue)
        out.append(protocolNumber)
        out.append(tcpState)
        out.append(0)
        out.appendBE(internalAddress.value)
        out.appendBE(internalPort)
        out.appendBE(externalPort)
        out.appendBE(externalAddress.value)
        out.appendBE(remoteAddress.value)
        out.appendBE(remotePort)
        out.appendBE(UInt16(0))
    }

    /// Reads the 24-byte form at `offset`; nil if it is cut short or names an unknown operation or protocol.
    public init?(decoding bytes: ArraySlice<UInt8>, at offset: Int) {
        let base = bytes.startIndex + offset
        guard offset >= 0, base + Self.encodedSize <= bytes.endIndex,
              let operation = Operation(rawValue: bytes[base]) else { return nil }
        func get<T: FixedWidthInteger>(_ at: Int, _ type: T.Type) -> T { bytes.loadBE(type, at: offset + at) }
        if operation == .host {
            let alias = get(4, UInt32.self)
            guard bytes[base + 1] == 0, alias & 0xF000_0000 == 0xF000_0000, alias & 0x0FFF_FFFF != 0 else { return nil }
            self.init(host: IPv6Address(high: get(8, UInt64.self), low: get(16, UInt64.self)), alias: IPv4Address(alias))
            return
        }
        guard [IPProtocol.tcp.value, IPProtocol.udp.value, IPProtocol.icmp.value].contains(bytes[base + 1])
        else { return nil }
        self.init(operation: operation, protocolNumber: bytes[base + 1], tcpState: bytes[base + 2],
                  internalAddress: IPv4Address(get(4, UInt32.self)), internalPort: get(8, UInt16.self),
                  externalAddress: IPv4Address(get(12, UInt32.self)), externalPort: get(10, UInt16.self),
                  remoteAddress: IPv4Address(get(16, UInt32.self)), remotePort: get(20, UInt16.self))
    }
}

/// Why a record could not be applied to a replica. Counted by the caller; the record is skipped.
public enum ApplyFailure: Error, Equatable, Sendable {
    /// The external address is not one of this node's pool addresses: the peers are configured differently.
    case notInPool
    /// The replica is at `maxFlows`.
    case tableFull
    /// The internal endpoint is mapped to another external one, or the external port is held by another
    /// mapping: the replica disagrees with the active (it needs a resync).
    case conflict
}

extension NAT {
    /// How many changes wait for `takeChanges()` at most. Past that they are dropped and `takeChanges` reports an
    /// overflow: the replicas then need a bulk resync, which is cheaper than an unbounded queue.
    public static let maxPendingChanges = 1 << 16

    // MARK: The active's side

    /// Starts or stops recording changes for replication. Stopping discards what was not taken.
    public func recordChanges(_ on: Bool) {
        recording = on
        changes.removeAll(keepingCapacity: on)
        changesOverflowed = false
    }

    /// The changes since the last call, oldest first, and whether some were lost to an overflow since then. The
    /// newest of them has serial number `changeSerial`.
    public func takeChanges() -> (records: [FlowRecord], overflowed: Bool) {
        defer {
            changes.removeAll(keepingCapacity: true)
            changesOverflowed = false
        }
        return (changes, changesOverflowed)
    }

    func record(_ operation: FlowRecord.Operation, flow f: UInt32) {
        changeSerial &+= 1
        guard changes.count < Self.maxPendingChanges else {
            changes.removeAll(keepingCapacity: true)
            changesOverflowed = true
            return
        }
        changes.append(flowRecord(operation, f))
    }

    /// Records that `alias` now stands for an IPv6 host (its first mapping was made).
    func recordHost(alias: UInt32) {
        guard let r = hostRecord(alias: alias) else { return }
        changeSerial &+= 1
        guard changes.count < Self.maxPendingChanges else {
            changes.removeAll(keepingCapacity: true)
            changesOverflowed = true
            return
        }
        changes.append(r)
    }

    func hostRecord(alias: UInt32) -> FlowRecord? {
        guard let address = nat64?.hosts.address(ofAlias: alias) else { return nil }
        return FlowRecord(host: address, alias: IPv4Address(alias))
    }

    func flowRecord(_ operation: FlowRecord.Operation, _ f: UInt32) -> FlowRecord {
        let flow = store.flows[Int(f)]
        let map = store.mappings[Int(flow.mapping)]
        let number: UInt8 = switch ProtocolClass(rawValue: map.protocolClass)! {
        case .tcp: IPProtocol.tcp.value
        case .udp: IPProtocol.udp.value
        case .icmp: IPProtocol.icmp.value
        }
        return FlowRecord(operation: operation, protocolNumber: number, tcpState: flow.tcp.bits,
                          internalAddress: IPv4Address(map.internalAddress), internalPort: map.internalPort,
                          externalAddress: IPv4Address(map.externalAddress), externalPort: map.externalPort,
                          remoteAddress: IPv4Address(flow.remoteAddress), remotePort: flow.remotePort)
    }

    /// How many flow slots one call of `snapshot(from:)` reads at most: the bound on how long a resync holds the
    /// data plane's lock at a time: a million-flow table misses the cache on almost every slot (about 150 ns), so 2048 slots hold it for about 0.3 ms.
    public static let snapshotSlots = 2048

    /// The live flows in the slots from `cursor` on (0: the beginning), at most `slots` slots, as upserts; and where
    /// the next part starts, nil at the end. Flows made or removed behind the cursor are changes, recorded as such.
    public func snapshot(from cursor: Int, slots: Int = NAT.snapshotSlots) -> SnapshotPart {
        let end = Int(store.flowHighWater)
        let first = max(cursor, 1)
        let last = min(end, first + max(slots, 1) - 1)
        var records: [FlowRecord] = []
        if first <= last {
            records.reserveCapacity(min(last - first + 1, store.flowCount))
            var hostsSent: Set<UInt32> = []
            for i in first...last where store.flows[i].mapping != 0 {
                let alias = store.mappings[Int(store.flows[i].mapping)].internalAddress
                // An IPv6 host's flows come after its host record, once per part (records are idempotent).
                if Nat64Hosts.isAlias(alias), hostsSent.insert(alias).inserted, let host = hostRecord(alias: alias) {
                    records.append(host)
                }
                records.append(flowRecord(.upsert, UInt32(i)))
            }
        }
        return SnapshotPart(records: records, next: last >= end ? nil : last + 1)
    }

    /// Every flow as an upsert: what a replica needs to start from (tests; replication walks in parts).
    public func snapshot() -> [FlowRecord] {
        var out: [FlowRecord] = []
        var cursor: Int? = 0
        while let c = cursor {
            let part = snapshot(from: c)
            out += part.records
            cursor = part.next
        }
        return out
    }

    // MARK: The standby's side

    /// Makes this table a replica (it drops packets and expires nothing) or the live table. Going live starts
    /// every flow's idle timer at `now`, so that nothing expires at once for having
    /// been replicated long ago.
    public func setLive(_ live: Bool, now: NatInstant) {
        guard live != isLive else { return }
        isLive = live
        guard live else { return }
        // Equal times keep each timer list in order, so nothing needs to move.
        let t = now.seconds
        for timer in 0..<UInt8(TimerClass.count) {
            var f = store.oldestFlow(timer)
            while f != 0 {
                store.flows[Int(f)].lastSeen = t
                f = store.flows[Int(f)].newer
            }
        }
    }

    /// Removes every flow and mapping (a replica about to be resynced). Not recorded as changes.
    public func removeAll() {
        let wasRecording = recording
        recording = false
        defer { recording = wasRecording }
        for timer in 0..<UInt8(TimerClass.count) {
            while case let f = store.oldestFlow(timer), f != 0 { removeFlow(f) }
        }
        nat64?.hosts.removeUnmapped()
    }

    /// Applies one record of the active's table. Not recorded as a change itself.
    public func apply(_ r: FlowRecord, now: NatInstant) throws(ApplyFailure) {
        guard let proto = Self.protocolClass(IPProtocol(r.protocolNumber)) else {
            if r.operation == .host { return try applyHost(r) }
            throw .conflict
        }
        let cls = proto.rawValue
        let existing = store.findMapping(internal: cls, r.internalAddress.value, r.internalPort)
        switch r.operation {
        case .host:
            throw .conflict
        case .delete:
            guard existing != 0 else { return }
            let f = store.findFlow(existing, r.remoteAddress.value, r.remotePort)
            guard f != 0 else { return }
            let wasRecording = recording
            recording = false
            removeFlow(f)
            recording = wasRecording
        case .upsert:
            var m = existing
            if m != 0 {
                let map = store.mappings[Int(m)]
                guard map.externalAddress == r.externalAddress.value, map.externalPort == r.externalPort else {
                    throw .conflict
                }
            } else {
                guard let slot = poolIndex(r.externalAddress.value) else { throw .notInPool }
                // An IPv6 host's mapping needs the host, which its host record brought; a replica that cannot hold
                // IPv6 hosts (no NAT64, or fewer of them) skips their flows, counted, as it skipped the host.
                if Nat64Hosts.isAlias(r.internalAddress.value) {
                    guard let nat64, Int(Nat64Hosts.index(r.internalAddress.value)) <= nat64.hosts.capacity else {
                        counters.nat64RecordsSkipped &+= 1
                        return
                    }
                    guard nat64.hosts.address(ofAlias: r.internalAddress.value) != nil else { throw .conflict }
                }
                guard store.flowCount < store.capacity else { throw .tableFull }
                let poolSlot = UInt8(slot)
                guard ports.isFree(poolSlot, cls, r.externalPort) else { throw .conflict }
                ports.take(poolSlot, cls, r.externalPort)
                nat64MappingAdded(r.internalAddress.value)
                m = store.insertMapping(Mapping(
                    internalAddress: r.internalAddress.value, externalAddress: r.externalAddress.value,
                    internalPort: r.internalPort, externalPort: r.externalPort, protocolClass: cls, pool: poolSlot,
                    flows: 0, nextByInternal: 0, nextByExternal: 0))
            }
            let tracker = TCPTracker(bits: proto == .icmp ? 0 : r.tcpState)
            let timer: TimerClass = switch proto {
            case .tcp: tracker.timer
            case .udp: UDPTracker(bits: tracker.bits).timer
            case .icmp: .icmp
            }
            let f = store.findFlow(m, r.remoteAddress.value, r.remotePort)
            if f != 0 {
                store.flows[Int(f)].tcp = tracker
                store.touch(f, now: now.seconds, timer: timer.madeFromOutside(store.flows[Int(f)].inboundCreated))
                return
            }
            guard store.flowCount < store.capacity else {
                if store.mappings[Int(m)].flows == 0 { releaseMapping(m) }
                throw .tableFull
            }
            // Made from outside: against the inbound budget, as on the active, not the host's.
            let inbound = switch proto {
            case .tcp: tracker.bits & TCPTracker.createdInbound != 0
            case .udp: tracker.bits & UDPTracker.createdInbound != 0
            case .icmp: false
            }
            _ = insertFlow(m, remote: r.remoteAddress.value, r.remotePort, tcp: tracker, timer: timer,
                           now: now.seconds, inboundCreated: inbound)
        }
    }
}

/// A part of a walk over the table: the flows of some slots, and where the next part starts (nil: the walk is over).
public struct SnapshotPart: Sendable, Equatable {
    public var records: [FlowRecord]
    public var next: Int?

    public init(records: [FlowRecord], next: Int?) {
        self.records = records
        self.next = next
    }
}

/// What replication takes from the live table in one go: the changes since the last time and, when asked for,
/// parts of the table read at the same instant (so that each part is newer than every change taken with it).
public struct TableChanges: Sendable {
    public var records: [FlowRecord]
    /// Some changes were lost to the bounded queue: every standby needs a bulk resync.
    public var overflowed: Bool
    /// The serial number of the newest change (`NAT.changeSerial`).
    public var serial: UInt64
    /// One part for each cursor asked for, in order.
    public var parts: [SnapshotPart]

    public init(records: [FlowRecord], overflowed: Bool, serial: UInt64, parts: [SnapshotPart] = []) {
        self.records = records
        self.overflowed = overflowed
        self.serial = serial
        self.parts = parts
    }
}

/// The data plane's table as replication sees it: a narrow, typed port. The data plane implements it by taking
/// its lock for each call; nothing of the table escapes the call, and replication keeps its own state outside.
public protocol ReplicaPort: AnyObject, Sendable {
    /// The changes since the last call, and a part of the table from each of `cursors` (`NAT.snapshot(from:)`).
    func takeChanges(snapshotFrom cursors: [Int]) -> TableChanges
    /// Applies records of the active's table in order; the failures (the records skipped).
    func apply(_ records: [FlowRecord], now: NatInstant) -> [ApplyFailure]
    /// Becomes the live table (translating, recording changes) or a replica (dropping, recording nothing); a
    /// replica made with `clearing` starts empty. Returns whether the table was live before, and its flows.
    @discardableResult
    func setLive(_ live: Bool, clearing: Bool, now: NatInstant) -> (wasLive: Bool, flows: Int)
    /// Empties a replica (the start of a bulk resync).
    func removeAll()
    var flowCount: Int { get }
}

extension NAT {
    /// `ReplicaPort.takeChanges` on the table itself (the port's implementations call it under their lock).
    public func takeChanges(snapshotFrom cursors: [Int]) -> TableChanges {
        let (records, overflowed) = takeChanges()
        return TableChanges(records: records, overflowed: overflowed, serial: changeSerial,
                            parts: cursors.map { snapshot(from: $0) })
    }

    /// `ReplicaPort.apply`: each record in order, the failures collected.
    public func apply(_ records: [FlowRecord], now: NatInstant) -> [ApplyFailure] {
        var failures: [ApplyFailure] = []
        for r in records {
            do throws(ApplyFailure) { try apply(r, now: now) } catch { failures.append(error) }
        }
        return failures
    }

    /// `ReplicaPort.setLive`.
    public func setLive(_ live: Bool, clearing: Bool, now: NatInstant) -> (wasLive: Bool, flows: Int) {
        let was = isLive
        setLive(live, now: now)
        recordChanges(live)
        if clearing { removeAll() }
        return (was, flowCount)
    }
}

/// Lets a worker hold the packets that created flows until a standby has the flows (the replicator implements it).
public protocol ReplicationGate: AnyObject, Sendable {
    /// How long a batch that created flows may be held, in milliseconds; 0 turns holding off.
    var holdMilliseconds: Int { get }
    /// Returns once every change up to `serial` is acknowledged by the standbys, or after `holdMilliseconds`.
    func waitUntilReplicated(_ serial: UInt64)
}
