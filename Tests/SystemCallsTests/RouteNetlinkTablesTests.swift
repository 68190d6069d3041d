import Glibc
import Testing
@testable import SystemCalls

/// Rules and routes over rtnetlink against the real kernel (the bytes themselves are NetlinkTests' TablesTests),
/// in a network namespace of their own, made for the test by a thread of the test process: unshare(CLONE_NEWNET)
/// moves only the calling thread, its sockets stay in the namespace, and the namespace goes when the thread ends. So no test touches the host's routing, leaves anything behind or needs a clean-up, and the tests
/// stay in-process (Swift Testing, in parallel with the rest) instead of in the shell suite. Needs CAP_SYS_ADMIN.
@Suite struct RouteNetlinkTablesTests {
    static let lan1 = RouteNetlink.Rule(priority: 100, source: prefix("10.0.0.0", 8), inputInterface: "lan1",
                                        action: .lookup(table: 100))
    static let hostsOwn = RouteNetlink.Rule(priority: 101, source: prefix("10.0.0.0", 8), inputInterface: "lo",
                                            action: .lookup(table: 254))
    static let spoofed = RouteNetlink.Rule(priority: 102, source: prefix("10.0.0.0", 8), inputInterface: nil,
                                           action: .blackhole)
    static let bigTable = RouteNetlink.Rule(priority: 100, source: prefix("172.16.0.0", 12), inputInterface: "lan2",
                                            action: .lookup(table: 300))

    static let throughLo = RouteNetlink.TableRoute(type: .unicast, table: 100, destination: prefix("0.0.0.0", 0), interfaces: [1])
    static let fence = RouteNetlink.TableRoute(type: .blackhole, table: 100, destination: prefix("0.0.0.0", 0), metric: .max)
    static let throwPrivate = RouteNetlink.TableRoute(type: .throw, table: 100, destination: prefix("10.0.0.0", 8))
    static let pool = RouteNetlink.TableRoute(type: .unicast, table: 254, destination: prefix("198.18.0.1", 32), interfaces: [1])

    // MARK: The real kernel, in a namespace of the test's own

    /// What a fresh namespace lists, what adding tunnat's rules lists, and the kernel's errors for a rule added
    /// twice (EEXIST) and deleted twice (ENOENT).
    @Test(.enabled(if: geteuid() == 0, "unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN"))
    func rulesAreAddedListedAndDeleted() throws {
        struct Seen: Sendable {
            var fresh: [RouteNetlink.Rule] = [], added: [RouteNetlink.Rule] = [], after: [RouteNetlink.Rule] = []
            var twice: Errno?, goneTwice: Errno?
        }
        let seen = try Self.inNewNetworkNamespace { () throws(Errno) -> Seen in
            let netlink = try RouteNetlink()
            var seen = Seen()
            seen.fresh = try netlink.rules()
            for rule in [Self.lan1, Self.bigTable, Self.hostsOwn, Self.spoofed] { try netlink.add(.rule(rule)) }
            do throws(Errno) { try netlink.add(.rule(Self.lan1)) } catch { seen.twice = error }
            seen.added = try netlink.rules()
            for rule in [Self.lan1, Self.bigTable, Self.hostsOwn, Self.spoofed] { try netlink.delete(.rule(rule)) }
            do throws(Errno) { try netlink.delete(.rule(Self.lan1)) } catch { seen.goneTwice = error }
            seen.after = try netlink.rules()
            return seen
        }
        let defaults = [(0, 255), (32766, 254), (32767, 253)].map {
            RouteNetlink.Rule(priority: UInt32($0.0), source: nil, inputInterface: nil, action: .lookup(table: UInt32($0.1)))
        }
        #expect(seen.fresh == defaults)
        #expect(seen.added == [defaults[0], Self.lan1, Self.bigTable, Self.hostsOwn, Self.spoofed, defaults[1], defaults[2]])
        #expect(seen.twice == Errno("netlink RTM_NEWRULE", EEXIST))
        #expect(seen.goneTwice == Errno("netlink RTM_DELRULE", ENOENT))
        #expect(seen.after == defaults)
    }

