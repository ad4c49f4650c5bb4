//! [`SqlStore`]: the [`EventStore`] on SQLite or PostgreSQL through one code path
//! (`sqlx::AnyPool` and portable SQL).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use civicbus_core::CloudEvent;
use civicbus_core::ports::{
    ArchivedEvent, AttemptStatus, AuditAction, AuditRecord, DeadLetter, DeadLetterQuery,
    DeliveryAttempt, DisableEndpoint, EndpointState, EventQuery, EventStore, ParkedDelivery,
    PortError, QuarantineRecord, TransformRecord,
};
use serde_json::json;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{MigrateError, Migrator};
use std::sync::Arc;

use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Connection as _};

use crate::audit::{AuditVerification, BUS_ACTOR, PendingEntry, RawAuditRow, Verifier};
use crate::error::StoreError;
use crate::rows::{
    ATTEMPT_COLUMNS, DEAD_LETTER_COLUMNS, EVENT_COLUMNS, QUARANTINE_COLUMNS, RowReader,
    attempt_from_row, dead_letter_from_row, duration_to_micros, event_from_row,
    quarantine_from_row, time_to_micros,
};
use crate::url::{
    Backend, describe_target, password, redact_url, sqlite_connect_url, sqlite_is_memory,
};
use crate::writer::{Insert, WriteOp, Writer};

/// The schema migrations in `bus/store/migrations/`, embedded at compile time. The same
/// SQL runs on SQLite and PostgreSQL.
static MIGRATOR: Migrator = sqlx::migrate!();

/// Rows returned when a query's limit is 0.
pub const DEFAULT_LIMIT: u32 = 100;

/// The most rows any one read returns, whatever limit is asked for.
pub const MAX_LIMIT: u32 = 10_000;

/// SQLite's `busy_timeout`: how long a writer waits for another writer's lock.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest length of a free-text reason copied into an audit entry's detail.
const AUDIT_TEXT_MAX: usize = 256;

/// Audit rows read per round trip by [`SqlStore::verify_audit`].
const VERIFY_PAGE: u32 = 1_000;

/// Most writes the store's writer applies in one transaction, by default.
pub const DEFAULT_WRITE_BATCH: usize = 256;

/// Writes that may wait for the store's writer, by default.
pub const DEFAULT_WRITE_QUEUE: usize = 1_024;

/// Connection pool and writer settings.
///
/// Every write ([`SqlStore::archive_event`], [`SqlStore::quarantine_record`],
/// [`SqlStore::record_delivery_attempt`], [`SqlStore::record_dead_letter`] and their
/// [`EventStore`] forms) goes to the
/// store's single writer task, which applies whatever writes are waiting together: one
/// transaction, one audit lock, one commit (group commit). Each write still succeeds or
/// fails on its own, and returns only after its transaction committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most open connections, shared by reads and the writer (which uses one at a time);
    /// an in-memory SQLite database always uses one.
    pub max_connections: u32,
    /// How long to wait for a free connection (and for the first connection at start-up)
    /// before reporting the store unavailable.
    pub acquire_timeout: Duration,
    /// Most writes applied in one transaction (default [`DEFAULT_WRITE_BATCH`], at least
    /// 1). The writer never waits to fill a batch: it takes what is queued when it is
    /// ready for the next transaction.
    pub write_batch: usize,
    /// Most writes waiting for the writer (default [`DEFAULT_WRITE_QUEUE`], at least 1);
    /// further writers wait for room, which bounds the memory that queued writes use.
    pub write_queue: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(15),
            write_batch: DEFAULT_WRITE_BATCH,
            write_queue: DEFAULT_WRITE_QUEUE,
        }
    }
}

/// The system of record on SQLite or PostgreSQL: archive, quarantine, delivery attempts,
/// dead letters and the hash-chained audit log. Cheap to clone: clones share the connection pool and
/// the writer task.
///
/// Reads use the pool directly. Writes are applied by one writer task per store, in
/// batches (see [`StoreOptions`]); it starts in [`SqlStore::connect`] on the current
/// Tokio runtime and stops at [`SqlStore::close`] or when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    writer: Arc<Writer>,
}

