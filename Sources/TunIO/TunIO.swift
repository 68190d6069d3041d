/// TunIO: the only module that moves packets through the kernel: the TUN device (IFF_NO_PI, IFF_VNET_HDR
/// offloads, multi-queue), the raw IP socket, and the per-queue worker loop.
///
/// Status: not built yet. It arrives with the live data plane (issue 3); until then tunnat's only packet source
/// is a capture file (`tunnat replay`). Nothing here may be mistaken for a working device.
public enum TunIO {}
