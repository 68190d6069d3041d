/// PacketKit: typed, validating views over IPv4, TCP, UDP and ICMPv4 bytes; Internet checksums (full and
/// incremental); classic pcap reading and writing.
///
/// What it owns: the wire formats. A view's validating initializer checks everything its accessors rely on, so
/// no accessor can read out of bounds afterwards (the smoltcp `new_checked` model); setters that change a field
/// covered by a checksum fix that checksum in the same call (the gVisor `header` model).
///
/// What it must never do: make a system call, read a clock, allocate on the per-packet path, or depend on any
/// other module. That is what keeps `tunnat replay` deterministic and the data path allocation-free.
public enum PacketKit {}
