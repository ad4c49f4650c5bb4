//! An [AsyncAPI 3.0](https://www.asyncapi.com/docs/reference/specification/v3.0.0)
//! description of one civicbus deployment: its RabbitMQ exchanges and queues, its HTTP
//! ingest API, every subscription's queues and sink, and one message per event schema of
//! the catalogue.
//!
//! The document is self-contained: the catalogue's JSON Schemas (event schemas and the
//! shared `common/*` documents) are copied under `components.schemas`, every `$ref` is
//! rewritten to point inside the document, and nothing names a credential (the broker URL
//! and webhook URLs lose their user info, query and fragment; tokens and signing secrets
//! never appear).
//!
//! # Schema format
//!
//! The catalogue is JSON Schema 2020-12; AsyncAPI 3.0 tooling (the official parser
//! included) only knows JSON Schema draft-07 and the AsyncAPI Schema (a draft-07
//! superset). So every schema is rewritten to draft-07 — `$defs` → `definitions`, a
//! `$ref` with sibling keywords → the siblings plus `allOf: [{$ref}]` (draft-07 ignores
//! the siblings of a `$ref`), `prefixItems`/`items` → `items`/`additionalItems`,
//! `dependentRequired`/`dependentSchemas` → `dependencies`; `$schema`, `$id` and
//! `$anchor` are dropped — and wrapped in a Multi Format Schema Object with
//! `schemaFormat` [`SCHEMA_FORMAT`] (`application/schema+json;version=draft-07`), both in
//! `components.schemas` and in each message's payload, so a `$ref` always points at a
//! schema of the same format. Keywords draft-07 has no equivalent for
//! (`unevaluatedProperties`, `unevaluatedItems`, `$dynamicRef`, …) are kept as they are:
//! draft-07 tools ignore them. The catalogue itself (the `dataschema` URIs) stays the
//! authority for validation.
//!
//! # Point of view
//!
//! Operations are those of the municipal systems that use the bus: they `send` to the
//! ingress exchange or the HTTP API, and each subscription `receive`s at its sink (its
//! webhook endpoint, or the exchange and routing key it names). civicbus's own queues are
//! channels without operations.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use civicbus_broker::Topology;
use civicbus_core::SinkSpec;
use civicbus_core::envelope::{SPEC_VERSION, STRUCTURED_CONTENT_TYPE};
use civicbus_core::filter::may_match_type;
use civicbus_core::ports::DisableReason;
use civicbus_core::subscription::{HttpMode, WebhookSpec};
use civicbus_router::ENDPOINT_DISABLED_TYPE;
use civicbus_router::endpoint::{ENDPOINT_EVENT_SOURCE, sink_description};
use civicbus_schemas::{Catalogue, EventSchema};
use serde_json::{Map, Value, json};

use crate::config::{Config, SubscriptionConfig, UnknownTypes, WebhookConfig};

/// The AsyncAPI version of the document.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// The `schemaFormat` of every payload and component schema: JSON Schema draft-07, which
/// every AsyncAPI 3.0 tool must support (2020-12 is not among the formats AsyncAPI
/// defines, and the official parser does not validate it).
pub const SCHEMA_FORMAT: &str = "application/schema+json;version=draft-07";

/// `bindingVersion` of the AMQP 0-9-1 channel and operation bindings.
pub const AMQP_BINDING_VERSION: &str = "0.3.0";

/// `bindingVersion` of the HTTP operation bindings.
pub const HTTP_BINDING_VERSION: &str = "0.3.0";

/// Key of the RabbitMQ server in `servers`.
pub const BROKER_SERVER: &str = "rabbitmq";

/// Key of the HTTP ingest API server in `servers`.
pub const API_SERVER: &str = "api";

/// Key of the CloudEvents envelope schema in `components.schemas`.
pub const ENVELOPE_SCHEMA: &str = "CloudEvent";

/// Key of the message for events of types the catalogue does not know (only present when
/// the configuration accepts them unvalidated).
pub const UNVALIDATED_MESSAGE: &str = "cloudevent.unvalidated";

/// The path of the HTTP ingest endpoint.
pub const INGEST_PATH: &str = "/v1/events";

/// The AsyncAPI 3.0 document of the bus `config` describes, with one message per event
/// schema of `catalogue` and every catalogue document (event schemas and shared ones)
/// under `components.schemas`.
pub fn document(config: &Config, catalogue: &Catalogue) -> Value {
    Builder::new(config, catalogue).build()
}

/// One message the bus carries: an event type, and the schema of its data.
struct MessageInfo {
    /// Key in `components.messages` and in channels' `messages`.
    key: String,
    /// The event type, `None` for the catch-all message.
    ty: Option<String>,
    /// Whether systems may publish it (civicbus's own events they may not).
    published_by_systems: bool,
}

struct Builder<'a> {
    config: &'a Config,
    catalogue: &'a Catalogue,
    topology: Topology,
    vhost: String,
    messages: Vec<MessageInfo>,
    components_messages: Map<String, Value>,
    components_schemas: Map<String, Value>,
    channels: Map<String, Value>,
    operations: Map<String, Value>,
    servers: Map<String, Value>,
}

impl<'a> Builder<'a> {
    fn new(config: &'a Config, catalogue: &'a Catalogue) -> Self {
        let broker = UrlParts::split(&config.broker.url);
        Builder {
            config,
            catalogue,
            topology: Topology::new(config.broker.prefix.clone()),
            vhost: broker.vhost(),
            messages: Vec::new(),
            components_messages: Map::new(),
            components_schemas: Map::new(),
            channels: Map::new(),
            operations: Map::new(),
            servers: Map::new(),
        }
    }

    fn build(mut self) -> Value {
        self.schemas_and_messages();
        self.base_servers();
        self.bus_channels();
        for s in &self.config.subscriptions {
            self.subscription(s);
        }
        json!({
            "asyncapi": ASYNCAPI_VERSION,
            "info": self.info(),
            "defaultContentType": STRUCTURED_CONTENT_TYPE,
            "servers": self.servers,
            "channels": self.channels,
            "operations": self.operations,
            "components": {
                "schemas": self.components_schemas,
                "messages": self.components_messages,
                "securitySchemes": security_schemes(),
            },
        })
    }

