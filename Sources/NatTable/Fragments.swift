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
    /// The most bytes held at once, whatever their count: a held fragment may be up to 64 KiB.
    static let maxHeldBytes = 1 << 20

    let lifetime: UInt32
    let maxHeld: Int
    /// The most fragments one source may have held at once: a quarter of the buffer, so that one sender cannot
    /// take it all (spoofed senders still can; then the oldest go first, and a datagram whose parts arrive
    /// together still gets through).
    let maxHeldPerSource: Int
    var rewrites: [Key: Rewrite] = [:]
    /// Keys in the order they were registered, a ring of `maxRewrites`: since every entry lives `lifetime` from
    /// its registration, that is also expiry order. A key is in it once, however often its first fragment comes.
    var order = FIFO<Key>()
    var held = FIFO<Held>()
    var heldBytes = 0
    var heldPerSource: [UInt32: Int] = [:]
    var released: [(bytes: [UInt8], direction: NatDirection)] = []
    /// Held fragments that timed out or were evicted since the last `takeLost()`.
    var timedOut = 0
    var evicted = 0

    init(lifetime: UInt32, maxHeld: Int) {
        self.lifetime = lifetime
        self.maxHeld = maxHeld
        maxHeldPerSource = max(1, maxHeld / 4)
    }

    var heldCount: Int { held.count }

    /// Remembers how the first fragment of `original` was translated, and releases any fragments of the same
    /// datagram that were waiting for it. A repeated first fragment updates the translation without living longer.
    func register(original: Key, as translated: IPv4Packet, direction: NatDirection, now: UInt32) {
        if var known = rewrites[original] {
            known.source = translated.source
            known.destination = translated.destination
            known.direction = direction
            rewrites[original] = known
        } else {
            if rewrites.count >= Self.maxRewrites { forgetOldest() }
            rewrites[original] = Rewrite(source: translated.source, destination: translated.destination,
                                         direction: direction, expires: now &+ lifetime)
            order.append(original)
        }
        guard heldCount > 0 else { return }
        var kept: [Held] = []
        for fragment in held.elements {
            guard fragment.key == original else {
                kept.append(fragment)
                continue
            }
            forgetHeld(fragment)
            var bytes = fragment.bytes
            bytes.withUnsafeMutableBytes { apply(rewrites[original]!, to: IPv4Packet(unchecked: $0)) }
            released.append((bytes, direction))
        }
        held = FIFO(kept)
    }

    /// A later fragment: translated in place if its first fragment was seen, else held. A source over its share
    /// is refused; a full buffer makes room by evicting its oldest fragments.
    func follow(_ ip: IPv4Packet, now: UInt32) -> Verdict {
        let key = Key(ip)
        if let rewrite = rewrites[key] {
            apply(rewrite, to: ip)
            return .forward(rewrite.direction)
        }
        guard maxHeld > 0, ip.buffer.count <= Self.maxHeldBytes else { return .drop(.fragmentBufferFull) }
        guard heldPerSource[key.source, default: 0] < maxHeldPerSource else { return .drop(.fragmentQuota) }
        while heldCount >= maxHeld || heldBytes + ip.buffer.count > Self.maxHeldBytes, let oldest = held.popFirst() {
            forgetHeld(oldest)
            evicted += 1
        }
        held.append(Held(key: key, bytes: Array(ip.buffer), arrived: now))
        heldBytes += ip.buffer.count
        heldPerSource[key.source, default: 0] += 1
        return .held
    }

    func forgetHeld(_ fragment: Held) {
        heldBytes -= fragment.bytes.count
        let left = heldPerSource[fragment.key.source, default: 1] - 1
        heldPerSource[fragment.key.source] = left == 0 ? nil : left
    }

    func apply(_ rewrite: Rewrite, to ip: IPv4Packet) {
        if ip.source != rewrite.source { ip.setSource(rewrite.source) }
        if ip.destination != rewrite.destination { ip.setDestination(rewrite.destination) }
    }

    /// Forgets translations and held fragments past their lifetime (counted in `timedOut`).
    func expire(now: UInt32) {
        while let key = order.first {
            if let entry = rewrites[key] {
                guard Int64(now) - Int64(entry.expires) >= 0 else { break }
                rewrites[key] = nil
            }
            _ = order.popFirst()
        }
        while let first = held.first, Int64(now) - Int64(first.arrived) >= Int64(lifetime) {
            forgetHeld(first)
            _ = held.popFirst()
            timedOut += 1
        }
    }

    func forgetOldest() {
        while let key = order.popFirst() {
            if rewrites.removeValue(forKey: key) != nil { break }
        }
    }
}

/// A first-in first-out queue over an array: taking from the front moves an index, and the taken front is dropped
/// once it is most of the array (amortised O(1) per element, memory at most twice what is queued).
struct FIFO<Element> {
    private var storage: [Element]
    private var head = 0

    init(_ elements: [Element] = []) { storage = elements }

    var count: Int { storage.count - head }
    var first: Element? { head < storage.count ? storage[head] : nil }
    var elements: ArraySlice<Element> { storage[head...] }

    mutating func append(_ element: Element) { storage.append(element) }

    mutating func popFirst() -> Element? {
        guard head < storage.count else { return nil }
        let element = storage[head]
        head += 1
        if head > 64 && head * 2 > storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }
}
