import Logging
import SystemCalls

/// The policy routing that puts the TUN device in the path (`PolicyRouting`): installed at start; at stop the
/// routes through the device go, and the rules and the blackhole stay unless `tun.routing.on_stop` is remove, so
/// that nothing leaves untranslated while tunnat is not running.
final class Routing: Component {
    let name = "policy routing"
    let config: TunnatConfiguration
    let device: String
    let logger: Logger
    private var routing: PolicyRouting?

    init(_ config: TunnatConfiguration, device: String, logger: Logger) {
        self.config = config
        self.device = device
        self.logger = logger
    }

    /// With `tun.routing.interface` empty, the private side is where the main table routes the private prefixes
    /// (found now, logged); a private source is accepted from there only.
    func start() throws(LiveDataPlane.Failure) {
        let settings = config.tun.routing
        var interfaces = [settings.interface]
        if settings.interface.isEmpty {
            let found: (interfaces: [String], sharedWithDefault: [String])
            do { found = try PolicyRouting.findPrivateInterfaces(prefixes: config.nat.privatePrefixes, device: device) } catch {
                throw .init(description: error.description)
            }
            interfaces = found.interfaces
            logger.info("private side: the interfaces of the main table's routes into the private prefixes (tun.routing.interface is empty)",
                        metadata: ["interfaces": "\(interfaces.joined(separator: ","))"])
            if !found.sharedWithDefault.isEmpty {
                logger.notice("\(found.sharedWithDefault.joined(separator: ", ")) also carries the default route: tunnat cannot tell a spoofed private source arriving there from a real one; on a one-ENI AWS NAT instance the VPC's own anti-spoofing is what stops them, elsewhere give the private side an interface of its own")
            }
        }
        let routing = PolicyRouting(device: device, routing: settings, nat: config.nat, interfaces: interfaces)
        let counts: (added: Int, found: Int)
        do { counts = try routing.install() } catch { throw .init(description: "installing policy routing: \(error)") }
        self.routing = routing
        if !routing.staleRemoved.isEmpty {
            logger.notice("an earlier run's forwarding fence removed: this configuration makes another", metadata: [
                "removed": "\(routing.staleRemoved.joined(separator: "; "))",
            ])
        }
        let rules = config.nat.privatePrefixes.flatMap { prefix in interfaces.map { "from \(prefix) iif \($0)" } }
        logger.info("policy routing installed", metadata: [
            "table": "\(settings.table)", "priority": "\(settings.priority)", "rules": "\(rules.joined(separator: ", "))",
            "pool": "\(config.nat.poolAddresses.map(\.description).joined(separator: ","))",
            "added": "\(counts.added)", "already-there": "\(counts.found)",
            "forwarding-fence": "\(settings.fenceForwarding ? "on" : "off")",
        ])
    }

    func stop() {
        guard let routing else { return }
        let kept = routing.stop()
        switch config.tun.routing.onStop {
        case .keep:
            logger.notice("policy routing kept (tun.routing.on_stop: keep): private sources still go to table \(config.tun.routing.table), where the blackhole drops them, so nothing leaves untranslated; 'tunnat routing remove' with this configuration gives the host back", metadata: [
                "kept": "\(kept.count) rule(s) and route(s)", "removed": "the routes through \(device)",
            ])
        case .remove:
            logger.notice("policy routing removed (tun.routing.on_stop: remove): with IP forwarding on, the kernel forwards private traffic untranslated")
        }
    }
}
