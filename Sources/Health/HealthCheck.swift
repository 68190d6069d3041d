import Foundation
import HTTP
import PacketKit
import Synchronization
import SystemCalls

/// One probe of a health check: true when the destination answered as expected. `detail` says why not.
/// `inconclusive`: it failed for want of something on this host (descriptors, buffers, a route), which says
/// nothing about the destination.
public struct ProbeResult: Sendable, Equatable {
    public var passed: Bool
    public var detail: String
    public var inconclusive = false

    public init(passed: Bool, detail: String, inconclusive: Bool = false) {
        self.passed = passed
        self.detail = detail
        self.inconclusive = inconclusive
    }
}

public enum Probe {
    /// One probe; a failure is then checked against this host's own state (`localShortage`), and is inconclusive
    /// if the host lacked what any probe needs.
    public static func run(_ spec: HealthCheckSpec) -> ProbeResult {
        var result = attempt(spec)
        if !result.passed, !result.inconclusive, let shortage = localShortage(destination: spec.destination) {
            result = ProbeResult(passed: false, detail: "\(shortage) (the probe: \(result.detail))", inconclusive: true)
        }
        return result
    }

    /// What this host lacks to reach `destination` now (a descriptor, buffers, memory, a route), or nil.
    static func localShortage(destination: String) -> String? {
        do throws(Errno) {
            try Syscall.localPathCheck(to: IPv4Address(destination)?.value)
            return nil
        } catch {
            return error.isLocalShortage ? "this host cannot probe: \(error)" : nil
        }
    }

    static func attempt(_ spec: HealthCheckSpec) -> ProbeResult {
        switch spec.kind {
        case .ping: return ping(spec)
        case .tcp:
            let failure = HTTPClient.probeTCP(
                host: spec.destination, port: spec.port ?? 0, tls: spec.tls, verifyTLS: !spec.skipVerify,
                caFile: spec.caCertificate, serverName: spec.serverName, send: spec.send, expect: spec.expect,
                timeoutMilliseconds: spec.probeTimeoutMilliseconds)
            return ProbeResult(passed: failure == nil, detail: failure ?? "connected")
        case .http, .https: return http(spec)
        case .command: return command(spec)
        }
    }

    static func http(_ spec: HealthCheckSpec) -> ProbeResult {
        let scheme = spec.kind == .https ? "https" : "http"
        let port = spec.port ?? (spec.kind == .https ? 443 : 80)
        let host = spec.serverName ?? spec.destination
        var request = HTTPRequest(method: "GET", url: "\(scheme)://\(host):\(port)\(spec.path)")
        request.useProxy = false
        request.verifyTLS = !spec.skipVerify
        request.caFile = spec.caCertificate
        request.timeoutMilliseconds = spec.probeTimeoutMilliseconds
        request.connectTimeoutMilliseconds = spec.probeTimeoutMilliseconds
        request.maxBody = 1 << 20
        if spec.serverName != nil {
            // The URL (Host header, TLS name) says serverName; the connection goes to the destination address.
            request.connectTo = "\(host):\(port):\(spec.destination):\(port)"
        }
        do {
            let response = try HTTPClient.perform(request)
            let statusOK = spec.expectStatus.isEmpty ? (200..<400).contains(response.status)
                : spec.expectStatus.contains(response.status)
            guard statusOK else { return ProbeResult(passed: false, detail: "HTTP \(response.status)") }
            if !spec.expect.isEmpty, !response.text.contains(spec.expect) {
                return ProbeResult(passed: false, detail: "HTTP \(response.status) without '\(spec.expect)'")
            }
            return ProbeResult(passed: true, detail: "HTTP \(response.status)")
        } catch {
            return ProbeResult(passed: false, detail: error.message)
        }
    }

    /// The command with %DESTINATION% replaced in every argument; exit status 0 is a pass. It runs as
    /// `CommandRunner` runs every command (no shell, a clean environment, a process group of its own) and gets the
    /// probe timeout; then SIGKILL to its whole process group.
    static func command(_ spec: HealthCheckSpec) -> ProbeResult {
        let arguments = spec.arguments.map { $0.replacingOccurrences(of: "%DESTINATION%", with: spec.destination) }
        switch CommandRunner.run([spec.command] + arguments, timeoutMilliseconds: spec.probeTimeoutMilliseconds) {
        case .exited(0): return ProbeResult(passed: true, detail: "exit 0")
        case .exited(let status): return ProbeResult(passed: false, detail: "exit \(status)")
        case .timedOut: return ProbeResult(passed: false, detail: "timed out")
        case .failedToStart(let why): return ProbeResult(passed: false, detail: why)
        }
    }

