import Foundation
import Logging
import NatTable
import Testing
@testable import TunnatKit

/// The service layer's decisions, driven by a clock of the test's own: the watchdog, readiness, the status line,
/// what a SIGHUP may change, and the shapes of log lines.
@Suite struct ServiceTests {
    static let second: UInt64 = 1_000_000_000

    @Test func watchdogPingsOnlyWhenEveryQueueTurned() {
        // WATCHDOG_USEC 2 s: a ping may go every second.
        var w = PacketPathWatchdog(timeoutMicroseconds: 2_000_000, now: 0, beats: [0, 0])
        #expect(w.interval == Self.second)
        func tick(_ now: UInt64, _ beats: [UInt64]) -> Bool { w.tick(now: now, beats: beats) }
        #expect(!tick(Self.second / 2, [5, 5]))  // not yet due
        #expect(tick(Self.second, [5, 5]))
        // Queue 1 stops turning: no ping however long it lasts, and it is named.
        #expect(!tick(2 * Self.second, [9, 5]))
        #expect(!tick(10 * Self.second, [90, 5]))
        #expect(w.stalled([90, 5]) == [1])
        #expect(w.sinceLastPing(now: 10 * Self.second) == 9 * Self.second)
        // It turns again: the next tick pings.
        #expect(tick(10 * Self.second + 1, [91, 6]))
        #expect(!tick(10 * Self.second + 2, [92, 7]))
    }

    static func report(_ replication: String, failover: String = "", nat extra: String = "") -> StatusReport {
        let text = """
            {"device":"tun0","queues":1,"offloads":"","output":"packet","uptime_seconds":1,"flows":3,"mappings":1,
             "nat":{"outbound":10,"inbound":8,"hairpin":0,"bytes-outbound":1000,"bytes-inbound":800,"bytes-hairpin":0,
             "tcp-attempts":2,"tcp-established":1,"flows-expired":4,"packets":20,"dropped":2\(extra.isEmpty ? "" : "," + extra)},
             "drops":{"ports-exhausted":1,"filtered":1},"io":{"frames-read":20,"lock-wait-max-us":3},
             "kernel":{"tun-tx-dropped":5,"tun-rx-dropped":0}\(replication)\(failover)}
            """
        return StatusReport.decode(Array(text.utf8))!
    }

    static let standby = #","replication":{"node":2,"role":"standby","term":3,"leader":1,"synced":true,"handover":"","counters":{"sent":5},"peers":[{"endpoint":"10.0.0.1:4789","node":1,"alive":true,"role":"active","synced":false,"session":true,"in_flight":1,"pending":7,"resyncing":false}]}"#

