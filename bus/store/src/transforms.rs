//! Transform lineage: which plugins produced which outputs from which input event
//! (see `migrations/0005_transforms.sql`), audited `transformed`.

use civicbus_core::ports::{AuditAction, TransformRecord};
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;

use crate::audit::{BUS_ACTOR, PendingEntry};
use crate::error::StoreError;
use crate::rows::{RowReader, time_to_micros};
use crate::store::SqlStore;
use crate::writer::{Insert, WriteOp};

impl SqlStore {
    /// [`civicbus_core::ports::EventStore::record_transform`], with the store's own
    /// error type. Returns `false` if the run was recorded already.
    pub async fn record_transform_run(&self, r: &TransformRecord) -> Result<bool, StoreError> {
        let outputs: Vec<Value> = r
            .outputs
            .iter()
            .map(|(source, id, ty)| json!({ "source": source, "id": id, "type": ty }))
            .collect();
        let audit = vec![PendingEntry {
            tenant: Some(r.tenant.clone()),
            actor: BUS_ACTOR.to_string(),
            action: AuditAction::Transformed,
            target: format!("event:{}#{}", r.input_source, r.input_id),
            detail: json!({
                "subscription": r.subscription,
                "event_tenant": r.input_tenant,
                "plugins": r.plugins,
                "outputs": outputs,
            })
            .to_string(),
        }];
        let insert = Insert::TransformRun {
            subscription: r.subscription.clone(),
            input_source: r.input_source.clone(),
            input_id: r.input_id.clone(),
            tenant: r.tenant.clone(),
            input_tenant: r.input_tenant.clone(),
            plugins: Value::from(r.plugins.clone()).to_string(),
            outputs: Value::from(outputs).to_string(),
            created_at: time_to_micros(&r.at),
        };
        self.write(WriteOp {
            what: "recording a transform run",
            insert,
            audit,
        })
        .await
    }

    /// The transform runs of one input event (every subscription), oldest first.
    pub async fn transform_runs(
        &self,
        input_tenant: &str,
        input_source: &str,
        input_id: &str,
    ) -> Result<Vec<TransformRecord>, StoreError> {
        let sql = "SELECT subscription, input_source, input_id, tenant, input_tenant, plugins, \
                   outputs, created_at FROM transform_runs \
                   WHERE input_tenant = $1 AND input_source = $2 AND input_id = $3 \
                   ORDER BY created_at, subscription";
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(input_tenant.to_string())
            .bind(input_source.to_string())
            .bind(input_id.to_string())
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::from_sqlx("reading transform runs", e))?;
        rows.iter()
            .map(|row| {
                let r = RowReader::keyed(row, "transform_runs", &["subscription", "input_id"]);
                let plugins: String = r.get("plugins")?;
                let plugins: Vec<String> = serde_json::from_str(&plugins)
                    .map_err(|e| r.corrupt(format!("column plugins is not a JSON array: {e}")))?;
                let outputs: String = r.get("outputs")?;
                let outputs: Vec<Value> = serde_json::from_str(&outputs)
                    .map_err(|e| r.corrupt(format!("column outputs is not a JSON array: {e}")))?;
                let field = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
                Ok(TransformRecord {
                    subscription: r.get("subscription")?,
                    tenant: r.get("tenant")?,
                    input_tenant: r.get("input_tenant")?,
                    input_source: r.get("input_source")?,
                    input_id: r.get("input_id")?,
                    plugins,
                    outputs: outputs
                        .iter()
                        .map(|o| (field(o, "source"), field(o, "id"), field(o, "type")))
                        .collect(),
                    at: r.time("created_at")?,
                })
            })
            .collect()
    }
}
