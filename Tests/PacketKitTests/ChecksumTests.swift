import PacketKit
import Testing

/// The obvious RFC 1071 sum: big-endian 16-bit words, a zero pad byte, end-around carry at each step.
func naiveSum(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt16 {
    var sum = initial
    var i = 0
    while i < bytes.count {
        let word = UInt32(bytes[i]) << 8 | (i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0)
        sum += word
        sum = (sum & 0xFFFF) + (sum >> 16)
        i += 2
    }
    while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
    return UInt16(sum)
}

struct DeterministicBytes {
    var state: UInt64
    mutating func next() -> UInt8 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: state >> 56)
    }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in next() } }
}

@Suite struct ChecksumTests {
    @Test func fastSumMatchesNaiveReferenceForEveryLengthUpTo9001() {
        var random = DeterministicBytes(state: 1)
        let data = random.bytes(9002)
        let ones = [UInt8](repeating: 0xFF, count: 9002)
        for length in 0...9001 {
            let slice = Array(data[..<length])
            let fast = slice.withUnsafeBytes { Checksum.sum($0) }
            #expect(fast == naiveSum(slice), "length \(length)")
            // All-ones data exercises every carry path.
            let allOnes = Array(ones[..<length])
            #expect(allOnes.withUnsafeBytes { Checksum.sum($0) } == naiveSum(allOnes), "0xFF length \(length)")
        }
    }

    @Test func sumHonoursInitialValueAndUnalignedStart() {
        var random = DeterministicBytes(state: 2)
        let data = random.bytes(1600)
        for offset in 0..<8 {
            let slice = Array(data[offset..<1500])
            let fast = data.withUnsafeBytes { Checksum.sum(UnsafeRawBufferPointer(rebasing: $0[offset..<1500]), initial: 0x1_2345) }
            #expect(fast == naiveSum(slice, initial: 0x1_2345))
        }
    }

    /// RFC 1071 section 3's worked example: 0001 f203 f4f5 f6f7 sums to ddf2.
    @Test func rfc1071WorkedExample() {
        let bytes: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        #expect(bytes.withUnsafeBytes { Checksum.sum($0) } == 0xDDF2)
    }

    /// RFC 1624 equation 3 gives what a full recomputation gives, for random changes of 16- and 32-bit fields.
    @Test func incrementalUpdateMatchesFullRecomputation() {
        var random = DeterministicBytes(state: 3)
        for trial in 0..<2000 {
            var data = random.bytes(64)
            data[10] = 0
            data[11] = 0
            let full = Checksum.finish(data.withUnsafeBytes { Checksum.sum($0) })
            let at = 12 + 2 * (trial % 20)
            let old16 = UInt16(data[at]) << 8 | UInt16(data[at + 1])
            let new16 = UInt16(random.next()) << 8 | UInt16(random.next())
            data[at] = UInt8(new16 >> 8)
            data[at + 1] = UInt8(new16 & 0xFF)
            let recomputed = Checksum.finish(data.withUnsafeBytes { Checksum.sum($0) })
            let incremental = Checksum.update(full, old: old16, new: new16)
            // One's complement has two zeros; equation 3 and a recomputation may differ only between them.
            #expect(incremental == recomputed || (incremental ^ recomputed == 0xFFFF && (recomputed == 0 || recomputed == 0xFFFF)))
        }
    }

    /// Found by fuzzing (Fuzz/Sources/FuzzTranslate): data whose words are all zero sums to +0, and only 0xFFFF
    /// complements it; equation 3 gave 0x0000 when a word of such data was rewritten (to zero, or to itself). Only
    /// ICMP, which has no pseudo-header, can get there: an echo reply with identifier, sequence and data all 0.
    @Test func incrementalUpdateOfAllZeroDataGivesFFFF() {
        #expect(Checksum.update(0xFFFF, old: UInt16(0), new: UInt16(0)) == 0xFFFF)
        #expect(Checksum.update(0xEDCB, old: UInt16(0x1234), new: UInt16(0)) == 0xFFFF)
        #expect(Checksum.update(0xFFFF, old: UInt32(0), new: UInt32(0)) == 0xFFFF)
        var message: [UInt8] = [0, 0, 0xFF, 0xFF, 0, 0, 0, 0]  // echo reply, identifier 0, sequence 0, no data
        message.withUnsafeMutableBytes { b in
            let icmp = ICMPv4Message(unchecked: b)
            icmp.setIdentifier(Port(0))
            #expect(icmp.isChecksumValid)
            icmp.setIdentifier(Port(0x1234))
            icmp.setIdentifier(Port(0))
            #expect(icmp.isChecksumValid)
        }
    }

    @Test func incrementalUpdateOf32BitFieldMatchesTwoWordUpdates() {
        var random = DeterministicBytes(state: 4)
        for _ in 0..<1000 {
            let checksum = UInt16(random.next()) << 8 | UInt16(random.next())
            let old = UInt32(random.next()) << 24 | UInt32(random.next()) << 8 | 7
            let new = UInt32(random.next()) << 16 | UInt32(random.next())
            let twice = Checksum.update(Checksum.update(checksum, old: UInt16(old >> 16), new: UInt16(new >> 16)),
                                        old: UInt16(old & 0xFFFF), new: UInt16(new & 0xFFFF))
            #expect(Checksum.update(checksum, old: old, new: new) == twice)
        }
    }

    /// RFC 768: a zero UDP checksum means none and survives rewrites; a computed zero is sent as 0xFFFF.
    @Test func udpZeroChecksumStaysZeroThroughRewrites() throws {
        var packet = PacketBuilder.udp(from: (IPv4Address(10, 0, 0, 1), 5000), to: (IPv4Address(198, 18, 0, 9), 53),
                                       payload: [1, 2, 3], checksum: false)
        try packet.withUnsafeMutableBytes { b in
            let ip = try IPv4Packet(validating: b)
            let udp = try UDPDatagram(validating: ip.payload)
            udp.setSourcePort(Port(40000))
            udp.updateChecksum(addressFrom: ip.source, to: IPv4Address(198, 18, 0, 1))
            #expect(udp.checksum == 0)
        }
    }

    @Test func udpComputedZeroIsSentAsAllOnes() throws {
        // Search for a payload whose checksum computes to zero, then check it is written as 0xFFFF.
        for word in UInt16.min...UInt16.max {
            var packet = PacketBuilder.udp(from: (IPv4Address(10, 0, 0, 1), 1), to: (IPv4Address(10, 0, 0, 2), 2),
                                           payload: [UInt8(word >> 8), UInt8(word & 0xFF)], checksum: false)
            let done = try packet.withUnsafeMutableBytes { b -> Bool in
                let ip = try IPv4Packet(validating: b)
                let udp = try UDPDatagram(validating: ip.payload)
                let sum = Checksum.sum(udp.buffer, initial: ip.pseudoHeaderSum)
                guard Checksum.finish(sum) == 0 else { return false }
                udp.fillChecksum(pseudoHeaderSum: ip.pseudoHeaderSum)
                #expect(udp.checksum == 0xFFFF)
                #expect(udp.isChecksumValid(pseudoHeaderSum: ip.pseudoHeaderSum))
                return true
            }
            if done { return }
        }
        Issue.record("no payload word gives a zero checksum")
    }
}
