import Glibc
import Synchronization
import SystemCalls
import Testing
@testable import TunnatKit

/// The metrics endpoint's limits, on a real loopback socket: one rendering serves the requests that come within its
/// period, a connection gets no answer after its last, and at the cap a quiet connection makes room for a new one.
@Suite struct MetricsServerTests {
    /// A server on 127.0.0.1 and a port the kernel picks; `renders` counts the renderings.
    final class Served {
        let server: MetricsServer
        let port: UInt16
        let renders = Renders()

        final class Renders: Sendable {
            let count = Atomic<Int>(0)
            func load() -> Int { count.load(ordering: .relaxed) }
        }

        init(_ limits: MetricsServer.Limits) throws {
            let listener = try TCPListener.open(UDPEndpoint(address: 0x7F00_0001, port: 0))
            port = try #require(Syscall.socketShape(listener.rawValue).local?.port)
            let renders = self.renders
            server = try MetricsServer(listening: listener.release(), endpoint: UDPEndpoint(address: 0x7F00_0001, port: port),
                                       limits: limits, counters: LocalServiceCounters()) {
                let n = renders.count.add(1, ordering: .relaxed).newValue
                return Array("tunnat_test_renders \(n)\n".utf8)
            }
        }

        deinit { server.stop() }

        /// A connected client socket, reads giving up after 5 s.
        func connect() throws -> FileDescriptor {
            let fd = try Syscall.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0, call: "socket")
            try Syscall.connect(fd.rawValue, UDPEndpoint(address: 0x7F00_0001, port: port).sockaddr, call: "connect")
            UnixSocket.setTimeout(fd.rawValue, seconds: 5, sending: false)
            return fd
        }
    }

    static func send(_ fd: borrowing FileDescriptor, _ text: String) throws {
        try Syscall.writeAll(fd.rawValue, Array(text.utf8), sendFlags: Int32(MSG_NOSIGNAL))
    }

    /// Everything until the server closes the connection (or 5 s pass).
    static func readToEnd(_ fd: borrowing FileDescriptor) -> String {
        String(decoding: (try? Syscall.readAll(fd.rawValue)) ?? [], as: UTF8.self)
    }

    static let get = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"

    @Test func oneRenderingServesEveryRequestWithinItsPeriod() throws {
        var limits = MetricsServer.Limits()
        limits.renderEveryMilliseconds = 600_000
        let served = try Served(limits)
        let client = try served.connect()
        try Self.send(client, Self.get + Self.get + "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        let answers = Self.readToEnd(client)
        #expect(answers.components(separatedBy: "HTTP/1.1 200 OK").count - 1 == 3)
        #expect(answers.components(separatedBy: "tunnat_test_renders 1\n").count - 1 == 3)
        #expect(served.renders.load() == 1)
    }

    @Test func aConnectionGetsNoAnswerAfterItsLast() throws {
        var limits = MetricsServer.Limits()
        limits.requestsPerConnection = 2
        let served = try Served(limits)
        let client = try served.connect()
        try Self.send(client, String(repeating: Self.get, count: 5))
        let answers = Self.readToEnd(client)
        #expect(answers.components(separatedBy: "HTTP/1.1 200 OK").count - 1 == 2)
        #expect(answers.lowercased().contains("connection: close"))
    }

    @Test func atTheCapAQuietConnectionMakesRoomAndABusyOneDoesNot() throws {
        var limits = MetricsServer.Limits()
        limits.connections = 1
        limits.evictIdleAfterMilliseconds = 0
        let served = try Served(limits)
        // A connection that never asks: the next one takes its place, and it is closed.
        let quiet = try served.connect()
        try Self.send(quiet, "G")
        let newcomer = try served.connect()
        try Self.send(newcomer, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        #expect(Self.readToEnd(newcomer).hasPrefix("HTTP/1.1 200 OK"))
        #expect(Self.readToEnd(quiet).isEmpty)
        // With a second of grace, a connection that has just been answered keeps its place: the newcomer is closed.
        limits.evictIdleAfterMilliseconds = 60_000
        let strict = try Served(limits)
        let busy = try strict.connect()
        try Self.send(busy, Self.get)
        var head = [UInt8](repeating: 0, count: 15)
        _ = head.withUnsafeMutableBytes { try? Syscall.read(busy.rawValue, $0) }
        #expect(String(decoding: head, as: UTF8.self) == "HTTP/1.1 200 OK")
        let refused = try strict.connect()
        try? Self.send(refused, Self.get)
        #expect(Self.readToEnd(refused).isEmpty)
    }
}
