#!/usr/bin/env bash
# One command for a fresh machine: start RabbitMQ if needed, build civicbus, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
cargo build --locked -p civicbus-server
exec ./target/debug/civicbus demo "$@"
