import Testing

@testable import Replication

@Suite struct LockedCallbackTests {
    /// The replicator reads its callbacks on every turn of its loop. A closure kept directly in a `Mutex` gained two
    /// reabstraction thunks per read, so each call ran deeper in the stack than the one before: after a flood's
    /// hundreds of thousands of turns, slower by the chain's length, and in the end a stack overflow.
    @Test func aCallbackRunsAtTheSameStackDepthAfterAThousandReads() {
        let callback = LockedCallback<Void, UInt>()
        #expect(callback(()) == nil, "nothing is called before a closure is set")
        callback.set {
            var marker = 0
            return withUnsafeMutablePointer(to: &marker) { UInt(bitPattern: $0) }
        }
        let first = callback(())
        for _ in 0..<1000 { _ = callback(()) }
        let last = callback(())  // from the same frame as the first: #expect's closures would add their own
        #expect(first != nil && last == first)
    }
}
