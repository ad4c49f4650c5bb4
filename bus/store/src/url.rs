//! Store URLs: which backend a URL names, where it points, and how to show it without
//! its password.

use std::fmt;

use crate::error::StoreError;

/// Which SQL database a [`crate::SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite, one file on this machine (`sqlite://path.db`).
    Sqlite,
    /// PostgreSQL (`postgres://user@host:port/db`).
    Postgres,
}

impl Backend {
    /// The backend a store URL names, from its scheme.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url
            .split_once(':')
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default();
        match scheme.as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::InvalidUrl {
                url: redact_url(url),
                reason: "unsupported scheme; use sqlite://path.db (one machine) or \
                         postgres://user@host:5432/database, in store.url or CIVICBUS_STORE_URL"
                    .into(),
            }),
        }
    }

    /// The stable lower-case name (`sqlite`, `postgres`).
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// The URL with any password replaced by `***`, safe to log and show.
///
/// Handles `scheme://user:password@host/...` and a `password=` query parameter.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some((pass_start, pass_end)) = password_span(url) {
        out.replace_range(pass_start..pass_end, "***");
    }
    redact_query_password(&out)
}

/// The password in the URL, if it has one (as written, not percent-decoded).
pub(crate) fn password(url: &str) -> Option<&str> {
    password_span(url).map(|(s, e)| &url[s..e])
}

/// Byte range of the password in `scheme://user:password@host`.
fn password_span(url: &str) -> Option<(usize, usize)> {
    let authority_start = url.find("://")? + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let at = authority.rfind('@')?;
    let userinfo = &authority[..at];
    let colon = userinfo.find(':')?;
    let start = authority_start + colon + 1;
    let end = authority_start + at;
    (start < end).then_some((start, end))
}

fn redact_query_password(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

/// Where a URL points, for error messages: `host:port/database` for PostgreSQL, the file
/// path for SQLite. Never contains a password.
pub(crate) fn describe_target(backend: Backend, url: &str) -> String {
    match backend {
        Backend::Sqlite => {
            let path = sqlite_path(url);
            if path.is_empty() {
                "(empty path)".into()
            } else {
                path.to_string()
            }
        }
        Backend::Postgres => {
            let Some(idx) = url.find("://") else {
                return redact_url(url);
            };
            let rest = &url[idx + 3..];
            let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let authority = &rest[..authority_len];
            let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let hostport = if hostport.is_empty() {
                "localhost:5432".to_string()
            } else if hostport.ends_with(']') || !hostport.contains(':') {
                format!("{hostport}:5432")
            } else {
                hostport.to_string()
            };
            let db = rest[authority_len..]
                .strip_prefix('/')
                .map(|p| p.split(['?', '#']).next().unwrap_or(""))
                .unwrap_or("");
            if db.is_empty() {
                hostport
            } else {
                format!("{hostport}/{db}")
            }
        }
    }
}

/// The file path of a SQLite URL (`sqlite://a/b.db?x` → `a/b.db`).
fn sqlite_path(url: &str) -> &str {
    let rest = url.split_once(':').map_or("", |(_, r)| r);
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    rest.split(['?', '#']).next().unwrap_or("")
}

/// Whether a SQLite URL names an in-memory database.
pub(crate) fn sqlite_is_memory(url: &str) -> bool {
    sqlite_path(url) == ":memory:" || url.contains("mode=memory")
}

/// The URL to hand the SQLite driver: with `mode=rwc` (create the file if missing) unless
/// the URL already chose a mode.
pub(crate) fn sqlite_connect_url(url: &str) -> String {
    if url.contains("mode=") || sqlite_is_memory(url) {
        return url.to_string();
    }
    if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://x.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("sqlite::memory:").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        let err = Backend::from_url("mysql://u:secret@h/db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unsupported scheme"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://bob:s3cr%40t@db.example:5433/civic?sslmode=require"),
            "postgres://bob:***@db.example:5433/civic?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://bob@db/civic?password=hunter2&x=1"),
            "postgres://bob@db/civic?password=***&x=1"
        );
        assert_eq!(redact_url("sqlite://civicbus.db"), "sqlite://civicbus.db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(password("postgres://a:b@h/d"), Some("b"));
        assert_eq!(password("postgres://a@h/d"), None);
    }

    #[test]
    fn describes_targets() {
        assert_eq!(
            describe_target(Backend::Postgres, "postgres://a:pw@10.0.0.1/civic"),
            "10.0.0.1:5432/civic"
        );
        assert_eq!(
            describe_target(Backend::Postgres, "postgres://a@h:6000/civic?x=y"),
            "h:6000/civic"
        );
        assert_eq!(
            describe_target(Backend::Sqlite, "sqlite://data/civicbus.db?mode=rwc"),
            "data/civicbus.db"
        );
        assert_eq!(
            describe_target(Backend::Sqlite, "sqlite:///abs/c.db"),
            "/abs/c.db"
        );
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            sqlite_connect_url("sqlite://a.db"),
            "sqlite://a.db?mode=rwc"
        );
        assert_eq!(
            sqlite_connect_url("sqlite://a.db?cache=shared"),
            "sqlite://a.db?cache=shared&mode=rwc"
        );
        assert_eq!(
            sqlite_connect_url("sqlite://a.db?mode=ro"),
            "sqlite://a.db?mode=ro"
        );
        assert!(sqlite_is_memory("sqlite::memory:"));
        assert!(!sqlite_is_memory("sqlite://a.db"));
    }
}
