import Glibc
import SystemCalls
import Testing

@Suite struct SystemCallsTests {
    /// EAGAIN is a value: an empty non-blocking descriptor reads as nil, not as an error.
    @Test func anEmptyNonBlockingReadIsNilNotAnError() throws {
        let wakeup = try Wakeup()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        defer { buffer.deallocate() }
        #expect(try Syscall.read(wakeup.fd, buffer) == nil)
        wakeup.signal()
        #expect(try Syscall.read(wakeup.fd, buffer) == 8)
    }

    /// A failed call names itself and keeps its errno, typed.
    @Test func aFailedCallIsATypedErrnoNamingTheCall() {
        #expect(throws: Errno("open /nonexistent/tunnat", ENOENT)) { _ = try Syscall.open("/nonexistent/tunnat", O_RDONLY) }
        do {
            _ = try FileBytes.read("/nonexistent/tunnat")
            Issue.record("reading a missing file succeeded")
        } catch {
            #expect(error.errno == ENOENT)
            #expect(error.description == "cannot read /nonexistent/tunnat: No such file or directory")
        }
    }

    /// A wake-up given before the wait is not lost, and is consumed by it.
    @Test func aWakeupIsSeenOnceAndNotLost() throws {
        let wakeup = try Wakeup()
        #expect(!wakeup.wait(milliseconds: 0))
        wakeup.signal()
        wakeup.signal()
        #expect(wakeup.wait(milliseconds: 0))
        #expect(!wakeup.wait(milliseconds: 0), "two signals before a wait are one wake-up")
    }

    /// A stop is never drained: every thread waiting on it sees it.
    @Test func aStopIsSeenByEveryWaiter() throws {
        let stop = try StopSignal()
        #expect(!stop.sleep(milliseconds: 0))
        stop.stop()
        #expect(stop.sleep(milliseconds: 0))
        #expect(stop.sleep(milliseconds: 0))
        #expect(try Syscall.pollIn(stop.fd, timeoutMilliseconds: 0).0)
    }

    /// What a signal handler does (a write to the descriptor, nothing else) counts as a stop.
    @Test func aWriteToTheDescriptorAloneIsAStop() throws {
        let stop = try StopSignal()
        stop.wakeup.signal()
        #expect(stop.sleep(milliseconds: 1000))
    }

    /// UDP over loopback through the system layer: a datagram sent arrives whole, with its sender.
    @Test func aDatagramCrossesLoopback() throws {
        let a = try UDPSocket(bind: UDPEndpoint(address: 0x7F00_0001, port: 0))
        let b = try UDPSocket(bind: UDPEndpoint(address: 0x7F00_0001, port: 0))
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(b.receive(into: &buffer) == nil, "nothing waits yet")
        #expect(a.send([1, 2, 3], to: b.localEndpoint))
        b.wait(milliseconds: 1000)
        let got = try #require(b.receive(into: &buffer))
        #expect(got.length == 3 && Array(buffer[0..<3]) == [1, 2, 3])
        #expect(got.from == a.localEndpoint)
    }

    /// Files written and read back, the mode honoured.
    @Test func aFileRoundTripsWithItsMode() throws {
        let path = "/tmp/tunnat-systemcalls-\(Syscall.processID)"
        defer { Syscall.unlink(path) }
        try FileBytes.write([9, 8, 7], to: path, mode: 0o600)
        #expect(try FileBytes.read(path) == [9, 8, 7])
        #expect(try Syscall.mode(of: path).map { $0 & 0o777 } == 0o600)
        #expect(try Syscall.mode(of: path + "-missing") == nil)
    }
}
