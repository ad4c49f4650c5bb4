//! The HTTP API and its error documents.

pub mod api;
pub mod problem;

pub use api::{ApiState, Readiness, app};
pub use problem::Problem;
