//! civicbus core: the CloudEvents envelope and its bindings, subscription filters,
//! tenants and sharing, the routing table, and the ports (traits) that the broker, store
//! and sinks implement.
//!
//! Architecture invariant: this crate does no I/O and depends on no other civicbus crate.
//! Everything here is deterministic and testable with plain values.

pub mod binding;
pub mod delivery;
pub mod envelope;
pub mod error;
pub mod filter;
pub mod ports;
pub mod retry;
pub mod subscription;
pub mod tenant;
pub mod wire;

pub use envelope::{CloudEvent, Data, ExtensionValue};
pub use error::{EnvelopeError, EnvelopeErrorKind};
pub use filter::Filter;
pub use retry::{RetryDecision, RetryPolicy};
pub use subscription::{RoutingTable, SinkSpec, Subscription};
