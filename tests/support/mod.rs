//! What the API tests (`tests/api`) and the benchmark (`benches/ingest`) share: signing inbound
//! envelopes as an integration does, and a local webhook receiver. Each includes this module
//! with `#[path = ".../tests/support/mod.rs"] mod support;`, so each uses only part of it.
#![allow(dead_code)]

pub mod receiver;
pub mod signing;