    fn info(&self) -> Value {
        let tenants: Vec<String> = self
            .config
            .tenants
            .iter()
            .map(|t| {
                if t.name.is_empty() {
                    format!("`{}`", t.id)
                } else {
                    format!("`{}` ({})", t.id, t.name)
                }
            })
            .collect();
        let prefix = self.topology.prefix();
        let mut description = String::from(
            "civicbus, the event bus of the County of Haliburton and its partner municipalities: \
             systems publish CloudEvents over HTTP or AMQP, civicbus archives them and delivers \
             them to subscriptions (signed webhooks, Standard Webhooks, or AMQP), with durable \
             retries and dead letters.\n\n\
             Operations are those of the municipal systems: they *send* to the ingress exchange \
             or the HTTP API, and each subscription *receives* at its sink. civicbus's own \
             queues are channels without operations. Every message is a structured-mode \
             CloudEvent whose `data` follows the schema named by its `dataschema`; schemas are \
             JSON Schema 2020-12 in the catalogue, shown here converted to draft-07.",
        );
        if !prefix.is_empty() {
            description.push_str(&format!(
                "\n\nEvery exchange and queue name starts with the prefix `{prefix}`."
            ));
        }
        if !tenants.is_empty() {
            description.push_str(&format!("\n\nTenants: {}.", tenants.join(", ")));
        }
        json!({
            "title": "civicbus",
            "version": env!("CARGO_PKG_VERSION"),
            "description": description,
        })
    }

    /// Whether events of types the catalogue does not know can flow.
    fn accepts_unvalidated(&self) -> bool {
        let s = &self.config.schemas;
        !s.enabled
            || s.unknown_types == UnknownTypes::AcceptUnvalidated
            || self
                .config
                .tenants
                .iter()
                .any(|t| t.unknown_types == Some(UnknownTypes::AcceptUnvalidated))
    }

    /// `components.schemas` (the catalogue, converted, and the envelope) and
    /// `components.messages` (one per event schema).
    fn schemas_and_messages(&mut self) {
        let mut used: BTreeSet<String> = BTreeSet::from([ENVELOPE_SCHEMA.to_string()]);
        // Component names of every catalogue document: the event schemas first, in
        // `schemas()` order (the messages below pair them up again), then the shared ones.
        let mut docs: Vec<(String, String, &Value)> = Vec::new();
        for s in self.catalogue.schemas() {
            let name = unique(
                &mut used,
                &component_key(&format!("{}.v{}", s.ty, s.version)),
            );
            docs.push((s.id.clone(), name, &s.schema));
        }
        for id in self.catalogue.shared().keys() {
            if let Some(doc) = self.catalogue.document(id) {
                let name = unique(&mut used, &shared_component_name(id));
                docs.push((id.clone(), name, doc));
            }
        }
        let refs = RefMap::new(&docs);
        for (id, name, doc) in &docs {
            let converted = refs.convert(doc, id);
            self.components_schemas
                .insert(name.clone(), multi_format(converted));
        }
        self.components_schemas
            .insert(ENVELOPE_SCHEMA.into(), multi_format(envelope_schema()));

        let example_tenant = self
            .config
            .tenants
            .first()
            .map_or("county", |t| t.id.as_str())
            .to_string();
        let mut message_keys: BTreeSet<String> = BTreeSet::new();
        for (s, (_, schema_name, _)) in self.catalogue.schemas().zip(docs.iter()) {
            let key = unique(&mut message_keys, schema_name);
            let message = event_message(s, &key, schema_name, &example_tenant);
            self.components_messages.insert(key.clone(), message);
            self.messages.push(MessageInfo {
                key,
                ty: Some(s.ty.clone()),
                published_by_systems: true,
            });
        }
        // civicbus's own event, unless the catalogue describes it.
        if !self
            .catalogue
            .schemas()
            .any(|s| s.ty == ENDPOINT_DISABLED_TYPE)
        {
            let schema_name = unique(&mut used, ENDPOINT_DISABLED_TYPE);
            self.components_schemas.insert(
                schema_name.clone(),
                multi_format(endpoint_disabled_schema()),
            );
            let key = unique(&mut message_keys, ENDPOINT_DISABLED_TYPE);
            self.components_messages
                .insert(key.clone(), endpoint_disabled_message(&key, &schema_name));
            self.messages.push(MessageInfo {
                key,
                ty: Some(ENDPOINT_DISABLED_TYPE.to_string()),
                published_by_systems: false,
            });
        }
        if self.accepts_unvalidated() {
            let key = unique(&mut message_keys, UNVALIDATED_MESSAGE);
            self.components_messages
                .insert(key.clone(), unvalidated_message(&key));
            self.messages.push(MessageInfo {
                key,
                ty: None,
                published_by_systems: true,
            });
        }
    }

    fn base_servers(&mut self) {
        let broker = UrlParts::split(&self.config.broker.url);
        let protocol = if broker.scheme.eq_ignore_ascii_case("amqps") {
            "amqps"
        } else {
            "amqp"
        };
        let mut server = json!({
            "host": broker.host,
            "protocol": protocol,
            "protocolVersion": "0-9-1",
            "title": "RabbitMQ",
            "description": format!(
                "The RabbitMQ broker civicbus runs on (virtual host `{}`). Systems publish to the \
                 ingress exchange as their own RabbitMQ user; AMQP subscriptions receive on the \
                 exchange they name.",
                self.vhost
            ),
            "security": [{ "$ref": "#/components/securitySchemes/rabbitmqUser" }],
        });
        if !broker.path.is_empty() && broker.path != "/" {
            server["pathname"] = Value::String(broker.path.clone());
        }
        self.servers.insert(BROKER_SERVER.into(), server);
        self.servers.insert(
            API_SERVER.into(),
            json!({
                "host": self.config.api.listen.to_string(),
                "protocol": "http",
                "title": "civicbus HTTP API",
                "description": "The HTTP API: systems POST CloudEvents (structured, binary or \
                    batch mode) with their tenant's API token.",
                "security": [{ "$ref": "#/components/securitySchemes/apiToken" }],
            }),
        );
    }

