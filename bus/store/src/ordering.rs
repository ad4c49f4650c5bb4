//! Per-subject ordering: the head delivery of each ordering key and the deliveries
//! parked behind it (see `migrations/0004_ordering.sql`).
//!
//! Bookkeeping written straight on the pool, without audit entries: what happens to each
//! delivery is audited by its attempts and dead letters. The delivery worker handles the
//! deliveries of one key one at a time, so these writes never race for a key.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use civicbus_core::ports::{OutboundMessage, ParkedDelivery};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::error::StoreError;
use crate::rows::{RowReader, time_to_micros};
use crate::store::SqlStore;

impl SqlStore {
    /// [`civicbus_core::ports::EventStore::is_dead_lettered`], with the store's own error
    /// type.
    pub async fn dead_lettered(&self, idempotency_key: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT id FROM dead_letters WHERE idempotency_key = $1 LIMIT 1")
            .bind(idempotency_key.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(|e| {
                StoreError::from_sqlx("checking whether a delivery was dead-lettered", e)
            })?;
        Ok(row.is_some())
    }

    /// [`civicbus_core::ports::EventStore::ordering_head`], with the store's own error
    /// type.
    pub async fn head_of(
        &self,
        subscription: &str,
        ordering_key: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT head FROM ordering_heads WHERE subscription = $1 AND ordering_key = $2",
        )
        .bind(subscription.to_string())
        .bind(ordering_key.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(|e| StoreError::from_sqlx("reading the head of an ordering key", e))?;
        row.map(|r| {
            r.try_get::<String, _>("head")
                .map_err(|e| StoreError::from_sqlx("reading the head of an ordering key", e))
        })
        .transpose()
    }

    /// [`civicbus_core::ports::EventStore::set_ordering_head`], with the store's own
    /// error type.
    pub async fn set_head(
        &self,
        subscription: &str,
        ordering_key: &str,
        head: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ordering_heads (subscription, ordering_key, head, since) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (subscription, ordering_key) DO UPDATE SET head = excluded.head, \
             since = excluded.since",
        )
        .bind(subscription.to_string())
        .bind(ordering_key.to_string())
        .bind(head.to_string())
        .bind(time_to_micros(&Utc::now()))
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::from_sqlx("setting the head of an ordering key", e))?;
        Ok(())
    }

    /// [`civicbus_core::ports::EventStore::clear_ordering_head`], with the store's own
    /// error type.
    pub async fn clear_head(
        &self,
        subscription: &str,
        ordering_key: &str,
        head: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM ordering_heads \
             WHERE subscription = $1 AND ordering_key = $2 AND head = $3",
        )
        .bind(subscription.to_string())
        .bind(ordering_key.to_string())
        .bind(head.to_string())
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::from_sqlx("clearing the head of an ordering key", e))?;
        Ok(())
    }

    /// [`civicbus_core::ports::EventStore::park`], with the store's own error type.
    pub async fn park_delivery(&self, parked: &ParkedDelivery) -> Result<(), StoreError> {
        const OP: &str = "parking a delivery behind its ordering key";
        let headers =
            serde_json::to_string(&parked.message.headers).map_err(|e| StoreError::Invalid {
                what: "parked delivery",
                message: format!("its headers cannot be encoded: {e}"),
            })?;
        // The next seq of the key; the worker parks one delivery of a key at a time.
        sqlx::query(
            "INSERT INTO parked_deliveries (idempotency_key, subscription, ordering_key, seq, \
             body_base64, content_type, headers, message_id, parked_at) \
             SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, $6, $7, $8 \
             FROM parked_deliveries WHERE subscription = $2 AND ordering_key = $3 \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(parked.idempotency_key.clone())
        .bind(parked.subscription.clone())
        .bind(parked.ordering_key.clone())
        .bind(base64::engine::general_purpose::STANDARD.encode(&parked.message.body))
        .bind(parked.message.content_type.clone())
        .bind(headers)
        .bind(parked.message.message_id.clone())
        .bind(time_to_micros(&parked.parked_at))
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::from_sqlx(OP, e))?;
        Ok(())
    }

    /// [`civicbus_core::ports::EventStore::next_parked`], with the store's own error
    /// type.
    pub async fn first_parked(
        &self,
        subscription: &str,
        ordering_key: &str,
    ) -> Result<Option<ParkedDelivery>, StoreError> {
        let row = sqlx::query(
            "SELECT idempotency_key, subscription, ordering_key, body_base64, content_type, \
             headers, message_id, parked_at FROM parked_deliveries \
             WHERE subscription = $1 AND ordering_key = $2 ORDER BY seq LIMIT 1",
        )
        .bind(subscription.to_string())
        .bind(ordering_key.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(|e| StoreError::from_sqlx("reading the next parked delivery", e))?;
        row.as_ref().map(parked_from_row).transpose()
    }

    /// [`civicbus_core::ports::EventStore::unpark`], with the store's own error type.
    pub async fn remove_parked(&self, idempotency_key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM parked_deliveries WHERE idempotency_key = $1")
            .bind(idempotency_key.to_string())
            .execute(self.pool())
            .await
            .map_err(|e| StoreError::from_sqlx("removing a parked delivery", e))?;
        Ok(())
    }

    /// [`civicbus_core::ports::EventStore::count_parked`], with the store's own error
    /// type.
    pub async fn parked_count(&self, subscription: Option<&str>) -> Result<u64, StoreError> {
        let q = match subscription {
            Some(s) => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM parked_deliveries WHERE subscription = $1",
            )
            .bind(s.to_string()),
            None => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM parked_deliveries"),
        };
        let n = q
            .fetch_one(self.pool())
            .await
            .map_err(|e| StoreError::from_sqlx("counting parked deliveries", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

fn parked_from_row(row: &AnyRow) -> Result<ParkedDelivery, StoreError> {
    let r = RowReader::keyed(row, "parked_deliveries", &["idempotency_key"]);
    let body = r.base64("body_base64")?;
    let headers = r.header_pairs("headers")?;
    let parked_at: DateTime<Utc> = r.time("parked_at")?;
    Ok(ParkedDelivery {
        subscription: r.get("subscription")?,
        ordering_key: r.get("ordering_key")?,
        idempotency_key: r.get("idempotency_key")?,
        message: OutboundMessage {
            body: body.into(),
            content_type: r.get("content_type")?,
            headers,
            message_id: r.get("message_id")?,
        },
        parked_at,
    })
}
