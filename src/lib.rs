//! # hookgate: an inbound webhook gateway
//!
//! ERP, CRM and HR systems push signed JSON envelopes to `POST /webhooks/inbound`; hookgate
//! authenticates, rate-limits, validates and applies them to its own store, and notifies every
//! other subscribed system of the change, never the one that caused it.
//!
//! # Layout
//! Modules follow the request path, and imports flow one way (later stages may use earlier
//! ones, never the reverse):
//!
//! - [`catalog`]: every inbound and outbound event type and record kind, with their schemas;
//!   the one list that everything naming event types reads.
//! - [`http`]: hyper server, routing, body limits; the only module that knows hyper.
//! - [`ingest`]: the inbound pipeline, calling the stages below in order.
//! - [`verify`] (authentication and signatures) → [`ratelimit`] → idempotency (in [`ingest`]) →
//!   [`envelope`] (parse) → [`normalize`] → [`validate`] → [`apply`].
//! - [`store`]: SQLite behind a narrow interface; one group-commit writer, pooled readers.
//! - [`outbound`]: beside the pipeline, fan-out of the event log to subscriptions (never
//!   back to the key that caused the event), signed deliveries with retries, SSRF guard.
//! - [`providers`]: native intake (`/webhooks/inbound/{provider}/{key_id}`): a catalog of
//!   providers' signatures, handshakes and events, operators' mappings onto envelopes, and
//!   pass-through events; [`inspect`]: kept requests, `inspect` and `replay`.
//! - [`rest`]: the management API (`/api/v1`: skills, work types, webhooks).
//! - [`admin`]: the operator's console at `/admin` (embedded page, session login, thin JSON
//!   calls into the same operations as [`rest`] and the CLI).
//! - [`keys`], [`crypto`]: tenancy, API keys and the secrets they hold; [`master_key`]: the
//!   check that the configured key is the database's, and re-sealing under a new one; [`skills`]: the
//!   skill library and work types.
//! - [`views`]: the JSON shapes the REST API and the CLI's `--json` share.
//! - [`config`], [`app`], [`cli`], [`metrics`], [`logs`], [`clock`], [`error`]: the rest;
//!   `fuzz_targets`: the parsers as the fuzzers (`fuzz/`) and their corpus replay drive them.
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
