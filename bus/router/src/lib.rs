//! civicbus router: the bus's logic between the ports — ingest (HTTP and AMQP), routing
//! to subscriptions, and delivery through sinks.
//!
//! Architecture invariant: this crate names neither lapin nor sqlx. It works through the
//! traits of `civicbus_core::ports`, so every path can be tested with in-memory fakes and
//! runs unchanged on any broker or store implementation.

pub mod circuit;
pub mod consumer;
pub mod deliver;
pub mod endpoint;
pub mod ingest;
pub mod ingress;
pub mod quarantine;
pub mod route;

pub use circuit::{Breaker, Clock, HealthPolicy, SystemClock};
pub use deliver::DeliveryWorker;
pub use endpoint::{ENDPOINT_DISABLED_TYPE, EndpointHealth};
pub use ingest::{Ingest, IngestError, IngestLimits, Submitter};
pub use ingress::IngressWorker;
pub use route::RouteWorker;
