import AWS
import Synchronization

/// Instance metadata from a dictionary of paths: what a test sets is what `get` answers (nil, as IMDS's 404, for
/// anything else). `followInterfaces` makes `network/interfaces/macs/<mac>/local-ipv4s` follow a `FakeEC2`'s
/// interfaces, as the real service follows EC2 (at once here; EC2's own delay is `lagReads` reads).
public final class FakeInstanceMetadata: InstanceMetadataSource {
    private let values: Mutex<[String: String]>
    private let ec2: FakeEC2?
    private let lag: Mutex<Int>

    public init(_ values: [String: String] = [:], followInterfaces ec2: FakeEC2? = nil, lagReads: Int = 0) {
        self.values = Mutex(values)
        self.ec2 = ec2
        lag = Mutex(lagReads)
    }

    public func set(_ path: String, _ value: String?) { values.withLock { $0[path] = value } }

    public func get(_ path: String) throws(AWSError) -> String? {
        if let ec2, path.hasPrefix("network/interfaces/macs/"), path.hasSuffix("/local-ipv4s") {
            let behind = lag.withLock { (n: inout Int) -> Bool in
                defer { n = max(0, n - 1) }
                return n > 0
            }
            if !behind {
                let mac = path.split(separator: "/")[3]
                return ec2.with { s in
                    s.interfaces.first { $0.macAddress == mac }.map { ([$0.primaryPrivateIP] + $0.privateIPs).joined(separator: "\n") }
                }
            }
        }
        return values.withLock { $0[path] }
    }
}
