// swift-tools-version: 6.2
//
// tunnat's libFuzzer targets, one executable per parser family, in a package of their own (as Benchmarks/ is) so
// that `swift build` and `swift test` of tunnat never build them. They only link with libFuzzer's `main`:
// build them through scripts/fuzz.sh, which passes `-sanitize=fuzzer,address` to every Swift target (tunnat's
// own modules included, which is what gives libFuzzer their coverage) and the matching flags to the C ones.
//
//   fuzz-translate  NAT.translate on IPv4 packets, header checksum fixed up after mutation, state kept
//   fuzz-offload    virtio-net header, Offload.prepare/finish through FrameProcessor, GSO splitting
//   fuzz-sync       wire format 2: SyncKeyring.open, the header, Batch, FlowRecord, the replay window, and
//                   ReplicationNode.receive behind a valid tag (the target plays the peers, handshake included)
//   fuzz-xml        the AWS XML reader and the EC2 response decoding on top of it
//   fuzz-config     ConfigFile.parse and FailoverConfigFile.parse (YAML through Yams)
//   fuzz-pcap       the capture reader `tunnat replay` takes files with (PcapReader, link-layer payloads)
//   fuzz-nat64      the IPv6 parser, RFC 7915 translation both ways, and NAT.translate's NAT64 path
import PackageDescription

let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
    name: "tunnat-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "tunnat", path: ".."),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // Every target's entry point: SwiftPM renames an executable's `main` (CFuzzerDriver.h says why).
        .target(name: "CFuzzerDriver", path: "Sources/CFuzzerDriver"),
        // What more than one target needs: checksum fix-ups, a byte reader over the fuzz input, `require`.
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "PacketKit", package: "tunnat")],
            path: "Sources/FuzzSupport", swiftSettings: strict),
        .executableTarget(
            name: "fuzz-translate",
            dependencies: ["CFuzzerDriver", "FuzzSupport", .product(name: "PacketKit", package: "tunnat"),
                           .product(name: "NatTable", package: "tunnat")],
            path: "Sources/FuzzTranslate", swiftSettings: strict),
        .executableTarget(
            name: "fuzz-offload",
            dependencies: ["CFuzzerDriver", "FuzzSupport", .product(name: "PacketKit", package: "tunnat"),
                           .product(name: "NatTable", package: "tunnat"), .product(name: "TunIO", package: "tunnat")],
            path: "Sources/FuzzOffload", swiftSettings: strict),
        .executableTarget(
            name: "fuzz-sync",
            dependencies: ["CFuzzerDriver", "FuzzSupport", .product(name: "PacketKit", package: "tunnat"),
                           .product(name: "NatTable", package: "tunnat"), .product(name: "TunIO", package: "tunnat"),
                           .product(name: "Replication", package: "tunnat"),
                           .product(name: "SystemCalls", package: "tunnat"),
                           .product(name: "Logging", package: "swift-log")],
            path: "Sources/FuzzSync", swiftSettings: strict),
        .executableTarget(
            name: "fuzz-xml",
            dependencies: ["CFuzzerDriver", "FuzzSupport", .product(name: "AWS", package: "tunnat")],
            path: "Sources/FuzzXML", swiftSettings: strict),
        .executableTarget(
            name: "fuzz-config",
            dependencies: ["CFuzzerDriver", "FuzzSupport", .product(name: "TunnatKit", package: "tunnat")],
            path: "Sources/FuzzConfig", swiftSettings: strict),
        .executableTarget(
            name: "fuzz-pcap",
            dependencies: ["CFuzzerDriver", "FuzzSupport", .product(name: "PacketKit", package: "tunnat"),
                           .product(name: "TunnatKit", package: "tunnat")],
            path: "Sources/FuzzPcap", swiftSettings: strict),
        .executableTarget(
            name: "fuzz-nat64",
            dependencies: ["CFuzzerDriver", "FuzzSupport", .product(name: "PacketKit", package: "tunnat"),
                           .product(name: "NatTable", package: "tunnat")],
            path: "Sources/FuzzNat64", swiftSettings: strict),
    ]
)
