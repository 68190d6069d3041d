import NIOCore
import NIOHTTP1
import NIOPosix

/// The Prometheus endpoint: swift-nio's HTTP/1.1 server on one event-loop thread. `GET /metrics` (or HEAD)
/// answers the text exposition that `render` makes; any other path is 404, any other method 405. Requests are
/// small and answered at once; a slow or hostile client holds one connection, bounded by the idle timeout.
public final class MetricsServer: Sendable {
    let group: MultiThreadedEventLoopGroup
    let channel: any Channel
    /// Where it listens (the port the kernel chose when 0 was asked for).
    public let port: Int

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public init(host: String, port: Int, render: @escaping @Sendable () -> [UInt8]) throws(Failure) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(10)))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(Handler(render: render))
                }
            }
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw Failure(description: "metrics.listen \(host):\(port): cannot listen: \(error)")
        }
        self.group = group
        self.port = channel.localAddress?.port ?? port
    }

    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let render: @Sendable () -> [UInt8]

        init(render: @escaping @Sendable () -> [UInt8]) { self.render = render }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let request) = unwrapInboundIn(data) else { return }
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
            if request.method == .HEAD { body = [] }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
                          promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            let keepAlive = request.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
        }
    }
}
