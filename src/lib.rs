//! # hookgate: an inbound webhook gateway
//!
//! ERP, CRM and HR systems push signed JSON envelopes to `POST /webhooks/inbound`; hookgate
//! authenticates, rate-limits, validates and applies them to its own store, and notifies every
//! other subscribed system of the change, never the one that caused it.
//!
//! # Layout
//! Modules follow the request path, and imports flow one way, down it (`ARCHITECTURE.md`
//! states the rule; `tests/architecture.rs` checks it).
//!
//! The public modules, what `hookgate`'s binary, tests, benchmark and fuzzers use:
//!
//! - [`cli`]: the command line (`main.rs` calls [`cli::main`]); [`app`]: start-up, the server as
//!   a library function (`AppState::build`, [`app::run`]); [`config`]: defaults, file and
//!   `HOOKGATE_*` environment.
//! - [`catalog`]: every inbound and outbound event type and record kind, with their schemas;
//!   the one list that everything naming event types reads.
//! - [`apply`]: the business rules; [`store`]: SQLite or PostgreSQL behind one interface, one
//!   group-commit writer, pooled readers.
//! - [`outbound`]: beside the pipeline, the cursor-based delivery of the event log to
//!   subscriptions, signed, with retries and the SSRF guard.
//! - [`providers`]: native intake's catalog of providers' signatures, handshakes and events.
//! - [`rest`]: the management API's OpenAPI router.
//! - [`keys`], [`crypto`], [`master_key`]: tenancy, API keys, sealed secrets and the master key.
//! - [`retention`], [`shared_limits`], [`clock`]; `fuzz_targets`: the parsers as the fuzzers
//!   (`fuzz/`) and their corpus replay drive them.
//!
//! Inside the crate: `http` (hyper, the only module that knows it) → `pipeline` (an inbound
//! request from the edge to its answer) → `ingest` (the envelope stages: `verify` →
//! `ingest::limit` → `idempotency` → `envelope` → `normalize` → `validate` → [`apply`]),
//! `inspect` (kept requests, replay), `admin` (the console), with `request` (the edge's
//! contract: reply, head, body reader, request id and span), `state`, `error`, `metrics`,
//! `logs`, `ratelimit`, `skills` and `views` beside them.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod admin;
pub mod app;
pub mod apply;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
mod envelope;
mod error;
#[doc(hidden)]
pub mod fuzz_targets;
mod http;
mod idempotency;
mod ingest;
mod inspect;
pub mod keys;
mod logs;
pub mod master_key;
mod metrics;
mod normalize;
pub mod outbound;
mod pipeline;
pub mod providers;
mod ratelimit;
mod request;
pub mod rest;
pub mod retention;
pub mod shared_limits;
mod skills;
mod state;
pub mod store;
mod validate;
mod verify;
mod views;
