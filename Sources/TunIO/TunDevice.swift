import Glibc
import SystemCalls

/// Which offloads the kernel accepted for a TUN device (TUNSETOFFLOAD).
public struct TunOffloads: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let checksum = TunOffloads(rawValue: TunControl.offloadChecksum)
    public static let tso4 = TunOffloads(rawValue: TunControl.offloadTSO4)
    public static let tso6 = TunOffloads(rawValue: TunControl.offloadTSO6)
    public static let tsoECN = TunOffloads(rawValue: TunControl.offloadTSOECN)
    public static let uso4 = TunOffloads(rawValue: TunControl.offloadUSO4)
    public static let uso6 = TunOffloads(rawValue: TunControl.offloadUSO6)

    /// What tunnat asks for, then the fallbacks, each a subset of the one before: USO needs Linux 6.2, TSO and
    /// checksum offload are older than IFF_VNET_HDR users care about, and none at all always works.
    public static let preferences: [TunOffloads] = [
        [.checksum, .tso4, .tso6, .tsoECN, .uso4, .uso6],
        [.checksum, .tso4, .tso6, .tsoECN],
        [.checksum],
        [],
    ]

    public var description: String {
        let names: [(TunOffloads, String)] = [(.checksum, "csum"), (.tso4, "tso4"), (.tso6, "tso6"),
                                              (.tsoECN, "tso-ecn"), (.uso4, "uso4"), (.uso6, "uso6")]
        let on = names.filter { contains($0.0) }.map(\.1)
        return on.isEmpty ? "none" : on.joined(separator: ",")
    }
}

/// Why a TUN device or an output could not be made: the failed call (errno included) and what to do about it.
public struct TunError: Error, CustomStringConvertible, Sendable {
    public let errno: Errno?
    public let description: String

    public init(_ description: String, errno: Errno? = nil) {
        self.errno = errno
        self.description = description
    }
}

/// One queue of a TUN device: a file descriptor the kernel hands packets to and takes packets from. A queue
/// belongs to one worker thread. It closes its descriptor when it goes away.
public final class TunQueue: PacketQueue, Sendable {
    let descriptor: FileDescriptor
    public var fd: Int32 { descriptor.rawValue }

    init(_ descriptor: consuming FileDescriptor) { self.descriptor = descriptor }

    /// Reads one frame (virtio-net header + packet); nil when none is waiting.
    @inline(__always)
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        try Syscall.read(fd, buffer)
    }

    /// Writes one frame; the kernel takes a TUN write whole or not at all. A full queue (EAGAIN) is a refused
    /// write, counted by the caller like any other.
    @inline(__always)
    public func write(_ frame: UnsafeRawBufferPointer) throws(Errno) {
        guard try Syscall.write(fd, frame) != nil else { throw Errno("write", EAGAIN) }
    }

    public func waitReadable(orStop stop: StopSignal, milliseconds: Int32) throws(Errno) -> Bool {
        try Syscall.pollIn(fd, stop.fd, timeoutMilliseconds: milliseconds).0
    }

    public var ringDescriptor: Int32? { fd }
}

/// A TUN device (IFF_TUN | IFF_NO_PI), optionally with virtio-net headers and offloads (IFF_VNET_HDR,
/// TUNSETOFFLOAD) and several queues (IFF_MULTI_QUEUE). The device exists while its queues are open: tunnat
/// does not make it persistent, so the kernel deletes it, and every route through it, when tunnat exits.
public final class TunDevice: Sendable {
    public let name: String
    public let queues: [TunQueue]
    public let virtioHeaders: Bool
    public let offloads: TunOffloads

    /// Creates device `name` with `queueCount` queues. Refuses a name that already exists: attaching to someone
    /// else's device would steal its traffic.
    public init(name: String, queueCount: Int, offloads wanted: Bool) throws(TunError) {
        guard !name.isEmpty, name.utf8.count < Int(IFNAMSIZ), !name.contains("/"), !name.contains(" ") else {
            throw TunError("'\(name)' is not a valid interface name (1 to \(IFNAMSIZ - 1) characters, no '/' or spaces)")
        }
        if Syscall.interfaceIndex(name) != 0 {
            throw TunError("a network device named \(name) already exists; choose another name (tun.name) or remove it (ip link del \(name))")
        }
        var flags = TunControl.tun | TunControl.noPacketInformation
        if wanted { flags |= TunControl.virtioHeaders }
        if queueCount > 1 { flags |= TunControl.multiQueue }
        var opened: [TunQueue] = []
        for _ in 0..<max(1, queueCount) {
            do { opened.append(TunQueue(try TunControl.attach(name: name, flags: flags))) } catch {
                throw Self.explain(error, name: name)
            }
        }
        var accepted: TunOffloads = []
        if wanted {
            do {
                for queue in opened { try TunControl.setVirtioHeaderSize(queue.fd, VirtioNetHeader.size) }
            } catch {
                throw Self.explain(error, name: name)
            }
            // The kernel answers EINVAL for a flag it does not know; step down to the next set.
            for candidate in TunOffloads.preferences {
                if TunControl.setOffloads(opened[0].fd, candidate.rawValue) {
                    accepted = candidate
                    break
                }
            }
        }
        self.name = name
        self.queues = opened
        self.virtioHeaders = wanted
        self.offloads = accepted
    }

    /// Sets the MTU (0 leaves the kernel's default, 1500) and brings the link up.
    public func bringUp(mtu: Int) throws(TunError) {
        do { try TunControl.bringUp(name, mtu: mtu) } catch { throw Self.explain(error, name: name) }
    }

    static func explain(_ error: Errno, name: String) -> TunError {
        TunError(explanation(error, name: name), errno: error)
    }

    static func explanation(_ error: Errno, name: String) -> String {
        switch error.code {
        case EPERM, EACCES:
            return "\(error): creating TUN device \(name) needs CAP_NET_ADMIN (run as root, or grant the capability: setcap cap_net_admin,cap_net_raw+ep tunnat)"
        case ENOENT, ENODEV:
            return "\(error): the kernel has no TUN support here (/dev/net/tun is missing; modprobe tun)"
        case EBUSY:
            return "\(error): TUN device \(name) is in use by another process"
        case EINVAL:
            return "\(error): the kernel refused the TUN settings for \(name) (a device of that name with other flags may exist)"
        default:
            return "\(error) (TUN device \(name))"
        }
    }
}
