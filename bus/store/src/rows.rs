//! Decoding rows read back from the database, without panicking on bad data: a row that
//! cannot be decoded is a [`StoreError::CorruptRow`] naming the table and the row.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use civicbus_core::binding::{ParseLimits, parse_structured};
use civicbus_core::ports::{
    ArchivedEvent, AttemptStatus, DeadLetter, DeadLetterReason, DeliveryAttempt, DisableReason,
    Disabled, EndpointState, QuarantineRecord,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Decode, Row, Type};

use crate::error::StoreError;

/// Reads the columns of one row, naming the row in errors.
pub(crate) struct RowReader<'r> {
    row: &'r AnyRow,
    table: &'static str,
    key: String,
}

impl<'r> RowReader<'r> {
    pub(crate) fn new(row: &'r AnyRow, table: &'static str, key: String) -> Self {
        RowReader { row, table, key }
    }

    /// Read the row's key columns as text for error messages, best effort.
    pub(crate) fn keyed(row: &'r AnyRow, table: &'static str, key_columns: &[&str]) -> Self {
        let key = key_columns
            .iter()
            .map(|c| {
                let v = row
                    .try_get::<Option<String>, _>(*c)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "?".into());
                format!("{c}={v}")
            })
            .collect::<Vec<_>>()
            .join(" ");
        RowReader::new(row, table, key)
    }

    pub(crate) fn get<T>(&self, column: &str) -> Result<T, StoreError>
    where
        T: for<'a> Decode<'a, Any> + Type<Any>,
    {
        self.row
            .try_get::<T, _>(column)
            .map_err(|e| self.corrupt(format!("column {column}: {e}")))
    }

    pub(crate) fn corrupt(&self, message: String) -> StoreError {
        StoreError::CorruptRow {
            table: self.table,
            key: self.key.clone(),
            message,
        }
    }

    /// A base64 TEXT column decoded to bytes.
    pub(crate) fn base64(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        let text: String = self.get(column)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| self.corrupt(format!("column {column} is not base64: {e}")))
    }

    /// A TEXT column holding message headers as a JSON array of `[name, value]` pairs.
    pub(crate) fn header_pairs(&self, column: &str) -> Result<Vec<(String, String)>, StoreError> {
        let text: String = self.get(column)?;
        serde_json::from_str(&text).map_err(|e| {
            self.corrupt(format!(
                "column {column} is not a JSON array of [name, value] pairs: {e}"
            ))
        })
    }

    pub(crate) fn time(&self, column: &str) -> Result<DateTime<Utc>, StoreError> {
        let us: i64 = self.get(column)?;
        micros_to_time(us)
            .ok_or_else(|| self.corrupt(format!("column {column}: {us} is not a valid timestamp")))
    }
}

