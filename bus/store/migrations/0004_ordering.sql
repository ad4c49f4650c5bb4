-- civicbus store schema, version 4: per-subject ordering.
--
-- Portable like 0001: only TEXT and BIGINT columns, timestamps as BIGINT microseconds
-- since the Unix epoch, raw bytes as base64 TEXT, and IF NOT EXISTS everywhere.

-- For a subscription with ordering = "per-subject": the delivery of each ordering key
-- (partitionkey, else subject) that later deliveries with that key wait behind, while it
-- is failing (waiting for a retry) or being released.
CREATE TABLE IF NOT EXISTS ordering_heads (
    subscription TEXT   NOT NULL,
    ordering_key TEXT   NOT NULL,
    head         TEXT   NOT NULL,
    since        BIGINT NOT NULL,
    PRIMARY KEY (subscription, ordering_key)
);

-- Deliveries waiting behind their key's head, in arrival order (seq within the key):
-- the message as it was on the subscription's queue, to publish again when its turn
-- comes. One row per idempotency key.
CREATE TABLE IF NOT EXISTS parked_deliveries (
    idempotency_key TEXT   NOT NULL PRIMARY KEY,
    subscription    TEXT   NOT NULL,
    ordering_key    TEXT   NOT NULL,
    seq             BIGINT NOT NULL,
    body_base64     TEXT   NOT NULL,
    content_type    TEXT   NOT NULL,
    headers         TEXT   NOT NULL,
    message_id      TEXT,
    parked_at       BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS parked_deliveries_key
    ON parked_deliveries (subscription, ordering_key, seq);
