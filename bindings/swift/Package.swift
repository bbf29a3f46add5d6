// swift-tools-version:5.9
// The edetail library for iOS apps: the Rust core as a static-library xcframework plus the
// uniffi-generated Swift bindings. Both are build outputs of scripts/build-xcframework.sh (run
// it on a Mac first; see README.md). Apps `import edetail_ffi`.
import PackageDescription

let package = Package(
    name: "EdetailFFI",
    platforms: [.iOS(.v15)],
    products: [
        .library(name: "EdetailFFI", targets: ["edetail_ffi"]),
    ],
    targets: [
        // libedetail_ffi.a for devices and simulators, with the C header and the module map of
        // the low-level module `edetail_ffiFFI`.
        .binaryTarget(name: "EdetailFFI", path: "EdetailFFI.xcframework"),
        // The generated Swift API (EdetailDevice, AssetResponse, ApiError, ...), module `edetail_ffi`.
        .target(
            name: "edetail_ffi",
            dependencies: ["EdetailFFI"],
            path: "Sources/edetail_ffi",
            linkerSettings: [
                // The Rust core's TLS verifies certificates with the platform's trust store.
                .linkedFramework("Security"),
                .linkedFramework("CoreFoundation"),
            ]
        ),
    ]
)
