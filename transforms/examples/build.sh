#!/usr/bin/env bash
# Build the example plugins as WebAssembly components (wasm32-wasip2, release) and copy
# them to target/plugins/, printing each one's size and sha256.
#   bash transforms/examples/build.sh          # build
#   bash transforms/examples/build.sh --test   # also run the native golden tests first
set -euo pipefail
cd "$(dirname "$0")"
TARGET=wasm32-wasip2
if ! rustup target list --installed | grep -qx "$TARGET"; then
  rustup target add "$TARGET"
fi
if [[ "${1:-}" == "--test" ]]; then
  cargo test --locked
fi
# Always this workspace's own target directory (a CARGO_TARGET_DIR set for the main
# workspace, as CI does, must not move the artifacts this script copies).
export CARGO_TARGET_DIR="$PWD/target"
cargo build --locked --release --target "$TARGET" --workspace
out=target/plugins
mkdir -p "$out"
printf '%-28s %10s  %s\n' plugin bytes sha256
for manifest in */Cargo.toml; do
  crate=$(dirname "$manifest")
  wasm="target/$TARGET/release/${crate//-/_}.wasm"
  [[ -f "$wasm" ]] || { echo "missing $wasm" >&2; exit 1; }
  # Copy then rename: tests running this script at the same time never read half a file.
  cp "$wasm" "$out/.$crate.wasm.$$"
  mv -f "$out/.$crate.wasm.$$" "$out/$crate.wasm"
  printf '%-28s %10d  %s\n' "$crate.wasm" "$(stat -c %s "$out/$crate.wasm")" \
    "$(sha256sum "$out/$crate.wasm" | cut -d' ' -f1)"
done
