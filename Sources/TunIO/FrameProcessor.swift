import NatTable
import PacketKit

/// What one frame came to.
public enum FrameOutcome: Equatable {
    case send(VirtioNetHeader)
    case drop
}

/// The per-frame work between read and write, separate from the loop so that tests can drive it without a
/// kernel: virtio-net header in, translation, partial checksum moved, TTL compensated, header out.
public enum FrameProcessor {
    /// `frame` is a virtio-net header followed by the packet (a zeroed header when the device has none).
    @inline(__always)
    public static func process(
        _ frame: UnsafeMutableRawBufferPointer, nat: NAT, now: NatInstant, compensateHop: Bool,
        counters: inout IOCounters
    ) -> FrameOutcome {
        guard frame.count >= VirtioNetHeader.size else {
            counters.badVirtioHeader &+= 1
            return .drop
        }
        let header = VirtioNetHeader(frame)
        let packet = frame.suffix(from: VirtioNetHeader.size)
        let prepared: PreparedFrame
        do throws(OffloadError) {
            prepared = try Offload.prepare(packet, header)
        } catch {
            // Counted here and in the NAT, so that the NAT's packet total stays the number of packets seen.
            if error == .unsupportedGSO { counters.unsupportedGSO &+= 1 } else { counters.badVirtioHeader &+= 1 }
            nat.countDrop(.badTransportHeader)
            return .drop
        }
        if header.isGSO { counters.gsoFramesRead &+= 1 }
        if prepared.header.flags != header.flags { counters.checksumsCompleted &+= 1 }
        guard case .forward = nat.translate(packet, now: now, transportChecksumTrusted: prepared.checksumTrusted)
        else { return .drop }
        Offload.finish(packet, prepared)
        if compensateHop { Offload.compensateForwardingHop(packet) }
        return .send(prepared.header)
    }
}
