import CSystemShim
import Glibc

/// The TUN driver's ioctls (linux/if_tun.h) and the link settings a new device needs, through the C shim: their
/// request numbers are function-like macros Swift cannot import.
public enum TunControl {
    public static let tun = Int32(TUNNAT_IFF_TUN)
    public static let noPacketInformation = Int32(TUNNAT_IFF_NO_PI)
    public static let virtioHeaders = Int32(TUNNAT_IFF_VNET_HDR)
    public static let multiQueue = Int32(TUNNAT_IFF_MULTI_QUEUE)

    public static let offloadChecksum = UInt32(TUNNAT_TUN_F_CSUM)
    public static let offloadTSO4 = UInt32(TUNNAT_TUN_F_TSO4)
    public static let offloadTSO6 = UInt32(TUNNAT_TUN_F_TSO6)
    public static let offloadTSOECN = UInt32(TUNNAT_TUN_F_TSO_ECN)
    public static let offloadUSO4 = UInt32(TUNNAT_TUN_F_USO4)
    public static let offloadUSO6 = UInt32(TUNNAT_TUN_F_USO6)

    /// open("/dev/net/tun") then ioctl(TUNSETIFF) with `flags` for device `name`, non-blocking.
    public static func attach(name: String, flags: Int32) throws(Errno) -> FileDescriptor {
        let fd = try Syscall.open("/dev/net/tun", O_RDWR)
        try Syscall.zeroOrErrno("ioctl TUNSETIFF") { tunnat_tun_set_iff(fd.rawValue, name, Int16(flags), nil) }
        try Syscall.setNonBlocking(fd.rawValue)
        return fd
    }

    /// ioctl(TUNSETVNETHDRSZ).
    public static func setVirtioHeaderSize(_ fd: Int32, _ size: Int) throws(Errno) {
        try Syscall.zeroOrErrno("ioctl TUNSETVNETHDRSZ") { tunnat_tun_set_vnet_hdr_size(fd, Int32(size)) }
    }

    /// ioctl(TUNSETOFFLOAD): false when the kernel refuses these flags (EINVAL for one it does not know).
    public static func setOffloads(_ fd: Int32, _ flags: UInt32) -> Bool {
        tunnat_tun_set_offload(fd, flags) == 0
    }

    /// SIOCSIFMTU (when `mtu` > 0) and SIOCSIFFLAGS(IFF_UP) for interface `name`.
    public static func bringUp(_ name: String, mtu: Int) throws(Errno) {
        try Syscall.zeroOrErrno("bringing \(name) up (SIOCSIFMTU/SIOCSIFFLAGS)") { tunnat_link_up(name, Int32(mtu)) }
    }
}
