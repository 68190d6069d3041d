import Glibc
import Logging
import SystemCalls

/// The listening sockets that must outlive a restart of tunnat: the metrics endpoint ("metrics") and the sync
/// link ("sync"). Were they closed between one run and the next, any local user could bind the port first and
/// keep tunnat off it (or answer Prometheus in its name). Under systemd each is handed to the service manager's
/// descriptor store when bound (`FileDescriptorStoreMax=` in the unit), which keeps it while the service restarts
/// and passes it back; a socket unit may pass one as well (`FileDescriptorName=`). Without a service manager the
/// port is bound as before, and a port someone else holds is reported with that user's uid.
final class ServiceSockets: Sendable {
    let inherited: InheritedSockets
    let notify: NotifySocket?
    let logger: Logger

    init(inherited: InheritedSockets, notify: NotifySocket?, logger: Logger) {
        self.inherited = inherited
        self.notify = notify
        self.logger = logger
    }

    /// The passed socket named `name` if it is of `type` (SOCK_STREAM listening, or SOCK_DGRAM) on `endpoint`;
    /// one of another shape (the configuration changed since it was stored) is closed, dropped from the store, and
    /// nil is returned, so that the caller binds `endpoint` anew.
    func adopt(_ name: String, type: Int32, endpoint: UDPEndpoint) -> FileDescriptor? {
        guard let passed = inherited.take(name) else { return nil }
        let shape = try? Syscall.socketShape(passed.rawValue)
        let fits = shape.map { $0.type == type && $0.listening == (type == Int32(SOCK_STREAM.rawValue)) && $0.local == endpoint } ?? false
        guard fits else {
            logger.notice("\(name): the socket the service manager passed is not the one configured; binding anew",
                          metadata: ["passed": "\(shape?.local.map(\.description) ?? "not IPv4")", "configured": "\(endpoint)"])
            notify?.forget(name)
            return nil
        }
        logger.info("\(name): socket from the service manager", metadata: ["listen": "\(endpoint)"])
        return passed
    }

    /// Hands a socket just bound to the service manager's store, when there is one.
    func keep(_ fd: Int32, name: String) {
        guard let notify else { return }
        if let error = notify.store(fd, name: name) {
            logger.notice("\(name): the service manager did not keep the socket; a restart will bind it again", metadata: ["error": "\(error)"])
        }
    }

    /// Drops `name` from the store: a socket this run took but could not serve on (the retry binds anew).
    func forget(_ name: String) { notify?.forget(name) }

    /// Closes the passed sockets no part of this run took, and drops them from the store.
    func closeLeftovers() {
        for name in inherited.closeUntaken() {
            logger.notice("a socket the service manager passed is not used by this configuration; closed", metadata: ["name": "\(name)"])
            notify?.forget(name)
        }
    }

    /// " (held by uid N)" for a port taken by another socket in this network namespace, or "".
    static func holder(of endpoint: UDPEndpoint, tcp: Bool) -> String {
        guard let uid = PortHolders.uid(port: endpoint.port, address: endpoint.address, tcp: tcp) else { return "" }
        return " (held by uid \(uid)\(uid == Syscall.effectiveUserID ? ", this user" : ""))"
    }
}
