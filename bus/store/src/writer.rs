//! Group commit: one writer task per store applies every write.
//!
//! The write methods of [`crate::SqlStore`] prepare their row and audit entries, send
//! them as a [`WriteOp`] over a bounded channel and wait for the reply. The writer takes
//! the first waiting op and whatever else is queued (up to the batch limit), opens one
//! write transaction, takes the audit lock once, inserts the ops' rows (multi-row
//! `INSERT`s, see [`crate::bulk`]), appends the audit entries of the ops that inserted a
//! row in op order (so the chain stays one line without gaps), commits, and only then
//! replies to every op. If the commit fails, every op of the batch gets the error.
//!
//! If an op's row is refused (a constraint, say), that transaction is rolled back and
//! the batch is applied again with each op inside its own savepoint: the failing op is
//! rolled back alone and gets its own error, the others commit. (Savepoints on every
//! batch would cost two statements per op, which halved throughput when measured.)
//!
//! So a burst of concurrent writers costs one lock acquisition and one commit per batch
//! instead of one per write, and nobody waits in a lock queue or busy handler.
//!
//! The writer stops when the store is closed (after applying what was already queued)
//! or dropped. Ops sent after close, and ops whose writer died, fail as unavailable;
//! nobody waits forever for a reply.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Executor as _, Row as _, Transaction};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::audit::{AuditChain, PendingEntry, StagedEntry};
use crate::bulk;
use crate::error::StoreError;
use crate::url::Backend;

/// What the writer reports for a batch-level failure (begin, savepoints, audit, commit).
const BATCH_OP: &str = "committing a batch of writes";

/// One row to insert. Values are already encoded as stored.
#[derive(Debug)]
pub(crate) enum Insert {
    /// Into `events`, unless the (tenant, source, id) is archived already.
    Event {
        tenant: String,
        source: String,
        id: String,
        ty: String,
        subject: Option<String>,
        time: Option<String>,
        received_at: i64,
        actor: String,
        structured: String,
    },
    /// Into `quarantine`, unless the id is there already.
    Quarantine {
        id: String,
        tenant: Option<String>,
        transport: String,
        reason_kind: String,
        field: String,
        reason: String,
        body_base64: String,
        headers: String,
        received_at: i64,
    },
    /// Into `delivery_attempts`.
    Attempt {
        id: String,
        idempotency_key: String,
        tenant: String,
        subscription: String,
        event_tenant: String,
        event_source: String,
        event_id: String,
        attempt: i64,
        status: String,
        response_code: Option<i64>,
        error: Option<String>,
        duration_us: i64,
        at: i64,
    },
    /// Into `dead_letters`, unless a dead letter with this idempotency key is there
    /// already.
    DeadLetter {
        id: String,
        tenant: String,
        subscription: String,
        idempotency_key: String,
        event_tenant: String,
        event_source: String,
        event_id: String,
        structured: String,
        reason: String,
        error: String,
        last_response_code: Option<i64>,
        attempts: i64,
        received_at: Option<i64>,
        created_at: i64,
    },
    /// A change of an endpoint's status in `endpoints`; "inserted" means the status
    /// changed (disabling a disabled endpoint, or enabling an enabled one, does not).
    Endpoint(EndpointWrite),
    /// Into `transform_runs`, unless the run is recorded already.
    TransformRun {
        subscription: String,
        input_source: String,
        input_id: String,
        tenant: String,
        input_tenant: String,
        plugins: String,
        outputs: String,
        created_at: i64,
    },
}

/// The status changes of [`Insert::Endpoint`].
#[derive(Debug)]
pub(crate) enum EndpointWrite {
    /// Disable, unless disabled already.
    Disable {
        subscription: String,
        tenant: String,
        failing_since: Option<i64>,
        at: i64,
        reason: String,
        error: String,
        response_code: Option<i64>,
    },
    /// Enable, if disabled; the run of failures is cleared.
    Enable { subscription: String, at: i64 },
}

