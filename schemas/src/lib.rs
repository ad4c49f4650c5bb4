//! civicbus schemas: the JSON Schema catalogue of municipal events (the directories next
//! to this crate), the registry that compiles it, and the compatibility checker.

pub mod compat;
pub mod enforce;
pub mod registry;

pub use enforce::{Enforcer, UnknownTypePolicy};
pub use registry::{Catalogue, EventSchema, LoadError, LoadErrors, Lookup, SchemaRegistry};
