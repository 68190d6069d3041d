import CSystemShim
import Glibc

/// One datagram for `RawIPSocket.send`, laid out as the C shim's sendmmsg takes it.
public typealias RawDatagram = tunnat_datagram

/// A raw IPv4 socket (IPPROTO_RAW, which implies IP_HDRINCL): the kernel routes each packet as if this host
/// sent it. Needs CAP_NET_RAW.
public enum RawIPSocket {
    public static let batch = 64

    public static func open(sendBuffer: Int32 = 4 << 20) throws(Errno) -> FileDescriptor {
        let fd = try Syscall.socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_RAW), call: "socket(AF_INET, SOCK_RAW, IPPROTO_RAW)")
        // A wish: the kernel caps it at net.core.wmem_max.
        try? Syscall.setOption(fd.rawValue, SOL_SOCKET, SO_SNDBUF, sendBuffer, call: "setsockopt SO_SNDBUF")
        return fd
    }

    /// sendmmsg(2) of up to `batch` datagrams: how many the kernel took (it stops at the first it refuses), or
    /// the error of the first one when it took none.
    @inline(__always)
    public static func send(_ fd: Int32, _ datagrams: UnsafeMutablePointer<RawDatagram>, count: Int) -> Result<Int, Errno> {
        Syscall.batchedSend("sendmmsg") { tunnat_sendmmsg(fd, datagrams, UInt32(count)) }
    }
}
