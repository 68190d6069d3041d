import CSystemShim
import Glibc

/// One frame for `PacketSocket.send`, laid out as the C shim's sendmmsg takes it.
public typealias PacketFrame = tunnat_frame

/// A packet socket (packet(7): AF_PACKET, SOCK_RAW, protocol 0, so it receives nothing) with PACKET_VNET_HDR:
/// each frame sent is a virtio-net header, then an Ethernet frame, put on an interface's transmit queue as it
/// is (the interface's qdisc included), with no routing and no netfilter. GSO super-packets stay whole and
/// partial checksums are finished by the device or the kernel. Needs CAP_NET_RAW.
public enum PacketSocket {
    public static let batch = 64

    public static func open(sendBuffer: Int32 = 4 << 20) throws(Errno) -> FileDescriptor {
        let fd = try Syscall.socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0,
                                    call: "socket(AF_PACKET, SOCK_RAW)")
        try Syscall.setOption(fd.rawValue, TUNNAT_SOL_PACKET, TUNNAT_PACKET_VNET_HDR, Int32(1),
                              call: "setsockopt PACKET_VNET_HDR")
        // A wish: the kernel caps it at net.core.wmem_max.
        try? Syscall.setOption(fd.rawValue, SOL_SOCKET, SO_SNDBUF, sendBuffer, call: "setsockopt SO_SNDBUF")
        return fd
    }

    /// sendmmsg(2) of up to `batch` frames: how many the kernel took (it stops at the first it refuses), or the
    /// error of the first one when it took none.
    @inline(__always)
    public static func send(_ fd: Int32, _ frames: UnsafeMutablePointer<PacketFrame>, count: Int) -> Result<Int, Errno> {
        Syscall.batchedSend("sendmmsg(AF_PACKET)") { tunnat_packet_sendmmsg(fd, frames, UInt32(count)) }
    }
}
