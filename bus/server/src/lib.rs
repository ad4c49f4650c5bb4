//! The civicbus server: configuration, CLI commands, HTTP API and the wiring that turns
//! the broker, store, router and sinks into a running bus.

pub mod app;
pub mod asyncapi;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod entry;
pub mod http;
pub mod schemas;
pub mod sim;
pub mod telemetry;
pub mod transform_cli;
pub mod transforms;
