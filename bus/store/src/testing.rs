//! Test support (feature `test-util`): a PostgreSQL database of its own for one test,
//! created on a server named by an admin URL and dropped when the value is dropped.

use sqlx::Connection as _;

use crate::error::StoreError;
use crate::url::redact_url;

/// The admin URL tests use: `CIVICBUS_TEST_PG_URL`, default
/// `postgres://postgres@127.0.0.1:5432/test` (it must name an existing database).
pub fn pg_admin_url() -> String {
    std::env::var("CIVICBUS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A fresh, uniquely named PostgreSQL database, dropped (with `FORCE`) on drop.
#[derive(Debug)]
pub struct TempPgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TempPgDatabase {
    /// Create `civicbus_t_<random>` on the server of `admin_url`.
    pub async fn create(admin_url: &str) -> Result<TempPgDatabase, StoreError> {
        let name = format!("civicbus_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn =
            sqlx::PgConnection::connect(admin_url)
                .await
                .map_err(|e| StoreError::Invalid {
                    what: "a test database",
                    message: format!(
                        "cannot connect to PostgreSQL at {}: {e}; is it running?",
                        redact_url(admin_url)
                    ),
                })?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .map_err(|e| StoreError::Invalid {
                what: "a test database",
                message: format!("cannot create database {name}: {e}"),
            })?;
        let _ = conn.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or_else(|| admin_url.to_string());
        Ok(TempPgDatabase {
            admin_url: admin_url.to_string(),
            url: format!("{base}/{name}"),
            name,
        })
    }

    /// URL of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Name of the new database.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TempPgDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop cannot await: do it on a thread with a runtime of its own, best effort.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
