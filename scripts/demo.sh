#!/usr/bin/env bash
# One command for a fresh machine: start RabbitMQ if needed, build civicbus, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
cargo build --locked -p civicbus-server --bin civicbus
# The example WebAssembly plugins (the demo's county records system receives permits
# mapped by `permit-to-record`); adds the wasm32-wasip2 target with rustup if missing.
if ! bash transforms/examples/build.sh >/dev/null; then
  echo "warning: the example plugins did not build; the demo runs without its transform" >&2
fi
exec cargo run --locked --quiet -p civicbus-server -- demo "$@"