    @Test func readinessAndStatusLine() {
        #expect(Service.readiness(Self.report("")).ready)
        #expect(Service.statusLine(Self.report("")) == "active (no replication), 3 flow(s)")
        let synced = Self.report(Self.standby)
        #expect(Service.readiness(synced).ready)
        #expect(Service.statusLine(synced) == "standby of node 1, replica synced, 0/1 peer(s) synced, 3 flow(s)")
        let incomplete = Self.report(Self.standby.replacingOccurrences(of: #""leader":1,"synced":true"#, with: #""leader":1,"synced":false"#))
        #expect(!Service.readiness(incomplete).ready)
        #expect(Service.readiness(incomplete).why == "not ready: standby of node 1, replica incomplete")
        let starting = Self.report(Self.standby.replacingOccurrences(of: #""role":"standby""#, with: #""role":"starting""#))
        #expect(!Service.readiness(starting).ready)
    }

    static let base = "nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n"

    @Test func reloadTakesLogLevelAndFailoverAndRefusesTheRest() throws {
        let running = try ConfigFile.parse(Self.base, file: "t.yaml")
        // Reread without a seed: a new random seed is not a change.
        #expect(try Reload.plan(running: running, loaded: ConfigFile.parse(Self.base, file: "t.yaml")).get().isEmpty)
        let debug = try ConfigFile.parse(Self.base + "log_level: debug\n", file: "t.yaml")
        #expect(try Reload.plan(running: running, loaded: debug).get() == Reload.Plan(logLevel: "debug", failover: nil))
        let pool = try ConfigFile.parse(Self.base.replacingOccurrences(of: "198.18.0.1", with: "198.18.0.2") + "log_level: debug\n", file: "t.yaml")
        guard case .failure(let refusal) = Reload.plan(running: running, loaded: pool) else { Issue.record("a pool change was taken"); return }
        #expect(refusal.keys == ["nat"])
        #expect(refusal.description.hasPrefix("nat changed: only failover (health checks and routes) and log_level"))
        let several = try ConfigFile.parse(Self.base + "tun: {name: tun7}\nmetrics: {listen: \"\"}\n", file: "t.yaml")
        guard case .failure(let r2) = Reload.plan(running: running, loaded: several) else { Issue.record("taken"); return }
        #expect(r2.keys == ["tun", "metrics"])
    }

    @Test func reloadTakesAChangedFailoverSectionButNotAnAddedOne() throws {
        let failover = """
            failover:
              aws: {region: us-east-1, instance_id: i-1, vpc_id: vpc-1, interface_id: eni-1}
              healthchecks:
                up: {type: ping, destination: 198.18.250.1}
              routetables:
                private:
                  find: {type: by_tag, config: {key: tunnat, value: private}}
                  manage_routes: [{cidr: 0.0.0.0/0, healthcheck: up}]

            """
        let with = try ConfigFile.parse(Self.base + failover, file: "t.yaml")
        let changed = try ConfigFile.parse(Self.base + failover.replacingOccurrences(of: "198.18.250.1", with: "198.18.250.9"), file: "t.yaml")
        let plan = try Reload.plan(running: with, loaded: changed).get()
        #expect(plan.failover == changed.failover && plan.logLevel == nil)
        let without = try ConfigFile.parse(Self.base, file: "t.yaml")
        guard case .failure(let refusal) = Reload.plan(running: without, loaded: with) else { Issue.record("taken"); return }
        #expect(refusal.keys == ["failover (added)"])
    }

    @Test func reloadSeesThePoolAddressesNotHowTheyAreSpelled() throws {
        let base = "nat: {private_prefixes: [10.0.1.0/24], pool: [10.0.0.50, 10.0.0.51]}\n"
        func failover(_ pool: String) -> String {
            "failover:\n  \(pool)\n  routetables: {a: {find: {type: main}, manage_routes: [{cidr: 0.0.0.0/0}]}}\n"
        }
        let one = try ConfigFile.parse(base + failover("pool_address: 10.0.0.50"), file: "t.yaml")
        let listed = try ConfigFile.parse(base + failover("pool_addresses: [10.0.0.50]"), file: "t.yaml")
        #expect(try Reload.plan(running: one, loaded: listed).get().isEmpty)
        // `all` is nat.pool: one more address to take over, and a reload takes it.
        let all = try ConfigFile.parse(base + failover("pool_addresses: all"), file: "t.yaml")
        let plan = try Reload.plan(running: one, loaded: all).get()
        #expect(plan.failover?.poolAddresses == ["10.0.0.50", "10.0.0.51"])
    }

    @Test func logLinesForTerminalJournalAndJSON() throws {
        let time = Date(timeIntervalSince1970: 1_700_000_000)
        let text = LogOutput.render(level: .notice, label: "tunnat", message: "stopping\nnow", metadata: ["b": "2", "a": "1"],
                                    format: .text, journal: false, time: time)
        #expect(text == "2023-11-14T22:13:20.000Z notice tunnat: stopping now a=1 b=2")
        let journal = LogOutput.render(level: .error, label: "tunnat", message: "x", metadata: [:], format: .text, journal: true, time: time)
        #expect(journal == "<3>x")
        #expect(LogOutput.render(level: .debug, label: "l", message: "x", metadata: [:], format: .text, journal: true, time: time) == "<7>x")
        let json = LogOutput.render(level: .info, label: "tunnat", message: "m \"q\"", metadata: ["k": "v"], format: .json,
                                    journal: false, time: time)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object["message"] as? String == "m \"q\"" && object["level"] as? String == "info")
        #expect((object["metadata"] as? [String: String]) == ["k": "v"])
        #expect(!json.contains("\n"))
    }

    @Test func figuresFollowPrometheusNamingAndCarryTheReport() throws {
        let report = Self.report(Self.standby, failover: #","failover":{"checks":{"up":"healthy"},"routes_managed":2,"routes_held":1}"#)
        let figures = Figure.of(report)
        let name = try Regex("^tunnat_[a-z0-9_]+$")
        for f in figures {
            #expect(f.name.wholeMatch(of: name) != nil, "\(f.name)")
            #expect((f.kind == .counter) == f.name.hasSuffix("_total"), "\(f.name)")
            #expect(!f.help.isEmpty)
        }
        func value(_ n: String, _ labels: [String: String] = [:]) -> Double? {
            figures.first { $0.name == n && $0.labels == labels }?.value
        }
        #expect(value("tunnat_active_flows") == 3)
        #expect(value("tunnat_bytes_translated_total", ["direction": "inbound"]) == 800)
        #expect(value("tunnat_port_allocation_errors_total") == 1)
        #expect(value("tunnat_dropped_packets_total", ["reason": "filtered"]) == 1)
        #expect(value("tunnat_tun_dropped_total", ["side": "tx"]) == 5)
        #expect(value("tunnat_io_lock_wait_max_seconds") == 3e-6)
        #expect(value("tunnat_role", ["role": "standby"]) == 1 && value("tunnat_role", ["role": "active"]) == 0)
        #expect(value("tunnat_replication_pending_records") == 7)
        #expect(value("tunnat_health_check_verdict", ["check": "up", "verdict": "healthy"]) == 1)
        #expect(value("tunnat_routes_held") == 1)
        // The exposition swift-prometheus makes of them: one HELP and TYPE per name, counters moved by the difference.
        let exporter = PrometheusExporter()
        _ = exporter.render(figures)
        let text = String(decoding: exporter.render(figures), as: UTF8.self)
        #expect(text.contains("# TYPE tunnat_idle_timeouts_total counter\ntunnat_idle_timeouts_total 4\n"))
        #expect(text.components(separatedBy: "# HELP tunnat_bytes_translated_total ").count == 2)
    }

    @Test func cloudWatchSendsCounterIncreasesAndGaugesAsTheyAre() {
        let first = CloudWatchPublisher.data(Figure.of(Self.report("")), sent: [:], dimensions: [("InstanceId", "i-1")])
        let byName = Dictionary(uniqueKeysWithValues: first.data.map { ($0.name, $0) })
        #expect(byName["ActiveConnectionCount"]?.value == 3)
        #expect(byName["PacketsOutToDestination"]?.value == 10 && byName["BytesOutToSource"]?.unit == "Bytes")
        #expect(byName["ConnectionAttemptCount"]?.dimensions.first?.value == "i-1")
        // The next interval: counters as the increase since the last call that succeeded, gauges as they are.
        let later = CloudWatchPublisher.data(Figure.of(Self.report("")), sent: first.values, dimensions: [])
        let again = Dictionary(uniqueKeysWithValues: later.data.map { ($0.name, $0.value) })
        #expect(again["PacketsOutToDestination"] == 0 && again["ActiveConnectionCount"] == 3)
    }

    /// The NAT gateway's In figures: packets and bytes received from each side, dropped ones included.
    @Test func cloudWatchHasTheReceivedFiguresOfEachSide() {
        let report = Self.report("", nat: #""from-source":12,"bytes-from-source":1200,"from-destination":9,"bytes-from-destination":900"#)
        let byName = Dictionary(uniqueKeysWithValues: CloudWatchPublisher.data(Figure.of(report), sent: [:], dimensions: []).data.map { ($0.name, $0) })
        #expect(byName["PacketsInFromSource"]?.value == 12 && byName["BytesInFromSource"]?.value == 1200)
        #expect(byName["PacketsInFromDestination"]?.value == 9 && byName["BytesInFromDestination"]?.unit == "Bytes")
    }

    /// With a pair, the node that translates sends every figure again under the dimension Pair (one series across a
    /// failover); a standby sends only its own.
    @Test func thePairSeriesComesFromTheActiveAlone() {
        let peak = PeakRate.Peak(packets: 5, bytes: 500)
        let active = CloudWatchPublisher.interval(Self.report(""), sent: [:], peak: peak, dimensions: [("InstanceId", "i-1")], pair: "nat-a")
        let own = active.data.filter { $0.dimensions.first?.name == "InstanceId" }
        let pair = active.data.filter { $0.dimensions.first?.name == "Pair" }
        #expect(own.count == pair.count && pair.allSatisfy { $0.dimensions.count == 1 && $0.dimensions[0].value == "nat-a" })
        #expect(pair.map(\.name) == own.map(\.name) && pair.map(\.value) == own.map(\.value))
        #expect(own.contains { $0.name == "PeakPacketsPerSecond" && $0.value == 5 && $0.unit == "Count/Second" })
        let standby = CloudWatchPublisher.interval(Self.report(Self.standby), sent: [:], peak: peak, dimensions: [("InstanceId", "i-2")], pair: "nat-a")
        #expect(!standby.data.isEmpty && standby.data.allSatisfy { $0.dimensions.first?.name == "InstanceId" })
        let noPair = CloudWatchPublisher.interval(Self.report(""), sent: [:], peak: peak, dimensions: [], pair: nil)
        #expect(noPair.data.allSatisfy { $0.dimensions.isEmpty })
    }

    /// Peaks over one-second samples on the caller's clock, reset by each take.
    @Test func peakRateIsTheHighestSampleSinceTheLastTake() {
        var rate = PeakRate()
        var nat = NatCounters()
        rate.sample(milliseconds: 1000, nat)
        nat.fromSource = 100; nat.fromSourceBytes = 10_000
        rate.sample(milliseconds: 2000, nat)
        nat.fromDestination = 300; nat.fromDestinationBytes = 90_000
        rate.sample(milliseconds: 2500, nat)       // 300 in half a second: 600/s
        nat.fromSource = 150
        rate.sample(milliseconds: 3500, nat)
        #expect(rate.take() == PeakRate.Peak(packets: 600, bytes: 180_000))
        nat.fromSource = 160
        rate.sample(milliseconds: 4500, nat)
        #expect(rate.take() == PeakRate.Peak(packets: 10, bytes: 0))
        rate.sample(milliseconds: 4500, nat)        // no time passed: no rate
        #expect(rate.take() == PeakRate.Peak())
    }

    @Test func cloudWatchPairIsChecked() throws {
        let config = try ConfigFile.parse(Self.base + "metrics: {cloudwatch: {pair: nat-a}}\n", file: "t.yaml")
        #expect(config.metrics.cloudWatch?.pair == "nat-a")
        do {
            _ = try ConfigFile.parse(Self.base + "metrics: {cloudwatch: {pair: \"a b\"}}\n", file: "t.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.description == "t.yaml:4: metrics.cloudwatch.pair: expected a name of 1 to 255 printable ASCII characters, got 'a b'")
        }
    }

    @Test func metricsAndLogFormatConfigErrorsNameTheKey() {
        func error(_ extra: String) -> String {
            do { _ = try ConfigFile.parse(Self.base + extra, file: "t.yaml"); return "accepted" } catch { return error.description }
        }
        #expect(error("metrics: {listen: \"localhost:9469\"}\n").hasPrefix("t.yaml:4: metrics.listen: expected an IPv4 ADDRESS:PORT"))
        #expect(error("metrics: {listen: \"127.0.0.1:0\"}\n").contains("metrics.listen"))
        #expect(error("metrics: {cloudwatch: {interval: 5s}}\n").contains("metrics.cloudwatch.interval: expected at least 10s, got 5s"))
        #expect(error("log_format: xml\n") == "t.yaml:4: log_format: expected text or json, got 'xml'")
        #expect(error("metrics: {listen: \"\"}\n") == "accepted")
    }
}
