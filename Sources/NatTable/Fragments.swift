import PacketKit

/// IPv4 fragments (RFC 4787 REQ-14: a NAT MUST handle fragments arriving in order and out of order).
///
/// Only the first fragment carries the ports, so it alone creates or uses a mapping. Its translation is then
/// remembered by the datagram's identity (source, destination, protocol, IP ID: RFC 791 section 3.2) and applied
/// to the later fragments, which need only their addresses rewritten. Later fragments that arrive before the
/// first are held, copied, in a buffer bounded in count and time, and released once it is seen. This is the
/// slow path: it may allocate.
final class FragmentTracker {
    struct Key: Hashable {
        var source: UInt32
        var destination: UInt32
        var identification: UInt16
        var proto: UInt8

        init(_ ip: IPv4Packet) {
            source = ip.source.value
            destination = ip.destination.value
            identification = ip.identification
            proto = ip.protocol.value
        }
    }

    struct Rewrite {
        var source: IPv4Address
        var destination: IPv4Address
        var direction: NatDirection
        var expires: UInt32
    }

    struct Held {
        var key: Key
        var bytes: [UInt8]
        var arrived: UInt32
    }

    /// The most datagrams whose translation is remembered at once; the oldest is forgotten first.
    static let maxRewrites = 4096

    let lifetime: UInt32
    let maxHeld: Int
    var rewrites: [Key: Rewrite] = [:]
    /// Keys in the order they were registered; since every entry lives `lifetime`, that is also expiry order.
    var order: [Key] = []
    var orderHead = 0
    var held: [Held] = []
    var released: [(bytes: [UInt8], direction: NatDirection)] = []

    init(lifetime: UInt32, maxHeld: Int) {
        self.lifetime = lifetime
        self.maxHeld = maxHeld
    }

    /// Remembers how the first fragment of `original` was translated, and releases any fragments of the same
    /// datagram that were waiting for it.
    func register(original: Key, as translated: IPv4Packet, direction: NatDirection, now: UInt32) {
        if rewrites.count >= Self.maxRewrites { forgetOldest() }
        rewrites[original] = Rewrite(source: translated.source, destination: translated.destination,
                                     direction: direction, expires: now &+ lifetime)
        order.append(original)
        guard !held.isEmpty else { return }
        var kept: [Held] = []
        for fragment in held {
            guard fragment.key == original else {
                kept.append(fragment)
                continue
            }
            var bytes = fragment.bytes
            bytes.withUnsafeMutableBytes { apply(rewrites[original]!, to: IPv4Packet(unchecked: $0)) }
            released.append((bytes, direction))
        }
        held = kept
    }

    /// A later fragment: translated in place if its first fragment was seen, else held (or refused when full).
    func follow(_ ip: IPv4Packet, now: UInt32) -> Verdict {
        let key = Key(ip)
        if let rewrite = rewrites[key] {
            apply(rewrite, to: ip)
            return .forward(rewrite.direction)
        }
        guard held.count < maxHeld else { return .drop(.fragmentBufferFull) }
        held.append(Held(key: key, bytes: Array(ip.buffer), arrived: now))
        return .held
    }

    func apply(_ rewrite: Rewrite, to ip: IPv4Packet) {
        if ip.source != rewrite.source { ip.setSource(rewrite.source) }
        if ip.destination != rewrite.destination { ip.setDestination(rewrite.destination) }
    }

    /// Forgets translations and held fragments past their lifetime; returns how many held fragments timed out.
    func expire(now: UInt32) -> Int {
        while orderHead < order.count {
            let key = order[orderHead]
            if let entry = rewrites[key] {
                guard Int64(now) - Int64(entry.expires) >= 0 else { break }
                rewrites[key] = nil
            }
            orderHead += 1
        }
        if orderHead > 1024 && orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
        var timedOut = 0
        while let first = held.first, Int64(now) - Int64(first.arrived) >= Int64(lifetime) {
            held.removeFirst()
            timedOut += 1
        }
        return timedOut
    }

    func forgetOldest() {
        while orderHead < order.count {
            let key = order[orderHead]
            orderHead += 1
            if rewrites.removeValue(forKey: key) != nil { return }
        }
    }
}
