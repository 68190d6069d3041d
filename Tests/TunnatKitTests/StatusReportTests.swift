import Testing
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
}
