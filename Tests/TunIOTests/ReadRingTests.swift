import Dispatch
import Glibc
import NatTable
import PacketKit
import SystemCalls
import Testing
@testable import TunIO

/// The worker reading through io_uring (`ReadRing`), against the kernel: frames arrive as datagrams on a
/// loopback UDP socket, which io_uring's multishot read takes one datagram per read, as it takes one frame per
/// read from a TUN queue. What the worker writes stays in memory. No sleeps: every wait ends on a frame or a stop.
@Suite struct ReadRingTests {
    /// Frames in through a UDP socket on 127.0.0.1 (the descriptor the ring reads), frames out into memory.
    final class LoopbackQueue: PacketQueue {
        let socket: UDPSocket
        let sender: UDPSocket
        var written: [[UInt8]] = []

        init() throws {
            var any = UDPEndpoint("127.0.0.1:1")!
            any.port = 0
            socket = try UDPSocket(bind: any)
            sender = try UDPSocket(bind: any)
        }

        func put(_ frame: [UInt8]) -> Bool { sender.send(frame, to: socket.localEndpoint) }

        func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? { try Syscall.read(socket.fd, buffer) }
        func write(_ frame: UnsafeRawBufferPointer) throws(Errno) { written.append(Array(frame)) }
        func waitReadable(orStop stop: StopSignal, milliseconds: Int32) throws(Errno) -> Bool {
            try Syscall.pollIn(socket.fd, stop.fd, timeoutMilliseconds: milliseconds).0
        }
        var ringDescriptor: Int32? { socket.fd }
    }

    func worker(ioUring: Bool = true, virtioHeaders: Bool = true, stop: StopSignal? = nil) throws
        -> (Worker<LoopbackQueue, TunOutput<LoopbackQueue>>, LoopbackQueue, LockedNAT) {
        let queue = try LoopbackQueue()
        let table = LockedNAT(nat: try NAT(configuration: NatConfiguration(
            privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: [pool], seed: 1)))
        let worker = Worker(queue: queue, virtioHeaders: virtioHeaders,
                            output: TunOutput(queue: queue, virtioHeaders: virtioHeaders), shared: table,
                            stop: try stop ?? StopSignal(), ioUring: ioUring, clock: { .seconds(1) })
        return (worker, queue, table)
    }

    /// 150 frames, more than the ring's 64 buffers: the read stops when every buffer is taken and starts again
    /// when they come back, and every frame is translated and written once, in the order it arrived.
    @Test(arguments: [true, false])
    func everyFrameIsReadOnceInOrderPastTheBuffers(virtioHeaders: Bool) throws {
        let (worker, queue, table) = try worker(virtioHeaders: virtioHeaders)
        try #require(worker.readsThroughRing,
                     "io_uring refused here (\(worker.ringRefusal.map(String.init(describing:)) ?? "?")): tun.io_uring needs Linux 6.7 and kernel.io_uring_disabled=0")
        worker.startRing()
        let count = 150
        for i in 0..<count {
            let packet = PacketBuilder.udp(from: (client, 5000), to: (server, 53), payload: [UInt8(i)] + payload(16))
            #expect(queue.put(virtioHeaders ? frame(VirtioNetHeader(), packet) : packet))
        }
        var turns = 0
        while queue.written.count < count && turns < 40 {
            worker.iterate()
            turns += 1
        }
        let skip = virtioHeaders ? VirtioNetHeader.size : 0
        let payloads = queue.written.map { Int($0[skip + 28]) }
        #expect(payloads == Array(0..<count), "each frame once, in order")
        #expect(queue.written.allSatisfy { Array($0[(skip + 12)..<(skip + 16)]) == [198, 18, 0, 1] })
        worker.iterate()  // publishes the last batch's counters
        let io = table.state.withLock { $0.io }
        #expect(io.framesRead == UInt64(count) && io.packetsWritten == UInt64(count) && io.readErrors == 0)
    }

    /// A worker waiting on its ring with nothing to read ends its run when stopped: the ring polls the stop
    /// signal's descriptor too.
    @Test func aStopEndsTheWait() throws {
        let stop = try StopSignal()
        let (worker, _, _) = try worker(stop: stop)
        try #require(worker.readsThroughRing)
        let done = DispatchGroup()
        done.enter()
        DispatchQueue.global().async {
            worker.run()
            done.leave()
        }
        stop.stop()
        // Bounded: a worker that missed the stop would still end at its 1 s idle timeout; 10 s means it hangs.
        #expect(done.wait(timeout: .now() + 10) == .success)
    }

    /// `tun.io_uring: false`, or a queue with no descriptor (the in-memory one): read(2) and poll(2), and no
    /// refusal to report.
    @Test func withoutTheRingTheWorkerReadsAsBefore() throws {
        let (worker, queue, _) = try worker(ioUring: false)
        #expect(!worker.readsThroughRing && worker.ringRefusal == nil)
        let packet = PacketBuilder.udp(from: (client, 5000), to: (server, 53), payload: payload(8))
        #expect(queue.put(frame(VirtioNetHeader(), packet)))
        var turns = 0
        while queue.written.isEmpty && turns < 100 {
            worker.iterate()
            turns += 1
        }
        #expect(queue.written.count == 1)
        let memory = MemoryQueue()
        let table = LockedNAT(nat: try NAT(configuration: NatConfiguration(
            privatePrefixes: [IPv4Prefix("10.0.0.0/8")!], poolAddresses: [pool], seed: 1)))
        let inMemory = Worker(queue: memory, virtioHeaders: true, output: TunOutput(queue: memory, virtioHeaders: true),
                              shared: table, stop: try StopSignal(), ioUring: true)
        #expect(!inMemory.readsThroughRing && inMemory.ringRefusal == nil)
    }
}
