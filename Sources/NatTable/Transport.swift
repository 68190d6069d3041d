import PacketKit

/// The transport header of a packet being translated, parsed once, with one way to read and rewrite its ports
/// whatever the protocol. For ICMP queries the identifier plays both ports (RFC 5508 section 3.1).
@usableFromInline enum Transport {
    case tcp(TCPSegment)
    case udp(UDPDatagram)
    case icmpQuery(ICMPv4Message)
    case icmpError(ICMPv4Message)

    /// Parses the payload of `ip`. A first fragment (`ip.isFragment`) holds only the start of the transport
    /// header and data, so only the header is required and no checksum can be verified.
    @inline(__always)
    init(_ ip: IPv4Packet, verify: Bool) throws(DropReason) {
        let payload = ip.payload
        let fragment = ip.isFragment
        do throws(PacketError) {
            switch ip.protocol {
            case .tcp:
                let tcp = try TCPSegment(validating: payload)
                if verify && !tcp.isChecksumValid(pseudoHeaderSum: ip.pseudoHeaderSum) { throw .badChecksum }
                self = .tcp(tcp)
            case .udp:
                let udp = fragment ? try UDPDatagram(headerOnly: payload) : try UDPDatagram(validating: payload)
                if verify && !udp.isChecksumValid(pseudoHeaderSum: ip.pseudoHeaderSum) { throw .badChecksum }
                self = .udp(udp)
            case .icmp:
                let icmp = try ICMPv4Message(validating: payload)
                // RFC 5508 REQ-3: an ICMP error whose checksum fails is dropped; queries likewise.
                if verify && !icmp.isChecksumValid { throw .badChecksum }
                if icmp.type.isQuery {
                    self = .icmpQuery(icmp)
                } else if icmp.type.isTranslatedError {
                    self = .icmpError(icmp)
                } else {
                    throw .unsupported(icmp.type.value)
                }
            default:
                throw .unsupported(ip.protocol.value)
            }
        } catch {
            switch error {
            case .badChecksum: throw .badTransportChecksum
            case .unsupported: throw ip.protocol == .icmp ? .unsupportedICMP : .unsupportedProtocol
            case .truncated where fragment: throw .fragmentTooShort
            default: throw .badTransportHeader
            }
        }
    }

    @inline(__always) var protocolClass: ProtocolClass {
        switch self {
        case .tcp: .tcp
        case .udp: .udp
        case .icmpQuery, .icmpError: .icmp
        }
    }

    @inline(__always) var ports: (source: UInt16, destination: UInt16) {
        switch self {
        case .tcp(let tcp): (tcp.sourcePort.value, tcp.destinationPort.value)
        case .udp(let udp): (udp.sourcePort.value, udp.destinationPort.value)
        case .icmpQuery(let icmp), .icmpError(let icmp): (icmp.identifier.value, icmp.identifier.value)
        }
    }

    /// Only a request may open an ICMP query mapping; a reply needs one already (RFC 5508 REQ-1). An RST never
    /// opens anything.
    @inline(__always) var mayCreateMapping: Bool {
        switch self {
        case .tcp(let tcp): !tcp.flags.contains(.rst)
        case .udp: true
        case .icmpQuery(let icmp): icmp.type.isQueryRequest
        case .icmpError: false
        }
    }

    @inline(__always) var timer: TimerClass {
        switch self {
        case .tcp: .tcpTransitory
        case .udp: .udp
        case .icmpQuery, .icmpError: .icmp
        }
    }

    @inline(__always) func setSourcePort(_ port: UInt16) {
        switch self {
        case .tcp(let tcp): tcp.setSourcePort(Port(port))
        case .udp(let udp): udp.setSourcePort(Port(port))
        case .icmpQuery(let icmp), .icmpError(let icmp): icmp.setIdentifier(Port(port))
        }
    }

    @inline(__always) func setDestinationPort(_ port: UInt16) {
        switch self {
        case .tcp(let tcp): tcp.setDestinationPort(Port(port))
        case .udp(let udp): udp.setDestinationPort(Port(port))
        case .icmpQuery(let icmp), .icmpError(let icmp): icmp.setIdentifier(Port(port))
        }
    }

    /// The pseudo-header changed: fix the transport checksum (ICMP has no pseudo-header).
    @inline(__always) func updateChecksum(addressFrom old: IPv4Address, to new: IPv4Address) {
        switch self {
        case .tcp(let tcp): tcp.updateChecksum(addressFrom: old, to: new)
        case .udp(let udp): udp.updateChecksum(addressFrom: old, to: new)
        case .icmpQuery, .icmpError: break
        }
    }
}
