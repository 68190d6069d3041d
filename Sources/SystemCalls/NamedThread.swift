import Glibc
import Synchronization

/// A thread of its own (pthread_create(3)), named for ps and /proc (`Syscall.nameThisThread`), running `body`
/// once; `join()` (pthread_join(3)) waits for it to return. Each long-running part of `tunnat run` is one.
public final class NamedThread: Sendable {
    public let name: String
    private let thread: pthread_t
    private let joined = Atomic<Bool>(false)

    private final class Start {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }

    /// Starts `body` on a new thread named `name` (at most 15 bytes show).
    public init(_ name: String, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        self.name = name
        let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { argument in
            let start = Unmanaged<Start>.fromOpaque(argument!).takeRetainedValue()
            Syscall.nameThisThread(start.name)
            start.body()
            return nil
        }, start)
        guard rc == 0 else {
            Unmanaged<Start>.fromOpaque(start).release()
            throw Errno("pthread_create", rc)
        }
        self.thread = thread
    }

    /// Waits until `body` has returned; later calls return at once.
    public func join() {
        guard !joined.exchange(true, ordering: .acquiringAndReleasing) else { return }
        pthread_join(thread, nil)
    }
}