    /// The messages (keys) systems may publish.
    fn published_messages(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m.published_by_systems)
            .map(|m| m.key.clone())
            .collect()
    }

    /// Every message (key).
    fn all_messages(&self) -> Vec<String> {
        self.messages.iter().map(|m| m.key.clone()).collect()
    }

    /// The messages (keys) a subscription with `filters` may receive.
    fn matching_messages(&self, filters: &[civicbus_core::Filter]) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m.ty.as_deref().is_none_or(|ty| may_match_type(filters, ty)))
            .map(|m| m.key.clone())
            .collect()
    }

    fn exchange_binding(&self, name: &str, kind: Option<&str>, durable: Option<bool>) -> Value {
        let mut exchange = json!({ "name": name });
        if let Some(kind) = kind {
            exchange["type"] = json!(kind);
        }
        if let Some(durable) = durable {
            exchange["durable"] = json!(durable);
            exchange["autoDelete"] = json!(false);
        }
        exchange["vhost"] = json!(self.vhost);
        json!({
            "amqp": {
                "is": "routingKey",
                "exchange": exchange,
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        })
    }

    fn queue_binding(&self, name: &str) -> Value {
        json!({
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": name,
                    "durable": true,
                    "exclusive": false,
                    "autoDelete": false,
                    "vhost": self.vhost,
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        })
    }

    /// The bus's own exchanges and queues, and the HTTP ingest channel, with the
    /// systems' `send` operations.
    fn bus_channels(&mut self) {
        let t = self.topology.clone();
        let published = self.published_messages();
        let all = self.all_messages();

        let ingress = t.ingress_exchange();
        self.channels.insert(
            "ingress".into(),
            channel(
                "#",
                "Ingress exchange",
                &format!(
                    "Topic exchange `{ingress}`: systems publish CloudEvents here, with any \
                     routing key, persistent, in structured mode (`content_type` \
                     `application/cloudevents+json`) or binary mode (attributes in headers \
                     prefixed `cloudEvents_`, `cloudEvents:`, `ce-` or `ce_`; body = data), \
                     with the `user_id` property set to their RabbitMQ user name. RabbitMQ \
                     checks `user_id` against the connection's user and the tenant's \
                     `amqp_users` map it to the tenant. A message without `user_id`, from an \
                     unknown user or that is not a valid event is quarantined."
                ),
                BROKER_SERVER,
                &published,
                self.exchange_binding(&ingress, Some("topic"), Some(true)),
            ),
        );
        self.channels.insert(
            "ingress.queue".into(),
            channel(
                &t.ingress_queue(),
                "Ingress queue",
                &format!(
                    "Quorum queue `{}`, bound to the ingress exchange with `#`: civicbus's ingest \
                     reads it.",
                    t.ingress_queue()
                ),
                BROKER_SERVER,
                &published,
                self.queue_binding(&t.ingress_queue()),
            ),
        );
        let events = t.events_exchange();
        let mut events_channel = channel(
            "{tenant}.{type}",
            "Events exchange",
            &format!(
                "Topic exchange `{events}`: every accepted event, stamped with its tenant, with \
                 routing key `<tenant>.<type>`. Only civicbus publishes here."
            ),
            BROKER_SERVER,
            &all,
            self.exchange_binding(&events, Some("topic"), Some(true)),
        );
        let mut tenant_parameter = json!({
            "description": "The tenant (municipality) of the event, from the credential that published it.",
        });
        let tenant_ids: Vec<&str> = self.config.tenants.iter().map(|t| t.id.as_str()).collect();
        if !tenant_ids.is_empty() {
            tenant_parameter["enum"] = json!(tenant_ids);
        }
        let mut type_parameter = json!({ "description": "The CloudEvents `type` of the event." });
        let types: Vec<&str> = self.catalogue.schemas().map(|s| s.ty.as_str()).collect();
        if !types.is_empty() {
            type_parameter["examples"] = json!(types.iter().take(3).collect::<Vec<_>>());
        }
        events_channel["parameters"] =
            json!({ "tenant": tenant_parameter, "type": type_parameter });
        self.channels.insert("events".into(), events_channel);
        self.channels.insert(
            "route".into(),
            channel(
                &t.route_queue(),
                "Route queue",
                &format!(
                    "Quorum queue `{}`, bound to the events exchange with `#`: civicbus's router \
                     archives each event and puts one delivery on the queue of every \
                     subscription it matches.",
                    t.route_queue()
                ),
                BROKER_SERVER,
                &all,
                self.queue_binding(&t.route_queue()),
            ),
        );
        self.channels.insert(
            "http.events".into(),
            json!({
                "address": INGEST_PATH,
                "title": "HTTP ingest",
                "description": "`POST /v1/events` with the tenant's API token (`Authorization: \
                    Bearer …`): one event in structured mode (`application/cloudevents+json`, \
                    the payload shown) or binary mode (attributes in `ce-*` headers, \
                    percent-encoded; body = data), or a batch \
                    (`application/cloudevents-batch+json`, a JSON array of structured events). \
                    202 Accepted once RabbitMQ has confirmed every event; errors are RFC 9457 \
                    problems.",
                "servers": [{ "$ref": format!("#/servers/{API_SERVER}") }],
                "messages": message_refs(&published),
            }),
        );

        // The systems' send operations: one per RabbitMQ user mapped to a tenant.
        let mut users: Vec<(&str, &str)> = Vec::new();
        for tenant in &self.config.tenants {
            for u in &tenant.amqp_users {
                users.push((tenant.id.as_str(), u.as_str()));
            }
        }
        if users.is_empty() {
            self.operations.insert(
                "ingress.publish".into(),
                json!({
                    "action": "send",
                    "channel": { "$ref": "#/channels/ingress" },
                    "title": "Publish events over AMQP",
                    "summary": "A system publishes CloudEvents to the ingress exchange.",
                    "description": "Set `user_id` to your RabbitMQ user; a tenant's `amqp_users` \
                        maps it to the tenant (no tenant lists one in this configuration).",
                    "messages": operation_refs("ingress", &published),
                    "bindings": { "amqp": { "deliveryMode": 2, "bindingVersion": AMQP_BINDING_VERSION } },
                }),
            );
        }
        let mut op_keys = BTreeSet::new();
        for (tenant, user) in users {
            let key = unique(
                &mut op_keys,
                &component_key(&format!("ingress.publish.{user}")),
            );
            self.operations.insert(
                key,
                json!({
                    "action": "send",
                    "channel": { "$ref": "#/channels/ingress" },
                    "title": format!("Publish events over AMQP as `{user}`"),
                    "summary": format!("The RabbitMQ user `{user}` publishes CloudEvents of tenant `{tenant}`."),
                    "description": format!(
                        "Publish persistent messages to the ingress exchange with `user_id` = \
                         `{user}`; their events belong to tenant `{tenant}`."
                    ),
                    "messages": operation_refs("ingress", &published),
                    "bindings": { "amqp": {
                        "userId": user,
                        "deliveryMode": 2,
                        "bindingVersion": AMQP_BINDING_VERSION,
                    } },
                }),
            );
        }
        self.operations.insert(
            "http.publish".into(),
            json!({
                "action": "send",
                "channel": { "$ref": "#/channels/http.events" },
                "title": "Publish events over HTTP",
                "summary": "A system POSTs CloudEvents to the HTTP API with its tenant's token.",
                "messages": operation_refs("http.events", &published),
                "bindings": { "http": { "method": "POST", "bindingVersion": HTTP_BINDING_VERSION } },
            }),
        );
    }

    /// A subscription's queues, its sink and its `receive` operation.
    fn subscription(&mut self, s: &SubscriptionConfig) {
        let key = format!("{}.{}", s.tenant, s.id);
        let base = unique_in(
            &self.channels,
            &component_key(&format!("subscription.{key}")),
        );
        let messages = self.matching_messages(&s.filters);
        let filters = serde_json::to_string(&s.filters).unwrap_or_else(|_| "[]".into());

        let queue = self.topology.subscription_queue(&key);
        self.channels.insert(
            base.clone(),
            channel(
                &queue,
                &format!("Deliveries of subscription `{key}`"),
                &format!(
                    "Quorum queue `{queue}`: the deliveries of subscription `{key}` (filters \
                     `{filters}`), consumed by civicbus's delivery worker, which sends each to \
                     the subscription's sink. Retries wait in the delay queues and come back \
                     here; a poison message is dead-lettered after 100 deliveries."
                ),
                BROKER_SERVER,
                &messages,
                self.queue_binding(&queue),
            ),
        );
        let dead = self.topology.dead_letter_queue(&key);
        self.channels.insert(
            format!("{base}.dead"),
            channel(
                &dead,
                &format!("Dead letters of subscription `{key}`"),
                &format!(
                    "Quorum queue `{dead}`: deliveries of `{key}` that failed for good, with \
                     headers `x-civicbus-dead-letter-reason`, `x-civicbus-outcome` and \
                     `x-civicbus-error` (the store keeps the same dead letters)."
                ),
                BROKER_SERVER,
                &messages,
                self.queue_binding(&dead),
            ),
        );

        let sink_channel = format!("{base}.sink");
        let ordering = match s.ordering {
            crate::config::OrderingConfig::Unordered => "unordered",
            crate::config::OrderingConfig::PerSubject => {
                "per-subject (events with the same `partitionkey`, else `subject`, one at a time, in acceptance order)"
            }
        };
        let operation = match (&s.webhook, &s.amqp) {
            (Some(w), _) => {
                let url = safe_webhook_url(w);
                let parts = UrlParts::split(&url);
                let server = unique_in(&self.servers, &component_key(&format!("webhook.{key}")));
                let protocol = if parts.scheme.eq_ignore_ascii_case("https") {
                    "https"
                } else {
                    "http"
                };
                self.servers.insert(
                    server.clone(),
                    json!({
                        "host": parts.host,
                        "protocol": protocol,
                        "title": format!("Webhook endpoint of `{key}`"),
                        "description": format!("The subscriber's HTTP endpoint ({url})."),
                    }),
                );
                let mode = match w.mode {
                    crate::config::WebhookMode::Binary => {
                        "binary mode: attributes in `ce-*` headers, body = data"
                    }
                    crate::config::WebhookMode::Structured => {
                        "structured mode: the `application/cloudevents+json` payload shown"
                    }
                };
                self.channels.insert(
                    sink_channel.clone(),
                    json!({
                        "address": url,
                        "title": format!("Webhook of subscription `{key}`"),
                        "description": format!(
                            "civicbus POSTs each matching event to `{url}` in {mode}, with the \
                             Standard Webhooks headers `webhook-id` (idempotency key, stable \
                             across retries), `webhook-timestamp` and `webhook-signature`. \
                             Answer 2xx once you have the event."
                        ),
                        "servers": [{ "$ref": format!("#/servers/{server}") }],
                        "messages": message_refs(&messages),
                    }),
                );
                json!({
                    "action": "receive",
                    "channel": { "$ref": format!("#/channels/{sink_channel}") },
                    "title": format!("Receive subscription `{key}` by webhook"),
                    "summary": format!("The subscriber of `{key}` receives matching events at its webhook."),
                    "description": format!("Filters: `{filters}`. Ordering: {ordering}."),
                    "messages": operation_refs(&sink_channel, &messages),
                    "bindings": { "http": { "method": "POST", "bindingVersion": HTTP_BINDING_VERSION } },
                })
            }
            (None, Some(a)) => {
                let (kind, durable) = known_exchange(&a.exchange);
                let mut ch = channel(
                    a.routing_key.as_deref().unwrap_or("{type}"),
                    &format!("AMQP sink of subscription `{key}`"),
                    &format!(
                        "civicbus publishes each matching event to the exchange `{}` with routing \
                         key {}, persistent and mandatory, in structured mode with \
                         `cloudEvents_*` headers, `webhook-id` (idempotency key) and \
                         `traceparent`, and waits for RabbitMQ's confirm.",
                        a.exchange,
                        a.routing_key
                            .as_deref()
                            .map_or("the event type".to_string(), |k| format!("`{k}`"))
                    ),
                    BROKER_SERVER,
                    &messages,
                    self.exchange_binding(&a.exchange, kind, durable),
                );
                if a.routing_key.is_none() {
                    let mut p = json!({ "description": "The CloudEvents `type` of the event." });
                    let types: Vec<&str> = self
                        .messages
                        .iter()
                        .filter(|m| messages.contains(&m.key))
                        .filter_map(|m| m.ty.as_deref())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    if !types.is_empty() && !self.accepts_unvalidated() {
                        p["enum"] = json!(types);
                    }
                    ch["parameters"] = json!({ "type": p });
                }
                self.channels.insert(sink_channel.clone(), ch);
                json!({
                    "action": "receive",
                    "channel": { "$ref": format!("#/channels/{sink_channel}") },
                    "title": format!("Receive subscription `{key}` over AMQP"),
                    "summary": format!("The subscriber of `{key}` receives matching events on exchange `{}`.", a.exchange),
                    "description": format!("Filters: `{filters}`. Ordering: {ordering}."),
                    "messages": operation_refs(&sink_channel, &messages),
                    "bindings": { "amqp": {
                        "deliveryMode": 2,
                        "mandatory": true,
                        "bindingVersion": AMQP_BINDING_VERSION,
                    } },
                })
            }
            // No sink (`config check` refuses it): queues only.
            (None, None) => return,
        };
        let op_key = unique_in(&self.operations, &format!("{base}.receive"));
        self.operations.insert(op_key, operation);
    }
}

