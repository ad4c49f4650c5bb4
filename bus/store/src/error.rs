//! Errors of the store, and how they map onto the bus's [`PortError`].

use civicbus_core::ports::PortError;

use crate::url::Backend;

/// A failure of the SQL store. Messages say what went wrong and what to do, and never
/// contain a password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store URL cannot be used.
    #[error("invalid store URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The database could not be opened or reached.
    #[error("cannot connect to {backend} at {target}: {message}; {hint}")]
    Connect {
        /// Which database.
        backend: Backend,
        /// Where (host:port/database or file path), without secrets.
        target: String,
        /// The driver's error, without secrets.
        message: String,
        /// What to do about it.
        hint: &'static str,
    },

    /// The schema migrations could not be applied.
    #[error(
        "cannot apply the store schema migrations to {backend} at {target}: {message}; \
         check the database user may create tables, and that no civicbus migration was \
         edited after it was applied"
    )]
    Migrate {
        /// Which database.
        backend: Backend,
        /// Where, without secrets.
        target: String,
        /// The migrator's error.
        message: String,
    },

    /// The database is unreachable, busy or out of resources: retry later.
    #[error(
        "store unavailable while {op}: {message}; retry later, and check the database is running and not overloaded"
    )]
    Unavailable {
        /// What the store was doing.
        op: &'static str,
        /// The driver's error.
        message: String,
    },

    /// The store was closed (the bus is shutting down); nothing was written.
    #[error(
        "store closed while {op}: it was shut down, so nothing was written; retry against a running civicbus"
    )]
    Closed {
        /// What the store was asked to do.
        op: &'static str,
    },

    /// The database refused a statement; retrying will not help.
    #[error("store query failed while {op}: {message}")]
    Query {
        /// What the store was doing.
        op: &'static str,
        /// The driver's error.
        message: String,
    },

    /// A row read back could not be decoded.
    #[error("corrupt row in table {table} ({key}): {message}; repair or remove the row")]
    CorruptRow {
        /// Table the row is in.
        table: &'static str,
        /// The row's key, e.g. `seq=12` or `tenant=dysart source=/x id=1`.
        key: String,
        /// What could not be decoded.
        message: String,
    },

    /// A value could not be prepared for storage.
    #[error("cannot store {what}: {message}")]
    Invalid {
        /// What was being stored.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl StoreError {
    /// Whether the failure is transient (connection, pool, I/O, lock contention), so the
    /// operation is worth retrying later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Connect { .. } | StoreError::Unavailable { .. } | StoreError::Closed { .. }
        )
    }

    /// Classify a driver error raised while doing `op`.
    pub(crate) fn from_sqlx(op: &'static str, err: sqlx::Error) -> Self {
        let message = err.to_string();
        if is_transient(&err) {
            StoreError::Unavailable { op, message }
        } else {
            StoreError::Query { op, message }
        }
    }
}

impl From<StoreError> for PortError {
    fn from(err: StoreError) -> Self {
        if err.is_unavailable() {
            PortError::unavailable(err.to_string())
        } else {
            PortError::rejected(err.to_string())
        }
    }
}

/// Whether a driver error is about the connection or contention rather than the request.
fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return false;
            };
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                transient_sqlstate(&code)
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                code.parse::<i32>().is_ok_and(transient_sqlite_code)
            } else {
                false
            }
        }
        _ => false,
    }
}

/// Whether a SQLite (extended) result code means "try again later": the primary code
/// (low byte) is BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN or PROTOCOL.
fn transient_sqlite_code(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15)
}

/// Whether a PostgreSQL SQLSTATE means "try again later".
fn transient_sqlstate(code: &str) -> bool {
    // PostgreSQL SQLSTATE classes: connection exception, transaction rollback
    // (serialization failure, deadlock), insufficient resources, operator intervention
    // (shutdown, cancel), system error; and lock_not_available.
    ["08", "40", "53", "57", "58"]
        .iter()
        .any(|class| code.starts_with(class))
        || code == "55P03"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes() {
        assert!(transient_sqlite_code(5));
        assert!(transient_sqlite_code(517)); // SQLITE_BUSY_SNAPSHOT
        assert!(!transient_sqlite_code(2067)); // SQLITE_CONSTRAINT_UNIQUE
        assert!(!transient_sqlite_code(1)); // SQLITE_ERROR
        assert!(transient_sqlstate("40001"));
        assert!(transient_sqlstate("40P01"));
        assert!(transient_sqlstate("57P01"));
        assert!(transient_sqlstate("08006"));
        assert!(!transient_sqlstate("23505"));
        assert!(!transient_sqlstate("42P01"));
    }

    #[test]
    fn maps_to_port_error_kinds() {
        use civicbus_core::ports::PortErrorKind;
        let e: PortError = StoreError::Unavailable {
            op: "x",
            message: "y".into(),
        }
        .into();
        assert_eq!(e.kind, PortErrorKind::Unavailable);
        let e: PortError = StoreError::Query {
            op: "x",
            message: "y".into(),
        }
        .into();
        assert_eq!(e.kind, PortErrorKind::Rejected);
    }
}
