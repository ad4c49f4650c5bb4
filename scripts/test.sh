#!/usr/bin/env bash
# One command for a fresh machine: start RabbitMQ and PostgreSQL if needed, then run every
# test of the workspace against them (unit, integration and end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
# The official Standard Webhooks library (Python) verifies real deliveries in
# connectors/webhook/tests/official_library.rs; `cryptography` checks the ed25519 (v1a)
# signatures that library does not cover. Installed only when missing or another version.
if ! python3 -c 'import importlib.metadata as m, cryptography.hazmat.primitives.asymmetric.ed25519
assert m.version("standardwebhooks") == "1.1.0"' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    'standardwebhooks==1.1.0' 'cryptography>=42'
fi
# The official AsyncAPI parser checks `civicbus schema asyncapi` output
# (bus/server/tests/asyncapi.rs); pinned in scripts/asyncapi/package-lock.json.
if [ ! -d scripts/asyncapi/node_modules/@asyncapi/parser ]; then
  npm ci --prefix scripts/asyncapi --no-audit --no-fund --loglevel=error
fi
export CIVICBUS_TEST_PG_URL="${CIVICBUS_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
export CIVICBUS_TEST_AMQP_URL="${CIVICBUS_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
cargo test --locked --workspace --all-targets "$@"
# The example transform plugins are their own workspace (built for wasm32-wasip2 by the
# end-to-end tests); their golden tests run natively here.
(cd transforms/examples && cargo test --locked)
# Outages of RabbitMQ and PostgreSQL themselves (tests/tests/outages.rs): they stop the
# shared services, so they run after the suite, one at a time.
cargo test --locked -p civicbus-tests --test outages -- --ignored --test-threads=1
