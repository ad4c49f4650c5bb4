//! Enforcement: the [`DataValidator`] the bus checks events with, at ingest and after
//! transforms.

use std::collections::BTreeMap;
use std::sync::Arc;

use civicbus_core::ports::{DataValidator, SchemaRejection, SchemaRejectionKind, SchemaViolation};
use civicbus_core::{CloudEvent, Data};
use serde_json::Value;

use crate::registry::{Lookup, SchemaRegistry};

/// What to do with an event whose type (or `dataschema`) the catalogue does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownTypePolicy {
    /// Refuse it, naming the closest known types (the default).
    #[default]
    Reject,
    /// Let it through without validation.
    AcceptUnvalidated,
}

/// Checks events against the registry's current catalogue, with a policy per tenant for
/// types it does not know.
#[derive(Debug)]
pub struct Enforcer {
    registry: Arc<SchemaRegistry>,
    default_policy: UnknownTypePolicy,
    tenants: BTreeMap<String, UnknownTypePolicy>,
}

impl Enforcer {
    /// Enforce `registry`'s catalogue; unknown types get `default_policy` unless `tenants`
    /// says otherwise for the publishing tenant.
    pub fn new(
        registry: Arc<SchemaRegistry>,
        default_policy: UnknownTypePolicy,
        tenants: BTreeMap<String, UnknownTypePolicy>,
    ) -> Self {
        Enforcer {
            registry,
            default_policy,
            tenants,
        }
    }

    /// The registry enforced.
    pub fn registry(&self) -> &Arc<SchemaRegistry> {
        &self.registry
    }

    fn policy(&self, tenant: &str) -> UnknownTypePolicy {
        self.tenants
            .get(tenant)
            .copied()
            .unwrap_or(self.default_policy)
    }
}

/// The event's data as JSON, or why it cannot be validated as JSON.
fn data_value(event: &CloudEvent) -> Result<Value, String> {
    match &event.data {
        None => Ok(Value::Null),
        Some(Data::Json(v)) => Ok(v.clone()),
        Some(Data::Text(_)) => Err(format!(
            "`data` is text of type {}, not JSON; the schema of this type describes JSON data",
            event.datacontenttype.as_deref().unwrap_or("(unspecified)")
        )),
        Some(Data::Binary(_)) => Err(
            "`data` is binary (data_base64), not JSON; the schema of this type describes JSON data"
                .into(),
        ),
    }
}

impl DataValidator for Enforcer {
    fn check(&self, tenant: &str, event: &CloudEvent) -> Result<(), SchemaRejection> {
        let catalogue = self.registry.current();
        let lenient = self.policy(tenant) == UnknownTypePolicy::AcceptUnvalidated;
        let schema = match catalogue.lookup(&event.ty, event.dataschema.as_deref()) {
            Lookup::Found(s) => s,
            Lookup::UnknownType { .. } | Lookup::UnknownSchema { .. } if lenient => return Ok(()),
            Lookup::UnknownType { closest } => {
                let hint = if closest.is_empty() {
                    String::new()
                } else {
                    format!(" Did you mean {}?", closest.join(", "))
                };
                return Err(SchemaRejection {
                    kind: SchemaRejectionKind::UnknownType,
                    schema: None,
                    message: format!(
                        "no schema is known for type `{}`.{hint} Add a schema for it to the catalogue (see `civicbus schema list`), or have the operator set `unknown_types = \"accept-unvalidated\"` for tenant `{tenant}`",
                        event.ty
                    ),
                    violations: Vec::new(),
                });
            }
            Lookup::UnknownSchema { uri, known } => {
                let hint = if known.is_empty() {
                    format!("no schema is known for type `{}` either", event.ty)
                } else {
                    format!("known schemas of type `{}`: {}", event.ty, known.join(", "))
                };
                return Err(SchemaRejection {
                    kind: SchemaRejectionKind::UnknownSchema,
                    schema: None,
                    message: format!(
                        "`dataschema` {uri} is not in the schema catalogue ({hint}); name one of those, or omit `dataschema` to use the latest version"
                    ),
                    violations: Vec::new(),
                });
            }
            Lookup::OtherType { schema } => {
                return Err(SchemaRejection {
                    kind: SchemaRejectionKind::UnknownSchema,
                    schema: Some(schema.id.clone()),
                    message: format!(
                        "`dataschema` {} is the schema of type `{}`, not of this event's type `{}`; fix `type` or `dataschema`",
                        schema.id, schema.ty, event.ty
                    ),
                    violations: Vec::new(),
                });
            }
        };
        let violations = match data_value(event) {
            Ok(data) => schema.violations(&data),
            Err(why) => vec![SchemaViolation {
                pointer: String::new(),
                keyword: "type".into(),
                schema_path: String::new(),
                message: why,
            }],
        };
        if violations.is_empty() {
            return Ok(());
        }
        Err(SchemaRejection {
            kind: SchemaRejectionKind::Invalid,
            schema: Some(schema.id.clone()),
            message: format!(
                "`data` does not match the schema {} ({} v{}): {} problem(s); fix the values listed",
                schema.id,
                schema.ty,
                schema.version,
                violations.len()
            ),
            violations,
        })
    }
}