/// [`EndpointWrite::Disable`]: insert the row disabled, or disable an enabled row.
const DISABLE_ENDPOINT_SQL: &str = "INSERT INTO endpoints (subscription, tenant, status, \
     failing_since, disabled_at, disabled_reason, last_error, last_response_code, notified_at, \
     updated_at) VALUES ($1, $2, 'disabled', $3, $4, $5, $6, $7, NULL, $4) \
     ON CONFLICT (subscription) DO UPDATE SET status = 'disabled', \
     failing_since = COALESCE(endpoints.failing_since, excluded.failing_since), \
     disabled_at = excluded.disabled_at, disabled_reason = excluded.disabled_reason, \
     last_error = excluded.last_error, last_response_code = excluded.last_response_code, \
     notified_at = NULL, updated_at = excluded.updated_at \
     WHERE endpoints.status <> 'disabled'";

/// [`EndpointWrite::Enable`].
const ENABLE_ENDPOINT_SQL: &str = "UPDATE endpoints SET status = 'enabled', \
     failing_since = NULL, disabled_at = NULL, disabled_reason = NULL, last_error = NULL, \
     last_response_code = NULL, notified_at = NULL, updated_at = $2 \
     WHERE subscription = $1 AND status = 'disabled'";

/// One write: a row, and the audit entries appended when the row was inserted.
#[derive(Debug)]
pub(crate) struct WriteOp {
    /// What it is, for error messages (`archiving an event`).
    pub what: &'static str,
    /// The row.
    pub insert: Insert,
    /// Audit entries, appended in this order if the row was inserted.
    pub audit: Vec<PendingEntry>,
}

/// A write with its reply: whether the row was inserted (false: it existed already).
struct Request {
    op: WriteOp,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// The store's handle on its writer task, shared by every clone of the store.
#[derive(Debug)]
pub(crate) struct Writer {
    /// `None` once the store is closed.
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    /// The task, until [`Writer::shutdown`] waited for it.
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// The pool the writer writes on, for large writes on PostgreSQL (see
    /// [`Writer::submit`]).
    pool: AnyPool,
    /// Which database.
    backend: Backend,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("what", &self.op.what)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Start the writer task on the current Tokio runtime.
    pub(crate) fn start(pool: AnyPool, backend: Backend, max_batch: usize, queue: usize) -> Writer {
        let max_batch = max_batch.max(1);
        let (sender, receiver) = mpsc::channel(queue.max(1));
        let task = tokio::spawn(run(receiver, pool.clone(), backend, max_batch));
        Writer {
            sender: Mutex::new(Some(sender)),
            task: tokio::sync::Mutex::new(Some(task)),
            pool,
            backend,
        }
    }

    /// Apply `op` in the writer's next batch; returns once its batch committed (or
    /// failed). Waits for room when the queue is full.
    ///
    /// Except on PostgreSQL for a row larger than [`bulk::PG_MESSAGE_BUDGET`]: sqlx
    /// 0.9.0 does not set `TCP_NODELAY`, so sending such a row stalls about 40 ms on a
    /// delayed ACK, and in the writer that stall would hold up every write queued
    /// behind it. Such a write runs in a transaction of its own, concurrently, as before
    /// group commit: the row first (the stall holds no lock), then the audit lock and
    /// entries, then commit. The advisory lock keeps the chain linear.
    pub(crate) async fn submit(&self, op: WriteOp) -> Result<bool, StoreError> {
        let what = op.what;
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(sender) = sender else {
            return Err(StoreError::Closed { op: what });
        };
        if self.backend == Backend::Postgres && op.insert.wire_size() > bulk::PG_MESSAGE_BUDGET {
            drop(sender);
            return apply_alone(&self.pool, self.backend, &op).await;
        }
        let (reply, answer) = oneshot::channel();
        if sender.send(Request { op, reply }).await.is_err() {
            return Err(writer_gone(what));
        }
        drop(sender);
        answer.await.unwrap_or_else(|_| Err(writer_gone(what)))
    }

