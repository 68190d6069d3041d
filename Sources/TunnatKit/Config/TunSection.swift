import Yams

/// The live data plane: the TUN device, where translated packets go, and the policy routing that feeds it.
public struct TunConfiguration: Sendable, Equatable {
    public enum Output: String, Sendable, CaseIterable {
        /// Back into the TUN with virtio-net headers: GSO super-packets stay whole.
        case tun
        /// Through a raw IP socket (IP_HDRINCL): GSO packets are split and checksums finished first.
        case raw
        /// Straight out of the egress interface through a packet socket with virtio-net headers, next hops from
        /// the kernel's route and neighbour tables; back into the TUN whenever those are not known yet.
        case packet
    }
    public static let defaultControlSocket = "/run/tunnat.sock"

    public var name = "tun0"
    /// Queues, one worker thread each; 0 means one per core.
    public var queues = 0
    public var offloads = true
    /// Read the queues through io_uring (one multishot read each, Linux 6.7) where the kernel allows it; read(2)
    /// and poll(2) otherwise, and always when false.
    public var ioUring = true
    /// 0 keeps the kernel's default (1500).
    public var mtu = 0
    public var output = Output.packet
    public var routing = Routing()

    public struct Routing: Sendable, Equatable {
        /// What a clean stop does with the routing that keeps private sources from leaving untranslated.
        public enum OnStop: String, Sendable, CaseIterable {
            /// Keep the rules and the blackhole in the table, so that private traffic is dropped while tunnat is not
            /// running (fail closed); only the routes through the device go, with the device.
            case keep
            /// Remove everything: the host forwards private traffic untranslated again, as it did before tunnat.
            case remove
        }

        /// Install the policy routing on start.
        public var install = true
        /// The routing table that holds `default dev <tun>`.
        public var table = 100
        /// The priority of the `ip rule`s that send private sources to that table.
        public var priority = 100
        /// The interface private traffic arrives on; empty: the interfaces of the main table's routes into the
        /// private prefixes, found on start. Private sources arriving anywhere else are never translated.
        public var interface = ""
        /// `keep` unless the file says otherwise: fail closed.
        public var onStop = OnStop.keep
        /// The host forwards nothing tunnat did not translate (`PolicyRouting.forwardingFence`).
        public var fenceForwarding = true
        public init() {}
    }

    public init() {}
}

extension TunConfiguration {
    /// Everything the kernel would refuse or that would break the host's routing, as (key, what is accepted) pairs.
    public func problems() -> [(key: String, problem: String)] {
        var found: [(String, String)] = []
        if name.isEmpty || name.utf8.count > 15 || !name.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "/" }) {
            found.append(("name", "expected an interface name of 1 to 15 characters without '/' or spaces, got '\(name)'"))
        }
        if !(0...64).contains(queues) { found.append(("queues", "expected a whole number from 0 to 64, got \(queues)")) }
        if mtu != 0 && !(576...65535).contains(mtu) {
            found.append(("mtu", "expected 0 (the kernel's default) or 576 to 65535, got \(mtu)"))
        }
        if !(1...0x7FFF_FFFF).contains(routing.table) {
            found.append(("routing.table", "expected a whole number from 1 to 2147483647, got \(routing.table)"))
        } else if [253, 254, 255].contains(routing.table) {
            found.append(("routing.table", "tables 253-255 are the kernel's default, main and local tables; pick another, such as 100"))
        }
        let highest = 32766 - 1 - PolicyRouting.prioritiesUsed
        if !(2...highest).contains(routing.priority) {
            found.append(("routing.priority", "expected a whole number from 2 to \(highest) (tunnat's rules take it and the \(PolicyRouting.prioritiesUsed) after it, before the main table's 32766), got \(routing.priority)"))
        }
        return found
    }
}

extension ConfigReader {
    func tun(_ node: Node) throws(ConfigError) -> TunConfiguration {
        let section = try mapping(node, key: "tun", accepted: ["name", "queues", "offloads", "io_uring", "mtu", "output", "routing"])
        var tun = TunConfiguration()
        if let value = section["name"] { tun.name = try scalar(value, "tun.name", expected: "an interface name") }
        if let value = section["queues"] { tun.queues = try integer(value, "tun.queues") }
        if let value = section["offloads"] { tun.offloads = try boolean(value, "tun.offloads") }
        if let value = section["io_uring"] { tun.ioUring = try boolean(value, "tun.io_uring") }
        if let value = section["mtu"] { tun.mtu = try integer(value, "tun.mtu") }
        if let value = section["output"] {
            let text = try scalar(value, "tun.output", expected: "tun, raw or packet")
            guard let output = TunConfiguration.Output(rawValue: text) else {
                throw fail(value, "tun.output", "expected tun, raw or packet, got '\(text)'")
            }
            tun.output = output
        }
        if let value = section["routing"] {
            let routing = try mapping(value, key: "tun.routing",
                                      accepted: ["install", "table", "priority", "interface", "on_stop", "fence_forwarding"])
            if let v = routing["install"] { tun.routing.install = try boolean(v, "tun.routing.install") }
            if let v = routing["table"] { tun.routing.table = try integer(v, "tun.routing.table") }
            if let v = routing["priority"] { tun.routing.priority = try integer(v, "tun.routing.priority") }
            if let v = routing["interface"] {
                tun.routing.interface = try scalar(v, "tun.routing.interface", expected: "an interface name or \"\"")
            }
            if let v = routing["fence_forwarding"] {
                tun.routing.fenceForwarding = try boolean(v, "tun.routing.fence_forwarding")
            }
            if let v = routing["on_stop"] {
                let text = try scalar(v, "tun.routing.on_stop", expected: "keep or remove")
                guard let onStop = TunConfiguration.Routing.OnStop(rawValue: text) else {
                    throw fail(v, "tun.routing.on_stop", "expected keep or remove, got '\(text)'")
                }
                tun.routing.onStop = onStop
            }
        }
        try validate(tun.problems(), prefix: "tun")
        return tun
    }
}
