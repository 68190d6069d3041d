/// IP/ICMP header translation between IPv6 and IPv4 (RFC 7915, "SIIT"), in place: the upper-layer header and
/// data stay where they are and the IP header in front of them is rewritten, so a translated packet starts a
/// little later (6 to 4) or earlier (4 to 6) in the same memory. ICMP errors, whose quoted packet changes size
/// in the middle, are built in a scratch buffer and copied back. Addresses come from the caller: which IPv4
/// address an IPv6 address stands for is the NAT's business (RFC 6146), not the header translation's.
///
/// What is not translated is refused with a `Failure` the caller counts: an ICMP type with no counterpart, a
/// fragmented ICMP message (its checksum covers a pseudo-header whose length only reassembly knows), a UDP
/// fragment without a checksum, source routing.
public enum Translate64 {
    public enum Failure: Error, Equatable, Sendable {
        /// An ICMP type or code RFC 7915 says to drop (informational messages other than echo, redirects, ...).
        case untranslatableICMP
        /// A fragment of an ICMP message (section 4.1 and 5.1: its checksum cannot be translated piecewise).
        case fragmentedICMP
        /// An IPv4 UDP fragment with a zero checksum (section 4.5: IPv6 requires one, only reassembly could make it).
        case udpZeroChecksumFragment
        /// An IPv4 source route option with addresses left (section 4.1) or an IPv6 routing header with segments
        /// left (section 5.1).
        case sourceRouted
        /// The packet quoted in an ICMP error is not one this translator can read, or its addresses stand for
        /// nothing the caller knows.
        case badQuote
        /// An ICMPv6 checksum that does not verify.
        case badChecksum
        /// Not enough room in front of the packet for the larger header.
        case noRoom
        /// Not TCP, UDP or ICMP.
        case unsupportedProtocol
        /// The transport header is cut short.
        case truncated
    }

    /// Bytes of headroom that every IPv4-to-IPv6 translation fits in: 20 more bytes of IP header, 8 of fragment
    /// header, and for an ICMP error another 20 + 8 inside.
    public static let headroom = 64
    /// The largest ICMPv6 error sent (RFC 4443 section 2.4 (c): it must not exceed the minimum IPv6 MTU).
    public static let maxICMPv6Error = 1280
    /// The largest ICMPv4 error sent (RFC 1812 section 4.3.2.3).
    public static let maxICMPv4Error = 576
    /// Scratch space a caller lends for ICMP errors.
    public static let scratchSize = 1536

    // MARK: IPv6 to IPv4 (section 5)

