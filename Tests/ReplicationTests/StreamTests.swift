import NatTable
import PacketKit
@testable import Replication
import Testing

func records(_ n: Int, from first: Int = 0) -> [FlowRecord] {
    (first..<(first + n)).map { (i: Int) -> FlowRecord in
        let host = IPv4Address(0x0A00_0000 | UInt32(truncatingIfNeeded: i))
        let port = UInt16(truncatingIfNeeded: 10_000 + i)
        return FlowRecord(operation: .upsert, protocolNumber: 17, internalAddress: host, internalPort: 4000,
                          externalAddress: IPv4Address(198, 18, 0, 1), externalPort: port,
                          remoteAddress: IPv4Address(198, 19, 0, 1), remotePort: 53)
    }
}

func decoded(_ payloads: [[UInt8]]) -> [Batch] { payloads.compactMap { Batch($0) } }

extension OutboundStream {
    /// A resync whose walk reads the whole `snapshot` in one part.
    mutating func beginResync(snapshot: [FlowRecord], serial: UInt64, now: Double) {
        beginResync(now: now)
        _ = enqueue([], part: SnapshotPart(records: snapshot, next: nil), serial: serial)
    }
}

/// The active's side: events in, batches out, on a hand-turned clock.
@Suite struct OutboundStreamTests {
    @Test func aStreamSendsNothingBeforeItsFirstResync() {
        var s = OutboundStream()
        let r1 = s.enqueue(records(3), serial: 3)
        #expect(r1)
        let r2 = s.tick(now: 0).batches.isEmpty
        #expect(r2)
    }

    @Test func aResyncIsFramedByResetAndEndAndCompletesWhenTheEndIsAcknowledged() {
        var s = OutboundStream()
        let flows = Batch.recordsPerBatch * 2 + 5
        s.beginResync(snapshot: records(flows), serial: 40, now: 0)
        let sent = decoded(s.tick(now: 0).batches)
        #expect(sent.map(\.number) == [1, 2, 3])
        #expect(sent.map(\.flags) == [Batch.reset, 0, Batch.end])
        #expect(sent.map(\.records.count) == [Batch.recordsPerBatch, Batch.recordsPerBatch, 5])
        #expect(s.resyncing)
        let early = s.acknowledge(2)
        #expect(!early, "not complete before the end")
        #expect(s.ackedSerial == 0, "the serial is confirmed only with the batch that drained the queue")
        let completed = s.acknowledge(3)
        #expect(completed)
        #expect(!s.resyncing && s.ackedSerial == 40)
        let again = s.acknowledge(3)
        #expect(!again, "a repeated acknowledgement changes nothing")
    }

    @Test func anEmptyTableStillResyncsInOneBatch() {
        var s = OutboundStream()
        s.beginResync(snapshot: [], serial: 0, now: 0)
        let sent = decoded(s.tick(now: 0).batches)
        #expect(sent.count == 1 && sent[0].flags == Batch.reset | Batch.end && sent[0].records.isEmpty)
    }

    @Test func atMostAWindowIsInFlight() {
        var s = OutboundStream()
        s.beginResync(snapshot: records(Batch.recordsPerBatch * (OutboundStream.window + 10)), serial: 1, now: 0)
        let r3 = s.tick(now: 0).batches.count
        #expect(r3 == OutboundStream.window)
        let r4 = s.tick(now: 0.001).batches.isEmpty
        #expect(r4, "a full window sends nothing new")
        _ = s.acknowledge(4)
        let more = decoded(s.tick(now: 0.002).batches)
        #expect(more.map(\.number) == Array(UInt64(OutboundStream.window + 1)...UInt64(OutboundStream.window + 4)))
    }

