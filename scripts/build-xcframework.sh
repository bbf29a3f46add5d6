#!/usr/bin/env bash
# Builds what bindings/swift/Package.swift wraps, on a Mac with Xcode:
#   bindings/swift/EdetailFFI.xcframework                 static libedetail_ffi.a for
#       ios-arm64 (aarch64-apple-ios) and ios-arm64_x86_64-simulator (aarch64-apple-ios-sim +
#       x86_64-apple-ios, merged with lipo), with the C header and module map (module edetail_ffiFFI)
#   bindings/swift/Sources/edetail_ffi/edetail_ffi.swift  the generated Swift bindings (module edetail_ffi)
# Both are build outputs (gitignored). Fails with a clear message elsewhere: this needs macOS,
# Xcode's xcodebuild and lipo, and the three Rust iOS targets.
#
#   bash scripts/build-xcframework.sh            # release build
#   PROFILE=debug bash scripts/build-xcframework.sh
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build-xcframework: $*" >&2; exit 1; }

[ "$(uname -s)" = Darwin ] || die "needs macOS with Xcode; this machine is $(uname -s). Build the xcframework on a Mac (bindings/swift/README.md)."
command -v xcodebuild >/dev/null || die "xcodebuild not found: install Xcode, then 'sudo xcode-select -s /Applications/Xcode.app'."
xcodebuild -version >/dev/null 2>&1 || die "xcodebuild does not run (only the Command Line Tools selected?): 'sudo xcode-select -s /Applications/Xcode.app'."
command -v lipo >/dev/null || die "lipo not found (part of Xcode)."
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)."
command -v rustup >/dev/null || die "rustup not found: the iOS targets are installed with rustup."

targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
installed=$(rustup target list --installed)
missing=()
for t in "${targets[@]}"; do grep -qx "$t" <<< "$installed" || missing+=("$t"); done
[ ${#missing[@]} -eq 0 ] || die "missing Rust targets: rustup target add ${missing[*]}"

profile="${PROFILE:-release}"
flag=(); [ "$profile" = release ] && flag=(--release)
export IPHONEOS_DEPLOYMENT_TARGET="${IPHONEOS_DEPLOYMENT_TARGET:-15.0}" # as Package.swift's platforms

out=target/xcframework
rm -rf "$out" && mkdir -p "$out/gen" "$out/headers/edetail_ffiFFI" "$out/ios-simulator"

echo "== static libraries: ${targets[*]} ($profile)"
for t in "${targets[@]}"; do
  cargo rustc --locked -p edetail-ffi --lib "${flag[@]}" --target "$t" --crate-type staticlib
done
lib() { echo "target/$1/$profile/libedetail_ffi.a"; }

echo "== Swift bindings (uniffi-bindgen, library mode)"
cargo build --locked -p uniffi-bindgen --release
target/release/uniffi-bindgen generate --library "$(lib aarch64-apple-ios)" --language swift --out-dir "$out/gen" --no-format

# The module map sits in a folder named after its module: Xcode copies every xcframework's
# headers into one include folder, where two top-level module.modulemap files would collide.
cp "$out/gen/edetail_ffiFFI.h" "$out/headers/edetail_ffiFFI/"
cp "$out/gen/edetail_ffiFFI.modulemap" "$out/headers/edetail_ffiFFI/module.modulemap"

echo "== EdetailFFI.xcframework"
lipo -create "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)" -output "$out/ios-simulator/libedetail_ffi.a"
rm -rf bindings/swift/EdetailFFI.xcframework
xcodebuild -create-xcframework \
  -library "$(lib aarch64-apple-ios)" -headers "$out/headers" \
  -library "$out/ios-simulator/libedetail_ffi.a" -headers "$out/headers" \
  -output bindings/swift/EdetailFFI.xcframework

mkdir -p bindings/swift/Sources/edetail_ffi
cp "$out/gen/edetail_ffi.swift" bindings/swift/Sources/edetail_ffi/edetail_ffi.swift

echo "built bindings/swift/EdetailFFI.xcframework and bindings/swift/Sources/edetail_ffi/edetail_ffi.swift"
echo "check it: (cd bindings/swift && xcodebuild -scheme edetail_ffi -destination 'generic/platform=iOS Simulator' build)"
