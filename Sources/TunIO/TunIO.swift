/// TunIO: the packet I/O of the data plane.
///
/// It owns the TUN device (IFF_NO_PI, IFF_VNET_HDR offloads, IFF_MULTI_QUEUE), the raw IP socket output, the
/// offload handling (virtio-net headers, partial checksums, GSO splitting: all in `Offload.swift`), the table the
/// workers share (`LockedNAT`, which is also replication's `ReplicaPort`), and the per-queue worker loop that reads a
/// batch, translates it under one lock, and writes it out. The worker is generic over its `PacketQueue`, so tests
/// drive it on a `MemoryQueue`.
///
/// It must never allocate, log or build a `String` per packet: events are counted, and the caller logs
/// aggregates. It makes no syscall of its own: every call goes through SystemCalls.
public enum TunIO {}
