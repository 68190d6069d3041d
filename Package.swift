// swift-tools-version: 6.2
//
// tunnat: a userspace NAT data plane for Linux NAT instances.
// One job per target, a strict ladder with no cycles (docs/architecture.md):
//
//   PacketKit <- NatTable <------------------------------------- Replication <--+
//                    ^                                                ^          |
//   Netlink <- SystemCalls <- TunIO            Hashing <- AWS <- Failover        TunnatKit <- tunnat
//                 ^  (every syscall)           HTTP    <- Health <-+             |
//                 +-- CSystemShim                (AWS, Health, Failover, Replication, TunIO all feed TunnatKit)
//   FakeAWS (AWS, HTTP, SystemCalls): stand-ins for tests, never linked into tunnat.
//
// PacketKit and NatTable make no syscalls and read no clock, which is what makes `tunnat replay` deterministic.
// Every syscall goes through SystemCalls (and the C shims it and HTTP/Hashing wrap).
// Linux only: the system layer is Glibc and the kernel's TUN, netlink, io_uring and packet sockets, so no other
// platform is declared.
// Benchmarks live in their own package (Benchmarks/Package.swift) so that the test build does not carry
// package-benchmark and its malloc interposer.
import PackageDescription

/// Warnings are errors in every build of ours: a warning has already hidden a crash here.
let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
    name: "tunnat",
    products: [
        .executable(name: "tunnat", targets: ["tunnat"]),
        .library(name: "PacketKit", targets: ["PacketKit"]),
        .library(name: "NatTable", targets: ["NatTable"]),
        .library(name: "SystemCalls", targets: ["SystemCalls"]),
        .library(name: "TunIO", targets: ["TunIO"]),
        .library(name: "TunnatKit", targets: ["TunnatKit"]),
        // For the fuzz targets' package (Fuzz/), which reaches the replication and XML parsers directly.
        .library(name: "Replication", targets: ["Replication"]),
        .library(name: "AWS", targets: ["AWS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // Metrics: swift-metrics' API, swift-prometheus' registry and text exposition, swift-nio's HTTP/1 server
        // for /metrics (no HTTP parser of our own).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // Wire formats: no syscalls, no clock, no dependencies.
        .target(name: "PacketKit", swiftSettings: strict),
        // The NAT engine: no syscalls, no clock.
        .target(name: "NatTable", dependencies: ["PacketKit"], swiftSettings: strict),
        // C: the TUN ioctls (function-like macros Swift cannot import), eventfd, sendmmsg, and the TUN reads through
        // io_uring (liburing, liburing-dev).
        .target(name: "CSystemShim", linkerSettings: [.linkedLibrary("uring")]),
        // rtnetlink messages as bytes (iproute2's requests, the kernel's answers and dumps): no syscalls.
        .target(name: "Netlink", swiftSettings: strict),
        // The system layer: every syscall, one Errno, an owning descriptor, one wake-up primitive.
        .target(name: "SystemCalls", dependencies: ["CSystemShim", "Netlink"], swiftSettings: strict),
        // The packet I/O: TUN device, offloads, raw socket output, the per-queue worker.
        .target(name: "TunIO", dependencies: ["PacketKit", "NatTable", "SystemCalls"], swiftSettings: strict),
        // C: SHA-256 and HMAC from the system's OpenSSL (libssl-dev).
        .target(name: "COpenSSLShim", linkerSettings: [.linkedLibrary("crypto")]),
        // C: HTTP(S) transfers and TCP/TLS probes from the system's libcurl (libcurl4-openssl-dev).
        .target(name: "CCurlShim", linkerSettings: [.linkedLibrary("curl")]),
        .target(name: "Hashing", dependencies: ["COpenSSLShim"], swiftSettings: strict),
        .target(name: "HTTP", dependencies: ["CCurlShim"], swiftSettings: strict),
        // The AWS client: SigV4, XML, the EC2 Query API, credentials, IMDSv2, retries.
        .target(name: "AWS", dependencies: ["Hashing", "HTTP", "SystemCalls"], swiftSettings: strict),
        // Stand-ins for what cannot run here, for tests: an in-memory EC2, instance metadata, a hand-turned clock.
        // Never linked into the executable.
        .target(name: "FakeAWS", dependencies: ["AWS", "HTTP", "SystemCalls"], swiftSettings: strict),
        // Health probes (ping, tcp, http(s), command), rise and fall.
        .target(name: "Health", dependencies: ["HTTP", "PacketKit", "SystemCalls"], swiftSettings: strict),
        // Route failover (AWSnycast's semantics): route decisions and the route manager.
        .target(
            name: "Failover",
            dependencies: ["AWS", "Health", "SystemCalls", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // State replication: wire format, replay window, codecs, sans-IO streams, the role machine, the replicator.
        .target(
            name: "Replication",
            dependencies: ["NatTable", "PacketKit", "Hashing", "SystemCalls", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // Configuration, the live data plane's wiring, replay, the control socket, policy routing, status.
        .target(
            name: "TunnatKit",
            dependencies: [
                "PacketKit", "NatTable", "SystemCalls", "TunIO", "AWS", "Health", "Failover", "Replication",
                .product(name: "Yams", package: "Yams"), .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tunnat",
            dependencies: [
                "TunnatKit", "SystemCalls", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "PacketKitTests", dependencies: ["PacketKit"], swiftSettings: strict),
        .testTarget(name: "NatTableTests", dependencies: ["NatTable", "PacketKit"], swiftSettings: strict),
        .testTarget(name: "NetlinkTests", dependencies: ["Netlink"], swiftSettings: strict),
        .testTarget(name: "SystemCallsTests", dependencies: ["SystemCalls", "Netlink"], swiftSettings: strict),
        .testTarget(name: "TunIOTests", dependencies: ["TunIO", "SystemCalls", "Netlink", "NatTable", "PacketKit"], swiftSettings: strict),
        .testTarget(name: "AWSTests", dependencies: ["AWS", "FakeAWS", "HTTP", "Hashing", "SystemCalls"], swiftSettings: strict),
        .testTarget(name: "HealthTests", dependencies: ["Health", "SystemCalls"], swiftSettings: strict),
        .testTarget(
            name: "FailoverTests",
            dependencies: ["Failover", "AWS", "FakeAWS", "Health", "SystemCalls", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ReplicationTests",
            dependencies: ["Replication", "NatTable", "PacketKit", "Hashing", "SystemCalls", "TunIO", "FakeAWS",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TunnatKitTests",
            dependencies: ["TunnatKit", "Failover", "Health", "AWS", "FakeAWS", "Replication", "NatTable", "PacketKit", "SystemCalls",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
    ]
)
