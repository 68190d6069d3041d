// swift-tools-version: 6.2
//
// tunnat's benchmarks (package-benchmark), kept out of the main package so that building and testing tunnat does
// not build the benchmark tool and its malloc interposer. Run: scripts/bench.sh (or, here,
// `swift package --disable-sandbox benchmark`).
import PackageDescription

let package = Package(
    name: "tunnat-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "tunnat", path: ".."),
        // The MallocInterposer trait gives the malloc counts the per-packet path is held to (zero).
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "NatBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "PacketKit", package: "tunnat"),
                .product(name: "NatTable", package: "tunnat"),
                .product(name: "TunIO", package: "tunnat"),
                .product(name: "SystemCalls", package: "tunnat"),
            ],
            path: "Benchmarks/NatBenchmarks",
            // Warnings are errors here too, as in every target of the main package.
            swiftSettings: [.treatAllWarnings(as: .error)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