    /// Stop accepting writes, let the writer apply what is queued, and wait for it to
    /// end. Later [`Writer::submit`]s fail with [`StoreError::Closed`]. Idempotent.
    pub(crate) async fn shutdown(&self) {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        // The writer ends once every sender is gone (submitters in flight hold clones
        // until their op is queued) and the queue is empty.
        drop(sender);
        let mut task = self.task.lock().await;
        if let Some(handle) = task.take()
            && let Err(e) = handle.await
        {
            tracing::error!(error = %e, "store writer task failed");
        }
    }
}

fn writer_gone(what: &'static str) -> StoreError {
    StoreError::Unavailable {
        op: what,
        message: "the store's writer task has stopped (the store was dropped or its runtime \
                  shut down), so nothing was written"
            .into(),
    }
}

/// The writer task: batches until every sender is gone.
async fn run(mut receiver: mpsc::Receiver<Request>, pool: AnyPool, backend: Backend, max: usize) {
    let mut batch = Vec::with_capacity(max);
    while receiver.recv_many(&mut batch, max).await > 0 {
        // A caller that gave up before its batch began is not written for: as if its
        // transaction had never started.
        batch.retain(|r| !r.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let ops: Vec<&WriteOp> = batch.iter().map(|r| &r.op).collect();
        let started = std::time::Instant::now();
        let outcome = apply_batch(&pool, backend, &ops).await;
        tracing::trace!(
            ops = ops.len(),
            ok = outcome.is_ok(),
            took_us = started.elapsed().as_micros(),
            "store write batch"
        );
        match outcome {
            Ok(results) => {
                for (request, result) in batch.drain(..).zip(results) {
                    let _ = request.reply.send(result);
                }
            }
            Err(e) => {
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
        }
        // Anything left (never, unless results were short) is dropped: its caller sees
        // the writer as gone rather than waiting.
        batch.clear();
    }
    tracing::debug!("store writer stopped");
}

/// Apply one op in a transaction of its own (see [`Writer::submit`]).
async fn apply_alone(pool: &AnyPool, backend: Backend, op: &WriteOp) -> Result<bool, StoreError> {
    let mut tx = begin_write(pool, backend, op.what).await?;
    let inserted = insert(&mut tx, op).await?;
    if inserted {
        let conn: &mut AnyConnection = &mut tx;
        let mut chain = AuditChain::lock(conn, backend).await?;
        let staged = op
            .audit
            .iter()
            .map(|entry| chain.stage(entry))
            .collect::<Result<Vec<_>, _>>()?;
        AuditChain::insert(conn, backend, &staged).await?;
    }
    tx.commit()
        .await
        .map_err(|e| StoreError::from_sqlx(op.what, e))?;
    Ok(inserted)
}

/// How the ops of a batch share its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// Straight in, no savepoints: the first failing op fails the attempt.
    Shared,
    /// Each op inside its own savepoint: a failing op is rolled back alone.
    Savepoints,
}

/// What one attempt at a batch came to.
enum Attempt {
    /// Every op was applied (and, once [`attempt_batch`] returns it, committed); each
    /// op's own result, in order.
    Done(Vec<Result<bool, StoreError>>),
    /// An op failed in [`Isolation::Shared`]; the transaction was rolled back.
    OpFailed(StoreError),
}

/// Apply a batch in one transaction: `Ok` holds each op's own result (in order) and
/// means the transaction committed (or, for a batch of one failing op, that it was
/// rolled back); `Err` means nothing was committed and every op failed with it.
///
/// Savepoints cost two statements per op (they halved throughput in measurements), and
/// ops rarely fail, so the batch first runs without them. If an op fails, that attempt
/// is rolled back and the batch runs again with a savepoint per op, so the failing op
/// is rolled back alone and the others commit. A batch of one op needs no second run.
async fn apply_batch(
    pool: &AnyPool,
    backend: Backend,
    ops: &[&WriteOp],
) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
    match attempt_batch(pool, backend, ops, Isolation::Shared).await? {
        Attempt::Done(results) => Ok(results),
        Attempt::OpFailed(e) if ops.len() == 1 => Ok(vec![Err(e)]),
        Attempt::OpFailed(e) => {
            tracing::debug!(error = %e, ops = ops.len(), "a write of a batch failed; applying each write in a savepoint");
            match attempt_batch(pool, backend, ops, Isolation::Savepoints).await? {
                Attempt::Done(results) => Ok(results),
                Attempt::OpFailed(e) => Err(e),
            }
        }
    }
}

/// One transaction over the batch.
async fn attempt_batch(
    pool: &AnyPool,
    backend: Backend,
    ops: &[&WriteOp],
    isolation: Isolation,
) -> Result<Attempt, StoreError> {
    let mut tx = begin_write(pool, backend, BATCH_OP).await?;
    let outcome = apply_in(&mut tx, backend, ops, isolation).await;
    match outcome {
        Ok(Attempt::Done(results)) => {
            tx.commit()
                .await
                .map_err(|e| StoreError::from_sqlx(BATCH_OP, e))?;
            Ok(Attempt::Done(results))
        }
        Ok(Attempt::OpFailed(e)) => {
            rollback(tx).await;
            Ok(Attempt::OpFailed(e))
        }
        Err(e) => {
            rollback(tx).await;
            Err(e)
        }
    }
}

/// Roll back, best effort: a transaction that cannot be rolled back is gone already
/// (the connection broke, or SQLite rolled it back itself).
async fn rollback(tx: Transaction<'static, Any>) {
    if let Err(e) = tx.rollback().await {
        tracing::debug!(error = %e, "rolling back a write batch");
    }
}

/// Begin a transaction that will write. On SQLite it starts as a write transaction
/// (`BEGIN IMMEDIATE`), so what it reads stays consistent with what it writes and a busy
/// database (another process) is waited for (busy_timeout) rather than failing at
/// commit. On PostgreSQL a plain `BEGIN` suffices: the audit lock is an advisory lock.
async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
    what: &'static str,
) -> Result<Transaction<'static, Any>, StoreError> {
    let tx = match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    };
    tx.map_err(|e| StoreError::from_sqlx(what, e))
}

