//! One integration-test binary: every test starts the real server on a random port with a
//! fresh database (`helpers::spawn_app`) and talks to it over HTTP.

mod catalog;
mod cli;
mod cli_operator;
mod cli_providers;
mod console;
mod console_browser;
mod contract;
mod core;
mod crash;
mod deliveries;
mod entities;
mod fixtures;
mod helpers;
mod limits;
mod master_key;
mod multinode;
mod nodes;
mod outbound;
mod pipelining;
mod providers;
mod receiver;
mod search;
mod shared_limits;
mod storage;
mod store_contract;
#[path = "../support/mod.rs"]
mod support;
mod test_db;