    /// One ICMP echo request on a socket of our own: an unprivileged ICMP datagram socket where the kernel allows it
    /// (net.ipv4.ping_group_range), else a raw socket (CAP_NET_RAW). No subprocess.
    static func ping(_ spec: HealthCheckSpec) -> ProbeResult {
        guard let address = IPv4Address(spec.destination) else {
            return ProbeResult(passed: false, detail: "'\(spec.destination)' is not an IPv4 address")
        }
        let socket: ICMPSocket
        do { socket = try ICMPSocket() } catch {
            if error.isLocalShortage { return ProbeResult(passed: false, detail: "no ICMP socket: \(error.reason)", inconclusive: true) }
            return ProbeResult(passed: false, detail: "no ICMP socket: \(error.reason) (needs CAP_NET_RAW or ping_group_range)")
        }
        let identifier = UInt16(truncatingIfNeeded: Syscall.processID ^ Int32(truncatingIfNeeded: UInt32.random(in: 0...0xFFFF)))
        let sequence = UInt16.random(in: 0...0xFFFF)
        var message: [UInt8] = [8, 0, 0, 0, UInt8(identifier >> 8), UInt8(identifier & 0xFF),
                                UInt8(sequence >> 8), UInt8(sequence & 0xFF)]
        message += Array("tunnat health check".utf8)
        let sum = message.withUnsafeBytes { ~Checksum.sum($0) }
        message[2] = UInt8(sum >> 8)
        message[3] = UInt8(sum & 0xFF)
        do { try socket.send(message, to: address.value) } catch {
            return ProbeResult(passed: false, detail: "\(error)", inconclusive: error.isLocalShortage)
        }
        let deadline = SystemClock.monotonicSeconds() + Double(spec.probeTimeoutMilliseconds) / 1000
        var buffer = [UInt8](repeating: 0, count: 1500)
        while true {
            let left = Int32(max(0, (deadline - SystemClock.monotonicSeconds()) * 1000))
            guard left > 0 else { return ProbeResult(passed: false, detail: "no echo reply within \(spec.probeTimeoutMilliseconds) ms") }
            guard let (n, from) = (try? socket.receive(into: &buffer, milliseconds: left)) ?? nil, n > 0 else { continue }
            guard from == address.value else { continue }
            // A raw socket hands over the IP header too; a datagram socket only the ICMP message, with the
            // identifier rewritten to the socket's own (the kernel matches replies to the socket).
            let raw = socket.isRaw
            var offset = 0
            if raw {
                offset = Int(buffer[0] & 0x0F) * 4
                guard n >= offset + 8 else { continue }
            }
            guard n >= offset + 8, buffer[offset] == 0 else {
                if n > offset, buffer[offset] == 3 || buffer[offset] == 11 {
                    return ProbeResult(passed: false, detail: "ICMP type \(buffer[offset]) code \(buffer[offset + 1])")
                }
                continue
            }
            let replySequence = UInt16(buffer[offset + 6]) << 8 | UInt16(buffer[offset + 7])
            let replyIdentifier = UInt16(buffer[offset + 4]) << 8 | UInt16(buffer[offset + 5])
            guard replySequence == sequence, !raw || replyIdentifier == identifier else { continue }
            return ProbeResult(passed: true, detail: "echo reply")
        }
    }
}

/// A health check's verdict as reported: healthy, unhealthy, or unknown (no verdict yet, or the last `fall`
/// probes in a row were inconclusive: this host lacked descriptors, buffers or a route to probe with).
public enum HealthVerdict: String, Sendable, Codable, CaseIterable {
    case healthy, unhealthy, unknown

    public init(_ isHealthy: Bool?) {
        self = isHealthy.map { $0 ? .healthy : .unhealthy } ?? .unknown
    }

    public init(_ state: HealthState) {
        self = state.isUnknown ? .unknown : HealthVerdict(state.isHealthy)
    }
}

/// Rise and fall (AWSnycast's healthcheck semantics): with no verdict yet, `rise` passes in a row make it healthy
/// and `fall` failures in a row make it unhealthy; after that, the same counts flip it. Until the first verdict
/// `isHealthy` is nil, and nothing may act on it.
public struct HealthState: Sendable, Equatable {
    public let rise: Int
    public let fall: Int
    public private(set) var isHealthy: Bool?
    public private(set) var passesInARow = 0
    public private(set) var failuresInARow = 0
    /// Inconclusive probes in a row: they neither pass nor fail, and leave the verdict as it was.
    public private(set) var inconclusiveInARow = 0

