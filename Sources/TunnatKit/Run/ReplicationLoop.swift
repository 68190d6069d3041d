import Glibc
import Logging
import NatTable
import Replication
import Synchronization
import SystemCalls
import TunIO

/// Replication and the role in `tunnat run`: the replicator on a thread of its own. Until this node is the active
/// one its table is a replica and translates nothing; the routes follow the role (`RouteLoop.follow`). A planned
/// handover (SIGTERM, or `tunnat handover`) happens once: `handOverOnce`.
final class ReplicationLoop: Component, Sendable {
    let name = "replication"
    let replicator: Replicator
    let logger: Logger
    /// New flows wait for a standby's acknowledgement (`replication.hold_new_flows_ms` above 0).
    let gate: ReplicationGate?
    private let thread = Mutex<NamedThread?>(nil)
    private let handedOver = Atomic<Bool>(false)

    init(_ settings: ReplicationConfiguration, table: LockedNAT, routes: RouteLoop?, sockets: ServiceSockets,
         logger: Logger) throws(LiveDataPlane.Failure) {
        let keyring = try Self.readKeyring(settings)
        let link = try Self.link(settings, sockets: sockets)
        do {
            replicator = try Replicator(config: settings, keyring: keyring, table: table,
                                        health: { routes.map { $0.isHealthy } ?? true },
                                        holdReport: { table.replicationHoldMaxNanoseconds }, link: link, logger: logger)
        } catch {
            throw .init(description: "replication: \(error)", errno: error)
        }
        self.logger = logger
        gate = settings.holdNewFlowsMilliseconds > 0 ? replicator : nil
        routes?.follow(replicator)
    }

    func start() throws(LiveDataPlane.Failure) {
        let replicator = self.replicator
        do {
            let t = try NamedThread("tunnat-replication") { replicator.run() }
            thread.withLock { $0 = t }
        } catch {
            throw .init(description: "replication: \(error)", errno: error)
        }
    }

    func stop() {
        replicator.stop()
        thread.withLock { $0 }?.join()
    }

    /// Hands the active role to a synced standby, the first time it is asked; says what came of it.
    func handOverOnce() -> String {
        guard !handedOver.exchange(true, ordering: .acquiringAndReleasing) else { return "a handover has already run" }
        switch replicator.handOver() {
        case .complete:
            logger.notice("handover complete: the new active holds the routes and every flow; stopping")
            return "handover complete"
        case .notPossible(let why):
            logger.notice("no handover (\(why)); stopping: a standby, if any, takes over when this node falls silent")
            return "no handover: \(why)"
        case .failed(let why):
            logger.error("handover failed (\(why)); stopping anyway")
            return "handover failed: \(why)"
        }
    }

    /// The sync link's socket: the one the service manager kept across a restart, or one bound now (and handed to
    /// it). A port someone else holds is refused with that user's uid.
    static func link(_ settings: ReplicationConfiguration, sockets: ServiceSockets) throws(LiveDataPlane.Failure) -> UDPSyncLink {
        let peers = settings.peers.map(\.endpoint)
        do throws(Errno) {
            if let kept = sockets.adopt("sync", type: Int32(SOCK_DGRAM.rawValue), endpoint: settings.listen) {
                return try UDPSyncLink(adopting: kept, peers: peers)
            }
            let link = try UDPSyncLink(listen: settings.listen, peers: peers)
            sockets.keep(link.fd, name: "sync")
            return link
        } catch {
            let held = error.code == EADDRINUSE ? ServiceSockets.holder(of: settings.listen, tcp: false) : ""
            throw .init(description: "replication.listen \(settings.listen): \(error)\(held)", errno: error)
        }
    }

    /// The shared keys: each at least 32 bytes, in a file owned by this user and readable by it alone.
    static func readKeyring(_ settings: ReplicationConfiguration) throws(LiveDataPlane.Failure) -> SyncKeyring {
        var files = [(key: "replication.key_file", path: settings.keyFile, id: settings.keyID)]
        if let file = settings.acceptKeyFile, let id = settings.acceptKeyID {
            files.append((key: "replication.accept_key_file", path: file, id: id))
        }
        var keys: [UInt8: [UInt8]] = [:]
        for file in files {
            let bytes: [UInt8]
            do { bytes = try FileBytes.readSecret(file.path) } catch {
                throw .init(description: "\(file.key): \(error)")
            }
            guard SyncKeyring.material(bytes) != nil else {
                throw .init(description: "\(file.key) \(file.path): holds \(bytes.count) bytes; it needs at least 32 bytes of secret (for example: head -c 48 /dev/urandom | base64 > \(file.path))")
            }
            keys[UInt8(file.id)] = bytes
        }
        guard let keyring = SyncKeyring(keys: keys, sendingID: UInt8(settings.keyID)) else {
            throw .init(description: "replication: the keys could not be set up")
        }
        return keyring
    }
}