/// A channel on `server` with `messages` (keys of `components.messages`) and `bindings`.
fn channel(
    address: &str,
    title: &str,
    description: &str,
    server: &str,
    messages: &[String],
    bindings: Value,
) -> Value {
    json!({
        "address": address,
        "title": title,
        "description": description,
        "servers": [{ "$ref": format!("#/servers/{server}") }],
        "messages": message_refs(messages),
        "bindings": bindings,
    })
}

/// A channel's `messages`: each key referring to `components.messages`.
fn message_refs(keys: &[String]) -> Value {
    Value::Object(
        keys.iter()
            .map(|k| {
                (
                    k.clone(),
                    json!({ "$ref": format!("#/components/messages/{k}") }),
                )
            })
            .collect(),
    )
}

/// An operation's `messages`: references to the messages of `channel`.
fn operation_refs(channel: &str, keys: &[String]) -> Value {
    Value::Array(
        keys.iter()
            .map(|k| json!({ "$ref": format!("#/channels/{channel}/messages/{k}") }))
            .collect(),
    )
}

fn security_schemes() -> Value {
    json!({
        "apiToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "A tenant's API token (`civicbus token generate`); the configuration \
                holds its SHA-256. Events are stamped with the token's tenant.",
        },
        "rabbitmqUser": {
            "type": "userPassword",
            "description": "The system's own RabbitMQ user. Messages published to the ingress \
                exchange carry it as `user_id`, which RabbitMQ checks against the connection.",
        },
    })
}

