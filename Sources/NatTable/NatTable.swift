/// NatTable: source NAT for IPv4 (NAT44 with port translation) as RFC 4787 (UDP), RFC 5382 (TCP) and RFC 5508
/// (ICMP) describe it: flows, mappings, port allocation, timers, TCP state, and `translate(_:now:)`.
///
/// Direction, defined once: **outbound** is from the private side to the internet (source in a private prefix);
/// **inbound** is from the internet to a pool address; **hairpin** is from the private side to a pool address.
///
/// Words: a *mapping* binds an internal endpoint (private address, port or ICMP identifier) to an external one
/// (pool address, port). It is endpoint-independent (RFC 4787 REQ-1): every remote endpoint the internal one talks
/// to shares it. A *flow* (a session in the RFCs) is one mapping plus one remote endpoint; flows carry the timers
/// and TCP state, and a mapping lives while it has flows.
///
/// What it owns: all NAT state and every decision on a packet. What it must never do: make a system call, read a
/// clock (time comes in as `now`), allocate on the established-flow path, or log per packet (it counts).
public enum NatDirection: UInt8, Sendable, CustomStringConvertible {
    case outbound
    case inbound
    case hairpin

    public var description: String {
        switch self {
        case .outbound: "outbound"
        case .inbound: "inbound"
        case .hairpin: "hairpin"
        }
    }
}

/// A point in time from the caller's clock (monotonic on a live system, the capture's timestamps in a replay).
public struct NatInstant: Hashable, Comparable, Sendable {
    public var nanoseconds: UInt64
    @inlinable public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }
    @inlinable public static func seconds(_ s: UInt64) -> NatInstant { NatInstant(nanoseconds: s &* 1_000_000_000) }
    /// Whole seconds: flow timers count in seconds, as every RFC timeout is a whole number of them.
    @inlinable public var seconds: UInt32 { UInt32(truncatingIfNeeded: nanoseconds / 1_000_000_000) }
    @inlinable public static func < (a: NatInstant, b: NatInstant) -> Bool { a.nanoseconds < b.nanoseconds }
}
