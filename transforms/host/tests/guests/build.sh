#!/usr/bin/env bash
# Build the test-fixture guests as WebAssembly components (wasm32-wasip2, release) and
# copy each `<name>.wasm` into OUT_DIR (default: <workspace>/target/transform-guests).
#
#   tests/guests/build.sh [OUT_DIR]
#
# The host's tests run this themselves (tests/common/mod.rs); cargo decides what is stale.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../../../../target/transform-guests}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
target=wasm32-wasip2

# The guests need the wasm32-wasip2 standard library; install it when rustup can.
if ! rustc --print target-list | grep -qx "$target"; then
    echo "error: this rustc ($(rustc --version)) does not know the $target target" >&2
    exit 1
fi
sysroot="$(rustc --print sysroot)"
if [ ! -d "$sysroot/lib/rustlib/$target" ]; then
    if command -v rustup >/dev/null 2>&1; then
        echo "installing the $target target with rustup" >&2
        if ! rustup target add "$target" >&2; then
            echo "error: could not install the $target target (rustup target add $target failed); the transform host's tests need it to build their guest plugins" >&2
            exit 1
        fi
    else
        echo "error: the $target target is not installed and rustup is not available; install the $target standard library for $(rustc --version)" >&2
        exit 1
    fi
fi

export CARGO_TARGET_DIR="$out/cargo-target"
cargo build --release --target "$target" --manifest-path "$here/Cargo.toml" >&2

for wasm in "$CARGO_TARGET_DIR/$target/release/"*.wasm; do
    # Copy then rename: a test running this script at the same time never reads half a file.
    name="$(basename "$wasm")"
    cp -p "$wasm" "$out/.$name.$$"
    mv -f "$out/.$name.$$" "$out/$name"
done
echo "guests built into $out" >&2