/// The body of a batch, inside the transaction: take the audit lock, insert the ops'
/// rows (together with multi-row `INSERT`s, or one by one in savepoints), then append
/// the audit entries of the ops that inserted a row, in op order.
async fn apply_in(
    conn: &mut AnyConnection,
    backend: Backend,
    ops: &[&WriteOp],
    isolation: Isolation,
) -> Result<Attempt, StoreError> {
    let mut chain = AuditChain::lock(conn, backend).await?;
    let shared = match isolation {
        Isolation::Shared => {
            let inserted = match ops {
                [op] => insert(conn, op).await.map(|inserted| vec![inserted]),
                _ => insert_all(conn, backend, ops).await,
            };
            match inserted {
                Ok(inserted) => inserted,
                Err(e) => return Ok(Attempt::OpFailed(e)),
            }
        }
        Isolation::Savepoints => Vec::new(),
    };
    let mut staged: Vec<StagedEntry> = Vec::new();
    let mut results = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let result = match isolation {
            Isolation::Shared => Ok(shared.get(i).copied().unwrap_or(false)),
            Isolation::Savepoints => {
                batch_sql(conn, "SAVEPOINT civicbus_op").await?;
                match insert(conn, op).await {
                    Ok(inserted) => {
                        batch_sql(conn, "RELEASE SAVEPOINT civicbus_op").await?;
                        Ok(inserted)
                    }
                    Err(e) => {
                        // Undo this op alone. If even that fails, the transaction is gone
                        // (the connection broke, or SQLite rolled it back): fail the batch.
                        batch_sql(conn, "ROLLBACK TO SAVEPOINT civicbus_op").await?;
                        batch_sql(conn, "RELEASE SAVEPOINT civicbus_op").await?;
                        Err(e)
                    }
                }
            }
        };
        if let Ok(true) = result {
            for entry in &op.audit {
                staged.push(chain.stage(entry)?);
            }
        }
        results.push(result);
    }
    AuditChain::insert(conn, backend, &staged).await?;
    Ok(Attempt::Done(results))
}

async fn batch_sql(conn: &mut AnyConnection, sql: &'static str) -> Result<(), StoreError> {
    conn.execute(sql)
        .await
        .map(|_| ())
        .map_err(|e| StoreError::from_sqlx(BATCH_OP, e))
}

