@testable import NatTable
import Testing

/// The per-owner counts against a dictionary, through random adds and removes over few owners and many, so that
/// probe runs wrap round the table, deletions shift entries back, and the table grows.
@Suite struct OwnerCountsTests {
    @Test(arguments: [(UInt64(1), 40), (2, 3_000), (3, 200_000)])
    func countsAgreeWithADictionary(seed: UInt64, owners: Int) {
        let counts = OwnerCounts(seed: seed, capacity: 8)
        var model: [UInt32: Int] = [:]
        var random = SplitMix64(seed: seed)
        for step in 0..<200_000 {
            let owner = UInt32(truncatingIfNeeded: random.next() % UInt64(owners)) &* 2_654_435_761
            if random.next() % 3 != 0 {
                counts.add(owner)
                model[owner, default: 0] += 1
            } else if let n = model[owner] {
                counts.remove(owner)
                model[owner] = n == 1 ? nil : n - 1
            }
            if step % 997 == 0 {
                #expect(counts.count == model.count, "step \(step)")
                for (o, n) in model.prefix(64) { #expect(counts.flows(o) == n, "step \(step): owner \(o)") }
            }
        }
        for (o, n) in model { #expect(counts.flows(o) == n) }
        for (o, n) in model { for _ in 0..<n { counts.remove(o) } }
        #expect(counts.count == 0)
        #expect(model.keys.allSatisfy { counts.flows($0) == 0 })
    }

    @Test func aFruitlessLookIsRememberedForItsSecondOnly() {
        let counts = OwnerCounts(seed: 1)
        counts.add(7)
        #expect(counts.mayLook(7, now: 5))
        counts.lookedInVain(7, now: 5)
        #expect(!counts.mayLook(7, now: 5) && counts.mayLook(7, now: 6))
    }
}
