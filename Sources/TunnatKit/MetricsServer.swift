import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import SystemCalls

/// The Prometheus endpoint: swift-nio's HTTP/1.1 server on one event-loop thread, on a listening socket made by
/// the caller (bound by tunnat, or passed by the service manager). `GET /metrics` (or HEAD) answers the text
/// exposition that `render` makes; any other path is 404, any other method 405.
///
/// Whoever can connect (any local user, on the default loopback address) cannot make it grow, use up the process's
/// descriptors, or keep others out by holding connections (`Limits`): at the cap, a new connection takes the place
/// of the one quiet longest (if for more than a second), else it is closed; a connection's next
/// request is answered only once its earlier answers have left (its output below swift-nio's high water mark), so
/// a client that sends requests and never reads holds one answer, not one per request; a connection is closed
/// after its last allowed request, or when it has sent nothing for the idle time. One rendering serves every
/// request within a second, so asking faster costs nothing more.
///
/// An accept that fails for want of descriptors (EMFILE, ENFILE) is counted, and accepting stops for a second:
/// swift-nio's listening channel keeps asking a socket that stays readable (its AcceptBackoffHandler does not stop
/// that), so the channel is closed, the socket itself kept open on a descriptor of this server's (clients wait in
/// its backlog), and a new channel made on it a second later.
public final class MetricsServer: Sendable {
    public struct Limits: Sendable {
        /// Connections open at once; at the cap a new one takes a quiet one's place or is closed (`evictIdleAfter...`).
        public var connections = 16
        /// Requests answered on one connection; the last answer says `Connection: close`.
        public var requestsPerConnection = 100
        /// A connection that sends nothing for this long is closed.
        public var idleSeconds: Int64 = 10
        /// How long accepting pauses after it failed for want of descriptors.
        public var pauseSeconds: Int64 = 1
        /// At the cap, a new connection takes the place of the one that has been quiet longest (no request, no
        /// answer written), if for longer than this; else the new one is closed. Holding connections open without
        /// asking keeps no one out.
        public var evictIdleAfterMilliseconds: Int64 = 1000
        /// One rendering serves every request within this long: asking faster costs nothing more.
        public var renderEveryMilliseconds: UInt64 = 1000

        public init() {}
    }

    let group: MultiThreadedEventLoopGroup
    let loop: any EventLoop
    /// The listening socket, kept by this server for its whole life; each channel gets a duplicate.
    let listener: Int32
    let limits: Limits
    let counters: LocalServiceCounters
    let shortage: @Sendable (UInt64, String) -> Void
    let render: @Sendable () -> [UInt8]
    /// The channel accepting now (nil while paused), and whether `stop` was called; touched on the loop only,
    /// but read by `stop` from another thread: a lock.
    let state = Mutex<(channel: (any Channel)?, stopped: Bool)>((nil, false))
    /// Open connections, across channels (a pause makes a new listening channel; the connections stay): the loop's.
    let slots: NIOLoopBoundBox<Slots>
    /// Where it listens.
    public let endpoint: UDPEndpoint

