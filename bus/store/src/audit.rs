//! The hash-chained audit log: how an entry is hashed, how appends are serialised, and
//! how the chain is verified.
//!
//! Each entry's `hash` is the lower-case hex SHA-256 of the previous entry's `hash` (its
//! hex text; empty for the first entry) followed by the entry's canonical text: the
//! compact JSON array `[seq, at, tenant, actor, action, target, detail]`, where `at` is
//! microseconds since the Unix epoch, `tenant` is a string or `null`, and `detail` is the
//! stored JSON text as a string. Example for the first entry:
//!
//! ```text
//! hash = hex(sha256("" + "[1,1717171717000000,\"dysart\",\"permits\",\"received\",\"event:/dysart/permitting#P-1\",\"{\\\"type\\\":\\\"ca.haliburton.permitting.permit.issued\\\"}\"]"))
//! ```

use civicbus_core::ports::{AuditAction, AuditRecord};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::bulk;
use crate::error::StoreError;
use crate::rows::{RowReader, micros_to_time, now_micros};
use crate::url::Backend;

/// The PostgreSQL advisory lock key that serialises audit appends: the ASCII bytes of
/// `civicbus` read as a big-endian integer.
pub const AUDIT_LOCK_KEY: i64 = 0x6369_7669_6362_7573;

/// The actor recorded for the bus's own actions.
pub const BUS_ACTOR: &str = "civicbus";

/// The hash of one audit entry as stored in `hash`: SHA-256 over `record.prev_hash` and
/// the canonical text of the entry's other fields (`record.hash` itself is ignored).
pub fn audit_hash(record: &AuditRecord) -> String {
    entry_hash(
        &record.prev_hash,
        &EntryFields {
            seq: record.seq,
            at_us: record.at.timestamp_micros(),
            tenant: record.tenant.as_deref(),
            actor: &record.actor,
            action: &record.action,
            target: &record.target,
            detail: &record.detail,
        },
    )
}

/// The hashed fields of an entry, with `at` as stored (microseconds).
pub(crate) struct EntryFields<'a> {
    pub seq: i64,
    pub at_us: i64,
    pub tenant: Option<&'a str>,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub detail: &'a str,
}

pub(crate) fn entry_hash(prev_hash: &str, f: &EntryFields<'_>) -> String {
    let canonical = serde_json::json!([
        f.seq, f.at_us, f.tenant, f.actor, f.action, f.target, f.detail
    ])
    .to_string();
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
}

/// One entry to append, prepared by the caller: its `seq`, time and hashes are assigned
/// by [`AuditChain::stage`] under the audit lock.
#[derive(Debug, Clone)]
pub(crate) struct PendingEntry {
    pub tenant: Option<String>,
    pub actor: String,
    pub action: AuditAction,
    pub target: String,
    /// The detail as stored: compact JSON text.
    pub detail: String,
}

/// An entry placed in the chain (seq and hashes assigned), not yet written.
#[derive(Debug)]
pub(crate) struct StagedEntry {
    seq: i64,
    at_us: i64,
    tenant: Option<String>,
    actor: String,
    action: &'static str,
    target: String,
    detail: String,
    prev_hash: String,
    hash: String,
}

/// The head of the chain inside a write transaction that holds the audit lock.
pub(crate) struct AuditChain {
    next_seq: i64,
    prev_hash: String,
}

