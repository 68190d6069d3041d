"""IPv4 packets built by hand with `struct` (no scapy), for the namespace tests' raw-socket tools (floods.py,
nettools.py) and the fuzz seeds (fuzz_seeds.py): the Internet checksum, the IPv4, UDP, TCP and ICMP echo headers,
and Ethernet frames written straight onto an interface (AF_PACKET).

Addresses are 4 bytes (socket.inet_aton, or bytes([10, 0, 0, 1])). Every builder fills in its checksum.
"""
import socket
import struct

ETH_P_IP = 0x0800
IP_MF = 0x2000
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10


def checksum(data, initial=0):
    """The Internet checksum (RFC 1071) of data, with `initial` (a ones'-complement sum) added in."""
    if len(data) % 2:
        data += b"\0"
    s = initial + sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def pseudo_sum(src, dst, proto, length):
    """The ones'-complement sum of the TCP/UDP pseudo-header (RFC 768, RFC 793), not yet folded."""
    return sum(struct.unpack("!4H", src + dst)) + proto + length


def ipv4(src, dst, proto, payload, ident, frag=0, ttl=64):
    """An IPv4 header (no options) with its checksum, followed by payload. frag: flags and offset (8-byte units)."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, ttl, proto, 0, src, dst)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def udp(src, dst, sport, dport, payload, length=None):
    """A UDP header and payload with its checksum. length: the header's length field, when the datagram is longer
    than what is built here (a first fragment); the checksum then covers zeros for the rest."""
    length = length or 8 + len(payload)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    c = checksum(header + payload, pseudo_sum(src, dst, socket.IPPROTO_UDP, length)) or 0xFFFF
    return header[:6] + struct.pack("!H", c) + payload


def tcp(src, dst, sport, dport, seq, ack, flags, window=502, payload=b""):
    """A TCP header (no options) and payload with its checksum."""
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, window, 0, 0)
    c = checksum(header + payload, pseudo_sum(src, dst, socket.IPPROTO_TCP, 20 + len(payload)))
    return header[:16] + struct.pack("!H", c) + header[18:] + payload


def icmp_echo(ident, seq, payload, request=True):
    """An ICMP echo request (or reply) with its checksum."""
    header = struct.pack("!BBHHH", 8 if request else 0, 0, 0, ident, seq)
    return header[:2] + struct.pack("!H", checksum(header + payload)) + header[4:] + payload


def udp_ipv4(src, dst, sport, dport, payload, ident):
    """A whole UDP/IPv4 datagram (one fragment)."""
    return ipv4(src, dst, socket.IPPROTO_UDP, udp(src, dst, sport, dport, payload), ident)


def link_sender(iface, dst_mac):
    """(send, header): an AF_PACKET socket bound to iface, and the Ethernet header from iface's MAC to dst_mac
    (IPv4) to put in front of each packet: frames written straight onto the link, any source address, no routing."""
    with open(f"/sys/class/net/{iface}/address") as f:
        src_mac = bytes.fromhex(f.read().strip().replace(":", ""))
    header = bytes.fromhex(dst_mac.replace(":", "")) + src_mac + struct.pack("!H", ETH_P_IP)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    return s.send, header
