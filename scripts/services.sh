#!/usr/bin/env bash
# Start RabbitMQ and PostgreSQL if they are not running, and wait until both answer.
# Used by scripts/demo.sh, scripts/test.sh and .ci/run. Idempotent.
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }

amqp_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && rabbitmq-diagnostics -q check_running >/dev/null 2>&1; }
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  log "RabbitMQ is not installed; installing the Debian package"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
fi
if ! amqp_up; then
  log "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
fi
for _ in $(seq 1 120); do amqp_up && break; sleep 1; done
amqp_up || { log "RabbitMQ did not come up on 127.0.0.1:5672"; exit 1; }

if ! command -v pg_isready >/dev/null 2>&1; then
  log "PostgreSQL is not installed; installing the Debian package"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if ! pg_up; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >/dev/null 2>&1 || true
fi
for _ in $(seq 1 60); do pg_up && break; sleep 1; done
pg_up || { log "PostgreSQL did not come up on 127.0.0.1:5432"; exit 1; }
log "RabbitMQ and PostgreSQL are ready"