impl SqlStore {
    /// Open the store at `url` with default pool settings and apply the schema
    /// migrations.
    ///
    /// `sqlite://path.db` creates the file if missing and uses WAL journaling,
    /// `synchronous=NORMAL`, a 10 s busy timeout and foreign keys; `postgres://...` needs a
    /// running server and an existing database. `sqlite::memory:` (tests, demos) keeps a
    /// single connection for the life of the store.
    ///
    /// Errors name the database and say what to check; they never contain the password.
    pub async fn connect(url: &str) -> Result<SqlStore, StoreError> {
        SqlStore::connect_with(url, StoreOptions::default()).await
    }

    /// [`SqlStore::connect`] with explicit pool settings.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let target = describe_target(backend, url);
        let secret = password(url).map(str::to_string);
        let scrub = move |message: String| match &secret {
            Some(p) if !p.is_empty() => message.replace(p.as_str(), "***"),
            _ => message,
        };

        let mut pool_options = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout);
        let connect_url = match backend {
            Backend::Sqlite => {
                if sqlite_is_memory(url) {
                    // Every connection to `:memory:` is a separate database: keep one.
                    pool_options = pool_options
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None);
                }
                pool_options = pool_options
                    .after_connect(|conn, _meta| Box::pin(sqlite_session_pragmas(conn)));
                sqlite_connect_url(url)
            }
            Backend::Postgres => url.to_string(),
        };

        let connect_error = |message: String| StoreError::Connect {
            backend,
            target: target.clone(),
            message: scrub(message),
            hint: connect_hint(backend),
        };

        // Open one connection directly first: a pool would retry until its acquire
        // timeout and then report only "timed out", hiding the cause (refused, bad
        // password, no such database, unwritable directory).
        let mut probe = match tokio::time::timeout(
            options.acquire_timeout,
            AnyConnection::connect(&connect_url),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(connect_error(e.to_string())),
            Err(_) => {
                return Err(connect_error(format!(
                    "no connection within {} s",
                    options.acquire_timeout.as_secs()
                )));
            }
        };
        if backend == Backend::Sqlite && !sqlite_is_memory(url) {
            enable_wal(&mut probe)
                .await
                .map_err(|e| connect_error(e.to_string()))?;
        }
        // In-memory SQLite: the probe's database would vanish with it; the pool keeps its
        // own single connection.
        let _ = probe.close().await;

        let pool = pool_options
            .connect(&connect_url)
            .await
            .map_err(|e| connect_error(e.to_string()))?;

        migrate(&pool, backend, &target).await?;

        // The writer shares the pool: a connection of its own for SQLite measured no
        // faster (the writer holds one connection at a time either way).
        let writer = Writer::start(
            pool.clone(),
            backend,
            options.write_batch,
            options.write_queue,
        );
        let store = SqlStore {
            pool,
            backend,
            writer: Arc::new(writer),
        };
        tracing::debug!(backend = backend.as_str(), url = %redact_url(url), "store ready");
        Ok(store)
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Stop the writer once it applied the writes already queued, then close every
    /// connection. Later calls (on this store or any clone) fail as unavailable.
    pub async fn close(&self) {
        self.writer.shutdown().await;
        self.pool.close().await;
    }

    /// Recompute the audit chain from the first entry and report the first broken seq:
    /// a gap (deleted rows), an edited row, or a row that does not link to its
    /// predecessor. Reads the log in pages, so memory use does not grow with its size.
    pub async fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        let mut verifier = Verifier::new();
        let mut after = 0i64;
        loop {
            let rows = self.raw_audit_rows(after, VERIFY_PAGE).await?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            let full = rows.len() == VERIFY_PAGE as usize;
            for row in &rows {
                if !verifier.check(row) {
                    return Ok(verifier.result);
                }
            }
            if !full {
                break;
            }
        }
        Ok(verifier.result)
    }

    async fn raw_audit_rows(&self, after: i64, limit: u32) -> Result<Vec<RawAuditRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM audit_log WHERE seq > $1 ORDER BY seq ASC LIMIT $2",
            RawAuditRow::COLUMNS
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(after)
            .bind(i64::from(effective_limit(limit)))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx("reading the audit log", e))?;
        rows.iter().map(RawAuditRow::from_row).collect()
    }

    // -- the operations, returning StoreError ------------------------------------------

    /// [`EventStore::archive`], with the store's own error type.
    ///
    /// Applied by the store's writer in its next batch (see [`StoreOptions`]); returns
    /// once that batch committed.
    pub async fn archive_event(
        &self,
        archived: &ArchivedEvent,
        routed_to: &[String],
    ) -> Result<bool, StoreError> {
        const OP: &str = "archiving an event";
        let ev = &archived.event;
        if let Some(stamped) = ev.tenant()
            && stamped != archived.tenant
        {
            return Err(StoreError::Invalid {
                what: "event",
                message: format!(
                    "the event's tenant extension `{stamped}` differs from its owning tenant `{}`; stamp the tenant from the credential before archiving",
                    archived.tenant
                ),
            });
        }
        let structured = structured_json(ev)?;

        let target = event_target(&ev.source, &ev.id);
        let audit = vec![
            PendingEntry {
                tenant: Some(archived.tenant.clone()),
                actor: archived.actor.clone(),
                action: AuditAction::Received,
                target: target.clone(),
                detail: json!({ "type": ev.ty }).to_string(),
            },
            PendingEntry {
                tenant: Some(archived.tenant.clone()),
                actor: BUS_ACTOR.to_string(),
                action: AuditAction::Routed,
                target,
                detail: json!({ "subscriptions": routed_to }).to_string(),
            },
        ];
        let insert = Insert::Event {
            tenant: archived.tenant.clone(),
            source: ev.source.clone(),
            id: ev.id.clone(),
            ty: ev.ty.clone(),
            subject: ev.subject.clone(),
            time: ev.time.clone(),
            received_at: time_to_micros(&archived.received_at),
            actor: archived.actor.clone(),
            structured,
        };
        self.writer
            .submit(WriteOp {
                what: OP,
                insert,
                audit,
            })
            .await
    }

    /// [`EventStore::quarantine`], with the store's own error type. Storing the same
    /// record id again is a no-op.
    ///
    /// Applied by the store's writer in its next batch; returns once it committed.
    pub async fn quarantine_record(&self, record: &QuarantineRecord) -> Result<(), StoreError> {
        const OP: &str = "quarantining an input";
        let headers = serde_json::to_string(&record.headers).map_err(|e| StoreError::Invalid {
            what: "quarantine headers",
            message: e.to_string(),
        })?;
        let body_base64 = base64::engine::general_purpose::STANDARD.encode(&record.body);
        let audit = vec![PendingEntry {
            tenant: record.tenant.clone(),
            actor: BUS_ACTOR.to_string(),
            action: AuditAction::Quarantined,
            target: format!("quarantine:{}", record.id),
            detail: json!({
                "transport": record.transport,
                "reason_kind": record.reason_kind,
                "field": truncate(&record.field),
                "reason": truncate(&record.reason),
            })
            .to_string(),
        }];
        let insert = Insert::Quarantine {
            id: record.id.clone(),
            tenant: record.tenant.clone(),
            transport: record.transport.clone(),
            reason_kind: record.reason_kind.clone(),
            field: record.field.clone(),
            reason: record.reason.clone(),
            body_base64,
            headers,
            received_at: time_to_micros(&record.received_at),
        };
        self.writer
            .submit(WriteOp {
                what: OP,
                insert,
                audit,
            })
            .await
            .map(|_| ())
    }

    /// [`EventStore::record_attempt`], with the store's own error type.
    ///
    /// Applied by the store's writer in its next batch; returns once it committed.
    pub async fn record_delivery_attempt(
        &self,
        attempt: &DeliveryAttempt,
    ) -> Result<(), StoreError> {
        const OP: &str = "recording a delivery attempt";
        let action = if attempt.status == AttemptStatus::Delivered {
            AuditAction::Delivered
        } else {
            AuditAction::DeliveryFailed
        };
        let audit = vec![PendingEntry {
            tenant: Some(attempt.tenant.clone()),
            actor: BUS_ACTOR.to_string(),
            action,
            target: event_target(&attempt.event_source, &attempt.event_id),
            detail: json!({
                "subscription": attempt.subscription,
                "idempotency_key": attempt.idempotency_key,
                "event_tenant": attempt.event_tenant,
                "attempt": attempt.attempt,
                "status": attempt.status.as_str(),
                "response_code": attempt.response_code,
                "error": attempt.error.as_deref().map(truncate),
            })
            .to_string(),
        }];
        let insert = Insert::Attempt {
            id: uuid::Uuid::now_v7().to_string(),
            idempotency_key: attempt.idempotency_key.clone(),
            tenant: attempt.tenant.clone(),
            subscription: attempt.subscription.clone(),
            event_tenant: attempt.event_tenant.clone(),
            event_source: attempt.event_source.clone(),
            event_id: attempt.event_id.clone(),
            attempt: i64::from(attempt.attempt),
            status: attempt.status.as_str().to_string(),
            response_code: attempt.response_code.map(i64::from),
            error: attempt.error.clone(),
            duration_us: duration_to_micros(attempt.duration),
            at: time_to_micros(&attempt.at),
        };
        self.writer
            .submit(WriteOp {
                what: OP,
                insert,
                audit,
            })
            .await
            .map(|_| ())
    }

    /// [`EventStore::dead_letter`], with the store's own error type: stores the dead
    /// letter and audits `dead-lettered` in one transaction. Returns `false` (and stores
    /// and audits nothing) if a dead letter with the same idempotency key is stored
    /// already.
    ///
    /// Applied by the store's writer in its next batch; returns once it committed.
    pub async fn record_dead_letter(&self, record: &DeadLetter) -> Result<bool, StoreError> {
        const OP: &str = "dead-lettering a delivery";
        let ev = &record.event;
        let structured = structured_json(ev)?;
        let audit = vec![PendingEntry {
            tenant: Some(record.tenant.clone()),
            actor: BUS_ACTOR.to_string(),
            action: AuditAction::DeadLettered,
            target: format!("dead-letter:{}", record.id),
            detail: json!({
                "subscription": record.subscription,
                "idempotency_key": record.idempotency_key,
                "event_tenant": record.event_tenant,
                "event_source": ev.source,
                "event_id": ev.id,
                "reason": record.reason.as_str(),
                "attempts": record.attempts,
                "last_response_code": record.last_response_code,
                "error": truncate(&record.error),
            })
            .to_string(),
        }];
        let insert = Insert::DeadLetter {
            id: record.id.clone(),
            tenant: record.tenant.clone(),
            subscription: record.subscription.clone(),
            idempotency_key: record.idempotency_key.clone(),
            event_tenant: record.event_tenant.clone(),
            event_source: ev.source.clone(),
            event_id: ev.id.clone(),
            structured,
            reason: record.reason.as_str().to_string(),
            error: record.error.clone(),
            last_response_code: record.last_response_code.map(i64::from),
            attempts: i64::from(record.attempts),
            received_at: record.received_at.as_ref().map(time_to_micros),
            created_at: time_to_micros(&record.created_at),
        };
        self.writer
            .submit(WriteOp {
                what: OP,
                insert,
                audit,
            })
            .await
    }

    /// The connection pool, for reads and unaudited bookkeeping writes.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Apply an audited write through the store's writer (group commit).
    pub(crate) async fn write(&self, op: WriteOp) -> Result<bool, StoreError> {
        self.writer.submit(op).await
    }

    /// [`EventStore::list_dead_letters`], with the store's own error type.
    pub async fn dead_letters(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        if let Some(tenant) = &query.tenant {
            let n = push_arg(&mut args, Arg::Text(tenant.clone()));
            conditions.push(format!("tenant = ${n}"));
        }
        if let Some(subscription) = &query.subscription {
            let n = push_arg(&mut args, Arg::Text(subscription.clone()));
            conditions.push(format!("subscription = ${n}"));
        }
        if let Some(reason) = query.reason {
            let n = push_arg(&mut args, Arg::Text(reason.as_str().to_string()));
            conditions.push(format!("reason = ${n}"));
        }
        let limit_n = push_arg(&mut args, Arg::Int(i64::from(effective_limit(query.limit))));
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters{where_clause} \
             ORDER BY created_at DESC, id DESC LIMIT ${limit_n}"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for arg in args {
            q = match arg {
                Arg::Text(s) => q.bind(s),
                Arg::Int(i) => q.bind(i),
            };
        }
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx("listing dead letters", e))?;
        rows.iter().map(dead_letter_from_row).collect()
    }

    /// [`EventStore::get_dead_letter`], with the store's own error type.
    pub async fn dead_letter_by_id(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let sql = format!("SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx("reading a dead letter", e))?;
        row.as_ref().map(dead_letter_from_row).transpose()
    }

    /// [`EventStore::is_delivered`], with the store's own error type.
    pub async fn delivered(&self, idempotency_key: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT idempotency_key FROM delivery_attempts \
             WHERE idempotency_key = $1 AND status = $2 LIMIT 1",
        )
        .bind(idempotency_key.to_string())
        .bind(AttemptStatus::Delivered.as_str().to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx("checking whether a delivery succeeded", e))?;
        Ok(row.is_some())
    }

    /// [`EventStore::get_event`], with the store's own error type.
    pub async fn event(
        &self,
        tenant: &str,
        source: &str,
        id: &str,
    ) -> Result<Option<ArchivedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant = $1 AND source = $2 AND id = $3"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.to_string())
            .bind(source.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx("reading an archived event", e))?;
        row.as_ref().map(event_from_row).transpose()
    }

    /// [`EventStore::search_events`], with the store's own error type.
    pub async fn search(&self, query: &EventQuery) -> Result<Vec<ArchivedEvent>, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        if let Some(tenant) = &query.tenant {
            let n = push_arg(&mut args, Arg::Text(tenant.clone()));
            conditions.push(format!("tenant = ${n}"));
        }
        if let Some(prefix) = &query.type_prefix {
            // substr/length rather than LIKE: LIKE is case-insensitive on SQLite and needs
            // escaping of % and _.
            let n = push_arg(&mut args, Arg::Text(prefix.clone()));
            conditions.push(format!("substr(type, 1, length(${n})) = ${n}"));
        }
        if let Some(subject) = &query.subject {
            let n = push_arg(&mut args, Arg::Text(subject.clone()));
            conditions.push(format!("subject = ${n}"));
        }
        if let Some(source) = &query.source {
            let n = push_arg(&mut args, Arg::Text(source.clone()));
            conditions.push(format!("source = ${n}"));
        }
        if let Some(since) = &query.since {
            let n = push_arg(&mut args, Arg::Int(time_to_micros(since)));
            conditions.push(format!("received_at >= ${n}"));
        }
        if let Some(until) = &query.until {
            let n = push_arg(&mut args, Arg::Int(time_to_micros(until)));
            conditions.push(format!("received_at < ${n}"));
        }
        let limit_n = push_arg(&mut args, Arg::Int(i64::from(effective_limit(query.limit))));
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events{where_clause} \
             ORDER BY received_at DESC, source DESC, id DESC LIMIT ${limit_n}"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for arg in args {
            q = match arg {
                Arg::Text(s) => q.bind(s),
                Arg::Int(i) => q.bind(i),
            };
        }
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx("searching the archive", e))?;
        rows.iter().map(event_from_row).collect()
    }

    /// [`EventStore::count_events`], with the store's own error type.
    pub async fn count(&self, tenant: Option<&str>) -> Result<u64, StoreError> {
        const OP: &str = "counting archived events";
        let row = match tenant {
            Some(t) => {
                sqlx::query("SELECT COUNT(*) AS n FROM events WHERE tenant = $1")
                    .bind(t.to_string())
                    .fetch_one(&self.pool)
                    .await
            }
            None => {
                sqlx::query("SELECT COUNT(*) AS n FROM events")
                    .fetch_one(&self.pool)
                    .await
            }
        }
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        let n: i64 = RowReader::new(&row, "events", "COUNT(*)".into()).get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// [`EventStore::attempts_for_event`], with the store's own error type.
    pub async fn attempts(
        &self,
        tenant: &str,
        source: &str,
        id: &str,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts \
             WHERE event_tenant = $1 AND event_source = $2 AND event_id = $3 \
             ORDER BY at ASC, attempt ASC, id ASC LIMIT $4"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.to_string())
            .bind(source.to_string())
            .bind(id.to_string())
            .bind(i64::from(MAX_LIMIT))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx("reading delivery attempts", e))?;
        rows.iter().map(attempt_from_row).collect()
    }

    /// [`EventStore::list_quarantine`], with the store's own error type.
    pub async fn quarantined(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<QuarantineRecord>, StoreError> {
        let limit = i64::from(effective_limit(limit));
        let rows: Result<Vec<AnyRow>, sqlx::Error> = match tenant {
            Some(t) => {
                let sql = format!(
                    "SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE tenant = $1 \
                     ORDER BY received_at DESC, id DESC LIMIT $2"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(t.to_string())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                let sql = format!(
                    "SELECT {QUARANTINE_COLUMNS} FROM quarantine \
                     ORDER BY received_at DESC, id DESC LIMIT $1"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
        };
        let rows = rows.map_err(|e| StoreError::from_sqlx("listing quarantined inputs", e))?;
        rows.iter().map(quarantine_from_row).collect()
    }

    /// [`EventStore::audit_entries`], with the store's own error type.
    pub async fn audit_log(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        self.raw_audit_rows(after, limit)
            .await?
            .into_iter()
            .map(RawAuditRow::into_record)
            .collect()
    }
}

/// A bind value of a dynamically built query.
enum Arg {
    Text(String),
    Int(i64),
}

/// Add a bind value; returns its placeholder number.
fn push_arg(args: &mut Vec<Arg>, arg: Arg) -> usize {
    args.push(arg);
    args.len()
}

/// `limit`, with 0 meaning [`DEFAULT_LIMIT`] and at most [`MAX_LIMIT`].
fn effective_limit(limit: u32) -> u32 {
    if limit == 0 {
        DEFAULT_LIMIT
    } else {
        limit.min(MAX_LIMIT)
    }
}

/// The event as structured-mode JSON text, as stored.
fn structured_json(ev: &CloudEvent) -> Result<String, StoreError> {
    let structured =
        String::from_utf8(ev.to_structured_bytes()).map_err(|e| StoreError::Invalid {
            what: "event",
            message: format!("structured JSON is not UTF-8: {e}"),
        })?;
    if structured.is_empty() {
        return Err(StoreError::Invalid {
            what: "event",
            message: "it could not be encoded as structured JSON".into(),
        });
    }
    Ok(structured)
}

/// The audit target naming an event: `event:<source>#<id>`.
fn event_target(source: &str, id: &str) -> String {
    format!("event:{source}#{id}")
}

/// Free text cut to [`AUDIT_TEXT_MAX`] characters for an audit detail.
pub(crate) fn truncate(s: &str) -> String {
    match s.char_indices().nth(AUDIT_TEXT_MAX) {
        None => s.to_string(),
        Some((idx, _)) => format!("{}…", &s[..idx]),
    }
}

/// Apply the embedded migrations (idempotent: applied ones are skipped). On
/// PostgreSQL sqlx serialises concurrent migrators with an advisory lock; SQLite has no
/// such lock, so a migrator that lost a race with another process is retried.
async fn migrate(pool: &AnyPool, backend: Backend, target: &str) -> Result<(), StoreError> {
    let mut tries = 0u32;
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(e @ (MigrateError::Execute(_) | MigrateError::ExecuteMigration(..)))
                if backend == Backend::Sqlite && tries < 5 =>
            {
                tries += 1;
                tracing::debug!(error = %e, tries, "store migration raced another process; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(tries))).await;
            }
            Err(e) => {
                return Err(StoreError::Migrate {
                    backend,
                    target: target.to_string(),
                    message: e.to_string(),
                });
            }
        }
    }
}

fn connect_hint(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "check that the directory exists and is writable by this user, or set store.url / \
             CIVICBUS_STORE_URL (e.g. sqlite://civicbus.db)"
        }
        Backend::Postgres => {
            "is PostgreSQL running and reachable, and do the user, password and database in \
             the URL exist? Set store.url or CIVICBUS_STORE_URL \
             (e.g. postgres://civicbus@127.0.0.1:5432/civicbus)"
        }
    }
}

