#!/usr/bin/env bash
# One command for a fresh machine: start RabbitMQ and PostgreSQL if needed, then run every
# test of the workspace against them (unit, integration and end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
export CIVICBUS_TEST_PG_URL="${CIVICBUS_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
export CIVICBUS_TEST_AMQP_URL="${CIVICBUS_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
cargo test --locked --workspace --all-targets "$@"