    final class Slots {
        /// The open connections and when each last asked or was answered (or connected).
        var open: [ObjectIdentifier: (channel: any Channel, active: NIODeadline)] = [:]
        var fault = RecurringFault()
    }
    /// The last rendering and when it was made (monotonic nanoseconds).
    let rendered = Mutex<(at: UInt64, body: [UInt8])?>(nil)

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Serves on `fd`, a listening TCP socket that this server owns from here on (and closes on `stop`).
    /// `shortage` hears of accepts that failed for want of descriptors: the first, then at most one a minute with
    /// the count since (on the event loop's thread).
    public init(listening fd: Int32, endpoint: UDPEndpoint, limits: Limits = Limits(), counters: LocalServiceCounters,
                shortage: @escaping @Sendable (_ count: UInt64, _ error: String) -> Void = { _, _ in },
                render: @escaping @Sendable () -> [UInt8]) throws(Failure) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = group.next()
        listener = fd
        self.endpoint = endpoint
        self.limits = limits
        self.counters = counters
        self.shortage = shortage
        self.render = render
        slots = NIOLoopBoundBox.makeBoxSendingValue(Slots(), eventLoop: loop)
        do {
            let channel = try bootstrap().withBoundSocket(try Self.duplicate(fd)).wait()
            Self.keepBacklog(fd)
            state.withLock { $0.channel = channel }
        } catch {
            try? group.syncShutdownGracefully()
            Syscall.close(fd)
            throw Failure(description: "metrics.listen \(endpoint): cannot serve: \(error)")
        }
    }

    public func stop() {
        let channel = state.withLock { state in
            state.stopped = true
            return state.channel
        }
        try? channel?.close().wait()
        try? group.syncShutdownGracefully()
        Syscall.close(listener)
    }

    /// swift-nio's channel listens with a backlog of 128 whatever it is told; the socket's own is set back to 16.
    static func keepBacklog(_ fd: Int32) { try? Syscall.listen(fd, backlog: 16) }

    static func duplicate(_ fd: Int32) throws(Errno) -> Int32 { try Syscall.duplicate(fd) }

    func bootstrap() -> ServerBootstrap {
        let limits = limits
        return ServerBootstrap(group: group)
            .serverChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ConnectionCap(server: self))
                }
            }
            .childChannelOption(.allowRemoteHalfClosure, value: false)
            // One small read at a time: what a client pipelines waits in the kernel, not in parsed requests here.
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 4096))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(limits.idleSeconds)))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(Handler(server: self))
                }
            }
    }

    /// The exposition, rendered at most once per `renderEveryMilliseconds` whoever asks.
    func body() -> [UInt8] {
        let now = SystemClock.monotonicNanoseconds()
        if let last = rendered.withLock({ $0 }), now &- last.at < limits.renderEveryMilliseconds * 1_000_000 { return last.body }
        let body = render()
        rendered.withLock { $0 = (now, body) }
        return body
    }

    /// On the loop: a connection asked, or its answer has been written.
    func active(_ channel: any Channel) {
        slots.value.open[ObjectIdentifier(channel)]?.active = .now()
    }

    /// On the loop: accepting failed for want of descriptors. Closes the listening channel and makes a new one on
    /// the kept socket after the pause (or after another, while there is no descriptor for the duplicate).
    func pause(_ channel: any Channel, error: String) {
        counters.descriptorShortages.add(1, ordering: .relaxed)
        if let count = slots.value.fault.occurred(now: SystemMonotonicClock().seconds()) { shortage(count, error) }
        let current = state.withLock { state in
            guard state.channel === channel else { return false }
            state.channel = nil
            return true
        }
        guard current else { return }
        channel.close(promise: nil)
        resume(after: limits.pauseSeconds)
    }

    private func resume(after seconds: Int64) {
        loop.scheduleTask(in: .seconds(seconds)) { [self] in
            guard !state.withLock({ $0.stopped }) else { return }
            let copy: Int32
            do { copy = try Self.duplicate(listener) } catch {
                pauseAgain(error: "\(error)", shortage: true)
                return
            }
            bootstrap().withBoundSocket(copy).whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    Self.keepBacklog(listener)
                    let stopped = state.withLock { state in
                        if !state.stopped { state.channel = channel }
                        return state.stopped
                    }
                    if stopped { channel.close(promise: nil) } else { slots.value.fault.cleared() }
                case .failure(let error):
                    let io = error as? IOError
                    pauseAgain(error: "\(error)", shortage: io?.errnoCode == Errno.processDescriptorsFull
                               || io?.errnoCode == Errno.systemDescriptorsFull)
                }
            }
        }
    }

    private func pauseAgain(error: String, shortage isShortage: Bool) {
        guard !state.withLock({ $0.stopped }) else { return }
        if isShortage { counters.descriptorShortages.add(1, ordering: .relaxed) }
        if let count = slots.value.fault.occurred(now: SystemMonotonicClock().seconds()) { shortage(count, error) }
        resume(after: limits.pauseSeconds)
    }

    /// On a listening channel: closes accepted connections beyond the cap, and pauses accepting when an accept
    /// failed for want of descriptors. Confined to the one event loop, as are the connections it counts.
    final class ConnectionCap: ChannelInboundHandler {
        typealias InboundIn = any Channel
        let server: MetricsServer

        init(server: MetricsServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let connection = unwrapInboundIn(data)
            let slots = server.slots
            if slots.value.open.count >= server.limits.connections {
                // The connection whose last request is the oldest makes room, if it has been quiet long enough.
                let quiet = NIODeadline.now() - .milliseconds(server.limits.evictIdleAfterMilliseconds)
                let oldest = slots.value.open.min { $0.value.active < $1.value.active }
                server.counters.metricsConnectionsRefused.add(1, ordering: .relaxed)
                guard let oldest, oldest.value.active < quiet else {
                    connection.close(promise: nil)
                    return
                }
                slots.value.open[oldest.key] = nil
                oldest.value.channel.close(promise: nil)
            }
            let key = ObjectIdentifier(connection)
            slots.value.open[key] = (connection, .now())
            connection.closeFuture.hop(to: context.eventLoop).whenComplete { _ in slots.value.open[key] = nil }
            context.fireChannelRead(data)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if let io = error as? IOError, io.errnoCode == Errno.processDescriptorsFull || io.errnoCode == Errno.systemDescriptorsFull {
                server.pause(context.channel, error: "\(io)")
                return
            }
            context.fireErrorCaught(error)
        }
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let server: MetricsServer
        var answered = 0
        /// The last answer (Connection: close) is on its way: later requests are not answered.
        var closing = false
        /// A request that arrived while the connection's output was backed up: answered once it drains.
        /// swift-nio's pipeline handler passes on no further request, and stops reading once this one's end has
        /// arrived, until its answer has been written.
        var waiting: HTTPRequestHead?

        init(server: MetricsServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let request) = unwrapInboundIn(data), !closing else { return }
            server.active(context.channel)
            if context.channel.isWritable { answer(request, context: context) } else { waiting = request }
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            if context.channel.isWritable, let request = waiting {
                waiting = nil
                answer(request, context: context)
            }
            context.fireChannelWritabilityChanged()
        }

        func answer(_ request: HTTPRequestHead, context: ChannelHandlerContext) {
            answered += 1
            server.counters.metricsRequests.add(1, ordering: .relaxed)
            let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
            var status = HTTPResponseStatus.ok
            var body: [UInt8]
            var headers = HTTPHeaders()
            if path != "/metrics" {
                status = .notFound
                body = Array("not found: the metrics are at /metrics\n".utf8)
            } else if request.method != .GET && request.method != .HEAD {
                status = .methodNotAllowed
                headers.add(name: "Allow", value: "GET, HEAD")
                body = Array("method not allowed\n".utf8)
            } else {
                body = server.body()
                headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
            }
            if status != .ok { headers.add(name: "Content-Type", value: "text/plain; charset=utf-8") }
            headers.add(name: "Content-Length", value: String(body.count))
            let last = !request.isKeepAlive || answered >= server.limits.requestsPerConnection
            if last {
                closing = true
                headers.replaceOrAdd(name: "Connection", value: "close")
            }
            if request.method == .HEAD { body = [] }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
                          promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            let server = self.server
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                server.active(context.channel)
                if last { context.close(promise: nil) }
            }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
        }
    }
}

/// The local services' own counters (the control socket, the metrics endpoint), shared by the threads that serve
/// them and read by the status report.
public final class LocalServiceCounters: Sendable {
    /// accept(2) failed because the process (EMFILE) or the system (ENFILE) had no descriptor left.
    public let descriptorShortages = Atomic<UInt64>(0)
    /// Metrics connections closed on accept because the cap was reached.
    public let metricsConnectionsRefused = Atomic<UInt64>(0)
    /// Metrics requests answered.
    public let metricsRequests = Atomic<UInt64>(0)

    public init() {}
}
