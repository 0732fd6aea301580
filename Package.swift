// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Scalpel",
    products: [
        .library(name: "Scalpel", targets: ["Scalpel"]),
        .executable(name: "scalpel", targets: ["scalpel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", exact: "5.0.1"),
    ],
    targets: [
        // System libraries from Debian (libopenblas-dev, libhdf5-dev), found through pkg-config.
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev", "pkg-config"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev", "pkg-config"])]),
        // SHA-256 of source checkpoints, recorded in model archives (libssl-dev).
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev", "pkg-config"])]),
        // The C kernels: the AVX-512 matrix products (few rows for one prompt, tiled for a batch),
        // GELU (AVX-512 or AVX2), LayerNorm's row sums and the non-finite scan of loaded weights.
        // Optimised in debug builds too, so the tests run the code a release build runs.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O2"])]),
        // renameat2 (no-replace and exchange renames) for the output-safety contract.
        .target(name: "CFileSystem"),
        .target(
            name: "Scalpel",
            dependencies: ["COpenBLAS", "CHDF5", "CCrypto", "CKernels", "CFileSystem", .product(name: "Yams", package: "Yams")],
            exclude: ["Resources/README.md"],
            resources: [.copy("Resources/bundled-model"), .copy("Resources/gpt2-tokenizer")]
        ),
        .executableTarget(
            name: "scalpel",
            dependencies: ["Scalpel", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(
            name: "ScalpelTests",
            dependencies: ["Scalpel"],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v5]
)
