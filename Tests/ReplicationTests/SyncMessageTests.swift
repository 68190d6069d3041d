import Hashing
@testable import Replication
@testable import NatTable
import PacketKit
import SystemCalls
import Testing

@Suite struct SyncMessageTests {
    static let key = SyncKeyring(Array("0123456789abcdef0123456789abcdef\n".utf8))!
    static let other = SyncKeyring(Array("fedcba9876543210fedcba9876543210".utf8))!
    static let message = SyncMessage(kind: .entries, keyID: 1, flags: 0x02, sender: 7, receiver: 8,
                                     senderNonce: 0x1111_2222_3333_4444, receiverNonce: 0x5555_6666_7777_8888,
                                     sequence: 42, acknowledgement: 41, payload: Array(0..<200).map { UInt8($0) })

    @Test func sealThenOpenGivesTheSameMessage() throws {
        let datagram = Self.key.seal(Self.message)
        #expect(datagram.count == SyncMessage.headerLength + 200 + SyncMessage.tagLength)
        #expect(Array(datagram[0..<8]) == [0x54, 0x4E, 0x53, 0x59, 4, 2, 1, 2])
        #expect(try Self.key.open(datagram) == Self.message)
        // The previous version's form: the same layout, its version byte, and keys of its own label.
        var previous = Self.message
        previous.version = 2
        let old = Self.key.seal(previous)
        #expect(Array(old[0..<8]) == [0x54, 0x4E, 0x53, 0x59, 2, 2, 1, 2] && old.count == datagram.count)
        #expect(try Self.key.open(old) == previous)
    }

    /// The payload crosses the link encrypted: none of its bytes shows in the datagram.
    @Test func thePayloadIsNotInClear() {
        let payload = Array(repeating: UInt8(0xA5), count: 64)
        var m = Self.message
        m.payload = payload
        let datagram = Self.key.seal(m)
        let body = Array(datagram[SyncMessage.headerLength..<(SyncMessage.headerLength + 64)])
        #expect(body != payload)
        #expect(body.filter { $0 == 0xA5 }.count < 8)
    }

    @Test func aKeyFileNeedsThirtyTwoBytes() {
        #expect(SyncKeyring(Array("short".utf8)) == nil)
        #expect(SyncKeyring(Array(repeating: 0x41, count: 31) + [0x0A]) == nil)
        #expect(SyncKeyring(keys: [1: Array(repeating: 0x41, count: 32)], sendingID: 2) == nil, "the sending key must be held")
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
        #expect(throws: SyncRejection.badTag) { try Self.key.open(Self.other.seal(Self.message)) }
    }

    /// Keys are bound to the direction and the session: the same message under other ids or nonces does not open.
    @Test func messageKeysDifferPerDirectionAndSession() throws {
        let datagram = Self.key.seal(Self.message)
        let header = try SyncMessage(header: datagram, length: datagram.count)
        var swapped = header
        (swapped.sender, swapped.receiver) = (header.receiver, header.sender)
        var renewed = header
        renewed.receiverNonce &+= 1
        for variant in [swapped, renewed] {
            let key = try #require(Self.key.messageKey(for: variant))
            #expect(throws: SyncRejection.badTag) { try SyncKeyring.open(datagram, header: header, with: key) }
        }
    }

    @Test func truncatedAndPaddedDatagramsAreRejected() {
        let datagram = Self.key.seal(Self.message)
        for length in [0, 1, 4, 51, 52, 67, datagram.count - 1] {
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
        for version: UInt8 in [0, 1, 5, 255] {
            datagram[4] = version
            #expect(throws: SyncRejection.badVersion) { try Self.key.open(datagram) }
        }
        // A version byte changed between the two spoken: authenticated, so the tag fails.
        datagram[4] = 2
        #expect(throws: SyncRejection.badTag) { try Self.key.open(datagram) }
    }

    @Test func theReplayWindowAcceptsEachSequenceOnce() throws {
        var window = ReplayWindow()
        try window.accept(sequence: 1)
        try window.accept(sequence: 3)
        try window.accept(sequence: 2)       // late but new: accepted
        #expect(throws: SyncRejection.replayed) { try window.accept(sequence: 2) }
        #expect(throws: SyncRejection.replayed) { try window.accept(sequence: 0) }
        try window.accept(sequence: 5000)
        #expect(throws: SyncRejection.replayed) { try window.accept(sequence: 5000 - ReplayWindow.size) }
        try window.accept(sequence: 5000 - ReplayWindow.size + 1)
    }

    @Test func theReplayWindowMatchesAPlainModel() throws {
        var window = ReplayWindow()
        var accepted = Set<UInt64>()
        var newest: UInt64 = 0
        var generator = SplitMix64(seed: 3)
        for _ in 0..<20_000 {
            let s = newest > 1500 ? newest - 1500 + generator.next() % 1600 : 1 + generator.next() % 1600
            let fresh = !accepted.contains(s) && (s > newest || newest - s < ReplayWindow.size)
            do {
                try window.accept(sequence: s)
                #expect(fresh, "sequence \(s) accepted twice or too old")
                accepted.insert(s)
                newest = max(newest, s)
            } catch {
                #expect(!fresh, "sequence \(s) refused though new")
            }
        }
    }

    /// RFC 5869 test case 1 (SHA-256) and the GCM specification's test cases 13 and 14 (AES-256, zero key and IV).
    @Test func theCryptographyMatchesItsPublishedVectors() throws {
        let okm = Digest.hkdfSHA256(salt: Array(0x00...0x0C), ikm: Array(repeating: 0x0B, count: 22),
                                    info: Array(0xF0...0xF9), length: 42)
        #expect(Digest.hex(okm) == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        let aead = try #require(AEADKey(Array(repeating: 0, count: 32)))
        let iv = [UInt8](repeating: 0, count: 12)
        for (plain, expected) in [([UInt8](), "530f8afbc74536b9a963b4f1c4cb738b"),
                                  ([UInt8](repeating: 0, count: 16), "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919")] {
            var out: [UInt8] = []
            plain.withUnsafeBytes { p in [UInt8]().withUnsafeBytes { aead.seal(iv: iv, aad: $0, plaintext: p, into: &out) } }
            #expect(Digest.hex(out) == expected)
            let opened = out.withUnsafeBytes { sealed in [UInt8]().withUnsafeBytes { aead.open(iv: iv, aad: $0, sealed: sealed) } }
            #expect(opened == plain)
            out[0] ^= 1
            let forged = out.withUnsafeBytes { sealed in [UInt8]().withUnsafeBytes { aead.open(iv: iv, aad: $0, sealed: sealed) } }
            #expect(forged == nil)
        }
    }
}