/// Microseconds since the Unix epoch, as stored.
pub(crate) fn time_to_micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The stored microseconds back as a timestamp.
pub(crate) fn micros_to_time(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

/// Now, in stored microseconds.
pub(crate) fn now_micros() -> i64 {
    time_to_micros(&Utc::now())
}

/// A duration in stored microseconds (saturating).
pub(crate) fn duration_to_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Limits for parsing events back from the archive: they were accepted already, so only
/// the JSON parser's own recursion limit applies.
const READBACK_LIMITS: ParseLimits = ParseLimits {
    max_json_depth: usize::MAX,
    max_batch_events: 1,
};

pub(crate) const EVENT_COLUMNS: &str = "tenant, source, id, received_at, actor, structured";

pub(crate) fn event_from_row(row: &AnyRow) -> Result<ArchivedEvent, StoreError> {
    let r = RowReader::keyed(row, "events", &["tenant", "source", "id"]);
    let structured: String = r.get("structured")?;
    let event = parse_structured(structured.as_bytes(), &READBACK_LIMITS)
        .map_err(|e| r.corrupt(format!("column structured is not a valid CloudEvent: {e}")))?;
    Ok(ArchivedEvent {
        event,
        tenant: r.get("tenant")?,
        received_at: r.time("received_at")?,
        actor: r.get("actor")?,
    })
}

pub(crate) const ATTEMPT_COLUMNS: &str = "id, idempotency_key, tenant, subscription, event_tenant, \
     event_source, event_id, attempt, status, response_code, error, duration_us, at";

pub(crate) fn attempt_from_row(row: &AnyRow) -> Result<DeliveryAttempt, StoreError> {
    let r = RowReader::keyed(row, "delivery_attempts", &["id"]);
    let attempt: i64 = r.get("attempt")?;
    let attempt = u32::try_from(attempt)
        .map_err(|_| r.corrupt(format!("column attempt: {attempt} is out of range")))?;
    let status: String = r.get("status")?;
    let status = AttemptStatus::parse(&status)
        .ok_or_else(|| r.corrupt(format!("column status: unknown status `{status}`")))?;
    let response_code = match r.get::<Option<i64>>("response_code")? {
        None => None,
        Some(code) => Some(
            u16::try_from(code)
                .map_err(|_| r.corrupt(format!("column response_code: {code} is out of range")))?,
        ),
    };
    let duration_us: i64 = r.get("duration_us")?;
    let duration_us = u64::try_from(duration_us)
        .map_err(|_| r.corrupt(format!("column duration_us: {duration_us} is negative")))?;
    Ok(DeliveryAttempt {
        idempotency_key: r.get("idempotency_key")?,
        tenant: r.get("tenant")?,
        subscription: r.get("subscription")?,
        event_tenant: r.get("event_tenant")?,
        event_source: r.get("event_source")?,
        event_id: r.get("event_id")?,
        attempt,
        status,
        response_code,
        error: r.get("error")?,
        duration: Duration::from_micros(duration_us),
        at: r.time("at")?,
    })
}

pub(crate) const QUARANTINE_COLUMNS: &str =
    "id, tenant, transport, reason_kind, field, reason, body_base64, headers, received_at";

pub(crate) fn quarantine_from_row(row: &AnyRow) -> Result<QuarantineRecord, StoreError> {
    let r = RowReader::keyed(row, "quarantine", &["id"]);
    let body = r.base64("body_base64")?;
    let headers = r.header_pairs("headers")?;
    Ok(QuarantineRecord {
        id: r.get("id")?,
        tenant: r.get("tenant")?,
        transport: r.get("transport")?,
        reason_kind: r.get("reason_kind")?,
        field: r.get("field")?,
        reason: r.get("reason")?,
        body,
        headers,
        received_at: r.time("received_at")?,
    })
}

pub(crate) const DEAD_LETTER_COLUMNS: &str = "id, tenant, subscription, idempotency_key, \
     event_tenant, structured, reason, error, last_response_code, attempts, received_at, \
     created_at";

pub(crate) fn dead_letter_from_row(row: &AnyRow) -> Result<DeadLetter, StoreError> {
    let r = RowReader::keyed(row, "dead_letters", &["id"]);
    let structured: String = r.get("structured")?;
    let event = parse_structured(structured.as_bytes(), &READBACK_LIMITS)
        .map_err(|e| r.corrupt(format!("column structured is not a valid CloudEvent: {e}")))?;
    let reason: String = r.get("reason")?;
    let reason = DeadLetterReason::parse(&reason)
        .ok_or_else(|| r.corrupt(format!("column reason: unknown reason `{reason}`")))?;
    let last_response_code = match r.get::<Option<i64>>("last_response_code")? {
        None => None,
        Some(code) => Some(u16::try_from(code).map_err(|_| {
            r.corrupt(format!("column last_response_code: {code} is out of range"))
        })?),
    };
    let attempts: i64 = r.get("attempts")?;
    let attempts = u32::try_from(attempts)
        .map_err(|_| r.corrupt(format!("column attempts: {attempts} is out of range")))?;
    let received_at = match r.get::<Option<i64>>("received_at")? {
        None => None,
        Some(us) => Some(micros_to_time(us).ok_or_else(|| {
            r.corrupt(format!("column received_at: {us} is not a valid timestamp"))
        })?),
    };
    Ok(DeadLetter {
        id: r.get("id")?,
        tenant: r.get("tenant")?,
        subscription: r.get("subscription")?,
        idempotency_key: r.get("idempotency_key")?,
        event,
        event_tenant: r.get("event_tenant")?,
        reason,
        error: r.get("error")?,
        last_response_code,
        attempts,
        received_at,
        created_at: r.time("created_at")?,
    })
}

pub(crate) const ENDPOINT_COLUMNS: &str = "subscription, tenant, status, failing_since, \
     disabled_at, disabled_reason, last_error, last_response_code, notified_at, updated_at";

pub(crate) fn endpoint_from_row(row: &AnyRow) -> Result<EndpointState, StoreError> {
    let r = RowReader::keyed(row, "endpoints", &["subscription"]);
    let optional_time = |column: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        match r.get::<Option<i64>>(column)? {
            None => Ok(None),
            Some(us) => micros_to_time(us).map(Some).ok_or_else(|| {
                r.corrupt(format!("column {column}: {us} is not a valid timestamp"))
            }),
        }
    };
    let status: String = r.get("status")?;
    let disabled = match status.as_str() {
        "enabled" => None,
        "disabled" => {
            let reason: Option<String> = r.get("disabled_reason")?;
            let reason = reason
                .as_deref()
                .and_then(DisableReason::parse)
                .ok_or_else(|| {
                    r.corrupt(format!(
                        "column disabled_reason: unknown reason {reason:?} for a disabled endpoint"
                    ))
                })?;
            let at = optional_time("disabled_at")?.ok_or_else(|| {
                r.corrupt("column disabled_at is empty for a disabled endpoint".into())
            })?;
            let response_code = match r.get::<Option<i64>>("last_response_code")? {
                None => None,
                Some(code) => Some(u16::try_from(code).map_err(|_| {
                    r.corrupt(format!("column last_response_code: {code} is out of range"))
                })?),
            };
            Some(Disabled {
                at,
                reason,
                error: r.get::<Option<String>>("last_error")?.unwrap_or_default(),
                response_code,
                notified_at: optional_time("notified_at")?,
            })
        }
        other => return Err(r.corrupt(format!("column status: unknown status `{other}`"))),
    };
    Ok(EndpointState {
        subscription: r.get("subscription")?,
        tenant: r.get("tenant")?,
        failing_since: optional_time("failing_since")?,
        disabled,
        updated_at: r.time("updated_at")?,
    })
}