    /// Translates `ip` to IPv4 from `source` to `destination` and returns the IPv4 packet, which ends where `ip`
    /// ends. `identification` is used when the packet is not a fragment. `innerAddress` maps the addresses of the
    /// packet an ICMPv6 error quotes (either direction); `scratch` holds at least `scratchSize` bytes.
    public static func toIPv4(
        _ ip: IPv6Packet, source: UInt32, destination: UInt32, identification: UInt16, verify: Bool,
        scratch: UnsafeMutableRawBufferPointer, innerAddress: (IPv6Address) -> UInt32?
    ) throws(Failure) -> UnsafeMutableRawBufferPointer {
        let upper = ip.upperLayer
        var proto = ip.upperProtocol
        let first = ip.fragmentOffset == 0
        switch proto {
        case IPv6Packet.NextHeader.icmpv6:
            guard !ip.isFragment || ip.isAtomicFragment else { throw .fragmentedICMP }
            guard upper.count >= 8 else { throw .truncated }
            let pseudo = ip.pseudoHeaderSum(protocol: proto, length: upper.count)
            if verify && Checksum.sum(upper, initial: UInt32(Checksum.fold(pseudo))) != 0xFFFF { throw .badChecksum }
            let type = upper[0]
            if ICMPv6Type.isError(type) {
                return try errorToIPv4(ip, source: source, destination: destination, identification: identification,
                                       scratch: scratch, innerAddress: innerAddress)
            }
            let newType: UInt8
            switch type {
            case ICMPv6Type.echoRequest: newType = ICMPv4Type.echoRequest.value
            case ICMPv6Type.echoReply: newType = ICMPv4Type.echoReply.value
            default: throw .untranslatableICMP
            }
            retype(upper, to: newType, removing: pseudo)
            proto = IPProtocol.icmp.value
        case IPv6Packet.NextHeader.tcp, IPv6Packet.NextHeader.udp:
            let field = proto == IPv6Packet.NextHeader.tcp ? 16 : 6
            if first {
                guard upper.count >= field &+ 2 else { throw .truncated }
                let old = ip.source.wordSum &+ ip.destination.wordSum
                let new = UInt64(source >> 16) &+ UInt64(source & 0xFFFF) &+ UInt64(destination >> 16)
                    &+ UInt64(destination & 0xFFFF)
                var value = replace(upper.loadBE16(at: field), old: old, new: new)
                if proto == IPv6Packet.NextHeader.udp && value == 0 { value = 0xFFFF }
                upper.storeBE16(value, at: field)
            }
        default:
            throw .unsupportedProtocol
        }
        let start = ip.upperOffset &- IPv4Packet.minimumHeaderLength
        let out = ip.buffer.suffix(from: start)
        let fragmented = ip.isFragment && !ip.isAtomicFragment
        writeIPv4Header(
            out, tos: ip.trafficClass, identification: fragmented ? UInt16(truncatingIfNeeded: ip.fragmentIdentification) : identification,
            flags: fragmented ? (ip.moreFragments ? 0x2000 : 0) | UInt16(ip.fragmentOffset / 8)
                : (out.count > 1260 ? 0x4000 : 0),
            ttl: ip.hopLimit, protocol: proto, source: source, destination: destination)
        return out
    }

    /// Writes a 20-byte IPv4 header for a packet of `out.count` bytes, checksum included.
    @inlinable
    static func writeIPv4Header(_ out: UnsafeMutableRawBufferPointer, tos: UInt8, identification: UInt16,
                                flags: UInt16, ttl: UInt8, protocol proto: UInt8, source: UInt32, destination: UInt32) {
        out[0] = 0x45
        out[1] = tos
        out.storeBE16(UInt16(truncatingIfNeeded: out.count), at: 2)
        out.storeBE16(identification, at: 4)
        out.storeBE16(flags, at: 6)
        out[8] = ttl
        out[9] = proto
        out.storeBE32(source, at: 12)
        out.storeBE32(destination, at: 16)
        IPv4Packet(unchecked: out.prefix(upTo: 20)).fillHeaderChecksum()
    }

    /// A checksum field whose covered words summing to `old` now sum to `new` (RFC 1624 equation 3, many words).
    @inlinable
    static func replace(_ checksum: UInt16, old: UInt64, new: UInt64) -> UInt16 {
        ~Checksum.fold(UInt64(~checksum) &+ UInt64(~Checksum.fold(old)) &+ new)
    }

    /// An ICMP echo that changes family: the type word changes, and the pseudo-header (which only ICMPv6 has) is
    /// removed (`removing`) or added (`adding`) to the checksum.
    @inlinable
    static func retype(_ icmp: UnsafeMutableRawBufferPointer, to type: UInt8, removing: UInt64 = 0, adding: UInt64 = 0) {
        let oldWord = UInt64(icmp.loadBE16(at: 0))
        icmp[0] = type
        let newWord = UInt64(icmp.loadBE16(at: 0))
        var value = replace(icmp.loadBE16(at: 2), old: oldWord &+ UInt64(Checksum.fold(removing)),
                            new: newWord &+ UInt64(Checksum.fold(adding)))
        if value == 0 { value = 0xFFFF }
        icmp.storeBE16(value, at: 2)
    }

