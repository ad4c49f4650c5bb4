-- civicbus store schema, version 3: endpoint health.
--
-- Portable like 0001: only TEXT and BIGINT columns, timestamps as BIGINT microseconds
-- since the Unix epoch, and IF NOT EXISTS everywhere.

-- One row per subscription whose endpoint ever failed or was disabled. `failing_since`
-- is the start of the current run of consecutive failures (NULL once the endpoint
-- answers), so `disable_after` counts across restarts of civicbus. `status` is
-- 'enabled' or 'disabled'; the disabled_* columns say when and why, `notified_at` when
-- the endpoint.disabled event was published.
CREATE TABLE IF NOT EXISTS endpoints (
    subscription       TEXT   NOT NULL PRIMARY KEY,
    tenant             TEXT   NOT NULL,
    status             TEXT   NOT NULL,
    failing_since      BIGINT,
    disabled_at        BIGINT,
    disabled_reason    TEXT,
    last_error         TEXT,
    last_response_code BIGINT,
    notified_at        BIGINT,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS endpoints_tenant ON endpoints (tenant, subscription);
