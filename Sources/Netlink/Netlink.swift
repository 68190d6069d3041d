/// Netlink: the rtnetlink(7) messages tunnat sends and reads, as bytes, with no socket and no system call. The
/// requests are written as iproute2 writes them (the tests compare them with what `ip` sends); answers, listings
/// and change notices are parsed with every length checked against what is there. `SystemCalls.RouteNetlink` is the
/// socket that carries them; everything here is tested without privileges.
public enum Netlink {
    /// struct nlmsghdr: length, type, flags, sequence, port id.
    public static let headerSize = 16
    /// AF_INET, as rtnetlink carries a family.
    public static let familyInet: UInt8 = 2
    public static let familyInet6: UInt8 = 10

    // Message types (linux/rtnetlink.h RTM_*, linux/netlink.h NLMSG_*).
    public static let getLink: UInt16 = 18, newLink: UInt16 = 16
    public static let newRoute: UInt16 = 24, deleteRoute: UInt16 = 25, getRoute: UInt16 = 26
    public static let newNeighbour: UInt16 = 28, deleteNeighbour: UInt16 = 29, getNeighbour: UInt16 = 30
    public static let newRule: UInt16 = 32, deleteRule: UInt16 = 33, getRule: UInt16 = 34
    public static let error: UInt16 = 2, done: UInt16 = 3
    // Header flags (linux/netlink.h NLM_F_*).
    public static let request: UInt16 = 0x1, acknowledge: UInt16 = 0x4, dumpInterrupted: UInt16 = 0x10
    public static let dump: UInt16 = 0x300, exclusive: UInt16 = 0x200, create: UInt16 = 0x400

    /// Writes a request of `type` with NLM_F_REQUEST and `flags` into `buffer` (zeroed first), its body written by
    /// `body` (which returns the body's length); returns the request's whole length.
    public static func writeRequest(into buffer: UnsafeMutableRawBufferPointer, type: UInt16, flags: UInt16, sequence: UInt32,
                                    body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let length = headerSize + body(UnsafeMutableRawBufferPointer(rebasing: buffer[headerSize...]))
        buffer.storeBytes(of: UInt32(length), toByteOffset: 0, as: UInt32.self)
        buffer.storeBytes(of: type, toByteOffset: 4, as: UInt16.self)
        buffer.storeBytes(of: request | flags, toByteOffset: 6, as: UInt16.self)
        buffer.storeBytes(of: sequence, toByteOffset: 8, as: UInt32.self)
        return length
    }

    /// The errno an NLMSG_ERROR or NLMSG_DONE message carries (0: none, an acknowledgement or the end of a dump);
    /// nil for any other message. An NLMSG_ERROR cut short is EPROTO (71).
    public static func errorCode(kind: UInt16, payload: UnsafeRawBufferPointer) -> Int32? {
        guard kind == error || kind == done else { return nil }
        return payload.count >= 4 ? -payload.loadUnaligned(as: Int32.self) : kind == error ? 71 : 0
    }

    /// The RTM_* name of a message type, for errors.
    public static func name(_ type: UInt16) -> String {
        switch type {
        case getRoute: "RTM_GETROUTE"
        case newRoute: "RTM_NEWROUTE"
        case deleteRoute: "RTM_DELROUTE"
        case getRule: "RTM_GETRULE"
        case newRule: "RTM_NEWRULE"
        case deleteRule: "RTM_DELRULE"
        case getNeighbour: "RTM_GETNEIGH"
        case getLink: "RTM_GETLINK"
        default: "type \(type)"
        }
    }

    /// Each message in `bytes` (with sequence number `sequence`, when given): its type, flags and payload. A
    /// message whose length does not fit ends the walk.
    public static func messages(_ bytes: UnsafeRawBufferPointer, sequence: UInt32? = nil,
                                _ body: (_ type: UInt16, _ flags: UInt16, _ payload: UnsafeRawBufferPointer) -> Void) {
        var at = 0
        while at + headerSize <= bytes.count {
            let length = Int(bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))
            guard length >= headerSize, at + length <= bytes.count else { return }
            let type = bytes.loadUnaligned(fromByteOffset: at + 4, as: UInt16.self)
            let flags = bytes.loadUnaligned(fromByteOffset: at + 6, as: UInt16.self)
            let seq = bytes.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self)
            if sequence == nil || seq == sequence {
                body(type, flags, UnsafeRawBufferPointer(rebasing: bytes[(at + headerSize)..<(at + length)]))
            }
            at += (length + 3) & ~3
        }
    }

    /// Each attribute (struct rtattr: length, type, value) of `payload` from offset `from`.
    public static func attributes(_ payload: UnsafeRawBufferPointer, from: Int, _ body: (UInt16, UnsafeRawBufferPointer) -> Void) {
        var at = from
        while at + 4 <= payload.count {
            let length = Int(payload.loadUnaligned(fromByteOffset: at, as: UInt16.self))
            guard length >= 4, at + length <= payload.count else { return }
            let type = payload.loadUnaligned(fromByteOffset: at + 2, as: UInt16.self) & 0x3FFF
            body(type, UnsafeRawBufferPointer(rebasing: payload[(at + 4)..<(at + length)]))
            at += (length + 3) & ~3
        }
    }

    /// Writes a 4-byte attribute at `at`; returns where the next one goes.
    static func attribute(_ b: UnsafeMutableRawBufferPointer, _ at: Int, type: UInt16, _ value: UInt32) -> Int {
        b.storeBytes(of: UInt16(8), toByteOffset: at, as: UInt16.self)
        b.storeBytes(of: type, toByteOffset: at + 2, as: UInt16.self)
        b.storeBytes(of: value, toByteOffset: at + 4, as: UInt32.self)
        return at + 8
    }

    /// Writes an address attribute (4 bytes for IPv4, 16 for IPv6) at `at`; returns where the next one goes.
    static func attribute(_ b: UnsafeMutableRawBufferPointer, _ at: Int, type: UInt16, _ prefix: Prefix) -> Int {
        guard prefix.isIPv6 else { return attribute(b, at, type: type, prefix.address) }
        b.storeBytes(of: UInt16(20), toByteOffset: at, as: UInt16.self)
        b.storeBytes(of: type, toByteOffset: at + 2, as: UInt16.self)
        b.storeBytes(of: prefix.high.bigEndian, toByteOffset: at + 4, as: UInt64.self)
        b.storeBytes(of: prefix.low.bigEndian, toByteOffset: at + 12, as: UInt64.self)
        return at + 20
    }

    /// Writes a NUL-terminated string attribute (at most 15 bytes of `text`) at `at`, zero-padded to 4 bytes;
    /// returns where the next one goes.
    static func attribute(_ b: UnsafeMutableRawBufferPointer, _ at: Int, type: UInt16, _ text: String) -> Int {
        var end = at + 4
        for byte in text.utf8.prefix(15) {
            b[end] = byte
            end += 1
        }
        b.storeBytes(of: UInt16(end + 1 - at), toByteOffset: at, as: UInt16.self)
        b.storeBytes(of: type, toByteOffset: at + 2, as: UInt16.self)
        let next = (end + 1 + 3) & ~3
        for i in end..<next { b[i] = 0 }
        return next
    }

    /// A 6-byte MAC address packed into a word so that storing the word little-endian puts the bytes in wire
    /// order (byte 0 in the lowest bits), followed by two zero bytes.
    public static func ethernet(_ v: UnsafeRawBufferPointer) -> UInt64 {
        (0..<6).reduce(0) { $0 | UInt64(v[$1]) << (8 * UInt64($1)) }
    }
}