    /// Section 5.2: ICMPv6 error to ICMPv4, its quoted packet translated too.
    static func errorToIPv4(
        _ ip: IPv6Packet, source: UInt32, destination: UInt32, identification: UInt16,
        scratch: UnsafeMutableRawBufferPointer, innerAddress: (IPv6Address) -> UInt32?
    ) throws(Failure) -> UnsafeMutableRawBufferPointer {
        let icmp = ip.upperLayer
        let (type, code) = (icmp[0], icmp[1])
        var rest: UInt32 = 0
        let newType: UInt8, newCode: UInt8
        switch type {
        case ICMPv6Type.destinationUnreachable:
            newType = ICMPv4Type.destinationUnreachable.value
            switch code {
            case 0, 2, 3: newCode = 1  // no route, beyond scope, address unreachable: host unreachable
            case 1: newCode = 10  // administratively prohibited: communication with host prohibited
            case 4: newCode = 3  // port unreachable
            default: throw .untranslatableICMP
            }
        case ICMPv6Type.packetTooBig:
            newType = ICMPv4Type.destinationUnreachable.value
            newCode = ICMPv4Type.fragmentationNeededCode
            rest = min(icmp.loadBE32(at: 4) &- min(icmp.loadBE32(at: 4), 20), 0xFFFF)
        case ICMPv6Type.timeExceeded:
            newType = ICMPv4Type.timeExceeded.value
            newCode = code
        case ICMPv6Type.parameterProblem:
            switch code {
            case 0:
                newType = ICMPv4Type.parameterProblem.value
                newCode = 0
                guard let pointer = ipv4Pointer(forIPv6: icmp.loadBE32(at: 4)) else { throw .untranslatableICMP }
                rest = UInt32(pointer) << 24
            case 1:
                newType = ICMPv4Type.destinationUnreachable.value
                newCode = 2  // unrecognized next header: protocol unreachable
            default: throw .untranslatableICMP
            }
        default:
            throw .untranslatableICMP
        }
        let quoted: IPv6Packet
        do throws(PacketError) { quoted = try IPv6Packet(validating: icmp.suffix(from: 8), quoted: true) } catch {
            throw .badQuote
        }
        guard let innerSource = innerAddress(quoted.source), let innerDestination = innerAddress(quoted.destination)
        else { throw .badQuote }
        // Build: IPv4 header, ICMPv4 header, quoted IPv4 header, quoted upper layer (cut to fit 576 bytes).
        let upper = quoted.upperLayer
        let available = min(upper.count, maxICMPv4Error &- 48, scratch.count &- 48)
        let out = scratch.prefix(upTo: 48 &+ available)
        UnsafeMutableRawBufferPointer(rebasing: out[48...])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: upper[..<available]))
        let innerUpper = out.suffix(from: 48)
        var innerProto = quoted.upperProtocol
        if quoted.fragmentOffset == 0 {
            switch innerProto {
            case IPv6Packet.NextHeader.tcp, IPv6Packet.NextHeader.udp:
                let field = innerProto == IPv6Packet.NextHeader.tcp ? 16 : 6
                if innerUpper.count >= field &+ 2 {
                    let old = quoted.source.wordSum &+ quoted.destination.wordSum
                    let new = UInt64(innerSource >> 16) &+ UInt64(innerSource & 0xFFFF)
                        &+ UInt64(innerDestination >> 16) &+ UInt64(innerDestination & 0xFFFF)
                    innerUpper.storeBE16(replace(innerUpper.loadBE16(at: field), old: old, new: new), at: field)
                }
            case IPv6Packet.NextHeader.icmpv6:
                guard innerUpper.count >= 4 else { break }
                let t: UInt8
                switch innerUpper[0] {
                case ICMPv6Type.echoRequest: t = ICMPv4Type.echoRequest.value
                case ICMPv6Type.echoReply: t = ICMPv4Type.echoReply.value
                default: throw .untranslatableICMP  // an error about an error is never sent
                }
                retype(innerUpper, to: t, removing: quoted.pseudoHeaderSum(protocol: innerProto,
                                                                             length: quoted.declaredUpperLength))
            default: break
            }
        }
        if innerProto == IPv6Packet.NextHeader.icmpv6 { innerProto = IPProtocol.icmp.value }
        let innerHeader = out.suffix(from: 28).prefix(upTo: 20)
        let innerFragmented = quoted.isFragment && !quoted.isAtomicFragment
        let innerLength = 20 &+ quoted.declaredUpperLength
        writeIPv4Header(
            UnsafeMutableRawBufferPointer(start: innerHeader.baseAddress, count: min(innerLength, 65_535)),
            tos: quoted.trafficClass,
            identification: innerFragmented ? UInt16(truncatingIfNeeded: quoted.fragmentIdentification) : 0,
            flags: innerFragmented ? (quoted.moreFragments ? 0x2000 : 0) | UInt16(quoted.fragmentOffset / 8)
                : (innerLength > 1260 ? 0x4000 : 0),
            ttl: quoted.hopLimit, protocol: innerProto, source: innerSource, destination: innerDestination)
        let message = out.suffix(from: 20)
        message[0] = newType
        message[1] = newCode
        message.storeBE16(0, at: 2)
        message.storeBE32(rest, at: 4)
        message.storeBE16(Checksum.finish(Checksum.sum(message)), at: 2)
        writeIPv4Header(out, tos: ip.trafficClass, identification: identification, flags: 0, ttl: ip.hopLimit,
                        protocol: IPProtocol.icmp.value, source: source, destination: destination)
        let result = ip.buffer.prefix(upTo: out.count)
        result.copyMemory(from: UnsafeRawBufferPointer(out))
        return result
    }

    /// RFC 7915 figure 6: where an ICMPv6 parameter problem pointer lands in the IPv4 header, or nil (n/a).
    @inlinable
    public static func ipv4Pointer(forIPv6 pointer: UInt32) -> UInt8? {
        switch pointer {
        case 0: 0  // version / traffic class
        case 1: 1  // traffic class / flow label
        case 4, 5: 2  // payload length: total length
        case 6: 9  // next header: protocol
        case 7: 8  // hop limit: TTL
        case 8...23: 12  // source address
        case 24...39: 16  // destination address
        default: nil
        }
    }

    /// RFC 7915 figure 3: where an ICMPv4 parameter problem pointer lands in the IPv6 header, or nil (n/a).
    @inlinable
    public static func ipv6Pointer(forIPv4 pointer: UInt8) -> UInt8? {
        switch pointer {
        case 0: 0  // version / IHL: version / traffic class
        case 1: 1  // type of service: traffic class
        case 2, 3: 4  // total length: payload length
        case 8: 7  // TTL: hop limit
        case 9: 6  // protocol: next header
        case 12...15: 8  // source address
        case 16...19: 24  // destination address
        default: nil
        }
    }

    // MARK: IPv4 to IPv6 (section 4)

    /// Translates `ip` to IPv6 from `source` to `destination`; the result starts up to `headroom` bytes before
    /// `ip` (that memory must be writable). `innerAddress` maps the addresses of the packet an ICMPv4 error quotes.
    public static func toIPv6(
        _ ip: IPv4Packet, headroom: Int, source: IPv6Address, destination: IPv6Address, verify: Bool,
        scratch: UnsafeMutableRawBufferPointer, innerAddress: (UInt32) -> IPv6Address?
    ) throws(Failure) -> UnsafeMutableRawBufferPointer {
        if sourceRouted(ip) { throw .sourceRouted }
        let payload = ip.payload
        var proto = ip.protocol.value
        let first = ip.fragmentOffset == 0
        switch proto {
        case IPProtocol.icmp.value:
            guard !ip.isFragment else { throw .fragmentedICMP }
            guard payload.count >= 8 else { throw .truncated }
            if verify && Checksum.sum(payload) != 0xFFFF { throw .badChecksum }
            let type = ICMPv4Type(payload[0])
            if type.isTranslatedError {
                return try errorToIPv6(ip, headroom: headroom, source: source, destination: destination,
                                       scratch: scratch, innerAddress: innerAddress)
            }
            let newType: UInt8
            switch type {
            case .echoRequest: newType = ICMPv6Type.echoRequest
            case .echoReply: newType = ICMPv6Type.echoReply
            default: throw .untranslatableICMP
            }
            proto = IPv6Packet.NextHeader.icmpv6
            let pseudo = source.wordSum &+ destination.wordSum &+ UInt64(payload.count) &+ UInt64(proto)
            retype(payload, to: newType, adding: pseudo)
        case IPProtocol.tcp.value, IPProtocol.udp.value:
            let udp = proto == IPProtocol.udp.value
            let field = udp ? 6 : 16
            if first {
                guard payload.count >= field &+ 2 else { throw .truncated }
                let old = UInt64(ip.source.value >> 16) &+ UInt64(ip.source.value & 0xFFFF)
                    &+ UInt64(ip.destination.value >> 16) &+ UInt64(ip.destination.value & 0xFFFF)
                let new = source.wordSum &+ destination.wordSum
                if udp && payload.loadBE16(at: 6) == 0 {
                    // Section 4.5: IPv6 requires a UDP checksum; compute it, or drop a fragment (reassembly could).
                    guard !ip.isFragment else { throw .udpZeroChecksumFragment }
                    let pseudo = new &+ UInt64(payload.count) &+ UInt64(proto)
                    var value = Checksum.finish(Checksum.sum(payload, initial: UInt32(Checksum.fold(pseudo))))
                    if value == 0 { value = 0xFFFF }
                    payload.storeBE16(value, at: 6)
                } else {
                    var value = replace(payload.loadBE16(at: field), old: old, new: new)
                    if udp && value == 0 { value = 0xFFFF }
                    payload.storeBE16(value, at: field)
                }
            }
        default:
            throw .unsupportedProtocol
        }
        let fragmentHeader = ip.isFragment
        let headerLength = IPv6Packet.headerLength &+ (fragmentHeader ? IPv6Packet.fragmentHeaderLength : 0)
        let shift = headerLength &- ip.headerLength
        guard shift <= headroom else { throw .noRoom }
        let out = UnsafeMutableRawBufferPointer(start: ip.buffer.baseAddress! - shift, count: ip.buffer.count &+ shift)
        let (tos, ttl, id, fragmentField) = (ip.typeOfService, ip.timeToLive, ip.identification,
                                             UInt16(ip.fragmentOffset) | (ip.moreFragments ? 1 : 0))
        writeIPv6Header(out, trafficClass: tos, payloadLength: out.count &- IPv6Packet.headerLength,
                        nextHeader: fragmentHeader ? IPv6Packet.NextHeader.fragment : proto, hopLimit: ttl,
                        source: source, destination: destination)
        if fragmentHeader {
            out[40] = proto
            out[41] = 0
            out.storeBE16(fragmentField, at: 42)
            out.storeBE32(UInt32(id), at: 44)
        }
        return out
    }

    @inlinable
    static func writeIPv6Header(_ out: UnsafeMutableRawBufferPointer, trafficClass: UInt8, payloadLength: Int,
                                nextHeader: UInt8, hopLimit: UInt8, source: IPv6Address, destination: IPv6Address) {
        // Section 4.1: the flow label is zero.
        out.storeBE32(0x6000_0000 | UInt32(trafficClass) << 20, at: 0)
        out.storeBE16(UInt16(truncatingIfNeeded: payloadLength), at: 4)
        out[6] = nextHeader
        out[7] = hopLimit
        source.store(to: out, at: 8)
        destination.store(to: out, at: 24)
    }

    /// Whether an IPv4 header carries a loose or strict source route option with addresses left to visit.
    @inlinable
    static func sourceRouted(_ ip: IPv4Packet) -> Bool {
        guard ip.headerLength > 20 else { return false }
        let options = ip.options
        var i = 0
        while i < options.count {
            let kind = options[i]
            if kind == 0 { return false }  // end of options
            if kind == 1 { i &+= 1; continue }  // no-op
            guard i &+ 1 < options.count else { return false }
            let length = Int(options[i &+ 1])
            guard length >= 2, i &+ length <= options.count else { return false }
            // LSRR (131) and SSRR (137): the pointer (1-based) still inside the route means addresses left.
            if (kind == 131 || kind == 137) && length >= 3 && Int(options[i &+ 2]) <= length { return true }
            i &+= length
        }
        return false
    }

    /// RFC 1191 section 7: the plateau below `length`, for a "fragmentation needed" from a router too old to say
    /// its next-hop MTU.
    @inlinable
    public static func plateau(below length: Int) -> Int {
        for p in [32_000, 17_914, 8166, 4352, 2002, 1492, 1006, 508, 296] where p < length { return p }
        return 68
    }

    /// Section 4.2: ICMPv4 error to ICMPv6, its quoted packet translated too.
    static func errorToIPv6(
        _ ip: IPv4Packet, headroom: Int, source: IPv6Address, destination: IPv6Address,
        scratch: UnsafeMutableRawBufferPointer, innerAddress: (UInt32) -> IPv6Address?
    ) throws(Failure) -> UnsafeMutableRawBufferPointer {
        let icmp = ip.payload
        let (type, code) = (ICMPv4Type(icmp[0]), icmp[1])
        let quoted: IPv4Packet
        do throws(PacketError) { quoted = try IPv4Packet(quoted: icmp.suffix(from: 8)) } catch { throw .badQuote }
        var rest: UInt32 = 0
        let newType: UInt8, newCode: UInt8
        switch type {
        case .destinationUnreachable:
            newType = ICMPv6Type.destinationUnreachable
            switch code {
            case 0, 1, 5, 6, 7, 8, 11, 12: newCode = 0  // net or host unreachable, source route failed, ...: no route
            case 9, 10, 13, 15: newCode = 1  // administratively prohibited
            case 3: newCode = 4  // port unreachable
            case 2:  // protocol unreachable: parameter problem, unrecognized next header, pointing at it
                return try buildErrorToIPv6(ip, quoted, type: ICMPv6Type.parameterProblem, code: 1, rest: 6,
                                            headroom: headroom, source: source, destination: destination,
                                            scratch: scratch, innerAddress: innerAddress)
            case ICMPv4Type.fragmentationNeededCode:
                let advertised = Int(icmp.loadBE16(at: 6))
                let mtu = advertised == 0 ? plateau(below: quoted.totalLength) : advertised
                // The header difference, and never below the IPv6 minimum (RFC 8200 section 5).
                return try buildErrorToIPv6(ip, quoted, type: ICMPv6Type.packetTooBig, code: 0,
                                            rest: UInt32(max(1280, mtu &+ 20)), headroom: headroom, source: source,
                                            destination: destination, scratch: scratch, innerAddress: innerAddress)
            default: throw .untranslatableICMP  // 4 handled above; 14 (host precedence violation) and others drop
            }
        case .timeExceeded:
            newType = ICMPv6Type.timeExceeded
            newCode = code
        case .parameterProblem:
            guard code == 0 || code == 2, let pointer = ipv6Pointer(forIPv4: icmp[4]) else {
                throw .untranslatableICMP
            }
            newType = ICMPv6Type.parameterProblem
            newCode = 0
            rest = UInt32(pointer)
        default:
            throw .untranslatableICMP
        }
        return try buildErrorToIPv6(ip, quoted, type: newType, code: newCode, rest: rest, headroom: headroom,
                                    source: source, destination: destination, scratch: scratch,
                                    innerAddress: innerAddress)
    }

    static func buildErrorToIPv6(
        _ ip: IPv4Packet, _ quoted: IPv4Packet, type: UInt8, code: UInt8, rest: UInt32, headroom: Int,
        source: IPv6Address, destination: IPv6Address, scratch: UnsafeMutableRawBufferPointer,
        innerAddress: (UInt32) -> IPv6Address?
    ) throws(Failure) -> UnsafeMutableRawBufferPointer {
        guard let innerSource = innerAddress(quoted.source.value),
              let innerDestination = innerAddress(quoted.destination.value) else { throw .badQuote }
        let innerFragment = quoted.isFragment
        let innerHeader = IPv6Packet.headerLength &+ (innerFragment ? IPv6Packet.fragmentHeaderLength : 0)
        let front = IPv6Packet.headerLength &+ 8 &+ innerHeader
        let upper = quoted.payload
        let available = min(upper.count, maxICMPv6Error &- front, scratch.count &- front)
        let out = scratch.prefix(upTo: front &+ available)
        let innerUpper = out.suffix(from: front)
        innerUpper.copyMemory(from: UnsafeRawBufferPointer(rebasing: upper[..<available]))
        var innerProto = quoted.protocol.value
        if quoted.fragmentOffset == 0 {
            switch innerProto {
            case IPProtocol.tcp.value, IPProtocol.udp.value:
                let field = innerProto == IPProtocol.tcp.value ? 16 : 6
                if innerUpper.count >= field &+ 2 && !(innerProto == IPProtocol.udp.value && innerUpper.loadBE16(at: 6) == 0) {
                    let old = UInt64(quoted.source.value >> 16) &+ UInt64(quoted.source.value & 0xFFFF)
                        &+ UInt64(quoted.destination.value >> 16) &+ UInt64(quoted.destination.value & 0xFFFF)
                    let new = innerSource.wordSum &+ innerDestination.wordSum
                    innerUpper.storeBE16(replace(innerUpper.loadBE16(at: field), old: old, new: new), at: field)
                }
            case IPProtocol.icmp.value:
                guard innerUpper.count >= 4 else { break }
                let t: UInt8
                switch ICMPv4Type(innerUpper[0]) {
                case .echoRequest: t = ICMPv6Type.echoRequest
                case .echoReply: t = ICMPv6Type.echoReply
                default: throw .untranslatableICMP
                }
                innerProto = IPv6Packet.NextHeader.icmpv6
                let pseudo = innerSource.wordSum &+ innerDestination.wordSum &+ UInt64(quoted.declaredPayloadLength)
                    &+ UInt64(innerProto)
                retype(innerUpper, to: t, adding: pseudo)
            default: break
            }
        }
        if innerProto == IPProtocol.icmp.value { innerProto = IPv6Packet.NextHeader.icmpv6 }
        let inner = out.suffix(from: IPv6Packet.headerLength &+ 8)
        writeIPv6Header(inner, trafficClass: quoted.typeOfService,
                        payloadLength: quoted.declaredPayloadLength &+ innerHeader &- IPv6Packet.headerLength,
                        nextHeader: innerFragment ? IPv6Packet.NextHeader.fragment : innerProto,
                        hopLimit: quoted.timeToLive, source: innerSource, destination: innerDestination)
        if innerFragment {
            inner[40] = innerProto
            inner[41] = 0
            inner.storeBE16(UInt16(quoted.fragmentOffset) | (quoted.moreFragments ? 1 : 0), at: 42)
            inner.storeBE32(UInt32(quoted.identification), at: 44)
        }
        let message = out.suffix(from: IPv6Packet.headerLength)
        message[0] = type
        message[1] = code
        message.storeBE16(0, at: 2)
        message.storeBE32(rest, at: 4)
        let proto = IPv6Packet.NextHeader.icmpv6
        let pseudo = source.wordSum &+ destination.wordSum &+ UInt64(message.count) &+ UInt64(proto)
        message.storeBE16(Checksum.finish(Checksum.sum(message, initial: UInt32(Checksum.fold(pseudo)))), at: 2)
        writeIPv6Header(out, trafficClass: ip.typeOfService, payloadLength: message.count, nextHeader: proto,
                        hopLimit: ip.timeToLive, source: source, destination: destination)
        let shift = out.count &- ip.buffer.count
        guard shift <= headroom else { throw .noRoom }
        let result = UnsafeMutableRawBufferPointer(start: ip.buffer.baseAddress! - max(0, shift), count: out.count)
        result.copyMemory(from: UnsafeRawBufferPointer(out))
        return result
    }
}