/// The type and durability of the exchanges RabbitMQ predeclares (others are unknown).
fn known_exchange(name: &str) -> (Option<&'static str>, Option<bool>) {
    match name {
        "" => (Some("default"), Some(true)),
        "amq.direct" => (Some("direct"), Some(true)),
        "amq.fanout" => (Some("fanout"), Some(true)),
        "amq.topic" => (Some("topic"), Some(true)),
        "amq.headers" | "amq.match" => (Some("headers"), Some(true)),
        _ => (None, None),
    }
}

/// A webhook's URL without user info, query or fragment (as civicbus shows it elsewhere).
fn safe_webhook_url(w: &WebhookConfig) -> String {
    sink_description(&SinkSpec::Webhook(WebhookSpec {
        url: w.url.clone(),
        secrets: Vec::new(),
        mode: HttpMode::Binary,
        timeout: std::time::Duration::ZERO,
    }))
}

/// The parts of a URL that may be shown: scheme, host (with port) and path. User info,
/// query and fragment are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UrlParts {
    scheme: String,
    host: String,
    path: String,
}

impl UrlParts {
    fn split(url: &str) -> UrlParts {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let host = authority.rsplit('@').next().unwrap_or_default();
        UrlParts {
            scheme: scheme.to_string(),
            host: host.to_string(),
            path: path.to_string(),
        }
    }

    /// The AMQP virtual host the path names (`/` when it names none).
    fn vhost(&self) -> String {
        let encoded = self.path.strip_prefix('/').unwrap_or(&self.path);
        if encoded.is_empty() {
            "/".into()
        } else {
            percent_decode(encoded)
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `s` with every character AsyncAPI does not allow in a component or channel key
/// (`[A-Za-z0-9._-]`) replaced by `_`.
fn component_key(s: &str) -> String {
    let key: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if key.is_empty() { "_".into() } else { key }
}

/// `wanted`, or `wanted_2`, `wanted_3`… if taken; the result is added to `used`.
fn unique(used: &mut BTreeSet<String>, wanted: &str) -> String {
    let mut key = wanted.to_string();
    let mut n = 2;
    while used.contains(&key) {
        key = format!("{wanted}_{n}");
        n += 1;
    }
    used.insert(key.clone());
    key
}

/// `wanted`, or `wanted_2`… if `map` has it.
fn unique_in(map: &Map<String, Value>, wanted: &str) -> String {
    let mut key = wanted.to_string();
    let mut n = 2;
    while map.contains_key(&key) {
        key = format!("{wanted}_{n}");
        n += 1;
    }
    key
}

/// The component name of a shared document: its `$id`'s path below `/schemas/`, dotted
/// (`https://civicbus.haliburton.ca/schemas/common/types/v1` → `common.types.v1`).
fn shared_component_name(id: &str) -> String {
    let without_fragment = id.split(['#', '?']).next().unwrap_or_default();
    let (_, rest) = without_fragment
        .split_once("://")
        .unwrap_or(("", without_fragment));
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    let path = path.strip_prefix("schemas/").unwrap_or(path);
    let dotted = path
        .split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(".");
    if dotted.is_empty() {
        component_key(rest)
    } else {
        component_key(&dotted)
    }
}

/// A Multi Format Schema Object holding a draft-07 schema.
fn multi_format(schema: Value) -> Value {
    json!({ "schemaFormat": SCHEMA_FORMAT, "schema": schema })
}

/// A `$ref` to the schema of component `name`.
fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}/schema") })
}

/// The CloudEvents 1.0 structured-mode JSON envelope, with civicbus's extensions.
fn envelope_schema() -> Value {
    let text =
        |description: &str| json!({ "type": "string", "minLength": 1, "description": description });
    json!({
        "title": "CloudEvent",
        "description": "A CloudEvents 1.0 event in structured mode (JSON). Extension attributes \
            other than those listed are allowed.",
        "type": "object",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": { "type": "string", "const": SPEC_VERSION, "description": "CloudEvents version." },
            "id": text("Unique within `source`; re-sending the same `source` + `id` is safe."),
            "source": { "type": "string", "minLength": 1, "format": "uri-reference", "description": "The producing system, e.g. `/dysart/permitting`." },
            "type": text("Reverse-DNS event type, e.g. `ca.haliburton.permitting.permit.issued`."),
            "datacontenttype": { "type": "string", "description": "Media type of `data`; `application/json` for catalogue events." },
            "dataschema": { "type": "string", "format": "uri", "description": "The `$id` of the schema `data` follows (else the highest major version of the type's schema)." },
            "subject": text("The business key: permit number, roll number, work order…"),
            "time": { "type": "string", "format": "date-time", "description": "When the occurrence happened (RFC 3339)." },
            "tenant": { "type": "string", "pattern": "^[a-z0-9-]+$", "description": "The tenant (municipality), stamped by civicbus from the publisher's credential; an event claiming another tenant is refused." },
            "traceparent": { "type": "string", "description": "W3C trace context, forwarded to subscribers." },
            "partitionkey": { "type": "string", "description": "Ordering key for `per-subject` subscriptions (else `subject`)." },
            "dataref": { "type": "string", "description": "Where the data is, for documents too large to travel in the event." },
            "data": { "description": "The event payload." },
            "data_base64": { "type": "string", "contentEncoding": "base64", "description": "Binary data, base64-encoded." },
        },
    })
}

