/// A node's part in an active/standby group.
public enum Role: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Just started: listening for an active peer before doing anything else.
    case starting = 0
    /// Follows an active peer and keeps a replica of its table.
    case standby = 1
    /// Translates, holds the pool address and the routes, and streams its table to the standbys.
    case active = 2

    public var description: String {
        switch self {
        case .starting: "starting"
        case .standby: "standby"
        case .active: "active"
        }
    }
}

/// What a node last heard from a peer's heartbeat.
public struct PeerView: Sendable, Equatable {
    public var node: UInt32
    public var role: Role
    /// The term of the active it is (active) or follows (standby).
    public var term: UInt64
    public var healthy: Bool
    /// A standby holding a complete replica of its active's table.
    public var synced: Bool
    /// The active it follows (standby), 0 if none.
    public var leader: UInt32
    /// When it was heard (monotonic seconds).
    public var heard: Double
    /// An active that holds every managed route and the pool address (a handover waits for it).
    public var routesHeld: Bool

    public init(node: UInt32, role: Role, term: UInt64, healthy: Bool, synced: Bool, leader: UInt32, heard: Double,
                routesHeld: Bool = false) {
        self.routesHeld = routesHeld
        self.node = node
        self.role = role
        self.term = term
        self.healthy = healthy
        self.synced = synced
        self.leader = leader
        self.heard = heard
    }
}

/// The active/standby state machine, a pure function of what the node heard, its own health and its replica's
/// state. Terms order actives: each takeover starts a term larger than any the node has seen, and an active that
/// hears an active of a larger term (or of the same term and a lower node id) steps down. So two actives, if a
/// partition ever makes them, last only until they hear each other.
///
/// - starting: an active heard → standby following it. None heard for `startupWait`: active, unless a synced
///   standby is alive (it has the state and takes over itself) or a starting peer with a lower node id is.
/// - standby: the active silent for `deadAfter`, or reporting itself unhealthy → take over, but only once the
///   replica is complete (synced), only when healthy, and only the lowest-numbered such standby. A standby that
///   lost its active before its replica was complete starts over (`starting`): no node can preserve
///   connections then, so the group cold-starts rather than stay down.
/// - A node never cold-starts while it hears a configured peer whose role it cannot know (`unverified`: datagrams
///   from the peer's address that fail the key or the session, or a session just made, before its first
///   heartbeat). What that peer is cannot be known (an active sends
///   hellos too, to a node it has no session with), so it is taken for an active: a restart with a wrong key, or a
///   session not yet mended, must not make a second active. The price: two nodes whose keys differ both wait, and a
///   host forging a peer's address can keep a starting node waiting; it can never make one start.
/// - active: steps down (to standby, resyncing) for an active that outranks it; never otherwise.
public struct RoleMachine: Sendable {
    public enum Transition: Sendable, Equatable {
        /// Take over (from a standby) or cold-start (from starting) as the active of `term`.
        case becomeActive(term: UInt64, coldStart: Bool)
        /// Follow `leader`: drop the replica and resync from it.
        case follow(leader: UInt32, term: UInt64)
        /// The active is gone before the replica was complete.
        case restart
    }

    public let node: UInt32
    public let deadAfter: Double
    public let startupWait: Double
    public private(set) var role = Role.starting
    public private(set) var term: UInt64 = 0
    public private(set) var leader: UInt32 = 0
    /// When the current role began.
    public private(set) var since: Double
    /// The replica is complete (the replicator says so after the end of a bulk resync).
    public var synced = false

    public init(node: UInt32, deadAfter: Double, startupWait: Double, now: Double) {
        self.node = node
        self.deadAfter = deadAfter
        self.startupWait = startupWait
        since = now
    }

    /// Decides on what was heard; at most one transition per step.
    public mutating func step(now: Double, peers: [PeerView], healthy: Bool, unverified: [UInt32] = []) -> Transition? {
        let alive = peers.filter { now - $0.heard < deadAfter && $0.node != node }
        let actives = alive.filter { $0.role == .active }
        // The active that outranks the others: the highest term, then the lowest node id.
        let best = actives.min { ($1.term, $0.node) < ($0.term, $1.node) }
        switch role {
        case .active:
            if let best, best.term > term || (best.term == term && best.node < node) {
                return follow(best, now: now)
            }
            return nil
        case .standby:
            if let best, best.node != leader || best.term != term { return follow(best, now: now) }
            let leaderView = actives.first { $0.node == leader }
            guard leaderView == nil || leaderView?.healthy == false else { return nil }
            guard synced else {
                // An active that is there but unhealthy keeps serving until someone can take over.
                if leaderView != nil { return nil }
                role = .starting
                since = now
                synced = false
                return .restart
            }
            guard healthy, isFirst(among: alive.filter { $0.role == .standby && $0.synced && $0.healthy && $0.leader == leader })
            else { return nil }
            return becomeActive(peers: alive, now: now, coldStart: false)
        case .starting:
            if let best { return follow(best, now: now) }
            guard now - since >= startupWait, healthy else { return nil }
            // A synced standby holds the table: it takes over, not us.
            if alive.contains(where: { $0.role == .standby && $0.synced }) { return nil }
            // Someone there, unauthenticated: it may be the active.
            if unverified.contains(where: { $0 != node }) { return nil }
            guard isFirst(among: alive.filter { $0.role != .active && $0.healthy }) else { return nil }
            return becomeActive(peers: alive, now: now, coldStart: true)
        }
    }

    /// The active this standby follows is leaving and hands over (a planned handover): take over now, with a
    /// larger term, if the replica is complete and this node healthy; nil (nothing changes) otherwise.
    public mutating func handover(from active: UInt32, now: Double, peers: [PeerView], healthy: Bool) -> Transition? {
        guard role == .standby, active == leader, synced, healthy else { return nil }
        return becomeActive(peers: peers.filter { now - $0.heard < deadAfter && $0.node != node }, now: now, coldStart: false)
    }

    func isFirst(among others: [PeerView]) -> Bool { !others.contains { $0.node < node } }

    mutating func follow(_ active: PeerView, now: Double) -> Transition {
        role = .standby
        leader = active.node
        term = active.term
        synced = false
        since = now
        return .follow(leader: active.node, term: active.term)
    }

    mutating func becomeActive(peers: [PeerView], now: Double, coldStart: Bool) -> Transition {
        // Terms come from peers' heartbeats: authenticated, but numbers from the network all the same. At the
        // largest one the next term stays there (ties go to the lower node id) rather than overflow.
        let highest = max(term, peers.map(\.term).max() ?? 0)
        term = highest == .max ? .max : highest + 1
        role = .active
        leader = node
        since = now
        return .becomeActive(term: term, coldStart: coldStart)
    }
}
