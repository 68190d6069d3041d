/// TunIO: the only module that moves packets through the kernel.
///
/// It owns the TUN device (IFF_NO_PI, IFF_VNET_HDR offloads, IFF_MULTI_QUEUE), the raw IP socket, the offload
/// handling (virtio-net headers, partial checksums, GSO splitting: all in `Offload.swift`), and the per-queue
/// worker loop that reads a batch, translates it under one lock, and writes it out.
///
/// It must never allocate, log or build a `String` per packet: events are counted, and the caller logs
/// aggregates. Every syscall goes through `Syscalls.swift`.
public enum TunIO {}