/// The AMQP application headers civicbus writes for an event of type `ty` (any when
/// `None`) whose `dataschema` is `dataschema`.
fn headers_schema(ty: Option<&str>, dataschema: Option<&str>) -> Value {
    let s = |description: &str| json!({ "type": "string", "description": description });
    let mut type_header = s("`type` attribute.");
    if let Some(ty) = ty {
        type_header["const"] = json!(ty);
    }
    let mut dataschema_header = s("`dataschema` attribute: the `$id` of the data's schema.");
    if let Some(id) = dataschema {
        dataschema_header["const"] = json!(id);
    }
    json!({
        "type": "object",
        "description": "AMQP application headers. civicbus writes every CloudEvents attribute as \
            a `cloudEvents_<name>` header on each message it publishes (events exchange, route \
            and subscription queues, AMQP sinks; the body is the structured event all the \
            same), and `webhook-id` and `traceparent` on deliveries to AMQP subscriptions. \
            Systems publishing to the ingress exchange in structured mode need not send any; in \
            binary mode the attributes go in headers prefixed `cloudEvents_`, `cloudEvents:`, \
            `ce-` or `ce_`.",
        "properties": {
            "cloudEvents_specversion": { "type": "string", "const": SPEC_VERSION, "description": "`specversion` attribute." },
            "cloudEvents_id": s("`id` attribute."),
            "cloudEvents_source": s("`source` attribute."),
            "cloudEvents_type": type_header,
            "cloudEvents_datacontenttype": s("`datacontenttype` attribute."),
            "cloudEvents_dataschema": dataschema_header,
            "cloudEvents_subject": s("`subject` attribute."),
            "cloudEvents_time": { "type": "string", "format": "date-time", "description": "`time` attribute." },
            "cloudEvents_tenant": s("`tenant` extension: the event's tenant, stamped by civicbus."),
            "cloudEvents_traceparent": s("`traceparent` extension."),
            "cloudEvents_partitionkey": s("`partitionkey` extension."),
            "webhook-id": s("Idempotency key of a delivery (subscription + source + id + output index), stable across retries; deduplicate on it."),
            "traceparent": s("W3C trace context of the event."),
        },
    })
}

/// The message of one catalogue event schema.
fn event_message(s: &EventSchema, key: &str, schema_name: &str, tenant: &str) -> Value {
    let description = s
        .schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let title = if s.title.is_empty() {
        s.ty.as_str()
    } else {
        s.title.as_str()
    };
    let summary = first_sentence(description).unwrap_or(title);
    let mut message = json!({
        "name": key,
        "title": title,
        "summary": summary,
        "description": format!(
            "{description}\n\nCloudEvents type `{}`, data schema `{}` (the event's `dataschema`).",
            s.ty, s.id
        ),
        "contentType": STRUCTURED_CONTENT_TYPE,
        "headers": headers_schema(Some(&s.ty), Some(&s.id)),
        "payload": multi_format(json!({
            "allOf": [schema_ref(ENVELOPE_SCHEMA)],
            "type": "object",
            "properties": {
                "type": { "const": s.ty },
                "dataschema": { "const": s.id },
                "data": schema_ref(schema_name),
            },
        })),
    });
    if let Some(domain) = domain_of(&s.path) {
        message["tags"] = json!([{ "name": domain }]);
    }
    if let Some(data) = s
        .schema
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        let source = format!("/{tenant}/{}", domain_of(&s.path).unwrap_or("system"));
        message["examples"] = json!([{
            "name": "example",
            "summary": format!("A `{}` event with the schema's first example as data.", s.ty),
            "headers": {
                "cloudEvents_specversion": SPEC_VERSION,
                "cloudEvents_id": "7f1c2e4a-0b6d-4d0e-9c43-2a8f0e5b9d11",
                "cloudEvents_source": source,
                "cloudEvents_type": s.ty,
                "cloudEvents_datacontenttype": "application/json",
                "cloudEvents_dataschema": s.id,
                "cloudEvents_time": "2026-05-14T15:04:05Z",
                "cloudEvents_tenant": tenant,
            },
            "payload": {
                "specversion": SPEC_VERSION,
                "id": "7f1c2e4a-0b6d-4d0e-9c43-2a8f0e5b9d11",
                "source": source,
                "type": s.ty,
                "datacontenttype": "application/json",
                "dataschema": s.id,
                "time": "2026-05-14T15:04:05Z",
                "tenant": tenant,
                "data": data,
            },
        }]);
    }
    message
}

/// The catalogue directory (domain) a schema file is in, e.g. `permitting`.
fn domain_of(path: &Path) -> Option<&str> {
    path.parent()?
        .file_name()?
        .to_str()
        .filter(|d| !d.is_empty() && *d != "builtin")
}

