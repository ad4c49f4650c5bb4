-- civicbus store schema, version 2: dead letters.
--
-- Portable like 0001: only TEXT and BIGINT columns, timestamps as BIGINT microseconds
-- since the Unix epoch, the event as structured-mode CloudEvents JSON text (binary data
-- as data_base64), and IF NOT EXISTS everywhere.

-- Deliveries that failed for good (terminal answer, gone, attempts or age exhausted),
-- one per idempotency key, with their context. The attempts themselves are the rows of
-- delivery_attempts with the same idempotency_key.
CREATE TABLE IF NOT EXISTS dead_letters (
    id                 TEXT   NOT NULL PRIMARY KEY,
    tenant             TEXT   NOT NULL,
    subscription       TEXT   NOT NULL,
    idempotency_key    TEXT   NOT NULL,
    event_tenant       TEXT   NOT NULL,
    event_source       TEXT   NOT NULL,
    event_id           TEXT   NOT NULL,
    structured         TEXT   NOT NULL,
    reason             TEXT   NOT NULL,
    error              TEXT   NOT NULL,
    last_response_code BIGINT,
    attempts           BIGINT NOT NULL,
    received_at        BIGINT,
    created_at         BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_key ON dead_letters (idempotency_key);
CREATE INDEX IF NOT EXISTS dead_letters_tenant_created_at ON dead_letters (tenant, created_at);
CREATE INDEX IF NOT EXISTS dead_letters_subscription_created_at
    ON dead_letters (subscription, created_at);
CREATE INDEX IF NOT EXISTS dead_letters_created_at ON dead_letters (created_at);