impl AuditChain {
    /// Take the audit lock for the rest of the transaction and read the chain's head.
    ///
    /// On PostgreSQL this takes `pg_advisory_xact_lock(AUDIT_LOCK_KEY)`; on SQLite the
    /// transaction must have been begun as a write transaction (`BEGIN IMMEDIATE`), which
    /// already excludes every other writer.
    pub(crate) async fn lock(
        conn: &mut AnyConnection,
        backend: Backend,
    ) -> Result<AuditChain, StoreError> {
        const OP: &str = "locking the audit log";
        if backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(AUDIT_LOCK_KEY)
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::from_sqlx(OP, e))?;
        }
        let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| StoreError::from_sqlx(OP, e))?;
        match row {
            None => Ok(AuditChain {
                next_seq: 1,
                prev_hash: String::new(),
            }),
            Some(row) => {
                let seq: i64 = row.try_get("seq").map_err(|e| corrupt_head("seq", &e))?;
                let r = RowReader::new(&row, "audit_log", format!("seq={seq}"));
                let hash: String = r.get("hash")?;
                let next_seq = seq.checked_add(1).ok_or_else(|| StoreError::CorruptRow {
                    table: "audit_log",
                    key: format!("seq={seq}"),
                    message: "seq is at its maximum".into(),
                })?;
                Ok(AuditChain {
                    next_seq,
                    prev_hash: hash,
                })
            }
        }
    }

    /// Place the next entry in the chain: assign its seq and time and hash it onto the
    /// previous entry. Nothing is written until [`AuditChain::insert`]; the caller must
    /// write every staged entry, in order, in the same transaction as
    /// [`AuditChain::lock`], or none.
    pub(crate) fn stage(&mut self, entry: &PendingEntry) -> Result<StagedEntry, StoreError> {
        let seq = self.next_seq;
        let next_seq = seq.checked_add(1).ok_or_else(|| StoreError::CorruptRow {
            table: "audit_log",
            key: format!("seq={seq}"),
            message: "seq is at its maximum".into(),
        })?;
        let at_us = now_micros();
        let action = entry.action.as_str();
        let hash = entry_hash(
            &self.prev_hash,
            &EntryFields {
                seq,
                at_us,
                tenant: entry.tenant.as_deref(),
                actor: &entry.actor,
                action,
                target: &entry.target,
                detail: &entry.detail,
            },
        );
        let prev_hash = std::mem::replace(&mut self.prev_hash, hash.clone());
        self.next_seq = next_seq;
        Ok(StagedEntry {
            seq,
            at_us,
            tenant: entry.tenant.clone(),
            actor: entry.actor.clone(),
            action,
            target: entry.target.clone(),
            detail: entry.detail.clone(),
            prev_hash,
            hash,
        })
    }

    /// Write staged entries, in order, with multi-row `INSERT`s (see [`crate::bulk`]).
    pub(crate) async fn insert(
        conn: &mut AnyConnection,
        backend: Backend,
        mut entries: &[StagedEntry],
    ) -> Result<(), StoreError> {
        let budget = bulk::budget(backend);
        while !entries.is_empty() {
            let n = bulk::chunk_len(entries, budget, StagedEntry::wire_size);
            let (chunk, rest) = entries.split_at(n.clamp(1, entries.len()));
            entries = rest;
            let sql = format!(
                "INSERT INTO audit_log (seq, at, tenant, actor, action, target, detail, prev_hash, hash) VALUES {}",
                bulk::values_clause(chunk.len(), 9)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for e in chunk {
                query = query
                    .bind(e.seq)
                    .bind(e.at_us)
                    .bind(e.tenant.clone())
                    .bind(e.actor.clone())
                    .bind(e.action.to_string())
                    .bind(e.target.clone())
                    .bind(e.detail.clone())
                    .bind(e.prev_hash.clone())
                    .bind(e.hash.clone());
            }
            query
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::from_sqlx("appending to the audit log", e))?;
        }
        Ok(())
    }
}

impl StagedEntry {
    /// About how many bytes this row adds to an `INSERT` message (values and their
    /// length prefixes).
    fn wire_size(&self) -> usize {
        let text = self.tenant.as_ref().map_or(0, String::len)
            + self.actor.len()
            + self.action.len()
            + self.target.len()
            + self.detail.len()
            + self.prev_hash.len()
            + self.hash.len();
        text + 2 * 8 + 9 * bulk::VALUE_OVERHEAD
    }
}