    /// 50 ms, then doubling up to 1 s: retransmissions at about 0.05, 0.15, 0.35, 0.75, 1.55, 2.55, 3.55 s (the
    /// clock turns in 1 ms steps, so each is checked a little before and after).
    @Test(arguments: [(0.04, 0), (0.06, 1), (0.14, 1), (0.17, 2), (0.33, 2), (0.37, 3), (0.73, 3), (0.77, 4),
                      (1.53, 4), (1.58, 5), (2.5, 5), (2.6, 6), (3.5, 6), (3.6, 7)])
    func retransmissionBacksOffExponentially(at: Double, sends: Int) {
        var s = OutboundStream()
        s.beginResync(snapshot: records(1), serial: 1, now: 0)
        let r5 = s.tick(now: 0).batches.count
        #expect(r5 == 1)
        var retransmits = 0
        var t = 0.0
        while t < at - 1e-9 {
            t = min(at, t + 0.001)
            retransmits += s.tick(now: t).retransmits
        }
        #expect(retransmits == sends)
    }

    @Test func changesStreamInOrderAfterTheResync() {
        var s = OutboundStream()
        s.beginResync(snapshot: records(2), serial: 2, now: 0)
        _ = s.tick(now: 0)
        let r6 = s.enqueue(records(3, from: 100), serial: 5)
        #expect(r6)
        let sent = decoded(s.tick(now: 0.01).batches)
        #expect(sent.count == 1 && sent[0].number == 2 && sent[0].flags == 0)
        #expect(sent[0].records == records(3, from: 100))
        _ = s.acknowledge(2)
        #expect(s.ackedSerial == 5)
    }

    /// The walk is read a part at a time, only while the queue is short, and the changes taken with each part go
    /// before it; the end flag rides on the batch with the walk's last record.
    @Test func aResyncWalksTheTableInPartsWithChangesInBetween() {
        var s = OutboundStream()
        s.beginResync(now: 0)
        #expect(s.wantsSnapshot == 0)
        let part1 = SnapshotPart(records: records(OutboundStream.snapshotBacklog), next: 9000)
        let queued = s.enqueue(records(2, from: 500_000), part: part1, serial: 7)
        #expect(queued)
        #expect(s.wantsSnapshot == nil, "a full backlog reads no more of the table")
        var sent: [Batch] = []
        var now = 0.0
        var acked: UInt64 = 0
        while s.waiting > 0 {
            sent += decoded(s.tick(now: now).batches)
            acked = sent.last!.number
            _ = s.acknowledge(acked)
            now += 0.001
        }
        #expect(s.wantsSnapshot == 9000, "the walk goes on where the part ended")
        let last = s.enqueue(records(1, from: 600_000), part: SnapshotPart(records: records(3, from: 700_000), next: nil), serial: 9)
        #expect(last)
        #expect(s.wantsSnapshot == nil && s.resyncing)
        sent += decoded(s.tick(now: now).batches)
        let all = sent.flatMap(\.records)
        #expect(Array(all.prefix(2)) == records(2, from: 500_000), "changes before the part taken with them")
        #expect(Array(all.suffix(4)) == records(1, from: 600_000) + records(3, from: 700_000))
        #expect(sent.first!.flags == Batch.reset && sent.last!.flags == Batch.end)
        #expect(sent.dropFirst().dropLast().allSatisfy { $0.flags == 0 })
        let done = s.acknowledge(sent.last!.number)
        #expect(done && !s.resyncing && s.ackedSerial == 9)
    }

    @Test func aStandbyTooFarBehindIsToldToResync() {
        var s = OutboundStream()
        s.beginResync(snapshot: [], serial: 0, now: 0)
        let r7 = s.enqueue(records(OutboundStream.maxPending), serial: 1)
        #expect(r7)
        let r8 = s.enqueue(records(1), serial: 2)
        #expect(!r8)
    }
}

/// The standby's side: batches in any order, applied in order.
@Suite struct InboundStreamTests {
    func batch(_ number: UInt64, _ flags: UInt8 = 0, _ n: Int = 1) -> Batch {
        Batch(number: number, flags: flags, records: records(n, from: Int(number) * 10))
    }

