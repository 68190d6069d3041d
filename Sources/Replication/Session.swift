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
/// nor end one. Each hello also carries the sender's run id (random per process): a session established with a
/// new run id means the peer restarted, and whatever it held is gone.
struct PeerSession {
    /// This side's nonce of the established session; 0: none.
    private(set) var local: UInt64 = 0
    /// The peer's nonce of the established session.
    private(set) var remote: UInt64 = 0
    /// This side's challenge of a handshake under way; 0: none.
    private(set) var pending: UInt64 = 0
    /// The peer's run id from the hello that established the session.
    private(set) var remoteRun: UInt64 = 0
    var window = ReplayWindow()
    /// The message keys of the session: this side's sending key, and the peer's by key id (made when needed).
    var sendKey: AEADKey?
    var receiveKeys: [UInt8: AEADKey] = [:]
    /// When this side last answered a hello that had no echo (answers are rate limited).
    var lastAnswer = -Double.infinity
    /// Hellos opened in the current rate period, and when the period began.
    var hellosOpened = 0
    var helloPeriod = -Double.infinity

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

    /// Whether a hello may be opened now: at most `limit` per second per peer, so that a flood of forged hellos
    /// costs a bounded number of key derivations.
    mutating func mayOpenHello(now: Double, limit: Int) -> Bool {
        if now - helloPeriod >= 1 {
            helloPeriod = now
            hellosOpened = 0
        }
        hellosOpened += 1
        return hellosOpened <= limit
    }

    /// An authenticated hello from the peer: its nonce, the nonce it echoes, its flags and its run id.
    mutating func hello(senderNonce: UInt64, echo: UInt64, answerWanted: Bool, run: UInt64, now: Double,
                        answerInterval: Double, random: () -> UInt64) throws(SyncRejection) -> HelloOutcome {
        guard senderNonce != 0 else { throw .staleHello }
        if echo != 0 && echo == pending {
            // The peer echoed this side's fresh challenge: it is live now, and its nonce is the session's.
            let restarted = remoteRun != 0 && run != remoteRun
            local = pending
            remote = senderNonce
            pending = 0
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
        // The peer starts (or restarted): answer with a challenge, without touching the session in place.
        guard now - lastAnswer >= answerInterval else { return .nothing }
        lastAnswer = now
        _ = challenge(random)
        return .answer
    }
}
