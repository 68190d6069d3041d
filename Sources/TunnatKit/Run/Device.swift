import Logging
import SystemCalls
import TunIO

/// The TUN device of `tunnat run`, made and brought up with the kernel settings it needs: IP forwarding on (the
/// kernel forwards every packet into the TUN, and in tun output out of it again), strict reverse-path filtering off
/// where translated replies leave the TUN. Goes when the process does.
enum Device {
    static func open(_ tun: TunConfiguration, nat64: Bool = false, logger: Logger) throws(LiveDataPlane.Failure) -> TunDevice {
        if nat64, let forward = KernelSettings.read("net.ipv6.conf.all.forwarding"), forward != "1" {
            throw .init(description: "net.ipv6.conf.all.forwarding is \(forward): with nat.nat64 the kernel must forward IPv6 packets into and out of \(tun.name); enable it with 'sysctl -w net.ipv6.conf.all.forwarding=1'")
        }
        if let forward = KernelSettings.read("net.ipv4.ip_forward"), forward != "1" {
            throw .init(description: "net.ipv4.ip_forward is \(forward): the kernel must forward packets into and out of \(tun.name); enable it with 'sysctl -w net.ipv4.ip_forward=1'")
        }
        if tun.output != .raw, KernelSettings.read("net.ipv4.conf.all.rp_filter") == "1" {
            throw .init(description: "net.ipv4.conf.all.rp_filter is 1 (strict): the kernel would drop translated replies coming out of \(tun.name); set it to 0 or 2 (loose) with 'sysctl -w net.ipv4.conf.all.rp_filter=2'")
        }
        let queueCount = tun.queues > 0 ? tun.queues : Syscall.onlineProcessors
        let device: TunDevice
        do {
            device = try TunDevice(name: tun.name, queueCount: queueCount, offloads: tun.offloads)
        } catch {
            throw .init(description: error.description, errno: error.errno)
        }
        // Replies leave the TUN with sources that route elsewhere; the device is ours, so loosen it here.
        _ = KernelSettings.write("net.ipv4.conf.\(tun.name).rp_filter", "0")
        if nat64 {
            // IPv6 on, for the route to the NAT64 prefix, but no address and so none of the kernel's own chatter on
            // the device (router solicitations, MLD reports), which would show up as drops.
            _ = KernelSettings.write("net.ipv6.conf.\(tun.name).addr_gen_mode", "1")
            _ = KernelSettings.write("net.ipv6.conf.\(tun.name).accept_ra", "0")
            _ = KernelSettings.write("net.ipv6.conf.\(tun.name).router_solicitations", "0")
            _ = KernelSettings.write("net.ipv6.conf.\(tun.name).disable_ipv6", "0")
        } else {
            // Without NAT64, tunnat translates IPv4 only; without this the kernel's own IPv6 chatter on the device
            // (router solicitations) would show up as not-ipv4 drops.
            _ = KernelSettings.write("net.ipv6.conf.\(tun.name).disable_ipv6", "1")
        }
        do { try device.bringUp(mtu: tun.mtu) } catch { throw .init(description: error.description, errno: error.errno) }
        logger.info("device up", metadata: [
            "device": "\(device.name)", "queues": "\(device.queues.count)",
            "virtio-headers": "\(device.virtioHeaders)", "offloads": "\(device.offloads)", "output": "\(tun.output)",
        ])
        return device
    }
}
