#!/usr/bin/env bash
# One command for a fresh machine: start RabbitMQ if needed, build civicbus, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
cargo build --locked -p civicbus-server --bin civicbus
exec cargo run --locked --quiet -p civicbus-server -- demo "$@"
