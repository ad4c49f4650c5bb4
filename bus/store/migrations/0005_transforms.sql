-- civicbus store schema, version 5: transform lineage.
--
-- Portable like 0001: only TEXT and BIGINT columns, timestamps as BIGINT microseconds
-- since the Unix epoch, JSON as TEXT, and IF NOT EXISTS everywhere.

-- One row per input event a subscription's transform chain mapped: the plugins (name
-- and digest, JSON array) and the outputs (JSON array of {source, id, type}; empty when
-- the chain filtered the event out). A re-run after a crash inserts nothing new.
CREATE TABLE IF NOT EXISTS transform_runs (
    subscription TEXT   NOT NULL,
    input_source TEXT   NOT NULL,
    input_id     TEXT   NOT NULL,
    tenant       TEXT   NOT NULL,
    input_tenant TEXT   NOT NULL,
    plugins      TEXT   NOT NULL,
    outputs      TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (subscription, input_source, input_id)
);
CREATE INDEX IF NOT EXISTS transform_runs_input
    ON transform_runs (input_tenant, input_source, input_id);
