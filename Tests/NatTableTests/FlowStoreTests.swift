import NatTable
import PacketKit
import Testing

/// The table against an obvious model, through thousands of random steps in a table so small (8 flows, 8 buckets)
/// that hash chains collide all the time: creation, refresh, expiry from the middle of chains, eviction of the
/// least recently seen UDP flow that is not a stream when full, refusal when every flow is one.
@Suite struct FlowStoreTests {
    struct Entry {
        var external: UInt16
        var lastSeen: UInt64
        /// When it was last seen, in packets: the order of the timer lists.
        var touched: Int
        var answered = false
        var assured = false
    }

    struct Model {
        var mappings: [UInt64: Entry] = [:]  // key: host << 16 | port
    }

    @Test(arguments: [1, 2, 3])
    func tableAgreesWithAReferenceModelThroughChurn(seed: UInt64) throws {
        let nat = try makeNAT(maxFlows: 8, seed: seed) { $0.timeouts.udp = 120 }
        var model = Model()
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: state >> 33) % bound
        }
        var now: UInt64 = 0
        for step in 0..<5000 {
            now += UInt64(next(40))
            nat.expire(now: .seconds(now), budget: Int.max)
            model.mappings = model.mappings.filter { now - $0.value.lastSeen < 120 }
            #expect(nat.flowCount == model.mappings.count, "step \(step): flow count")

            let host = IPv4Address(10, 0, 0, UInt8(1 + next(5)))
            let port = UInt16(5000 + next(4))
            let key = UInt64(host.value) << 16 | UInt64(port)
            if next(3) < 2 {
                let out = send(nat, udp(host, port, server, 9000), at: now)
                if let known = model.mappings[key] {
                    #expect(out.verdict == .forward(.outbound) && out.sourcePort == known.external, "step \(step): reuse")
                    model.mappings[key]!.lastSeen = now
                    model.mappings[key]!.touched = step
                    if known.answered { model.mappings[key]!.assured = true }
                    continue
                }
                if model.mappings.count == 8 {
                    let evictable = model.mappings.filter { !$0.value.assured }
                    guard let victim = evictable.min(by: { $0.value.touched < $1.value.touched }) else {
                        #expect(out.verdict == .drop(.tableFull), "step \(step): full")
                        continue
                    }
                    model.mappings[victim.key] = nil
                }
                #expect(out.verdict == .forward(.outbound), "step \(step): new")
                #expect(!model.mappings.values.contains { $0.external == out.sourcePort }, "step \(step): no overloading")
                model.mappings[key] = Entry(external: out.sourcePort, lastSeen: now, touched: step)
            } else if !model.mappings.isEmpty {
                let owners = model.mappings.keys.sorted()
                let owner = owners[next(owners.count)]
                let entry = model.mappings[owner]!
                let reply = send(nat, udp(server, 9000, pool1, entry.external), at: now)
                #expect(reply.verdict == .forward(.inbound), "step \(step): reply")
                #expect(UInt64(reply.destination.value) == owner >> 16 && UInt64(reply.destinationPort) == owner & 0xFFFF)
                model.mappings[owner]!.lastSeen = now
                model.mappings[owner]!.touched = step
                model.mappings[owner]!.answered = true
            }
        }
    }
}