fn corrupt_head(column: &str, err: &sqlx::Error) -> StoreError {
    StoreError::CorruptRow {
        table: "audit_log",
        key: "last row".into(),
        message: format!("column {column}: {err}"),
    }
}

/// An audit row as stored, for verification (no conversion that could fail on `at`).
pub(crate) struct RawAuditRow {
    pub seq: i64,
    pub at_us: i64,
    pub tenant: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl RawAuditRow {
    pub(crate) const COLUMNS: &'static str =
        "seq, at, tenant, actor, action, target, detail, prev_hash, hash";

    pub(crate) fn from_row(row: &sqlx::any::AnyRow) -> Result<Self, StoreError> {
        let seq: i64 = row.try_get("seq").map_err(|e| StoreError::CorruptRow {
            table: "audit_log",
            key: "unknown seq".into(),
            message: format!("column seq: {e}"),
        })?;
        let r = RowReader::new(row, "audit_log", format!("seq={seq}"));
        Ok(RawAuditRow {
            seq,
            at_us: r.get("at")?,
            tenant: r.get("tenant")?,
            actor: r.get("actor")?,
            action: r.get("action")?,
            target: r.get("target")?,
            detail: r.get("detail")?,
            prev_hash: r.get("prev_hash")?,
            hash: r.get("hash")?,
        })
    }

    pub(crate) fn computed_hash(&self) -> String {
        entry_hash(
            &self.prev_hash,
            &EntryFields {
                seq: self.seq,
                at_us: self.at_us,
                tenant: self.tenant.as_deref(),
                actor: &self.actor,
                action: &self.action,
                target: &self.target,
                detail: &self.detail,
            },
        )
    }

    pub(crate) fn into_record(self) -> Result<AuditRecord, StoreError> {
        let at = micros_to_time(self.at_us).ok_or_else(|| StoreError::CorruptRow {
            table: "audit_log",
            key: format!("seq={}", self.seq),
            message: format!("column at: {} is not a valid timestamp", self.at_us),
        })?;
        Ok(AuditRecord {
            seq: self.seq,
            at,
            tenant: self.tenant,
            actor: self.actor,
            action: self.action,
            target: self.target,
            detail: self.detail,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// What is wrong at the first broken position of the audit chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditBreakKind {
    /// An entry is missing: the sequence jumps (a row was deleted, or the first rows).
    Gap,
    /// The entry's content does not match its hash: the row was edited.
    Altered,
    /// The entry's `prev_hash` is not the previous entry's hash: the chain was rewritten
    /// from here (a row replaced or re-hashed).
    Unlinked,
}

impl AuditBreakKind {
    /// A stable machine-readable name (`gap`, `altered`, `unlinked`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditBreakKind::Gap => "gap",
            AuditBreakKind::Altered => "altered",
            AuditBreakKind::Unlinked => "unlinked",
        }
    }
}

/// The first place the audit chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditBreak {
    /// The first broken seq: the missing seq for a gap, else the seq of the bad row.
    pub seq: i64,
    /// What is wrong there.
    pub kind: AuditBreakKind,
    /// Explanation for operators.
    pub message: String,
}

/// The result of recomputing the audit chain with [`crate::SqlStore::verify_audit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerification {
    /// Entries checked and found intact (up to the first break).
    pub checked: u64,
    /// The seq of the last intact entry (0 when none).
    pub last_seq: i64,
    /// The hash of the last intact entry (empty when none). Deleting entries at the very
    /// end of the log cannot be detected from the log alone: keep this value elsewhere
    /// and compare it later.
    pub last_hash: String,
    /// The first problem found, if any.
    pub first_broken: Option<AuditBreak>,
}

impl AuditVerification {
    /// Whether the whole chain verified.
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Incremental verifier: feed rows in seq order.
pub(crate) struct Verifier {
    pub(crate) result: AuditVerification,
}

impl Verifier {
    pub(crate) fn new() -> Self {
        Verifier {
            result: AuditVerification {
                checked: 0,
                last_seq: 0,
                last_hash: String::new(),
                first_broken: None,
            },
        }
    }