    @Test func batchesBeforeAResetAreRefused() {
        var s = InboundStream(leader: 1)
        var applied: [UInt64] = []
        let r9 = s.receive(batch(3), reset: {}, apply: { applied.append($0.number); return true })
        #expect(r9 == .beforeResync)
        #expect(applied.isEmpty && s.acknowledgement == 0 && s.awaitingResync)
    }

    @Test func outOfOrderBatchesWaitForTheGapAndDuplicatesAreIgnored() {
        var s = InboundStream(leader: 1)
        var applied: [UInt64] = []
        var resets = 0
        let apply: (Batch) -> Bool = { applied.append($0.number); return true }
        let r10 = s.receive(batch(5, Batch.reset), reset: { resets += 1 }, apply: apply)
        #expect(r10 == .applied(1))
        let r11 = s.receive(batch(7), reset: {}, apply: apply)
        #expect(r11 == .outOfOrder)
        let r12 = s.receive(batch(8), reset: {}, apply: apply)
        #expect(r12 == .outOfOrder)
        #expect(s.acknowledgement == 5)
        let r13 = s.receive(batch(6), reset: {}, apply: apply)
        #expect(r13 == .applied(3))
        #expect(applied == [5, 6, 7, 8] && s.acknowledgement == 8 && resets == 1)
        let r14 = s.receive(batch(6), reset: {}, apply: apply)
        #expect(r14 == .duplicate)
        let r15 = s.receive(batch(9 + UInt64(OutboundStream.window)), reset: {}, apply: apply)
        #expect(r15 == .tooFarAhead)
        #expect(applied == [5, 6, 7, 8])
    }

    @Test func aLaterResetStartsOverAndAnOlderOneIsIgnored() {
        var s = InboundStream(leader: 1)
        var resets = 0
        let apply: (Batch) -> Bool = { _ in true }
        _ = s.receive(batch(10, Batch.reset), reset: { resets += 1 }, apply: apply)
        let r16 = s.receive(batch(4, Batch.reset), reset: { resets += 1 }, apply: apply)
        #expect(r16 == .duplicate)
        let r17 = s.receive(batch(20, Batch.reset), reset: { resets += 1 }, apply: apply)
        #expect(r17 == .applied(1))
        #expect(resets == 2 && s.acknowledgement == 20)
    }

    @Test func aRefusedRecordMeansAResync() {
        var s = InboundStream(leader: 1)
        _ = s.receive(batch(1, Batch.reset), reset: {}, apply: { _ in true })
        let r18 = s.receive(batch(2), reset: {}, apply: { _ in false })
        #expect(r18 == .conflict)
        #expect(s.awaitingResync && s.acknowledgement == 0)
        let r19 = s.receive(batch(3), reset: {}, apply: { _ in true })
        #expect(r19 == .beforeResync)
    }

    /// Batches in any order and any number, as a hostile or broken active could send them: what waits for a gap
    /// never exceeds the window, and each batch gets an outcome.
    @Test func aFloodOfBatchesNeverBuffersMoreThanTheWindow() {
        var s = InboundStream(leader: 1)
        _ = s.receive(batch(1, Batch.reset), reset: {}, apply: { _ in true })
        var generator = SystemRandomNumberGenerator()
        var tooFar = 0
        for _ in 0..<100_000 {
            let number = UInt64.random(in: 3...(3 + 4 * UInt64(OutboundStream.window)), using: &generator)
            if s.receive(Batch(number: number, flags: 0, records: []), reset: {}, apply: { _ in true }) == .tooFarAhead { tooFar += 1 }
            #expect(s.buffer.count < OutboundStream.window)
        }
        #expect(tooFar > 0 && s.acknowledgement == 1, "batch 2 never came: nothing past it is applied")
        let filled = s.receive(batch(2), reset: {}, apply: { _ in true })
        #expect(filled == .applied(OutboundStream.window), "the gap filled, everything buffered is applied in order")
    }
}
