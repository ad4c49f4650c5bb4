//! civicbus store: the system of record on SQLite or PostgreSQL.
//!
//! [`SqlStore`] implements [`civicbus_core::ports::EventStore`]: the event archive,
//! quarantined inputs, delivery attempts, dead letters and the hash-chained audit log. One code path
//! serves both databases: `sqlx::AnyPool`, `$n` placeholders, TEXT and BIGINT columns only
//! (timestamps as microseconds since the Unix epoch, JSON as text, raw bytes as base64),
//! and one migration directory (`migrations/`) whose SQL runs unchanged on both. The only
//! backend-specific code is how a write transaction begins and how audit appends are
//! serialised ([`audit`]).
//!
//! Writes use group commit: one writer task per store applies the writes waiting at any
//! moment in one transaction (one audit lock, one commit), so that a failing write fails
//! alone (savepoints), and answers each only after the commit.
//!
//! This is the only civicbus crate that names `sqlx`.

pub mod audit;
mod bulk;
mod endpoints;
mod error;
mod ordering;
mod rows;
mod store;
#[cfg(feature = "test-util")]
pub mod testing;
mod transforms;
mod url;
mod writer;

pub use audit::{AuditBreak, AuditBreakKind, AuditVerification, audit_hash};
pub use error::StoreError;
pub use store::{
    DEFAULT_LIMIT, DEFAULT_WRITE_BATCH, DEFAULT_WRITE_QUEUE, MAX_LIMIT, SQLITE_BUSY_TIMEOUT,
    SqlStore, StoreOptions,
};
pub use url::{Backend, redact_url};
