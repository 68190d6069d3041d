import Hashing

/// The session with one peer and the handshake that starts it, as a sans-IO state machine.
///
/// A session is a pair of 64-bit random nonces, one chosen by each side. Every message carries both, so a message
/// of any earlier session (before a restart of either side, or before a re-handshake) is refused by a comparison,
/// before any decryption, and nothing depends on a clock. Each side proves the other is live now by echoing a
/// challenge nonce the other side has just drawn:
///
/// ```
///  A (no session)                                 B
///  hello(sender nonce a, receiver nonce 0, answer wanted)  ->   B draws b (its challenge), keeps its session
///                                              <-   hello(b, a, answer wanted)
///  a is A's challenge: session (a, b)
///  hello(a, b)                                  ->   b is B's challenge: session (b, a)
/// ```
///
/// A side without a session sends a hello with no echo every heartbeat until it has one (so a lost confirmation is
/// mended by the next round). A hello that echoes a nonce this side does not hold is stale (a replay) and is
/// dropped; a hello with no echo only draws an answer, rate limited, and changes no session. So replayed handshakes can neither start a session
/// nor end one. If the confirmation is lost, the peer's next message of the new session carries this side's
/// challenge as its receiver nonce: once its tag verifies, that message confirms the session instead (`confirm`).
/// Each hello also carries the sender's run id (random per process): a session established with a
/// new run id means the peer restarted, and whatever it held is gone.
struct PeerSession {
    /// Authentic hellos handled per peer and second at most (a peer sends one per heartbeat).
    static let hellosPerSecond = 64
    /// Datagrams opened outside a session per peer and second at most: a few microseconds each, so a flood costs
    /// at most a few percent of the replication thread; beyond it they are dropped unopened (`openRate`).
    static let opensPerSecond = 4096

    /// This side's nonce of the established session; 0: none.
    private(set) var local: UInt64 = 0
    /// The peer's nonce of the established session.
    private(set) var remote: UInt64 = 0
    /// This side's challenge of a handshake under way; 0: none.
    private(set) var pending: UInt64 = 0
    /// The peer's run id from the hello that established the session.
    private(set) var remoteRun: UInt64 = 0
    /// The wire-format version of the session's messages: the newest both sides speak, from the establishing hello
    /// (or the confirming message). Hellos themselves always go in the oldest.
    private(set) var version = SyncMessage.oldestVersion
    var window = ReplayWindow()
    /// The message keys of the session: this side's sending key, and the peer's by key id (made when needed).
    var sendKey: AEADKey?
    var receiveKeys: [UInt8: AEADKey] = [:]
    /// When this side last answered a hello that had no echo (answers are rate limited).
    var lastAnswer = -Double.infinity
    /// The sender nonces this side's last answers echoed (the peer's session nonce, if it takes the answer).
    var answered: [UInt64] = []
    static let answersKept = 4
    /// Datagrams whose key is derived to check them outside a session (hellos, and messages carrying this side's
    /// challenge): bounded before the tag is checked, so that a flood costs a bounded number of derivations.
    var opened = RateBudget()
    /// Authentic hellos handled: bounded after the tag is checked, so that forged hellos cannot use it up.
    var hellos = RateBudget()

    var established: Bool { local != 0 }

    /// What to do about an authenticated hello.
    enum HelloOutcome: Equatable {
        /// The session (local, remote) is established; `restarted` when the peer's run id is new (not on the first
        /// session), `confirm` when the peer still waits for this side's echo.
        case established(restarted: Bool, confirm: Bool)
        /// Send a hello with this side's challenge, echoing the peer's nonce, answer wanted.
        case answer
        /// Nothing to send.
        case nothing
    }

    /// The message is in this session (checked on the header, before decryption).
    func holds(senderNonce: UInt64, receiverNonce: UInt64) -> Bool {
        established && senderNonce == remote && receiverNonce == local
    }

    /// The nonce this side's hellos carry: its challenge, drawn when there is none.
    mutating func challenge(_ random: () -> UInt64) -> UInt64 {
        if pending == 0 { pending = Self.nonzero(random) }
        return pending
    }

    static func nonzero(_ random: () -> UInt64) -> UInt64 {
        var n = random()
        while n == 0 { n = random() }
        return n
    }

    /// Whether a message of a session (not a hello) could confirm one: it echoes this side's challenge, and its
    /// sender nonce is one this side answered with that challenge lately (so a late message of an older run of the
    /// peer, which echoed the same challenge, does not).
    func mayConfirm(senderNonce: UInt64, receiverNonce: UInt64) -> Bool {
        pending != 0 && receiverNonce == pending && senderNonce != 0 && answered.contains(senderNonce)
    }

    /// A message of the peer that echoes this side's challenge (its tag verified, `mayConfirm`): the peer holds the
    /// session (challenge, `senderNonce`), whose confirming hello was lost.
    mutating func confirm(senderNonce: UInt64, version: UInt8) {
        precondition(pending != 0 && senderNonce != 0)
        self.version = version
        answered.removeAll()
        local = pending
        remote = senderNonce
        pending = 0
        window = ReplayWindow()
        sendKey = nil
        receiveKeys = [:]
    }

    /// Ends the session (the peer no longer holds it): the next heartbeat sends a hello instead.
    mutating func drop() {
        local = 0
        remote = 0
        sendKey = nil
        receiveKeys = [:]
    }

    /// An authenticated hello from the peer: its nonce, the nonce it echoes, its flags, its run id, and the version
    /// a session it establishes speaks (negotiated from what the hello says the peer speaks).
    mutating func hello(senderNonce: UInt64, echo: UInt64, answerWanted: Bool, run: UInt64,
                        version: UInt8 = SyncMessage.currentVersion, now: Double, answerInterval: Double,
                        random: () -> UInt64) throws(SyncRejection) -> HelloOutcome {
        guard senderNonce != 0 else { throw .staleHello }
        if echo != 0 && echo == pending {
            // The peer echoed this side's fresh challenge: it is live now, and its nonce is the session's.
            let restarted = remoteRun != 0 && run != remoteRun
            self.version = version
            local = pending
            remote = senderNonce
            pending = 0
            answered.removeAll()
            remoteRun = run
            window = ReplayWindow()
            sendKey = nil
            receiveKeys = [:]
            return .established(restarted: restarted, confirm: answerWanted)
        }
        // A confirmation repeated within the session.
        if echo != 0 && echo == local && senderNonce == remote { return .nothing }
        // Echoing anything else this side does not hold: a replay of an old handshake.
        guard echo == 0 else { throw .staleHello }
        // The peer starts (or restarted): answer with a challenge, without touching the session in place. Only
        // these hellos can be replayed to any effect, so only they count against the budget (an echo of this
        // side's fresh challenge cannot be a replay).
        guard hellos.take(now: now, limit: PeerSession.hellosPerSecond) else { throw .helloRate }
        guard now - lastAnswer >= answerInterval else { return .nothing }
        lastAnswer = now
        _ = challenge(random)
        answered.append(senderNonce)
        if answered.count > Self.answersKept { answered.removeFirst(answered.count - Self.answersKept) }
        return .answer
    }
}

/// At most `limit` events per one-second period.
struct RateBudget {
    var count = 0
    var period = -Double.infinity

    mutating func take(now: Double, limit: Int) -> Bool {
        if now - period >= 1 {
            period = now
            count = 0
        }
        count += 1
        return count <= limit
    }
}