    /// Check the next row; returns `false` once the chain is broken.
    pub(crate) fn check(&mut self, row: &RawAuditRow) -> bool {
        let expected = self.result.last_seq + 1;
        let broken = if row.seq != expected {
            Some(AuditBreak {
                seq: expected,
                kind: AuditBreakKind::Gap,
                message: format!(
                    "audit entry {expected} is missing (the next entry is {}): entries were deleted",
                    row.seq
                ),
            })
        } else if row.prev_hash != self.result.last_hash {
            Some(AuditBreak {
                seq: row.seq,
                kind: AuditBreakKind::Unlinked,
                message: format!(
                    "audit entry {} does not link to entry {}: its prev_hash differs from that entry's hash, so the log was rewritten from here",
                    row.seq, self.result.last_seq
                ),
            })
        } else if row.computed_hash() != row.hash {
            Some(AuditBreak {
                seq: row.seq,
                kind: AuditBreakKind::Altered,
                message: format!(
                    "audit entry {} does not match its hash: the row was edited",
                    row.seq
                ),
            })
        } else {
            None
        };
        match broken {
            Some(b) => {
                self.result.first_broken = Some(b);
                false
            }
            None => {
                self.result.checked += 1;
                self.result.last_seq = row.seq;
                self.result.last_hash.clone_from(&row.hash);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(seq: i64, prev: &str) -> RawAuditRow {
        let mut r = RawAuditRow {
            seq,
            at_us: 1_700_000_000_000_000 + seq,
            tenant: Some("dysart".into()),
            actor: "civicbus".into(),
            action: "received".into(),
            target: format!("event:/x#{seq}"),
            detail: "{}".into(),
            prev_hash: prev.into(),
            hash: String::new(),
        };
        r.hash = r.computed_hash();
        r
    }

    #[test]
    fn hash_is_stable_and_covers_every_field() {
        let a = raw(1, "");
        assert_eq!(a.hash.len(), 64);
        let mut b = raw(1, "");
        b.tenant = None;
        assert_ne!(a.computed_hash(), b.computed_hash());
        let mut c = raw(1, "");
        c.detail = "{\"x\":1}".into();
        assert_ne!(a.computed_hash(), c.computed_hash());
        let mut d = raw(1, "");
        d.prev_hash = "00".into();
        assert_ne!(a.computed_hash(), d.computed_hash());
        let rec = raw(1, "").into_record().expect("valid");
        assert_eq!(audit_hash(&rec), a.hash);
    }

    #[test]
    fn verifier_finds_first_break() {
        let r1 = raw(1, "");
        let r2 = raw(2, &r1.hash);
        let r3 = raw(3, &r2.hash);
        let mut v = Verifier::new();
        assert!(v.check(&r1) && v.check(&r2) && v.check(&r3));
        assert!(v.result.is_intact());
        assert_eq!(v.result.last_seq, 3);

        let mut v = Verifier::new();
        assert!(v.check(&r1));
        assert!(!v.check(&r3));
        let b = v.result.first_broken.clone().expect("gap");
        assert_eq!((b.seq, b.kind), (2, AuditBreakKind::Gap));

        let mut edited = raw(2, &r1.hash);
        edited.actor = "mallory".into();
        let mut v = Verifier::new();
        assert!(v.check(&r1));
        assert!(!v.check(&edited));
        let b = v.result.first_broken.clone().expect("altered");
        assert_eq!((b.seq, b.kind), (2, AuditBreakKind::Altered));

        let rehashed = raw(2, "beef");
        let mut v = Verifier::new();
        assert!(v.check(&r1));
        assert!(!v.check(&rehashed));
        let b = v.result.first_broken.clone().expect("unlinked");
        assert_eq!((b.seq, b.kind), (2, AuditBreakKind::Unlinked));
    }
}