/// Insert every op's row with multi-row `INSERT`s (see [`crate::bulk`]); for each op,
/// whether its row was inserted (`false`: it existed already, or an earlier op of the
/// batch inserted the same key). An error means the transaction must be rolled back.
async fn insert_all(
    conn: &mut AnyConnection,
    backend: Backend,
    ops: &[&WriteOp],
) -> Result<Vec<bool>, StoreError> {
    let budget = bulk::budget(backend);
    let mut events = Vec::new();
    let mut quarantined = Vec::new();
    let mut attempts = Vec::new();
    let mut dead = Vec::new();
    // Endpoint status changes are rare and may touch one row twice in a batch: one at a
    // time, in op order.
    let mut endpoint_changed: HashMap<usize, bool> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        match &op.insert {
            Insert::Event { .. } => events.push(&op.insert),
            Insert::Quarantine { .. } => quarantined.push(&op.insert),
            Insert::Attempt { .. } => attempts.push(&op.insert),
            Insert::DeadLetter { .. } => dead.push(&op.insert),
            Insert::Endpoint(_) | Insert::TransformRun { .. } => {
                endpoint_changed.insert(i, insert(conn, op).await?);
            }
        }
    }
    // Keys inserted now (RETURNING lists only rows actually inserted; of several rows
    // with one key, the first in op order is the one inserted).
    let mut new_events: HashSet<(String, String, String)> = HashSet::new();
    let mut new_quarantine: HashSet<String> = HashSet::new();
    let mut new_dead: HashSet<String> = HashSet::new();

    let mut rest = events.as_slice();
    while !rest.is_empty() {
        let n = bulk::chunk_len(rest, budget, |i| i.wire_size());
        let (chunk, tail) = rest.split_at(n.clamp(1, rest.len()));
        rest = tail;
        let sql = format!(
            "INSERT INTO events (tenant, source, id, type, subject, time, received_at, actor, structured) \
             VALUES {} ON CONFLICT (tenant, source, id) DO NOTHING RETURNING tenant, source, id",
            bulk::values_clause(chunk.len(), 9)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in chunk {
            query = bind_row(query, row);
        }
        for row in query
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| StoreError::from_sqlx("archiving events", e))?
        {
            let key = (
                row.try_get("tenant").map_err(returned)?,
                row.try_get("source").map_err(returned)?,
                row.try_get("id").map_err(returned)?,
            );
            new_events.insert(key);
        }
    }

    let mut rest = quarantined.as_slice();
    while !rest.is_empty() {
        let n = bulk::chunk_len(rest, budget, |i| i.wire_size());
        let (chunk, tail) = rest.split_at(n.clamp(1, rest.len()));
        rest = tail;
        let sql = format!(
            "INSERT INTO quarantine (id, tenant, transport, reason_kind, field, reason, body_base64, headers, received_at) \
             VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id",
            bulk::values_clause(chunk.len(), 9)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in chunk {
            query = bind_row(query, row);
        }
        for row in query
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| StoreError::from_sqlx("quarantining inputs", e))?
        {
            new_quarantine.insert(row.try_get("id").map_err(returned)?);
        }
    }

    let mut rest = attempts.as_slice();
    while !rest.is_empty() {
        let n = bulk::chunk_len(rest, budget, |i| i.wire_size());
        let (chunk, tail) = rest.split_at(n.clamp(1, rest.len()));
        rest = tail;
        let sql = format!(
            "INSERT INTO delivery_attempts (id, idempotency_key, tenant, subscription, event_tenant, \
             event_source, event_id, attempt, status, response_code, error, duration_us, at) VALUES {}",
            bulk::values_clause(chunk.len(), 13)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in chunk {
            query = bind_row(query, row);
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::from_sqlx("recording delivery attempts", e))?;
    }

    let mut rest = dead.as_slice();
    while !rest.is_empty() {
        let n = bulk::chunk_len(rest, budget, |i| i.wire_size());
        let (chunk, tail) = rest.split_at(n.clamp(1, rest.len()));
        rest = tail;
        let sql = format!(
            "INSERT INTO dead_letters ({DEAD_LETTER_INSERT_COLUMNS}) VALUES {} \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key",
            bulk::values_clause(chunk.len(), 14)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in chunk {
            query = bind_row(query, row);
        }
        for row in query
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| StoreError::from_sqlx("dead-lettering deliveries", e))?
        {
            new_dead.insert(row.try_get("idempotency_key").map_err(returned)?);
        }
    }

    Ok(ops
        .iter()
        .enumerate()
        .map(|(i, op)| match &op.insert {
            Insert::Event {
                tenant, source, id, ..
            } => new_events.remove(&(tenant.clone(), source.clone(), id.clone())),
            Insert::Quarantine { id, .. } => new_quarantine.remove(id),
            Insert::Attempt { .. } => true,
            Insert::DeadLetter {
                idempotency_key, ..
            } => new_dead.remove(idempotency_key),
            Insert::Endpoint(_) | Insert::TransformRun { .. } => {
                endpoint_changed.get(&i).copied().unwrap_or(false)
            }
        })
        .collect())
}

