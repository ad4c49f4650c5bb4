//! Endpoint health kept across restarts: the run of failures of each subscription's
//! endpoint, and whether it is disabled (see `migrations/0003_endpoints.sql`).
//!
//! The run of failures is bookkeeping written straight on the pool (no audit entry);
//! disabling and enabling change what the bus does, so they go through the writer with
//! their audit entries (`endpoint-disabled`, `endpoint-enabled`).

use chrono::{DateTime, Utc};
use civicbus_core::ports::{AuditAction, DisableEndpoint, EndpointState};
use serde_json::json;
use sqlx::AssertSqlSafe;

use crate::audit::{BUS_ACTOR, PendingEntry};
use crate::error::StoreError;
use crate::rows::{ENDPOINT_COLUMNS, endpoint_from_row, micros_to_time, time_to_micros};
use crate::store::{SqlStore, truncate};
use crate::writer::{EndpointWrite, Insert, WriteOp};

/// The audit target naming an endpoint: `endpoint:<subscription key>`.
fn target(key: &str) -> String {
    format!("endpoint:{key}")
}

impl SqlStore {
    /// [`civicbus_core::ports::EventStore::endpoint_state`], with the store's own error
    /// type.
    pub async fn endpoint(&self, key: &str) -> Result<Option<EndpointState>, StoreError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE subscription = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(key.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(|e| StoreError::from_sqlx("reading an endpoint's health", e))?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    /// [`civicbus_core::ports::EventStore::list_endpoints`], with the store's own error
    /// type.
    pub async fn endpoints(&self, tenant: Option<&str>) -> Result<Vec<EndpointState>, StoreError> {
        let rows = match tenant {
            Some(t) => {
                let sql = format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant = $1 ORDER BY subscription"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(t.to_string())
                    .fetch_all(self.pool())
                    .await
            }
            None => {
                let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints ORDER BY subscription");
                sqlx::query(AssertSqlSafe(sql)).fetch_all(self.pool()).await
            }
        }
        .map_err(|e| StoreError::from_sqlx("listing endpoints", e))?;
        rows.iter().map(endpoint_from_row).collect()
    }

    /// [`civicbus_core::ports::EventStore::endpoint_failing`], with the store's own error
    /// type.
    pub async fn mark_endpoint_failing(
        &self,
        key: &str,
        tenant: &str,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        const OP: &str = "recording an endpoint's failure";
        let at_us = time_to_micros(&at);
        sqlx::query(
            "INSERT INTO endpoints (subscription, tenant, status, failing_since, updated_at) \
             VALUES ($1, $2, 'enabled', $3, $3) \
             ON CONFLICT (subscription) DO UPDATE SET failing_since = excluded.failing_since, \
             updated_at = excluded.updated_at WHERE endpoints.failing_since IS NULL",
        )
        .bind(key.to_string())
        .bind(tenant.to_string())
        .bind(at_us)
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        let since: Option<i64> =
            sqlx::query_scalar("SELECT failing_since FROM endpoints WHERE subscription = $1")
                .bind(key.to_string())
                .fetch_optional(self.pool())
                .await
                .map_err(|e| StoreError::from_sqlx(OP, e))?
                .flatten();
        // Enabled again between the two statements: the run starts now.
        Ok(since.and_then(micros_to_time).unwrap_or(at))
    }

    /// [`civicbus_core::ports::EventStore::endpoint_answered`], with the store's own
    /// error type.
    pub async fn mark_endpoint_answered(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE endpoints SET failing_since = NULL, updated_at = $2 \
             WHERE subscription = $1 AND failing_since IS NOT NULL",
        )
        .bind(key.to_string())
        .bind(time_to_micros(&Utc::now()))
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::from_sqlx("recording that an endpoint answered", e))?;
        Ok(())
    }

    /// [`civicbus_core::ports::EventStore::endpoint_notified`], with the store's own
    /// error type.
    pub async fn mark_endpoint_notified(
        &self,
        key: &str,
        disabled_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE endpoints SET notified_at = $3 \
             WHERE subscription = $1 AND disabled_at = $2 AND status = 'disabled'",
        )
        .bind(key.to_string())
        .bind(time_to_micros(&disabled_at))
        .bind(time_to_micros(&at))
        .execute(self.pool())
        .await
        .map_err(|e| {
            StoreError::from_sqlx("recording that an endpoint.disabled event was published", e)
        })?;
        Ok(())
    }

    /// [`civicbus_core::ports::EventStore::disable_endpoint`], with the store's own error
    /// type. Applied by the store's writer; returns once it committed.
    pub async fn set_endpoint_disabled(
        &self,
        request: &DisableEndpoint,
    ) -> Result<bool, StoreError> {
        let audit = vec![PendingEntry {
            tenant: Some(request.tenant.clone()),
            actor: BUS_ACTOR.to_string(),
            action: AuditAction::EndpointDisabled,
            target: target(&request.subscription),
            detail: json!({
                "subscription": request.subscription,
                "reason": request.reason.as_str(),
                "failing_since": request.failing_since.map(|t| t.to_rfc3339()),
                "last_response_code": request.response_code,
                "error": truncate(&request.error),
            })
            .to_string(),
        }];
        let insert = Insert::Endpoint(EndpointWrite::Disable {
            subscription: request.subscription.clone(),
            tenant: request.tenant.clone(),
            failing_since: request.failing_since.as_ref().map(time_to_micros),
            at: time_to_micros(&request.at),
            reason: request.reason.as_str().to_string(),
            error: request.error.clone(),
            response_code: request.response_code.map(i64::from),
        });
        self.write(WriteOp {
            what: "disabling an endpoint",
            insert,
            audit,
        })
        .await
    }

    /// [`civicbus_core::ports::EventStore::enable_endpoint`], with the store's own error
    /// type. Applied by the store's writer; returns once it committed.
    pub async fn set_endpoint_enabled(&self, key: &str, actor: &str) -> Result<bool, StoreError> {
        let tenant = self.endpoint(key).await?.map(|s| s.tenant);
        let audit = vec![PendingEntry {
            tenant,
            actor: actor.to_string(),
            action: AuditAction::EndpointEnabled,
            target: target(key),
            detail: json!({ "subscription": key }).to_string(),
        }];
        let insert = Insert::Endpoint(EndpointWrite::Enable {
            subscription: key.to_string(),
            at: time_to_micros(&Utc::now()),
        });
        self.write(WriteOp {
            what: "enabling an endpoint",
            insert,
            audit,
        })
        .await
    }
}
