import Glibc
import Testing
@testable import SystemCalls

/// rtnetlink questions against this machine's own kernel, on the loopback interface (present everywhere, and
/// asking needs no privilege).
@Suite struct RouteNetlinkTests {
    static let loopback = UInt32(0x7F00_0001).bigEndian

    @Test func theLoopbackLinkIsNotEthernet() throws {
        let netlink = try RouteNetlink()
        let index = Int32(Syscall.interfaceIndex("lo"))
        let link = try netlink.link(index)
        #expect(link.type == 772, "ARPHRD_LOOPBACK")
        #expect(link.mtu >= 1500)
        #expect(link.type != RouteNetlink.Link.ethernetType)
    }

    /// A packet from a loopback source arriving on lo is martian: the kernel refuses the question, as it does
    /// `ip route get 127.0.0.1 from 127.0.0.1 iif lo`. (Real answers are checked in the namespace tests, where
    /// the packet output forwards through them.)
    @Test func aMartianQuestionIsRefused() throws {
        let netlink = try RouteNetlink()
        let index = Int32(Syscall.interfaceIndex("lo"))
        #expect(throws: Errno("netlink RTM_GETROUTE", EINVAL)) {
            try netlink.route(to: Self.loopback, from: Self.loopback, inputInterface: index)
        }
    }

    /// The kernel's errors come back as `Errno` with their code and the question's name; a missing neighbour is
    /// no entry, not an error; answers never mix up (the sequence numbers tell them apart).
    @Test func errorsCarryTheKernelsCode() throws {
        let netlink = try RouteNetlink()
        #expect(throws: Errno("netlink RTM_GETLINK", ENODEV)) { try netlink.link(Int32.max) }
        let index = Int32(Syscall.interfaceIndex("lo"))
        #expect(try netlink.neighbour(UInt32(0x7F00_00FE).bigEndian, interface: index) == nil)
        for _ in 0..<100 { #expect(try netlink.link(index).type == 772) }
    }
}
