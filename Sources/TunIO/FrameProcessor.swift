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
        var window = frame
        return process(&window, headroom: 0, nat: nat, now: now, compensateHop: compensateHop, counters: &counters)
    }

    /// As above, for a frame with `headroom` writable bytes in front of it: a packet translated to IPv6 (NAT64)
    /// grows into them. `frame` is set to the frame to send, which begins earlier or later than it did when the
    /// packet changed family.
    @inline(__always)
    public static func process(
        _ frame: inout UnsafeMutableRawBufferPointer, headroom: Int, nat: NAT, now: NatInstant, compensateHop: Bool,
        counters: inout IOCounters
    ) -> FrameOutcome {
        guard frame.count >= VirtioNetHeader.size else {
            counters.badVirtioHeader &+= 1
            return .drop
        }
        let header = VirtioNetHeader(frame)
        var packet = frame.suffix(from: VirtioNetHeader.size)
        var prepared: PreparedFrame
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
        let before = packet.baseAddress
        guard case .forward = nat.translate(&packet, headroom: headroom, now: now,
                                            transportChecksumTrusted: prepared.checksumTrusted)
        else { return .drop }
        Offload.finish(packet, &prepared)
        if compensateHop { Offload.compensateForwardingHop(packet) }
        if packet.baseAddress != before || packet.count &+ VirtioNetHeader.size != frame.count {
            frame = UnsafeMutableRawBufferPointer(start: packet.baseAddress! - VirtioNetHeader.size,
                                                  count: packet.count &+ VirtioNetHeader.size)
        }
        return .send(prepared.header)
    }
}