/// Per-connection SQLite settings.
async fn sqlite_session_pragmas(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    let busy = format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis());
    sqlx::query(AssertSqlSafe(busy)).execute(&mut *conn).await?;
    sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(&mut *conn)
        .await?;
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Switch a SQLite database file to WAL journaling (a property of the file, so once).
/// Changing the journal mode needs an exclusive lock that busy_timeout does not wait for,
/// so retry a few times when another process holds the database.
async fn enable_wal(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    use sqlx::Row as _;
    let mut tries = 0u32;
    loop {
        let current: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        if current.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        match sqlx::query("PRAGMA journal_mode = WAL")
            .fetch_one(&mut *conn)
            .await
        {
            Ok(row) => {
                let mode: String = row.try_get(0)?;
                if mode.eq_ignore_ascii_case("wal") {
                    return Ok(());
                }
                tracing::warn!(mode, "SQLite refused WAL journaling; continuing without it");
                return Ok(());
            }
            Err(e) if tries < 20 => {
                tries += 1;
                tracing::debug!(error = %e, tries, "SQLite busy while enabling WAL; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[async_trait]
impl EventStore for SqlStore {
    async fn archive(
        &self,
        event: &ArchivedEvent,
        routed_to: &[String],
    ) -> Result<bool, PortError> {
        Ok(self.archive_event(event, routed_to).await?)
    }

    async fn quarantine(&self, record: &QuarantineRecord) -> Result<(), PortError> {
        Ok(self.quarantine_record(record).await?)
    }

    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), PortError> {
        Ok(self.record_delivery_attempt(attempt).await?)
    }

    async fn is_delivered(&self, idempotency_key: &str) -> Result<bool, PortError> {
        Ok(self.delivered(idempotency_key).await?)
    }

    async fn get_event(
        &self,
        tenant: &str,
        source: &str,
        id: &str,
    ) -> Result<Option<ArchivedEvent>, PortError> {
        Ok(self.event(tenant, source, id).await?)
    }

    async fn search_events(&self, query: &EventQuery) -> Result<Vec<ArchivedEvent>, PortError> {
        Ok(self.search(query).await?)
    }

    async fn count_events(&self, tenant: Option<&str>) -> Result<u64, PortError> {
        Ok(self.count(tenant).await?)
    }

    async fn attempts_for_event(
        &self,
        tenant: &str,
        source: &str,
        id: &str,
    ) -> Result<Vec<DeliveryAttempt>, PortError> {
        Ok(self.attempts(tenant, source, id).await?)
    }

    async fn list_quarantine(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<QuarantineRecord>, PortError> {
        Ok(self.quarantined(tenant, limit).await?)
    }

    async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, PortError> {
        Ok(self.audit_log(after, limit).await?)
    }

    async fn dead_letter(&self, record: &DeadLetter) -> Result<(), PortError> {
        self.record_dead_letter(record).await?;
        Ok(())
    }

    async fn list_dead_letters(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>, PortError> {
        Ok(self.dead_letters(query).await?)
    }

    async fn get_dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, PortError> {
        Ok(self.dead_letter_by_id(id).await?)
    }

    async fn endpoint_state(&self, key: &str) -> Result<Option<EndpointState>, PortError> {
        Ok(self.endpoint(key).await?)
    }

    async fn list_endpoints(&self, tenant: Option<&str>) -> Result<Vec<EndpointState>, PortError> {
        Ok(self.endpoints(tenant).await?)
    }

    async fn endpoint_failing(
        &self,
        key: &str,
        tenant: &str,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, PortError> {
        Ok(self.mark_endpoint_failing(key, tenant, at).await?)
    }

    async fn endpoint_answered(&self, key: &str) -> Result<(), PortError> {
        Ok(self.mark_endpoint_answered(key).await?)
    }

    async fn disable_endpoint(&self, request: &DisableEndpoint) -> Result<bool, PortError> {
        Ok(self.set_endpoint_disabled(request).await?)
    }

    async fn endpoint_notified(
        &self,
        key: &str,
        disabled_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<(), PortError> {
        Ok(self.mark_endpoint_notified(key, disabled_at, at).await?)
    }

    async fn enable_endpoint(&self, key: &str, actor: &str) -> Result<bool, PortError> {
        Ok(self.set_endpoint_enabled(key, actor).await?)
    }

    async fn is_dead_lettered(&self, idempotency_key: &str) -> Result<bool, PortError> {
        Ok(self.dead_lettered(idempotency_key).await?)
    }

    async fn ordering_head(
        &self,
        subscription: &str,
        ordering_key: &str,
    ) -> Result<Option<String>, PortError> {
        Ok(self.head_of(subscription, ordering_key).await?)
    }

    async fn set_ordering_head(
        &self,
        subscription: &str,
        ordering_key: &str,
        head: &str,
    ) -> Result<(), PortError> {
        Ok(self.set_head(subscription, ordering_key, head).await?)
    }

    async fn clear_ordering_head(
        &self,
        subscription: &str,
        ordering_key: &str,
        head: &str,
    ) -> Result<(), PortError> {
        Ok(self.clear_head(subscription, ordering_key, head).await?)
    }

    async fn park(&self, parked: &ParkedDelivery) -> Result<(), PortError> {
        Ok(self.park_delivery(parked).await?)
    }

    async fn next_parked(
        &self,
        subscription: &str,
        ordering_key: &str,
    ) -> Result<Option<ParkedDelivery>, PortError> {
        Ok(self.first_parked(subscription, ordering_key).await?)
    }

    async fn unpark(&self, idempotency_key: &str) -> Result<(), PortError> {
        Ok(self.remove_parked(idempotency_key).await?)
    }

    async fn count_parked(&self, subscription: Option<&str>) -> Result<u64, PortError> {
        Ok(self.parked_count(subscription).await?)
    }

    async fn record_transform(&self, record: &TransformRecord) -> Result<(), PortError> {
        self.record_transform_run(record).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(effective_limit(0), DEFAULT_LIMIT);
        assert_eq!(effective_limit(5), 5);
        assert_eq!(effective_limit(u32::MAX), MAX_LIMIT);
    }

    #[test]
    fn truncates_on_char_boundaries() {
        let long = "é".repeat(AUDIT_TEXT_MAX + 10);
        let t = truncate(&long);
        assert_eq!(t.chars().count(), AUDIT_TEXT_MAX + 1);
        assert_eq!(truncate("short"), "short");
    }
}
