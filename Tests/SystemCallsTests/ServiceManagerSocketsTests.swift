import Glibc
import SystemCalls
import Testing

/// The sockets a service manager passes (sd_listen_fds_with_names(3)), the descriptor store's shape checks, and
/// who holds a port, read from the kernel's socket tables.
@Suite struct ServiceManagerSocketsTests {
    @Test func passedSocketsAreForTheNamedProcessOnlyAndNamedInOrder() {
        let passed = InheritedSockets.parse(listenPID: "42", listenFDs: "2", names: "metrics:sync", pid: 42)
        #expect(passed.map(\.fd) == [3, 4])
        #expect(passed.map(\.name) == ["metrics", "sync"])
        // Meant for another process (a child inherited the variables): nothing.
        #expect(InheritedSockets.parse(listenPID: "41", listenFDs: "2", names: "metrics:sync", pid: 42).isEmpty)
        #expect(InheritedSockets.parse(listenPID: nil, listenFDs: "2", names: nil, pid: 42).isEmpty)
        // No count, a count of 0, or more than any unit passes: nothing.
        for count in [nil, "0", "-1", "65", "x"] {
            #expect(InheritedSockets.parse(listenPID: "42", listenFDs: count, names: nil, pid: 42).isEmpty)
        }
        // A name list of the wrong length names each "unknown", as sd_listen_fds_with_names does.
        #expect(InheritedSockets.parse(listenPID: "42", listenFDs: "2", names: "metrics", pid: 42).map(\.name) == ["unknown", "unknown"])
    }

    @Test func eachPassedSocketIsTakenOnceAndTheRestClosed() throws {
        let a = try TCPListener.open(UDPEndpoint(address: 0x7F00_0001, port: 0))
        let b = try TCPListener.open(UDPEndpoint(address: 0x7F00_0001, port: 0))
        let (rawA, rawB) = (dup(a.rawValue), dup(b.rawValue))
        // fstat(2) itself: the system layer takes EBADF for a bug of tunnat's and stops.
        func inode(_ fd: Int32) -> ino_t? {
            var info = stat()
            return fstat(fd, &info) == 0 ? info.st_ino : nil
        }
        let inodeB = inode(rawB)
        let sockets = InheritedSockets([(rawA, "metrics"), (rawB, "stale")])
        let taken = sockets.take("metrics")?.release()
        #expect(taken == rawA)
        #expect(sockets.take("metrics")?.release() == nil)
        #expect(sockets.closeUntaken() == ["stale"])
        // Closed: the number is free, or (tests run in parallel) already another file's.
        #expect(inode(rawB) != inodeB)
        #expect(fcntl(rawA, F_GETFD) >= 0)
        close(rawA)
    }

    @Test func aSocketsShapeIsItsTypeWhetherItListensAndItsAddress() throws {
        let tcp = try TCPListener.open(UDPEndpoint(address: 0x7F00_0001, port: 0))
        let shape = try Syscall.socketShape(tcp.rawValue)
        #expect(shape.type == Int32(SOCK_STREAM.rawValue) && shape.listening)
        #expect(shape.local?.address == 0x7F00_0001 && (shape.local?.port ?? 0) != 0)
        let udp = try UDPSocket(bind: UDPEndpoint(address: 0x7F00_0001, port: 0))
        let udpShape = try Syscall.socketShape(udp.fd)
        #expect(udpShape.type == Int32(SOCK_DGRAM.rawValue) && !udpShape.listening)
        #expect(udpShape.local == udp.localEndpoint)
    }

    /// proc(5)'s /proc/net/tcp: hex of the in-memory (network order) address, the port in hex, state 0A for
    /// LISTEN, the uid in the eighth field.
    @Test func theHolderOfAPortIsReadFromTheKernelsTable() {
        let table = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 0100007F:24FD 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 1234 1 0 100 0 0 10 0
               1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 1235 1 0 20 4 30 10 -1
            """
        #expect(PortHolders.uid(inTable: table, port: 9469, address: 0x7F00_0001, tcp: true) == 65534)
        // The wildcard asked for conflicts with any address.
        #expect(PortHolders.uid(inTable: table, port: 9469, address: 0, tcp: true) == 65534)
        // Another address, or a connection that is not listening: no holder.
        #expect(PortHolders.uid(inTable: table, port: 9469, address: 0x0A00_0001, tcp: true) == nil)
        #expect(PortHolders.uid(inTable: table, port: 8080, address: 0x7F00_0001, tcp: true) == nil)
        // UDP has no LISTEN state: any bound socket holds its port.
        #expect(PortHolders.uid(inTable: table, port: 8080, address: 0x7F00_0001, tcp: false) == 1000)
        let six = """
              sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 00000000000000000000000000000000:24FD 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   33        0 99 1 0 100 0 0 10 0
               1: 0000000000000000FFFF00000100007F:1A0A 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   44        0 98 1 0 100 0 0 10 0
            """
        #expect(PortHolders.uid(inTable: six, port: 9469, address: 0x7F00_0001, tcp: true) == 33)
        #expect(PortHolders.uid(inTable: six, port: 6666, address: 0x7F00_0001, tcp: true) == 44)
        #expect(PortHolders.uid(inTable: six, port: 6666, address: 0x7F00_0002, tcp: true) == nil)
    }

    @Test func theHolderOfALivePortIsThisProcessesUser() throws {
        let tcp = try TCPListener.open(UDPEndpoint(address: 0x7F00_0001, port: 0))
        let port = try #require(Syscall.socketShape(tcp.rawValue).local?.port)
        #expect(PortHolders.uid(port: port, address: 0x7F00_0001, tcp: true) == Syscall.effectiveUserID)
        // A second bind of the port is refused with EADDRINUSE, which is when the holder is asked for.
        #expect(throws: Errno("bind 127.0.0.1:\(port)", EADDRINUSE)) { _ = try TCPListener.open(UDPEndpoint(address: 0x7F00_0001, port: port)) }
        let udp = try UDPSocket(bind: UDPEndpoint(address: 0x7F00_0001, port: 0))
        #expect(PortHolders.uid(port: udp.localEndpoint.port, address: 0x7F00_0001, tcp: false) == Syscall.effectiveUserID)
    }
}