/// The first sentence of `text` (up to and including the first `. ` that does not follow
/// "e.g" or "i.e"), if any text.
fn first_sentence(text: &str) -> Option<&str> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let end = text
        .match_indices(". ")
        .map(|(i, _)| i)
        .find(|&i| !(text[..i].ends_with("e.g") || text[..i].ends_with("i.e")));
    Some(match end {
        Some(i) => &text[..=i],
        None => text,
    })
}

/// The data schema of civicbus's own `endpoint.disabled` event.
fn endpoint_disabled_schema() -> Value {
    let s = |description: &str| json!({ "type": "string", "description": description });
    json!({
        "title": "Endpoint disabled",
        "description": "A subscription's endpoint was disabled (it answered 410 Gone, or every \
            delivery failed for `disable_after`); its deliveries are dead-lettered until an \
            operator enables it.",
        "type": "object",
        "required": ["subscription", "key", "tenant", "sink", "reason", "disabled_at", "enable_with"],
        "properties": {
            "subscription": s("The subscription id."),
            "key": s("The subscription key, `<tenant>.<id>`."),
            "tenant": s("The subscription's tenant."),
            "sink": s("Where the subscription delivers, without credentials or query."),
            "reason": {
                "type": "string",
                "enum": [DisableReason::Gone.as_str(), DisableReason::Failing.as_str()],
                "description": "`gone`: the endpoint answered 410; `failing`: every delivery failed for `disable_after`.",
            },
            "error": s("The failure that disabled it, in words."),
            "last_response_code": { "type": ["integer", "null"], "description": "HTTP status of that failure, if any." },
            "disabled_at": { "type": "string", "format": "date-time", "description": "When it was disabled." },
            "enable_with": s("The command that enables it again."),
        },
    })
}

fn endpoint_disabled_message(key: &str, schema_name: &str) -> Value {
    json!({
        "name": key,
        "title": "Endpoint disabled",
        "summary": "civicbus disabled a subscription's endpoint.",
        "description": format!(
            "Published by civicbus itself (source `{ENDPOINT_EVENT_SOURCE}`, subject \
             `<tenant>.<id>`) in the subscription's tenant when it disables the endpoint; any \
             subscription of that tenant can receive it. Systems cannot publish it."
        ),
        "contentType": STRUCTURED_CONTENT_TYPE,
        "headers": headers_schema(Some(ENDPOINT_DISABLED_TYPE), None),
        "payload": multi_format(json!({
            "allOf": [schema_ref(ENVELOPE_SCHEMA)],
            "type": "object",
            "properties": {
                "type": { "const": ENDPOINT_DISABLED_TYPE },
                "source": { "const": ENDPOINT_EVENT_SOURCE },
                "data": schema_ref(schema_name),
            },
        })),
        "tags": [{ "name": "civicbus" }],
    })
}

fn unvalidated_message(key: &str) -> Value {
    json!({
        "name": key,
        "title": "Event of a type the catalogue does not know",
        "summary": "Accepted without validation (`unknown_types = \"accept-unvalidated\"`).",
        "contentType": STRUCTURED_CONTENT_TYPE,
        "headers": headers_schema(None, None),
        "payload": multi_format(schema_ref(ENVELOPE_SCHEMA)),
    })
}

/// Rewrites the catalogue's schemas for the document: draft-07 keywords, local `$ref`s.
struct RefMap {
    /// Document URI (no fragment, normalised) → component name.
    names: HashMap<String, String>,
    /// (document URI, anchor) → JSON pointer of the anchored schema in the document.
    anchors: HashMap<(String, String), String>,
}

impl RefMap {
    fn new(docs: &[(String, String, &Value)]) -> Self {
        let mut names = HashMap::new();
        let mut anchors = HashMap::new();
        for (id, name, doc) in docs {
            let uri = normalise(id);
            collect_anchors(doc, String::new(), &mut |anchor, pointer| {
                anchors.insert((uri.clone(), anchor.to_string()), pointer.to_string());
            });
            names.insert(uri, name.clone());
        }
        RefMap { names, anchors }
    }

    /// The local form of `reference`, found in the document `base`.
    fn rewrite(&self, reference: &str, base: &str) -> String {
        let absolute = match reqwest::Url::parse(base).and_then(|b| b.join(reference)) {
            Ok(u) => u.to_string(),
            Err(_) if reference.starts_with('#') => format!("{base}{reference}"),
            Err(_) => reference.to_string(),
        };
        let (doc, fragment) = absolute.split_once('#').unwrap_or((&absolute, ""));
        let doc = normalise(doc);
        let Some(name) = self.names.get(&doc) else {
            return reference.to_string();
        };
        let pointer = if fragment.is_empty() || fragment.starts_with('/') {
            fragment.to_string()
        } else {
            match self.anchors.get(&(doc.clone(), percent_decode(fragment))) {
                Some(p) => p.clone(),
                None => return reference.to_string(),
            }
        };
        format!(
            "#/components/schemas/{name}/schema{}",
            draft07_pointer(&pointer)
        )
    }

