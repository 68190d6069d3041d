import Glibc
@testable import SystemCalls
import Testing

@Suite struct UDPSocketTests {
    static let anyLoopbackPort = UDPEndpoint(address: 0x7F00_0001, port: 0)

    // MARK: - Peer filter, the program

    /// The program, instruction by instruction, in `tcpdump -dd`'s numbers: per peer the source address
    /// (ld [SKF_NET_OFF + 12]), then the source port (ldh [0]), a keep when both match, and a drop at the end.
    @Test func peerFilterChecksAddressThenPortOfEachPeerThenDrops() {
        let program = UDPSocket.peerFilter([UDPEndpoint("10.0.0.1:7800")!, UDPEndpoint("10.0.0.2:7801")!])
        let sourceAddress: UInt32 = 0xFFF0_000C  // -0x100000 + 12
        #expect(program == [
            BPFInstruction(code: 0x20, k: sourceAddress),
            BPFInstruction(code: 0x15, jt: 0, jf: 3, k: 0x0A00_0001),
            BPFInstruction(code: 0x28, k: 0),
            BPFInstruction(code: 0x15, jt: 0, jf: 1, k: 7800),
            BPFInstruction(code: 0x06, k: 0xFFFF_FFFF),
            BPFInstruction(code: 0x20, k: sourceAddress),
            BPFInstruction(code: 0x15, jt: 0, jf: 3, k: 0x0A00_0002),
            BPFInstruction(code: 0x28, k: 0),
            BPFInstruction(code: 0x15, jt: 0, jf: 1, k: 7801),
            BPFInstruction(code: 0x06, k: 0xFFFF_FFFF),
            BPFInstruction(code: 0x06, k: 0),
        ])
    }

    /// No peers: a program that drops everything.
    @Test func noPeersAdmitsNothing() {
        #expect(UDPSocket.peerFilter([]) == [BPFInstruction(code: 0x06, k: 0)])
    }

    /// Run through a slow, obvious interpreter: each peer is kept, and a near miss of any peer (its address with
    /// another port, its port with another address, another peer's port) is dropped.
    @Test(arguments: [1, 2, 3, 64])
    func peerFilterKeepsExactlyThePeers(count: Int) {
        let peers = (0..<count).map { UDPEndpoint(address: 0x0A00_0001 + UInt32($0), port: 7800 + UInt16($0)) }
        let program = UDPSocket.peerFilter(peers)
        for (i, peer) in peers.enumerated() {
            #expect(Self.run(program, address: peer.address, port: peer.port) == BPFInstruction.keepAll, "\(peer)")
            #expect(Self.run(program, address: peer.address, port: peer.port &+ 100) == 0)
            #expect(Self.run(program, address: peer.address ^ 0x0100_0000, port: peer.port) == 0)
            let other = peers[(i + 1) % count]
            if other != peer { #expect(Self.run(program, address: peer.address, port: other.port) == 0) }
        }
    }

    /// A classic BPF interpreter for the four instructions the peer filter uses, given a datagram's source.
    static func run(_ program: [BPFInstruction], address: UInt32, port: UInt16) -> UInt32? {
        var a: UInt32 = 0
        var pc = 0
        while pc < program.count {  // ends: every jump goes forward
            let instruction = program[pc]
            switch (instruction.code, instruction.k) {
            case (0x20, 0xFFF0_000C): a = address
            case (0x28, 0): a = UInt32(port)
            case (0x15, _): pc += Int(a == instruction.k ? instruction.jt : instruction.jf)
            case (0x06, _): return instruction.k
            default: return nil
            }
            pc += 1
        }
        return nil
    }

    // MARK: - Peer filter, in the kernel

    /// On loopback through the real kernel: of two senders, only the admitted one's datagram is received, and the
    /// kernel counts the other's as dropped (the drops column of /proc/net/udp), so it was filtered, not late.
    /// The senders use 127.0.0.2, so that a filter reading the destination address instead would show. The filter
    /// is attached by `admitOnly` or, before the bind, by `init(bind:admitting:)`.
    @Test(arguments: [false, true])
    func onlyTheAdmittedPeersDatagramIsReceived(filterBeforeBind: Bool) throws {
        let peer = try UDPSocket(bind: UDPEndpoint(address: 0x7F00_0002, port: 0))
        let stranger = try UDPSocket(bind: UDPEndpoint(address: 0x7F00_0002, port: 0))
        // Near misses of the stranger: its port at another address (the receiver's), its address with another port.
        let strangersPort = stranger.localEndpoint.port
        let admitted = [UDPEndpoint(address: 0x7F00_0001, port: strangersPort), peer.localEndpoint,
                        UDPEndpoint(address: 0x7F00_0002, port: strangersPort &+ 1)]
        let receiver = try UDPSocket(bind: Self.anyLoopbackPort, admitting: filterBeforeBind ? admitted : nil)
        if !filterBeforeBind { try receiver.admitOnly(admitted) }

        #expect(stranger.send([0xEE], to: receiver.localEndpoint))
        #expect(peer.send([0xAA], to: receiver.localEndpoint))
        var buffer = [UInt8](repeating: 0, count: 64)
        receiver.wait(milliseconds: 2000)
        let got = try #require(receiver.receive(into: &buffer))
        #expect(got.from == peer.localEndpoint && got.length == 1 && buffer[0] == 0xAA)
        #expect(try Self.waitForDrops(receiver, toReach: 1) == 1)
        #expect(receiver.receive(into: &buffer) == nil, "the stranger's datagram was queued")
    }

    /// A datagram queued before the filter was attached is discarded by `admitOnly`, not delivered.
    @Test func aDatagramQueuedBeforeTheFilterIsDiscarded() throws {
        let receiver = try UDPSocket(bind: Self.anyLoopbackPort)
        let peer = try UDPSocket(bind: Self.anyLoopbackPort)
        let stranger = try UDPSocket(bind: Self.anyLoopbackPort)
        #expect(stranger.send([0xEE], to: receiver.localEndpoint))
        receiver.wait(milliseconds: 2000)
        #expect(try Syscall.pollIn(receiver.fd, timeoutMilliseconds: 0).0, "the stranger's datagram is queued")

        try receiver.admitOnly([peer.localEndpoint])
        #expect(peer.send([0xAA], to: receiver.localEndpoint))
        var buffer = [UInt8](repeating: 0, count: 64)
        receiver.wait(milliseconds: 2000)
        let got = try #require(receiver.receive(into: &buffer))
        #expect(got.from == peer.localEndpoint && buffer[0] == 0xAA)
        #expect(receiver.receive(into: &buffer) == nil)
    }

    /// 64 peers are taken; 65 are refused with a message that says so, by `admitOnly` and by the initializer.
    @Test func moreThan64PeersAreRefused() throws {
        let receiver = try UDPSocket(bind: Self.anyLoopbackPort)
        let peers = (0..<65).map { UDPEndpoint(address: 0x0A00_0001 + UInt32($0), port: 7800) }
        try receiver.admitOnly(Array(peers.prefix(64)))
        let refusal = Errno("socket filter: 65 peers given, at most 64 are supported", EINVAL)
        #expect(refusal.description == "socket filter: 65 peers given, at most 64 are supported: Invalid argument")
        #expect(throws: refusal) { try receiver.admitOnly(peers) }
        #expect(throws: refusal) { _ = try UDPSocket(bind: Self.anyLoopbackPort, admitting: peers) }
    }

    /// The drops counter of `socket` in /proc/net/udp, polled until it reaches `target` or 2 s pass.
    static func waitForDrops(_ socket: UDPSocket, toReach target: Int) throws -> Int? {
        let local = socket.localEndpoint
        let hex = { (value: UInt32, width: Int) in
            let digits = String(value, radix: 16, uppercase: true)
            return String(repeating: "0", count: width - digits.count) + digits
        }
        // The kernel prints the address as the u32 it holds (network order) in host order: %08X:%04X.
        let key = hex(local.address.bigEndian, 8) + ":" + hex(UInt32(local.port), 4)
        var drops: Int?
        for _ in 0..<2000 {
            let table = String(decoding: try FileBytes.read("/proc/net/udp"), as: UTF8.self)
            let row = table.split(separator: "\n").map { $0.split(separator: " ") }.first { $0.count > 1 && $0[1] == key }
            drops = row.flatMap { $0.last.flatMap { Int($0) } }
            if drops == target { break }
            Syscall.sleep(milliseconds: 1)
        }
        return drops
    }

    // MARK: - Batched receive

    /// Ten datagrams from two senders, of ten lengths, come in one recvmmsg, each with its length, bytes and sender.
    @Test func tenDatagramsArriveInOneCall() throws {
        let receiver = try UDPSocket(bind: Self.anyLoopbackPort)
        let senders = [try UDPSocket(bind: Self.anyLoopbackPort), try UDPSocket(bind: Self.anyLoopbackPort)]
        for i in 0..<10 {
            #expect(senders[i % 2].send([UInt8](repeating: UInt8(i), count: i + 1), to: receiver.localEndpoint))
        }
        var buffers = DatagramBuffers(count: 16, size: 64)
        receiver.wait(milliseconds: 2000)
        #expect(receiver.receiveMany(into: &buffers) == 10)
        #expect(buffers.received == 10)
        for i in 0..<buffers.received {
            #expect(buffers[i] == DatagramBuffers.Datagram(length: i + 1, source: senders[i % 2].localEndpoint))
            buffers.withBytes(of: i) { #expect(Array($0) == [UInt8](repeating: UInt8(i), count: i + 1)) }
        }
        #expect(receiver.receiveMany(into: &buffers) == 0, "nothing left")
    }

    /// A datagram longer than its buffer reports its real length (MSG_TRUNC) and fills the buffer; the next one
    /// is whole.
    @Test func aDatagramLongerThanItsBufferShowsItsRealLength() throws {
        let receiver = try UDPSocket(bind: Self.anyLoopbackPort)
        let sender = try UDPSocket(bind: Self.anyLoopbackPort)
        let long = (0..<100).map { UInt8($0) }
        #expect(sender.send(long, to: receiver.localEndpoint))
        #expect(sender.send([7, 7, 7], to: receiver.localEndpoint))
        var buffers = DatagramBuffers(count: 4, size: 16)
        receiver.wait(milliseconds: 2000)
        #expect(receiver.receiveMany(into: &buffers) == 2)
        #expect(buffers[0].length == 100 && buffers[1].length == 3)
        buffers.withBytes(of: 0) { #expect(Array($0) == Array(long.prefix(16))) }
        buffers.withBytes(of: 1) { #expect(Array($0) == [7, 7, 7]) }
    }

    /// `max` caps one call; what is left waits for the next.
    @Test func aReceiveTakesNoMoreThanItsLimit() throws {
        let receiver = try UDPSocket(bind: Self.anyLoopbackPort)
        let sender = try UDPSocket(bind: Self.anyLoopbackPort)
        var buffers = DatagramBuffers(count: 8, size: 16)
        #expect(receiver.receiveMany(into: &buffers) == 0, "nothing waits yet")
        for i in 0..<3 { #expect(sender.send([UInt8(i)], to: receiver.localEndpoint)) }
        receiver.wait(milliseconds: 2000)
        #expect(receiver.receiveMany(into: &buffers, max: 2) == 2)
        #expect(receiver.receiveMany(into: &buffers, max: 2) == 1)
        buffers.withBytes(of: 0) { #expect(Array($0) == [2]) }
    }
}
