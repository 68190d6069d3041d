import Foundation
import NatTable
@testable import Replication
import Testing
import TunIO
import TunnatKit

@Suite struct StatusReportTests {
    static func report(kernel: String) -> String {
        """
        {"device":"tun0","queues":2,"offloads":"csum","output":"tun","uptime_seconds":5,"flows":0,"mappings":0,
         "nat":{},"drops":{},"io":{}\(kernel)}
        """
    }

    /// The kernel's drops on the device travel in the JSON under `kernel` and show in the text beside tunnat's own.
    @Test func kernelDropsAreReportedBesideTunnats() throws {
        let text = Self.report(kernel: #","kernel":{"tun-tx-dropped":7,"tun-rx-dropped":0,"tun-tx-errors":1}"#)
        let report = try #require(StatusReport.decode(Array(text.utf8)))
        #expect(report.kernel == ["tun-tx-dropped": 7, "tun-rx-dropped": 0, "tun-tx-errors": 1])
        #expect(StatusReport.decode(report.json()) == report)
        let lines = report.text.split(separator: "\n").map(String.init)
        let start = try #require(lines.firstIndex(of: "kernel (tun0 statistics):"))
        #expect(Array(lines[(start + 1)...].prefix(4)) == [
            "  tun-tx-dropped       7", "  tun-rx-dropped       0", "  tun-tx-errors        1", "  tun-rx-errors        unreadable",
        ])
    }

    /// A report from a tunnat that did not read them still decodes, and shows no kernel section.
    @Test func reportWithoutKernelCountersDecodes() throws {
        let report = try #require(StatusReport.decode(Array(Self.report(kernel: "").utf8)))
        #expect(report.kernel == nil && !report.text.contains("kernel"))
    }

    /// Read from sysfs: every counter of a device that exists (lo, in any network namespace), none of one that does not.
    @Test func kernelCountersAreReadFromSysfs() {
        #expect(Set(StatusReport.kernelCounters(device: "lo").keys) == Set(StatusReport.kernelFields.map(\.key)))
        #expect(StatusReport.kernelCounters(device: "no-such-dev0").isEmpty)
    }

    /// The typed counters and states travel as the JSON they always were (names from each type's one table), and
    /// come back equal: `tunnat status` in another process reads what the running one sent.
    @Test func typedStateRoundTripsThroughTheJSONNames() throws {
        var nat = NatCounters()
        nat.packets = 10
        nat.tcpAttempts = 3
        nat[.portsExhausted] = 2
        var io = IOCounters()
        io.framesRead = 9
        io.lockWaitMax = 7_000
        var replication = ReplicationStatus()
        replication.role = .standby
        replication.handover = .underway(to: 2)
        replication.counters.count(.takeovers)
        replication.counters.count(.sentBytes, 300)
        replication.counters.count(.noSession)
        replication.counters.count(ApplyFailure.conflict)
        replication.counters.countSent(.heartbeat, bytes: 120)
        replication.counters.tableHoldMaxMicroseconds = 42
        replication.peers = [.init(endpoint: "10.0.0.2:7800", node: 2, alive: true, role: nil, synced: false, session: true,
                                   inFlight: 0, pending: 0, resyncing: false)]
        let figures = StatusReport.TableFigures(flows: 1, mappings: 1, counters: nat, io: io)
        let report = StatusReport(device: "tun0", queues: 1, offloads: "", output: "packet", uptimeSeconds: 1, table: figures,
                                  replication: replication)
        let json = try #require(JSONSerialization.jsonObject(with: Data(report.json())) as? [String: Any])
        let natJSON = try #require(json["nat"] as? [String: UInt64])
        #expect(natJSON["packets"] == 10 && natJSON["tcp-attempts"] == 3 && natJSON["dropped"] == 2)
        #expect((json["drops"] as? [String: UInt64])?["ports-exhausted"] == 2)
        #expect((json["io"] as? [String: UInt64])?["lock-wait-max-us"] == 7)
        let r = try #require(json["replication"] as? [String: Any])
        #expect(r["role"] as? String == "standby" && r["handover"] as? String == "underway to node 2")
        #expect(r["counters"] as? [String: UInt64] == [
            "takeovers": 1, "sent-bytes": 300, "rejected-noSession": 1, "apply-conflict": 1, "sent-heartbeat": 1,
            "sent-heartbeat-bytes": 120, "table-hold-max-us": 42, "hold-timeouts": 0,
        ], "the hold's two figures are there at zero too")
        #expect((r["peers"] as? [[String: Any]])?.first?["role"] as? String == "unknown", "a peer not heard yet")
        #expect(StatusReport.decode(report.json()) == report)
        for handover in [HandoverStatus.none, .complete, .failed("no answer within 35 s"), .underway(to: 7)] {
            #expect(HandoverStatus(parsing: handover.description) == handover)
        }
    }
}
