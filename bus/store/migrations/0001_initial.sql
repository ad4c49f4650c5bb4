-- civicbus store schema, version 1.
--
-- This file runs unchanged on SQLite and PostgreSQL: only TEXT and BIGINT columns,
-- timestamps as BIGINT microseconds since the Unix epoch, JSON as TEXT, raw bytes as
-- base64 TEXT, and IF NOT EXISTS everywhere so a re-run is harmless.

-- The archive: every accepted event, once per (tenant, source, id).
CREATE TABLE IF NOT EXISTS events (
    tenant      TEXT   NOT NULL,
    source      TEXT   NOT NULL,
    id          TEXT   NOT NULL,
    type        TEXT   NOT NULL,
    subject     TEXT,
    time        TEXT,
    received_at BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    structured  TEXT   NOT NULL,
    PRIMARY KEY (tenant, source, id)
);
CREATE INDEX IF NOT EXISTS events_tenant_type ON events (tenant, type);
CREATE INDEX IF NOT EXISTS events_tenant_subject ON events (tenant, subject);
CREATE INDEX IF NOT EXISTS events_tenant_received_at ON events (tenant, received_at);
CREATE INDEX IF NOT EXISTS events_received_at ON events (received_at);

-- Inputs the bus could not accept, with the reason and the raw bytes.
CREATE TABLE IF NOT EXISTS quarantine (
    id          TEXT   NOT NULL PRIMARY KEY,
    tenant      TEXT,
    transport   TEXT   NOT NULL,
    reason_kind TEXT   NOT NULL,
    field       TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    body_base64 TEXT   NOT NULL,
    headers     TEXT   NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_received_at ON quarantine (received_at);
CREATE INDEX IF NOT EXISTS quarantine_tenant_received_at ON quarantine (tenant, received_at);

-- Every delivery attempt of every event to every subscription.
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id              TEXT   NOT NULL PRIMARY KEY,
    idempotency_key TEXT   NOT NULL,
    tenant          TEXT   NOT NULL,
    subscription    TEXT   NOT NULL,
    event_tenant    TEXT   NOT NULL,
    event_source    TEXT   NOT NULL,
    event_id        TEXT   NOT NULL,
    attempt         BIGINT NOT NULL,
    status          TEXT   NOT NULL,
    response_code   BIGINT,
    error           TEXT,
    duration_us     BIGINT NOT NULL,
    at              BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_attempts_key ON delivery_attempts (idempotency_key, status);
CREATE INDEX IF NOT EXISTS delivery_attempts_event
    ON delivery_attempts (event_tenant, event_source, event_id, at);

-- The append-only, hash-chained audit log. seq is assigned by the writer under a lock
-- (1, 2, 3, ... without gaps); hash = SHA-256(prev_hash || canonical entry), see
-- civicbus_store::audit_hash.
CREATE TABLE IF NOT EXISTS audit_log (
    seq       BIGINT NOT NULL PRIMARY KEY,
    at        BIGINT NOT NULL,
    tenant    TEXT,
    actor     TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    target    TEXT   NOT NULL,
    detail    TEXT   NOT NULL,
    prev_hash TEXT   NOT NULL,
    hash      TEXT   NOT NULL
);