    /// `doc` (whose `$id` is `base`) as a draft-07 schema with local references.
    fn convert(&self, doc: &Value, base: &str) -> Value {
        let Value::Object(m) = doc else {
            return doc.clone();
        };
        let mut out = Map::new();
        let mut dependencies = Map::new();
        let has_prefix_items = m.contains_key("prefixItems");
        for (k, v) in m {
            match k.as_str() {
                "$schema" | "$id" | "$anchor" | "$dynamicAnchor" | "$vocabulary" | "$ref" => {}
                "$defs" | "definitions" => {
                    let defs = out
                        .entry("definitions")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let (Value::Object(defs), Value::Object(v)) = (defs, v) {
                        for (name, s) in v {
                            defs.insert(name.clone(), self.convert(s, base));
                        }
                    }
                }
                "properties" | "patternProperties" => {
                    out.insert(k.clone(), self.convert_map(v, base));
                }
                "dependentSchemas" => {
                    if let Value::Object(v) = self.convert_map(v, base) {
                        dependencies.extend(v);
                    }
                }
                "dependentRequired" | "dependencies" => {
                    if let Value::Object(v) = v {
                        for (name, d) in v {
                            let d = if d.is_array() {
                                d.clone()
                            } else {
                                self.convert(d, base)
                            };
                            dependencies.insert(name.clone(), d);
                        }
                    }
                }
                "prefixItems" => {
                    out.insert("items".into(), self.convert_list(v, base));
                }
                "items" if has_prefix_items => {
                    out.insert("additionalItems".into(), self.convert(v, base));
                }
                "items" if v.is_array() => {
                    out.insert("items".into(), self.convert_list(v, base));
                }
                "allOf" | "anyOf" | "oneOf" => {
                    out.insert(k.clone(), self.convert_list(v, base));
                }
                "items"
                | "additionalItems"
                | "additionalProperties"
                | "not"
                | "if"
                | "then"
                | "else"
                | "contains"
                | "propertyNames"
                | "unevaluatedProperties"
                | "unevaluatedItems"
                | "contentSchema" => {
                    out.insert(k.clone(), self.convert(v, base));
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        if !dependencies.is_empty() {
            out.insert("dependencies".into(), Value::Object(dependencies));
        }
        if let Some(Value::String(r)) = m.get("$ref") {
            let local = json!({ "$ref": self.rewrite(r, base) });
            if out.is_empty() {
                return local;
            }
            // draft-07 ignores the siblings of a `$ref`; 2020-12 applies both.
            let mut all = vec![local];
            if let Some(Value::Array(existing)) = out.remove("allOf") {
                all.extend(existing);
            }
            out.insert("allOf".into(), Value::Array(all));
        }
        Value::Object(out)
    }

    fn convert_map(&self, v: &Value, base: &str) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, s)| (k.clone(), self.convert(s, base)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn convert_list(&self, v: &Value, base: &str) -> Value {
        match v {
            Value::Array(items) => {
                Value::Array(items.iter().map(|s| self.convert(s, base)).collect())
            }
            other => self.convert(other, base),
        }
    }
}

/// A document URI without fragment, as the URL parser writes it.
fn normalise(uri: &str) -> String {
    let without = uri.split('#').next().unwrap_or_default();
    match reqwest::Url::parse(without) {
        Ok(u) => u.to_string(),
        Err(_) => without.to_string(),
    }
}

/// The JSON pointer `pointer` of a 2020-12 document, in its draft-07 conversion.
fn draft07_pointer(pointer: &str) -> String {
    pointer
        .split('/')
        .map(|segment| match segment {
            "$defs" => "definitions",
            "prefixItems" => "items",
            "dependentSchemas" | "dependentRequired" => "dependencies",
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Call `found(anchor, pointer)` for every `$anchor` in the schema `v` at `pointer`.
fn collect_anchors(v: &Value, pointer: String, found: &mut dyn FnMut(&str, &str)) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(a)) = m.get("$anchor") {
                found(a, &pointer);
            }
            for (k, child) in m {
                if !matches!(k.as_str(), "examples" | "enum" | "const" | "default") {
                    let escaped = k.replace('~', "~0").replace('/', "~1");
                    collect_anchors(child, format!("{pointer}/{escaped}"), found);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_anchors(child, format!("{pointer}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        let p =
            UrlParts::split("amqps://civicbus:s3cret@rabbit.example:5671/civic%2Fbus?heartbeat=10");
        assert_eq!(p.scheme, "amqps");
        assert_eq!(p.host, "rabbit.example:5671");
        assert_eq!(p.path, "/civic%2Fbus");
        assert_eq!(p.vhost(), "civic/bus");
        assert_eq!(UrlParts::split("amqp://127.0.0.1").vhost(), "/");
        assert_eq!(
            UrlParts::split("amqp://g:g@127.0.0.1:5672/%2f").vhost(),
            "/"
        );
    }

    #[test]
    fn summaries_are_first_sentences() {
        assert_eq!(
            first_sentence("A permit (e.g. a deck) was issued. data is the record."),
            Some("A permit (e.g. a deck) was issued.")
        );
        assert_eq!(first_sentence("  One only  "), Some("One only"));
        assert_eq!(first_sentence(""), None);
    }

    #[test]
    fn shared_documents_are_named_by_their_path() {
        assert_eq!(
            shared_component_name("https://civicbus.haliburton.ca/schemas/common/types/v1"),
            "common.types.v1"
        );
        assert_eq!(
            shared_component_name("https://example.org/x/y z/v2#"),
            "x.y_z.v2"
        );
    }

    #[test]
    fn schemas_become_draft_07_with_local_references() {
        let a = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://ex.org/schemas/a.b/v1",
            "$defs": { "n": { "$anchor": "num", "type": "number" } },
            "properties": {
                "money": { "$ref": "https://ex.org/schemas/common/t/v1#/$defs/money", "pattern": "^[0-9]" },
                "n": { "$ref": "#/$defs/n" },
                "m": { "$ref": "#num" },
                "rel": { "$ref": "../common/t/v1#/$defs/money" },
                "pair": { "prefixItems": [{ "type": "string" }], "items": false },
                "$defs": { "type": "string" },
            },
            "dependentRequired": { "a": ["b"] },
        });
        let t = json!({ "$id": "https://ex.org/schemas/common/t/v1", "$defs": { "money": { "type": "string" } } });
        let docs = vec![
            (
                "https://ex.org/schemas/a.b/v1".to_string(),
                "a.b.v1".to_string(),
                &a,
            ),
            (
                "https://ex.org/schemas/common/t/v1".to_string(),
                "common.t.v1".to_string(),
                &t,
            ),
        ];
        let refs = RefMap::new(&docs);
        let out = refs.convert(&a, "https://ex.org/schemas/a.b/v1");
        assert_eq!(
            out,
            json!({
                "definitions": { "n": { "type": "number" } },
                "properties": {
                    "money": { "pattern": "^[0-9]", "allOf": [{ "$ref": "#/components/schemas/common.t.v1/schema/definitions/money" }] },
                    "n": { "$ref": "#/components/schemas/a.b.v1/schema/definitions/n" },
                    "m": { "$ref": "#/components/schemas/a.b.v1/schema/definitions/n" },
                    "rel": { "$ref": "#/components/schemas/common.t.v1/schema/definitions/money" },
                    "pair": { "items": [{ "type": "string" }], "additionalItems": false },
                    "$defs": { "type": "string" },
                },
                "dependencies": { "a": ["b"] },
            })
        );
    }
}