    /// Routes of every kind tunnat adds, listed back per table; a route added twice is EEXIST, deleted twice
    /// ESRCH; a flush empties a table and counts what it deleted.
    @Test(.enabled(if: geteuid() == 0, "unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN"))
    func routesAreAddedListedDeletedAndFlushed() throws {
        struct Seen: Sendable {
            var table100: [RouteNetlink.TableRoute] = [], main: [RouteNetlink.TableRoute] = [], table1000: [RouteNetlink.TableRoute] = []
            var twice: Errno?, goneTwice: Errno?
            var flushed = 0, flushedAgain = 0
            var afterFlush: [RouteNetlink.TableRoute] = [], mainAfterFlush: [RouteNetlink.TableRoute] = []
        }
        let bigFence = RouteNetlink.TableRoute(type: .blackhole, table: 1000, destination: Self.prefix("0.0.0.0", 0), metric: .max)
        let seen = try Self.inNewNetworkNamespace { () throws(Errno) -> Seen in
            let netlink = try RouteNetlink()
            var seen = Seen()
            for route in [Self.throughLo, Self.fence, Self.throwPrivate, Self.pool, bigFence] { try netlink.add(.route(route)) }
            do throws(Errno) { try netlink.add(.route(Self.fence)) } catch { seen.twice = error }
            seen.table100 = try netlink.routes(table: 100)
            seen.main = try netlink.routes(table: 254)
            seen.table1000 = try netlink.routes(table: 1000)
            try netlink.delete(.route(Self.pool))
            do throws(Errno) { try netlink.delete(.route(Self.pool)) } catch { seen.goneTwice = error }
            seen.mainAfterFlush = try netlink.routes(table: 254)
            seen.flushed = try netlink.flush(table: 100)
            seen.flushedAgain = try netlink.flush(table: 100)
            seen.afterFlush = try netlink.routes(table: 100)
            return seen
        }
        #expect(Set(seen.table100) == [Self.throughLo, Self.fence, Self.throwPrivate])
        #expect(seen.main == [Self.pool])
        #expect(seen.table1000 == [bigFence])
        #expect(seen.twice == Errno("netlink RTM_NEWROUTE", EEXIST))
        #expect(seen.goneTwice == Errno("netlink RTM_DELROUTE", ESRCH))
        #expect(seen.mainAfterFlush.isEmpty)
        #expect(seen.flushed == 3 && seen.flushedAgain == 0 && seen.afterFlush.isEmpty)
    }

    @Test func interfaceNamesComeFromTheirIndex() {
        #expect(Syscall.interfaceName(Int32(Syscall.interfaceIndex("lo"))) == "lo")
        #expect(Syscall.interfaceName(Int32.max) == nil)
        #expect(Syscall.interfaceName(0) == nil)
    }

    // MARK: Helpers

    static func prefix(_ address: String, _ length: UInt8) -> RouteNetlink.Prefix {
        var parsed = in_addr()
        precondition(inet_pton(AF_INET, address, &parsed) == 1)
        return RouteNetlink.Prefix(address: parsed.s_addr, length: length)
    }

    /// Runs `body` on a thread of its own that has moved into a new network namespace, with lo up, and returns
    /// what it returned (Swift Testing's expectations are checked on the test's own task, after).
    static func inNewNetworkNamespace<R>(_ body: @escaping () throws(Errno) -> R) throws(Errno) -> R {
        // The thread is joined before `result` is read: nothing is shared while both run.
        nonisolated(unsafe) var result: Result<R, Errno>?
        nonisolated(unsafe) let body = body
        let thread = try NamedThread("netns-test") {
            result = Result { () throws(Errno) -> R in
                try Syscall.unshareNetworkNamespace()
                try TunControl.bringUp("lo", mtu: 0)
                return try body()
            }
        }
        thread.join()
        return try result!.get()
    }
}