    /// No verdict yet, or `fall` inconclusive probes in a row: the destination's state is not known now. The last
    /// verdict (`isHealthy`) stands for what acts on it: an inconclusive probe never moves or deletes a route.
    public var isUnknown: Bool { isHealthy == nil || inconclusiveInARow >= fall }

    public init(rise: Int, fall: Int) {
        self.rise = max(1, rise)
        self.fall = max(1, fall)
    }

    /// Records one probe; returns the new verdict when this probe changed it. An inconclusive probe changes
    /// nothing but its own count.
    public mutating func record(_ passed: Bool, inconclusive: Bool = false) -> Bool? {
        if inconclusive && !passed {
            inconclusiveInARow += 1
            return nil
        }
        inconclusiveInARow = 0
        if passed {
            passesInARow += 1
            failuresInARow = 0
            if isHealthy != true, passesInARow >= rise { isHealthy = true; return true }
        } else {
            failuresInARow += 1
            passesInARow = 0
            if isHealthy != false, failuresInARow >= fall { isHealthy = false; return false }
        }
        return nil
    }
}

/// A health check running on its own thread: a probe every `every` seconds, the verdict kept under a lock, and
/// run_on_healthy / run_on_unhealthy started when it flips. `onChange` hears each flip (the route manager
/// re-evaluates its routes then, without waiting for its poll).
public final class HealthCheck: Sendable {
    public let name: String
    public let spec: HealthCheckSpec
    private let state: Mutex<HealthState>
    private let lastDetail = Mutex("")
    /// Stops the probing thread, waking it at once.
    private let stopping: StopSignal
    private let onChange: @Sendable (String, Bool) -> Void
    private let log: @Sendable (String) -> Void

    public init(name: String, spec: HealthCheckSpec, log: @escaping @Sendable (String) -> Void = { _ in },
                onChange: @escaping @Sendable (String, Bool) -> Void = { _, _ in }) throws(Errno) {
        self.name = name
        self.spec = spec
        self.state = Mutex(HealthState(rise: spec.rise, fall: spec.fall))
        self.onChange = onChange
        self.log = log
        stopping = try StopSignal()
    }

    public var isHealthy: Bool? { state.withLock { $0.isHealthy } }
    /// The verdict to report: unknown also while probes are inconclusive.
    public var verdict: HealthVerdict { state.withLock { HealthVerdict($0) } }
    public var detail: String { lastDetail.withLock { $0 } }

    /// One probe, recorded; returns the verdict after it.
    @discardableResult
    public func probeOnce() -> Bool? {
        let result = Probe.run(spec)
        lastDetail.withLock { $0 = result.detail }
        let (changed, verdict, inconclusive, fall) = state.withLock { s in
            (s.record(result.passed, inconclusive: result.inconclusive), s.isHealthy, s.inconclusiveInARow, s.fall)
        }
        // Said when it begins and when it makes the verdict unknown, not once a probe.
        if inconclusive == 1 || (inconclusive == fall && fall > 1) {
            log("health check \(name): inconclusive (\(inconclusive) in a row), \(inconclusive >= fall ? "unknown now; " : "")the last verdict stands for the routes: \(result.detail)")
        }
        if let changed {
            log("health check \(name) (\(spec.kind.rawValue) \(spec.destination)): \(changed ? "healthy" : "unhealthy") (\(result.detail))")
            let command = changed ? spec.runOnHealthy : spec.runOnUnhealthy
            if !command.isEmpty {
                let outcome = CommandRunner.run(command, timeoutMilliseconds: 60_000)
                if outcome != .exited(0) { log("health check \(name): \(command.joined(separator: " ")): \(outcome)") }
            }
            onChange(name, changed)
        }
        return verdict
    }

    /// Probes until there is a verdict (at most max(rise, fall) probes, `every` apart): for --oneshot.
    public func probeUntilVerdict() -> Bool {
        for i in 0..<max(spec.rise, spec.fall) {
            if i > 0 { Syscall.sleep(milliseconds: Int(spec.every) * 1000) }
            if let verdict = probeOnce() { return verdict }
        }
        return isHealthy ?? false
    }

    /// Starts the probing thread; it ends after `stop()`.
    public func start() {
        let thread = Thread { [self] in
            while !stopping.isStopped {
                probeOnce()
                _ = stopping.sleep(milliseconds: Int32(clamping: Int(spec.every) * 1000))
            }
        }
        thread.name = "health \(name)"
        thread.start()
    }

    public func stop() { stopping.stop() }
}