fn returned(e: sqlx::Error) -> StoreError {
    StoreError::from_sqlx("reading back inserted keys", e)
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// Bind one row's values, in column order.
fn bind_row<'q>(query: AnyQuery<'q>, insert: &Insert) -> AnyQuery<'q> {
    match insert {
        Insert::Event {
            tenant,
            source,
            id,
            ty,
            subject,
            time,
            received_at,
            actor,
            structured,
        } => query
            .bind(tenant.clone())
            .bind(source.clone())
            .bind(id.clone())
            .bind(ty.clone())
            .bind(subject.clone())
            .bind(time.clone())
            .bind(*received_at)
            .bind(actor.clone())
            .bind(structured.clone()),
        Insert::Quarantine {
            id,
            tenant,
            transport,
            reason_kind,
            field,
            reason,
            body_base64,
            headers,
            received_at,
        } => query
            .bind(id.clone())
            .bind(tenant.clone())
            .bind(transport.clone())
            .bind(reason_kind.clone())
            .bind(field.clone())
            .bind(reason.clone())
            .bind(body_base64.clone())
            .bind(headers.clone())
            .bind(*received_at),
        Insert::Attempt {
            id,
            idempotency_key,
            tenant,
            subscription,
            event_tenant,
            event_source,
            event_id,
            attempt,
            status,
            response_code,
            error,
            duration_us,
            at,
        } => query
            .bind(id.clone())
            .bind(idempotency_key.clone())
            .bind(tenant.clone())
            .bind(subscription.clone())
            .bind(event_tenant.clone())
            .bind(event_source.clone())
            .bind(event_id.clone())
            .bind(*attempt)
            .bind(status.clone())
            .bind(*response_code)
            .bind(error.clone())
            .bind(*duration_us)
            .bind(*at),
        Insert::DeadLetter {
            id,
            tenant,
            subscription,
            idempotency_key,
            event_tenant,
            event_source,
            event_id,
            structured,
            reason,
            error,
            last_response_code,
            attempts,
            received_at,
            created_at,
        } => query
            .bind(id.clone())
            .bind(tenant.clone())
            .bind(subscription.clone())
            .bind(idempotency_key.clone())
            .bind(event_tenant.clone())
            .bind(event_source.clone())
            .bind(event_id.clone())
            .bind(structured.clone())
            .bind(reason.clone())
            .bind(error.clone())
            .bind(*last_response_code)
            .bind(*attempts)
            .bind(*received_at)
            .bind(*created_at),
        Insert::Endpoint(EndpointWrite::Disable {
            subscription,
            tenant,
            failing_since,
            at,
            reason,
            error,
            response_code,
        }) => query
            .bind(subscription.clone())
            .bind(tenant.clone())
            .bind(*failing_since)
            .bind(*at)
            .bind(reason.clone())
            .bind(error.clone())
            .bind(*response_code),
        Insert::Endpoint(EndpointWrite::Enable { subscription, at }) => {
            query.bind(subscription.clone()).bind(*at)
        }
        Insert::TransformRun {
            subscription,
            input_source,
            input_id,
            tenant,
            input_tenant,
            plugins,
            outputs,
            created_at,
        } => query
            .bind(subscription.clone())
            .bind(input_source.clone())
            .bind(input_id.clone())
            .bind(tenant.clone())
            .bind(input_tenant.clone())
            .bind(plugins.clone())
            .bind(outputs.clone())
            .bind(*created_at),
    }
}

/// The columns of `dead_letters` in the order [`bind_row`] binds them.
const DEAD_LETTER_INSERT_COLUMNS: &str = "id, tenant, subscription, idempotency_key, \
     event_tenant, event_source, event_id, structured, reason, error, last_response_code, \
     attempts, received_at, created_at";

