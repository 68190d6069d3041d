// swift-tools-version: 6.1
//
// tunnat: a userspace NAT data plane for Linux NAT instances.
// The target graph is a strict ladder (see ../shared/STYLE.md, "Layout"):
//   PacketKit <- NatTable <- (TunIO, Failover) <- TunnatKit <- tunnat     (CTunShim below TunIO)
// PacketKit and NatTable make no syscalls and read no clock, which is what makes `tunnat replay` deterministic.
// Benchmarks live in their own package (Benchmarks/Package.swift) so that the test build does not carry
// package-benchmark and its malloc interposer.
import PackageDescription

let package = Package(
    name: "tunnat",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tunnat", targets: ["tunnat"]),
        .library(name: "PacketKit", targets: ["PacketKit"]),
        .library(name: "NatTable", targets: ["NatTable"]),
        .library(name: "TunIO", targets: ["TunIO"]),
        .library(name: "TunnatKit", targets: ["TunnatKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .target(name: "PacketKit"),
        .target(name: "NatTable", dependencies: ["PacketKit"]),
        // The TUN ioctls (function-like macros Swift cannot import) and sendmmsg, in C.
        .target(name: "CTunShim"),
        .target(name: "TunIO", dependencies: ["PacketKit", "NatTable", "CTunShim"]),
        // SHA-256 and HMAC from the system's OpenSSL (libssl-dev), in C.
        .target(name: "COpenSSLShim", linkerSettings: [.linkedLibrary("crypto")]),
        // HTTP(S) from the system's libcurl (libcurl4-openssl-dev), in C.
        .target(name: "CCurlShim", linkerSettings: [.linkedLibrary("curl")]),
        .target(
            name: "Failover",
            dependencies: ["NatTable", "PacketKit", "COpenSSLShim", "CCurlShim", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "TunnatKit",
            dependencies: [
                "PacketKit", "NatTable", "TunIO", "Failover", .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "tunnat",
            dependencies: [
                "TunnatKit", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "PacketKitTests", dependencies: ["PacketKit"]),
        .testTarget(name: "NatTableTests", dependencies: ["NatTable", "PacketKit"]),
        .testTarget(name: "FailoverTests", dependencies: ["Failover", "NatTable", "PacketKit", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "TunIOTests", dependencies: ["TunIO", "NatTable", "PacketKit"]),
        .testTarget(name: "TunnatKitTests", dependencies: ["TunnatKit", "Failover", "NatTable", "PacketKit"]),
    ]
)
