//! One integration-test binary: every test starts the real server on a random port with a
//! fresh database (`helpers::spawn_app`) and talks to it over HTTP.

mod catalog;
mod cli;
mod cli_operator;
mod console;
mod console_browser;
mod contract;
mod core;
mod entities;
mod fixtures;
mod helpers;
mod limits;
mod master_key;
mod outbound;
mod receiver;
mod storage;
mod test_db;
