@testable import Replication
import NatTable
import PacketKit
import SystemCalls
import Testing

@Suite struct SyncMessageTests {
    static let key = SyncKey(Array("0123456789abcdef0123456789abcdef\n".utf8))!
    static let other = SyncKey(Array("fedcba9876543210fedcba9876543210".utf8))!
    static let message = SyncMessage(kind: .entries, flags: 0x0102, sender: 7, epoch: 1_790_000_000, sequence: 42,
                                     acknowledgement: 41, payload: Array(0..<200).map { UInt8($0) })

    @Test func sealThenOpenGivesTheSameMessage() throws {
        let datagram = Self.key.seal(Self.message)
        #expect(datagram.count == SyncMessage.headerLength + 200 + SyncMessage.macLength)
        #expect(Array(datagram[0..<6]) == [0x54, 0x4E, 0x53, 0x59, 1, 2])
        #expect(try Self.key.open(datagram) == Self.message)
    }

    @Test func aKeyFileNeedsThirtyTwoBytes() {
        #expect(SyncKey(Array("short".utf8)) == nil)
        #expect(SyncKey(Array(repeating: 0x41, count: 31) + [0x0A]) == nil)
    }

    @Test func everyFlippedBitIsRejectedAndNeverApplied() {
        let datagram = Self.key.seal(Self.message)
        for byte in datagram.indices {
            var forged = datagram
            forged[byte] ^= 0x01
            #expect(throws: SyncRejection.self, "byte \(byte)") { try Self.key.open(forged) }
        }
    }

    @Test func aForgeryUnderAnotherKeyIsRejected() {
        #expect(throws: SyncRejection.badMAC) { try Self.key.open(Self.other.seal(Self.message)) }
    }

    @Test func truncatedAndPaddedDatagramsAreRejected() {
        let datagram = Self.key.seal(Self.message)
        for length in [0, 1, 35, 36, 67, datagram.count - 1] {
            #expect(throws: SyncRejection.truncated, "length \(length)") { try Self.key.open(Array(datagram.prefix(length))) }
        }
        #expect(throws: SyncRejection.badLength) { try Self.key.open(datagram + [0]) }
    }

    /// Found by fuzzing (Fuzz/Sources/FuzzSync): a resync batch numbered 2^64-1 made the standby's next expected
    /// number overflow, and the standby trapped. Such a batch, like one numbered 0, does not decode.
    @Test func batchesNumberedZeroOrTheLargestNumberDoNotDecode() {
        for number: UInt64 in [0, .max] {
            #expect(Batch(Batch.encode(number: number, flags: Batch.reset, records: [])) == nil, "number \(number)")
        }
        #expect(Batch(Batch.encode(number: .max - 1, flags: Batch.reset, records: [])) != nil)
    }

    @Test func anotherVersionIsRejected() {
        var datagram = Self.key.seal(Self.message)
        datagram[4] = 2
        #expect(throws: SyncRejection.badVersion) { try Self.key.open(datagram) }
    }

    @Test func replayedAndStaleMessagesAreRejected() throws {
        var window = ReplayWindow()
        try window.accept(epoch: 10, sequence: 1)
        try window.accept(epoch: 10, sequence: 3)
        try window.accept(epoch: 10, sequence: 2)       // late but new: accepted
        #expect(throws: SyncRejection.replayed) { try window.accept(epoch: 10, sequence: 2) }
        #expect(throws: SyncRejection.replayed) { try window.accept(epoch: 10, sequence: 0) }
        try window.accept(epoch: 10, sequence: 5000)
        #expect(throws: SyncRejection.replayed) { try window.accept(epoch: 10, sequence: 5000 - ReplayWindow.size) }
        try window.accept(epoch: 10, sequence: 5000 - ReplayWindow.size + 1)
        try window.accept(epoch: 11, sequence: 1)        // the peer restarted
        #expect(throws: SyncRejection.staleEpoch) { try window.accept(epoch: 10, sequence: 6000) }
    }

    @Test func theWindowMatchesASetOfEverySequenceSeen() throws {
        var window = ReplayWindow()
        var accepted = Set<UInt64>()
        var newest: UInt64 = 0
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let s = UInt64.random(in: 1...(newest + 200), using: &rng)
            let fresh = !accepted.contains(s) && (s > newest || newest - s < ReplayWindow.size)
            do {
                try window.accept(epoch: 1, sequence: s)
                #expect(fresh, "accepted \(s) (newest \(newest))")
                accepted.insert(s)
                newest = max(newest, s)
            } catch {
                #expect(!fresh, "refused \(s) (newest \(newest))")
            }
        }
    }
}
