import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import SystemCalls

/// The Prometheus endpoint: swift-nio's HTTP/1.1 server on one event-loop thread, on a listening socket made by
/// the caller (bound by tunnat, or passed by the service manager). `GET /metrics` (or HEAD) answers the text
/// exposition that `render` makes; any other path is 404, any other method 405.
///
/// Whoever can connect (any local user, on the default loopback address) cannot make it grow or use up the
/// process's descriptors (`Limits`): connections beyond the cap are closed as they are accepted; a connection's
/// next request is answered only once its earlier answers have left (its output below swift-nio's high water
/// mark), so a client that sends requests and never reads holds one answer, not one per request; a connection is
/// closed after its last allowed request, or when it has sent nothing for the idle time. An accept that fails for
/// want of descriptors waits a second before the next (swift-nio's AcceptBackoffHandler) and is counted.
public final class MetricsServer: Sendable {
    public struct Limits: Sendable {
        /// Connections open at once; more are closed as soon as they are accepted.
        public var connections = 16
        /// Requests answered on one connection; the last answer says `Connection: close`.
        public var requestsPerConnection = 100
        /// A connection that sends nothing for this long is closed.
        public var idleSeconds: Int64 = 10

        public init() {}
    }

    let group: MultiThreadedEventLoopGroup
    let channel: any Channel
    let counters: LocalServiceCounters
    /// Where it listens.
    public let endpoint: UDPEndpoint

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Serves on `fd`, a listening TCP socket that swift-nio owns from here on (and closes on `stop`).
    public init(listening fd: Int32, endpoint: UDPEndpoint, limits: Limits = Limits(),
                counters: LocalServiceCounters, render: @escaping @Sendable () -> [UInt8]) throws(Failure) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // In the order an accepted connection meets them: counted and capped, then the backoff that
                    // sees accept(2) fail (EMFILE) and pauses accepting, then swift-nio's own accept handler.
                    try channel.pipeline.syncOperations.addHandler(ConnectionCap(limit: limits.connections, counters: counters))
                    try channel.pipeline.syncOperations.addHandler(AcceptBackoffHandler(shouldForwardIOErrorCaught: false))
                }
            }
            .childChannelOption(.allowRemoteHalfClosure, value: false)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(limits.idleSeconds)))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(Handler(render: render, limit: limits.requestsPerConnection, counters: counters))
                }
            }
        do {
            channel = try bootstrap.withBoundSocket(fd).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw Failure(description: "metrics.listen \(endpoint): cannot serve: \(error)")
        }
        self.group = group
        self.counters = counters
        self.endpoint = endpoint
    }

    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// On the listening channel: closes accepted connections beyond `limit`, and counts accepts that failed for
    /// want of descriptors. Confined to the one event loop, as are the connections it counts.
    final class ConnectionCap: ChannelInboundHandler {
        typealias InboundIn = any Channel
        let limit: Int
        let counters: LocalServiceCounters
        var open = 0

        init(limit: Int, counters: LocalServiceCounters) {
            self.limit = limit
            self.counters = counters
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let connection = unwrapInboundIn(data)
            guard open < limit else {
                counters.metricsConnectionsRefused.add(1, ordering: .relaxed)
                connection.close(promise: nil)
                return
            }
            open += 1
            let loop = context.eventLoop
            let counted = NIOLoopBound(self, eventLoop: loop)
            connection.closeFuture.hop(to: loop).whenComplete { _ in counted.value.open -= 1 }
            context.fireChannelRead(data)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if let io = error as? IOError, io.errnoCode == Errno.processDescriptorsFull || io.errnoCode == Errno.systemDescriptorsFull {
                counters.descriptorShortages.add(1, ordering: .relaxed)
            }
            context.fireErrorCaught(error)
        }
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let render: @Sendable () -> [UInt8]
        let limit: Int
        let counters: LocalServiceCounters
        var answered = 0
        /// A request that arrived while the connection's output was backed up: answered once it drains.
        /// swift-nio's pipeline handler passes on no further request, and reads nothing more, until this one's
        /// answer has been written.
        var waiting: HTTPRequestHead?

        init(render: @escaping @Sendable () -> [UInt8], limit: Int, counters: LocalServiceCounters) {
            self.render = render
            self.limit = limit
            self.counters = counters
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let request) = unwrapInboundIn(data) else { return }
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
            counters.metricsRequests.add(1, ordering: .relaxed)
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
                body = render()
                headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
            }
            if status != .ok { headers.add(name: "Content-Type", value: "text/plain; charset=utf-8") }
            headers.add(name: "Content-Length", value: String(body.count))
            let last = !request.isKeepAlive || answered >= limit
            if last { headers.replaceOrAdd(name: "Connection", value: "close") }
            if request.method == .HEAD { body = [] }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
                          promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
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
