import NatTable

/// A node's replication counters, typed: events by `Event`, refusals by `SyncRejection`, records the replica
/// refused by `ApplyFailure`, and datagrams sent by message kind. Each is a slot in an array, counted in place (a
/// resync sends tens of thousands of datagrams a second). `named` is the one table that turns them into the names
/// `tunnat status`, its JSON and the metrics show; nothing else makes those names.
public struct ReplicationCounters: Sendable, Equatable {
    public enum Event: Int, CaseIterable, Sendable {
        case sent, sentBytes, sendErrors, unsentNoSession
        case received, receivedHellos, receivedBytes
        case sessionsEstablished, peerRestarts, sessionsConfirmedByMessage, sessionsDropped
        case rejectedBadHello, rejectedBadHeartbeat, rejectedBadEntries
        case recordsSent, retransmits, recordsApplied, snapshotParts, resyncsStarted, resyncsCompleted
        case entriesNotFromLeader, entriesDuplicate, entriesBeforeResync, entriesOutOfOrder, entriesTooFarAhead
        case coldStarts, takeovers, stepDowns
        case handoversBegun, handoversComplete, handoversFailed, handoversTaken, handoverRefused
        case handoverRepeated, handoverNotFromLeader
        /// New flows held past `hold_new_flows_ms` without a standby's acknowledgement (the replicator's own).
        case holdTimeouts
        /// NAT64 records not sent to a peer whose session speaks a wire format older than v4.
        case nat64RecordsWithheld

        /// The name shown in `tunnat status` and exported: the words of the case, joined by hyphens.
        public var name: String { Self.names[rawValue] }
        static let names: [String] = allCases.map { event in
            "\(event)".reduce(into: "") { name, c in
                if c.isUppercase { name += "-" }
                name += c.lowercased()
            }
        }
    }

    var events = [UInt64](repeating: 0, count: Event.allCases.count)
    var rejections = [UInt64](repeating: 0, count: SyncRejection.allCases.count)
    var applyFailures = [UInt64](repeating: 0, count: ApplyFailure.allCases.count)
    var sentByKind = [(datagrams: UInt64, bytes: UInt64)](repeating: (0, 0), count: Self.kindSlots)
    /// The longest the data plane held the table's lock for replication, in microseconds: a gauge the replicator
    /// reports with the counters.
    public var tableHoldMaxMicroseconds: UInt64 = 0

    static let kindSlots = Int(SyncMessage.Kind.allCases.map(\.rawValue).max()!) + 1

    public init() {}

    public subscript(event: Event) -> UInt64 {
        get { events[event.rawValue] }
        set { events[event.rawValue] = newValue }
    }

    public subscript(rejection: SyncRejection) -> UInt64 { rejections[rejection.rawValue] }
    public subscript(failure: ApplyFailure) -> UInt64 { applyFailures[failure.slot] }
    public subscript(sent kind: SyncMessage.Kind) -> (datagrams: UInt64, bytes: UInt64) { sentByKind[Int(kind.rawValue)] }

    mutating func count(_ event: Event, _ n: UInt64 = 1) { events[event.rawValue] &+= n }
    mutating func count(_ rejection: SyncRejection) { rejections[rejection.rawValue] &+= 1 }
    mutating func count(_ failure: ApplyFailure) { applyFailures[failure.slot] &+= 1 }
    mutating func countSent(_ kind: SyncMessage.Kind, bytes: Int) {
        sentByKind[Int(kind.rawValue)].datagrams &+= 1
        sentByKind[Int(kind.rawValue)].bytes &+= UInt64(bytes)
    }

    /// Every counter that is not zero, by its exported name: events by name, refusals as "rejected-REASON",
    /// refused records as "apply-FAILURE", datagrams sent as "sent-KIND" and "sent-KIND-bytes"; and always, zero or
    /// not, the two the replicator reports of the data plane's hold (hold-timeouts, table-hold-max-us), which
    /// dashboards and alerts expect to find.
    public var named: [(name: String, value: UInt64)] {
        var all: [(String, UInt64)] = []
        for event in Event.allCases where self[event] > 0 || event == .holdTimeouts { all.append((event.name, self[event])) }
        for rejection in SyncRejection.allCases where self[rejection] > 0 { all.append(("rejected-\(rejection)", self[rejection])) }
        for failure in ApplyFailure.allCases where self[failure] > 0 { all.append(("apply-\(failure)", self[failure])) }
        for kind in SyncMessage.Kind.allCases where self[sent: kind].datagrams > 0 {
            all.append(("sent-\(kind)", self[sent: kind].datagrams))
            all.append(("sent-\(kind)-bytes", self[sent: kind].bytes))
        }
        all.append(("table-hold-max-us", tableHoldMaxMicroseconds))
        return all
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.events == b.events && a.rejections == b.rejections && a.applyFailures == b.applyFailures
            && a.sentByKind.elementsEqual(b.sentByKind, by: { $0 == $1 }) && a.tableHoldMaxMicroseconds == b.tableHoldMaxMicroseconds
    }
}

/// JSON: an object of the non-zero counters by name (what `tunnat status --json` has always shown); a name this
/// build does not know (a newer peer's) is skipped when read.
extension ReplicationCounters: Codable {
    public init(from decoder: any Decoder) throws {
        let values = try decoder.singleValueContainer().decode([String: UInt64].self)
        self.init()
        for (name, value) in values {
            if let event = Event.allCases.first(where: { $0.name == name }) {
                self[event] = value
            } else if name.hasPrefix("rejected-"), let r = SyncRejection.allCases.first(where: { "rejected-\($0)" == name }) {
                rejections[r.rawValue] = value
            } else if name.hasPrefix("apply-"), let f = ApplyFailure.allCases.first(where: { "apply-\($0)" == name }) {
                applyFailures[f.slot] = value
            } else if name == "table-hold-max-us" {
                tableHoldMaxMicroseconds = value
            } else if let kind = SyncMessage.Kind.allCases.first(where: { name == "sent-\($0)" }) {
                sentByKind[Int(kind.rawValue)].datagrams = value
            } else if let kind = SyncMessage.Kind.allCases.first(where: { name == "sent-\($0)-bytes" }) {
                sentByKind[Int(kind.rawValue)].bytes = value
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Dictionary(named.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a }))
    }
}

extension ApplyFailure: CaseIterable {
    public static let allCases: [ApplyFailure] = [.notInPool, .tableFull, .conflict]
    var slot: Int {
        switch self {
        case .notInPool: 0
        case .tableFull: 1
        case .conflict: 2
        }
    }
}