impl Insert {
    /// About how many bytes the row adds to an `INSERT` message.
    fn wire_size(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        match self {
            Insert::Event {
                tenant,
                source,
                id,
                ty,
                subject,
                time,
                actor,
                structured,
                ..
            } => {
                tenant.len()
                    + source.len()
                    + id.len()
                    + ty.len()
                    + opt(subject)
                    + opt(time)
                    + actor.len()
                    + structured.len()
                    + 8
                    + 9 * bulk::VALUE_OVERHEAD
            }
            Insert::Quarantine {
                id,
                tenant,
                transport,
                reason_kind,
                field,
                reason,
                body_base64,
                headers,
                ..
            } => {
                id.len()
                    + opt(tenant)
                    + transport.len()
                    + reason_kind.len()
                    + field.len()
                    + reason.len()
                    + body_base64.len()
                    + headers.len()
                    + 8
                    + 9 * bulk::VALUE_OVERHEAD
            }
            Insert::Attempt {
                id,
                idempotency_key,
                tenant,
                subscription,
                event_tenant,
                event_source,
                event_id,
                status,
                error,
                ..
            } => {
                id.len()
                    + idempotency_key.len()
                    + tenant.len()
                    + subscription.len()
                    + event_tenant.len()
                    + event_source.len()
                    + event_id.len()
                    + status.len()
                    + opt(error)
                    + 4 * 8
                    + 13 * bulk::VALUE_OVERHEAD
            }
            Insert::DeadLetter {
                id,
                tenant,
                subscription,
                idempotency_key,
                event_tenant,
                event_source,
                event_id,
                structured,
                reason,
                error,
                ..
            } => {
                id.len()
                    + tenant.len()
                    + subscription.len()
                    + idempotency_key.len()
                    + event_tenant.len()
                    + event_source.len()
                    + event_id.len()
                    + structured.len()
                    + reason.len()
                    + error.len()
                    + 4 * 8
                    + 14 * bulk::VALUE_OVERHEAD
            }
            Insert::Endpoint(EndpointWrite::Disable {
                subscription,
                tenant,
                reason,
                error,
                ..
            }) => {
                subscription.len()
                    + tenant.len()
                    + reason.len()
                    + error.len()
                    + 3 * 8
                    + 7 * bulk::VALUE_OVERHEAD
            }
            Insert::Endpoint(EndpointWrite::Enable { subscription, .. }) => {
                subscription.len() + 8 + 2 * bulk::VALUE_OVERHEAD
            }
            Insert::TransformRun {
                subscription,
                input_source,
                input_id,
                tenant,
                input_tenant,
                plugins,
                outputs,
                ..
            } => {
                subscription.len()
                    + input_source.len()
                    + input_id.len()
                    + tenant.len()
                    + input_tenant.len()
                    + plugins.len()
                    + outputs.len()
                    + 8
                    + 8 * bulk::VALUE_OVERHEAD
            }
        }
    }
}

/// Insert one op's row; `false` if it existed already.
async fn insert(conn: &mut AnyConnection, op: &WriteOp) -> Result<bool, StoreError> {
    let sql = match &op.insert {
        Insert::Event { .. } => {
            "INSERT INTO events (tenant, source, id, type, subject, time, received_at, actor, structured) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant, source, id) DO NOTHING"
        }
        Insert::Quarantine { .. } => {
            "INSERT INTO quarantine (id, tenant, transport, reason_kind, field, reason, body_base64, headers, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO NOTHING"
        }
        Insert::Attempt { .. } => {
            "INSERT INTO delivery_attempts (id, idempotency_key, tenant, subscription, event_tenant, \
             event_source, event_id, attempt, status, response_code, error, duration_us, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        }
        Insert::DeadLetter { .. } => {
            "INSERT INTO dead_letters (id, tenant, subscription, idempotency_key, \
             event_tenant, event_source, event_id, structured, reason, error, last_response_code, \
             attempts, received_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (idempotency_key) DO NOTHING"
        }
        Insert::Endpoint(EndpointWrite::Disable { .. }) => DISABLE_ENDPOINT_SQL,
        Insert::Endpoint(EndpointWrite::Enable { .. }) => ENABLE_ENDPOINT_SQL,
        Insert::TransformRun { .. } => {
            "INSERT INTO transform_runs (subscription, input_source, input_id, tenant, \
             input_tenant, plugins, outputs, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (subscription, input_source, input_id) DO NOTHING"
        }
    };
    let done = bind_row(sqlx::query(sql), &op.insert)
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::from_sqlx(op.what, e))?;
    Ok(done.rows_affected() > 0)
}
