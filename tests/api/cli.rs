//! The command-line contract: keys, tail, skills, work types, webhooks and deliveries, run as a separate process against the same database.
//!
//! Every test starts the real server (`spawn_app`) and runs the `hookgate` binary beside it on
//! the same SQLite file, with `HOOKGATE_DATABASE` and `HOOKGATE_MASTER_KEY` as an operator
//! would set them; what the CLI changes must show in the running server within its key-cache
//! window, and what the server stores must show in the CLI.

use std::process::Stdio;
use std::time::{Duration, Instant};

use hookgate::keys::CreatedKey;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::*;
use crate::receiver::Receiver;

/// How long the server may keep serving a key from its cache after the CLI changed it
/// (`KEY_CACHE_TTL` is 2 s), with a margin.
pub(crate) const CACHE_WINDOW: Duration = Duration::from_secs(5);

/// The binary with the operator's environment: same database and master key as the server.
pub(crate) fn hookgate(app: &TestApp) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookgate"));
    cmd.env("HOOKGATE_DATABASE", app.database())
        .env("HOOKGATE_MASTER_KEY", MASTER_KEY)
        .env("HOOKGATE_CONFIG", config_path())
        // The test server's settings for subscription URLs (the receiver runs on loopback).
        .env("HOOKGATE_ALLOW_HTTP_URLS", "true")
        .env("HOOKGATE_ALLOW_PRIVATE_URLS", "true")
        .env_remove("RUST_LOG")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

pub(crate) struct Run {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub(crate) async fn run_with(mut cmd: Command, args: &[&str]) -> Run {
    let output = tokio::time::timeout(Duration::from_secs(60), cmd.args(args).output())
        .await
        .unwrap_or_else(|_| panic!("hookgate {args:?} did not finish within 60 s"))
        .unwrap_or_else(|e| panic!("cannot run hookgate {args:?}: {e}"));
    Run {
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub(crate) async fn run(app: &TestApp, args: &[&str]) -> Run {
    run_with(hookgate(app), args).await
}

/// Runs a command that must succeed; returns its stdout.
pub(crate) async fn run_ok(app: &TestApp, args: &[&str]) -> String {
    let out = run(app, args).await;
    assert!(
        out.success,
        "hookgate {args:?} exited with {:?}\nstdout: {}\nstderr: {}",
        out.code, out.stdout, out.stderr
    );
    out.stdout
}

/// Stdout that must be exactly one JSON value (one line).
pub(crate) fn one_json(args: &[&str], stdout: &str) -> Value {
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "hookgate {args:?} printed {stdout:?}");
    serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("hookgate {args:?} printed no JSON ({e}): {stdout:?}"))
}

/// Stdout with one JSON object per line.
pub(crate) fn json_lines(args: &[&str], stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("hookgate {args:?}: line {l:?} is not JSON: {e}"));
            assert!(v.is_object(), "hookgate {args:?}: {l} is not an object");
            v
        })
        .collect()
}

pub(crate) fn text(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .to_string()
}

/// A key as `keys create --json` prints it.
pub(crate) async fn cli_key(app: &TestApp, company: &str, name: &str) -> CreatedKey {
    let args = [
        "keys",
        "create",
        "--company",
        company,
        "--name",
        name,
        "--json",
    ];
    let created = one_json(&args, &run_ok(app, &args).await);
    CreatedKey {
        key_id: text(&created, "key_id"),
        secret: text(&created, "secret"),
        api_token: text(&created, "api_token"),
        company: text(&created, "company"),
        company_id: created["company_id"].as_str().unwrap_or("").to_string(),
        name: text(&created, "name"),
    }
}

pub(crate) fn test_connection() -> Value {
    json!({"event_type": "test.connection", "timestamp": "2025-01-15T10:00:00Z", "source": "cli-test", "data": {"test": true}})
}

/// `key` with another signing secret.
fn with_secret(key: &CreatedKey, secret: &str) -> CreatedKey {
    CreatedKey {
        secret: secret.to_string(),
        ..key.clone()
    }
}

/// Sends signed `test.connection`s until `done` accepts the answer or `CACHE_WINDOW` passes;
/// returns the last answer.
pub(crate) async fn poll_server(
    app: &TestApp,
    key: &CreatedKey,
    done: impl Fn(&Sent) -> bool,
) -> Sent {
    let deadline = Instant::now() + CACHE_WINDOW;
    loop {
        let sent = app.post(key, &test_connection()).await;
        if done(&sent) || Instant::now() > deadline {
            return sent;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn keys_create_prints_one_json_object_that_works_against_the_running_server() {
    let app = spawn_app().await;
    let args = [
        "keys",
        "create",
        "--company",
        "cli-acme",
        "--name",
        "erp",
        "--json",
    ];
    let stdout = run_ok(&app, &args).await;
    let created = one_json(&args, &stdout);
    for field in ["key_id", "secret", "api_token", "company", "name"] {
        assert!(
            created[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} missing in {created}"
        );
    }
    assert_eq!(
        (created["company"].clone(), created["name"].clone()),
        (json!("cli-acme"), json!("erp"))
    );
    let key = cli_key_from(&created);

    // The key works at once against the server that was already running.
    let sent = app.post(&key, &test_connection()).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.body["signature_verified"], true);
    let skills = app
        .rest(&key.api_token, "GET", "/api/v1/skills", None)
        .await;
    assert_eq!(
        skills.status, 200,
        "the printed api_token works: {}",
        skills.body
    );

    // Stored under the named company, with the secret and token not in the clear.
    let mut row = app
        .row(&format!(
            "SELECT c.name, k.name, k.secret_enc, k.api_token_hash FROM api_keys k
             JOIN companies c ON c.id = k.company_id WHERE k.id = '{}'",
            key.key_id
        ))
        .await;
    let (company, name, secret_enc, token_hash) = (
        row.text(0).unwrap(),
        row.text(1).unwrap(),
        row.blob(2).unwrap(),
        row.text(3).unwrap(),
    );
    assert_eq!((company.as_str(), name.as_str()), ("cli-acme", "erp"));
    assert!(
        !secret_enc
            .windows(key.secret.len())
            .any(|w| w == key.secret.as_bytes()),
        "the secret is stored in the clear"
    );
    assert!(!token_hash.contains(&key.api_token));

    // A second key for the same company joins it.
    let second = cli_key(&app, "cli-acme", "crm").await;
    assert_eq!(second.company_id, key.company_id);
    assert_ne!(second.key_id, key.key_id);

    // keys list --json: every key, no secrets; --company filters.
    let other = app.create_key("cli-other", "hr").await;
    let args = ["keys", "list", "--json"];
    let stdout = run_ok(&app, &args).await;
    let list = json_lines(&args, &stdout);
    let ids: Vec<&str> = list.iter().filter_map(|k| k["key_id"].as_str()).collect();
    for id in [&key.key_id, &second.key_id, &other.key_id] {
        assert!(ids.contains(&id.as_str()), "{id} not listed: {stdout}");
    }
    let mine = list
        .iter()
        .find(|k| k["key_id"] == key.key_id.as_str())
        .unwrap();
    assert_eq!(
        (
            mine["company"].clone(),
            mine["name"].clone(),
            mine["revoked"].clone()
        ),
        (json!("cli-acme"), json!("erp"), json!(false))
    );
    for secret in [&key.secret, &key.api_token, &second.secret, &other.secret] {
        assert!(
            !stdout.contains(secret.as_str()),
            "keys list shows a secret"
        );
    }
    let created_at = mine["created_at"].as_str().unwrap_or("");
    assert!(
        hookgate::clock::parse_rfc3339_ms(created_at).is_some(),
        "created_at is not RFC 3339: {mine}"
    );
    let args = ["keys", "list", "--company", "cli-acme", "--json"];
    let filtered = json_lines(&args, &run_ok(&app, &args).await);
    let companies: Vec<&str> = filtered
        .iter()
        .filter_map(|k| k["company"].as_str())
        .collect();
    assert_eq!(companies, vec!["cli-acme", "cli-acme"], "{filtered:?}");
}

fn cli_key_from(created: &Value) -> CreatedKey {
    CreatedKey {
        key_id: text(created, "key_id"),
        secret: text(created, "secret"),
        api_token: text(created, "api_token"),
        company: text(created, "company"),
        company_id: created["company_id"].as_str().unwrap_or("").to_string(),
        name: text(created, "name"),
    }
}

#[tokio::test]
async fn keys_rotate_prints_a_new_secret_and_the_old_one_keeps_verifying() {
    let app = spawn_app().await;
    let key = cli_key(&app, "cli-rotate", "erp").await;
    // The server has the key cached before the rotation.
    let warm = app.post(&key, &test_connection()).await;
    assert_eq!(warm.status, 200, "{}", warm.body);

    let args = ["keys", "rotate", key.key_id.as_str(), "--json"];
    let rotated = one_json(&args, &run_ok(&app, &args).await);
    assert_eq!(rotated["key_id"], key.key_id.as_str(), "{rotated}");
    let new_secret = text(&rotated, "secret");
    assert_ne!(new_secret, key.secret);

    let new_key = with_secret(&key, &new_secret);
    let sent = poll_server(&app, &new_key, |s| s.status == 200).await;
    assert_eq!(
        sent.status, 200,
        "the new secret does not verify within {CACHE_WINDOW:?}: {}",
        sent.body
    );
    assert_eq!(sent.body["signature_verified"], true);
    // During the overlap the old secret still verifies, and a wrong one does not.
    let old = app.post(&key, &test_connection()).await;
    assert_eq!(
        old.status, 200,
        "old secret during the overlap: {}",
        old.body
    );
    let wrong = app
        .post(&with_secret(&key, "hks_not_the_secret"), &test_connection())
        .await;
    assert_eq!((wrong.status, wrong.code()), (403, "signature_mismatch"));

    // A rotation with no overlap retires the previous secret (after the cache window).
    let args = [
        "keys",
        "rotate",
        key.key_id.as_str(),
        "--overlap-secs",
        "0",
        "--json",
    ];
    let again = one_json(&args, &run_ok(&app, &args).await);
    let newest = with_secret(&key, &text(&again, "secret"));
    let sent = poll_server(&app, &newest, |s| s.status == 200).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let retired = poll_server(&app, &new_key, |s| s.status == 403).await;
    assert_eq!(
        (retired.status, retired.code()),
        (403, "signature_mismatch"),
        "a secret rotated away with no overlap still verifies"
    );

    // Unknown key: a non-zero exit naming it.
    let out = run(&app, &["keys", "rotate", "hk_does_not_exist", "--json"]).await;
    assert!(
        !out.success,
        "rotating an unknown key succeeded: {}",
        out.stdout
    );
    assert!(out.stderr.contains("hk_does_not_exist"), "{}", out.stderr);
}

#[tokio::test]
async fn keys_revoke_makes_the_running_server_answer_401() {
    let app = spawn_app().await;
    let key = cli_key(&app, "cli-revoke", "erp").await;
    let other = cli_key(&app, "cli-revoke", "crm").await;
    let warm = app.post(&key, &test_connection()).await;
    assert_eq!(warm.status, 200, "{}", warm.body);

    let out = run_ok(&app, &["keys", "revoke", key.key_id.as_str()]).await;
    assert!(out.contains(key.key_id.as_str()), "{out}");
    let sent = poll_server(&app, &key, |s| s.status == 401).await;
    assert_eq!(
        (sent.status, sent.code()),
        (401, "api_key_revoked"),
        "still accepted {CACHE_WINDOW:?} after the revocation: {}",
        sent.body
    );
    // The REST token of a revoked key stops working too; the other key is unaffected.
    let rest = app
        .rest(&key.api_token, "GET", "/api/v1/skills", None)
        .await;
    assert_eq!(rest.status, 401, "{}", rest.body);
    let fine = app.post(&other, &test_connection()).await;
    assert_eq!(fine.status, 200, "{}", fine.body);

    let revoked_at = app
        .row(&format!(
            "SELECT revoked_at FROM api_keys WHERE id = '{}'",
            key.key_id
        ))
        .await
        .opt_i64(0)
        .unwrap();
    assert!(revoked_at.is_some());
    let args = ["keys", "list", "--json"];
    let list = json_lines(&args, &run_ok(&app, &args).await);
    let states: Vec<(String, bool)> = list
        .iter()
        .map(|k| {
            (
                k["key_id"].as_str().unwrap().to_string(),
                k["revoked"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(states.contains(&(key.key_id.clone(), true)), "{list:?}");
    assert!(states.contains(&(other.key_id.clone(), false)), "{list:?}");

    let out = run(&app, &["keys", "revoke", "hk_does_not_exist"]).await;
    assert!(!out.success, "revoking an unknown key succeeded");
    assert!(out.stderr.contains("hk_does_not_exist"), "{}", out.stderr);
}

#[tokio::test]
async fn keys_token_issues_a_new_api_token_and_retires_the_old_one() {
    let app = spawn_app().await;
    let key = cli_key(&app, "cli-token", "erp").await;
    let before = app
        .rest(&key.api_token, "GET", "/api/v1/work-types", None)
        .await;
    assert_eq!(before.status, 200, "{}", before.body);

    let args = ["keys", "token", key.key_id.as_str(), "--json"];
    let issued = one_json(&args, &run_ok(&app, &args).await);
    assert_eq!(issued["key_id"], key.key_id.as_str());
    let token = text(&issued, "api_token");
    assert_ne!(token, key.api_token);
    assert_ne!(token, key.secret);

    let new = app.rest(&token, "GET", "/api/v1/work-types", None).await;
    assert_eq!(new.status, 200, "the new token: {}", new.body);
    let deadline = Instant::now() + CACHE_WINDOW;
    let old = loop {
        let old = app
            .rest(&key.api_token, "GET", "/api/v1/work-types", None)
            .await;
        if old.status == 401 || Instant::now() > deadline {
            break old;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(old.status, 401, "the old token still works: {}", old.body);
    // The signing key itself is unaffected.
    let sent = app.post(&key, &test_connection()).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
}

#[tokio::test]
async fn tail_prints_the_recent_ingest_log_as_json_lines() {
    let app = spawn_app().await;
    let key = cli_key(&app, "cli-tail", "erp").await;
    let other = cli_key(&app, "cli-tail", "crm").await;
    let mut sent_ids = Vec::new();
    for _ in 0..3 {
        let sent = app.post(&key, &test_connection()).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        sent_ids.push(sent.body["event_id"].as_str().unwrap().to_string());
    }
    let bad = app
        .post(&with_secret(&other, "hks_wrong"), &test_connection())
        .await;
    assert_eq!(bad.status, 403);
    let vendor = app
        .post(
            &other,
            &envelope("vendor.created", json!({"vendor_name": "Tail Vendor"})),
        )
        .await;
    assert_eq!(vendor.status, 200, "{}", vendor.body);
    app.settle().await;

    // The five most recent rows, oldest first, as the database has them.
    let mut expected: Vec<(i64, String, u16)> = app
        .rows("SELECT id, request_id, status FROM ingest_log ORDER BY id DESC LIMIT 5")
        .await
        .into_iter()
        .map(|mut r| (r.i64(0).unwrap(), r.text(1).unwrap(), r.u16(2).unwrap()))
        .collect();
    expected.reverse();
    assert_eq!(expected.len(), 5);
    let args = ["tail", "--json", "-n", "5"];
    let lines = json_lines(&args, &run_ok(&app, &args).await);
    let got: Vec<(i64, String, u16)> = lines
        .iter()
        .map(|l| {
            (
                l["id"].as_i64().unwrap_or(-1),
                l["request_id"].as_str().unwrap_or("").to_string(),
                l["status"].as_u64().unwrap_or(0) as u16,
            )
        })
        .collect();
    assert_eq!(got, expected, "{lines:?}");
    // On PostgreSQL the rejected request's row (queued, not waited for) may land after the
    // vendor's; the vendor's row is found by its event id.
    let last = lines
        .iter()
        .find(|l| l["event_id"] == vendor.body["event_id"])
        .unwrap_or_else(|| panic!("the vendor request is not tailed: {lines:?}"));
    assert_eq!(last["event_type"], "vendor.created");
    assert_eq!(last["key_id"], other.key_id.as_str());
    assert_eq!(last["event_id"], vendor.body["event_id"]);
    assert_eq!(last["record_id"], vendor.body["record_id"]);
    for field in ["received_at", "client_addr", "latency_us"] {
        assert!(!last[field].is_null(), "{field} missing in {last}");
    }
    let failed = lines
        .iter()
        .find(|l| l["status"] == 403)
        .unwrap_or_else(|| panic!("the 403 is not tailed: {lines:?}"));
    assert_eq!(failed["error_code"], "signature_mismatch");

    // Filters: by status, by key, by event type.
    let args = ["tail", "--json", "-n", "50", "--status", "403"];
    let only_403 = json_lines(&args, &run_ok(&app, &args).await);
    assert_eq!(only_403.len(), 1, "{only_403:?}");
    let args = ["tail", "--json", "-n", "50", "--key", key.key_id.as_str()];
    let by_key = json_lines(&args, &run_ok(&app, &args).await);
    let event_ids: Vec<&str> = by_key
        .iter()
        .filter_map(|l| l["event_id"].as_str())
        .collect();
    assert_eq!(
        event_ids,
        sent_ids.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let args = [
        "tail",
        "--json",
        "-n",
        "50",
        "--event-type",
        "vendor.created",
    ];
    let by_type = json_lines(&args, &run_ok(&app, &args).await);
    assert_eq!(by_type.len(), 1, "{by_type:?}");

    // Without --json: one human-readable line per entry.
    let args = ["tail", "-n", "2"];
    let plain = run_ok(&app, &args).await;
    assert_eq!(plain.lines().count(), 2, "{plain}");
    assert!(plain.contains("vendor.created"), "{plain}");
}

/// The next line `tail --follow` prints, within a few seconds.
async fn read_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("no line from tail --follow within 10 s")
        .expect("read tail output")
        .expect("tail --follow ended")
}

#[tokio::test]
async fn tail_follow_streams_new_entries_from_the_running_server() {
    let app = spawn_app().await;
    let key = cli_key(&app, "cli-follow", "erp").await;
    let first = app.post(&key, &test_connection()).await;
    assert_eq!(first.status, 200);
    app.settle().await;

    let mut cmd = hookgate(&app);
    cmd.args(["tail", "--follow", "--json", "-n", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn tail --follow");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The backlog first: the one existing entry (so tail is now following).
    let backlog: Value = serde_json::from_str(&read_line(&mut lines).await).unwrap();
    assert_eq!(backlog["event_id"], first.body["event_id"]);

    // A new request to the server shows up live.
    let sent = app
        .post(
            &key,
            &envelope("vendor.created", json!({"vendor_name": "Live Vendor"})),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let live: Value = serde_json::from_str(&read_line(&mut lines).await).unwrap();
    assert_eq!(live["event_id"], sent.body["event_id"], "{live}");
    assert_eq!(live["event_type"], "vendor.created");
    assert_eq!(live["status"], 200);
    // Rejections are streamed too.
    let bad = app
        .post(&with_secret(&key, "hks_wrong"), &test_connection())
        .await;
    assert_eq!(bad.status, 403);
    let rejected: Value = serde_json::from_str(&read_line(&mut lines).await).unwrap();
    assert_eq!(
        (rejected["status"].clone(), rejected["error_code"].clone()),
        (json!(403), json!("signature_mismatch"))
    );

    // Still following until stopped.
    assert!(child.try_wait().unwrap().is_none(), "tail --follow exited");
    child.kill().await.expect("stop tail --follow");
}

#[tokio::test]
async fn skills_and_work_types_from_the_cli_are_used_by_the_server() {
    let app = spawn_app().await;
    let key = app.create_key("cli-skills", "hr").await;

    let out = run_ok(
        &app,
        &[
            "skills",
            "add",
            "--company",
            "cli-skills",
            "Concrete Finisher",
            "Framing",
        ],
    )
    .await;
    assert!(out.contains('2'), "added count: {out}");
    let args = ["skills", "list", "--company", "cli-skills", "--json"];
    let skills = json_lines(&args, &run_ok(&app, &args).await);
    let mut names: Vec<&str> = skills.iter().filter_map(|s| s["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["Concrete Finisher", "Framing"]);
    // Another company's library is separate.
    let args = ["skills", "list", "--company", "cli-skills-other", "--json"];
    assert!(json_lines(&args, &run_ok(&app, &args).await).is_empty());

    // The running server sees them: REST and an employee that needs them.
    let rest = app
        .rest(&key.api_token, "GET", "/api/v1/skills", None)
        .await;
    assert_eq!(rest.body["count"], 2, "{}", rest.body);
    let employee = app
        .post(
            &key,
            &envelope(
                "employee.created",
                json!({"emp_number": "EMP-C1", "name": "Cli Worker", "email": "cw@example.com", "employee_type": "site_worker",
                       "employee_skills": ["Concrete Finisher", "Framing"]}),
            ),
        )
        .await;
    assert_eq!(employee.status, 200, "{}", employee.body);

    // Work types: the seeded ones, then a custom one the server uses.
    let args = ["work-types", "list", "--company", "cli-skills", "--json"];
    let types = json_lines(&args, &run_ok(&app, &args).await);
    let codes: Vec<&str> = types.iter().filter_map(|w| w["code"].as_str()).collect();
    for code in ["REG", "OT", "VAC", "SICK", "HOL"] {
        assert!(codes.contains(&code), "{code} missing: {types:?}");
    }
    let reg = types.iter().find(|w| w["code"] == "REG").unwrap();
    assert_eq!(reg["requires_work_order"], true, "{reg}");
    run_ok(
        &app,
        &[
            "work-types",
            "add",
            "--company",
            "cli-skills",
            "--code",
            "trv",
            "--name",
            "Travel",
        ],
    )
    .await;
    let args = ["work-types", "list", "--company", "cli-skills", "--json"];
    let types = json_lines(&args, &run_ok(&app, &args).await);
    let travel = types
        .iter()
        .find(|w| w["code"] == "TRV")
        .cloned()
        .unwrap_or_else(|| panic!("TRV not listed: {types:?}"));
    assert_eq!(
        (
            travel["billable"].clone(),
            travel["requires_work_order"].clone()
        ),
        (json!(false), json!(false))
    );
    let sheet = app
        .post(
            &key,
            &envelope(
                "timesheet.created",
                json!({"emp_number": "EMP-C1", "timesheet_date": "2025-06-02",
                       "entries": [{"entry_date": "2025-06-02", "hours": 2, "work_type_code": "TRV"}]}),
            ),
        )
        .await;
    assert_eq!(sheet.status, 200, "{}", sheet.body);

    let out = run(&app, &["skills", "add", "--company", "cli-skills", ""]).await;
    assert!(!out.success, "an empty skill name was accepted");
}

#[tokio::test]
async fn check_config_validates_the_configuration() {
    let app = spawn_app().await;
    let ok = run(&app, &["check-config"]).await;
    assert!(
        ok.success,
        "check-config failed: {}\n{}",
        ok.stdout, ok.stderr
    );
    let mut bad = hookgate(&app);
    bad.env("HOOKGATE_MASTER_KEY", "abc");
    let out = run_with(bad, &["check-config"]).await;
    assert!(
        !out.success,
        "check-config accepted master_key=abc: {}",
        out.stdout
    );
    assert!(out.stderr.contains("master_key"), "stderr: {}", out.stderr);

    // Other commands refuse to start on a bad master key too, and change nothing.
    let keys_before = app.count("SELECT COUNT(*) FROM api_keys").await;
    let mut bad = hookgate(&app);
    bad.env("HOOKGATE_MASTER_KEY", "abc");
    let out = run_with(
        bad,
        &["keys", "create", "--company", "x", "--name", "y", "--json"],
    )
    .await;
    assert!(!out.success);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM api_keys").await,
        keys_before
    );
}

#[tokio::test]
async fn webhooks_and_deliveries_list_show_the_servers_outbound_state() {
    let app = spawn_app().await;
    let sender = cli_key(&app, "cli-outbound", "erp").await;
    let subscriber = cli_key(&app, "cli-outbound", "crm").await;
    let receiver = Receiver::start().await;
    let subscription = app
        .subscribe(
            &subscriber,
            json!({"name": "crm-sync", "url": receiver.url, "events": ["vendor.*"]}),
        )
        .await;
    let subscription_id = text(&subscription, "id");

    let args = ["webhooks", "list", "--company", "cli-outbound", "--json"];
    let hooks = json_lines(&args, &run_ok(&app, &args).await);
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["id"], subscription_id.as_str());
    assert_eq!(hooks[0]["name"], "crm-sync");
    assert_eq!(hooks[0]["owner_key_id"], subscriber.key_id.as_str());

    let args = ["deliveries", "list", "--json"];
    let none = run_ok(&app, &args).await;
    assert!(json_lines(&args, &none).is_empty(), "{none}");

    let sent = app
        .post(
            &sender,
            &envelope("vendor.created", json!({"vendor_name": "Delivered Vendor"})),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    receiver.wait_for(1).await;
    // Wait for the delivery row to record its success.
    let deadline = Instant::now() + Duration::from_secs(10);
    while app
        .count("SELECT COUNT(*) FROM deliveries WHERE status = 'succeeded'")
        .await
        == 0
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let args = ["deliveries", "list", "--json"];
    let listed = json_lines(&args, &run_ok(&app, &args).await);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let delivery = &listed[0];
    assert_eq!(delivery["subscription_id"], subscription_id.as_str());
    assert_eq!(delivery["event_type"], "vendor.created");
    assert_eq!(delivery["record_id"], sent.body["record_id"]);
    assert_eq!(delivery["status"], "succeeded", "{delivery}");
    assert_eq!(delivery["response_code"], 200);
    let args = [
        "deliveries",
        "list",
        "--webhook",
        subscription_id.as_str(),
        "--status",
        "failed",
        "--json",
    ];
    assert!(json_lines(&args, &run_ok(&app, &args).await).is_empty());
    let args = ["deliveries", "list", "--status", "succeeded", "--json"];
    assert_eq!(json_lines(&args, &run_ok(&app, &args).await).len(), 1);
}

#[tokio::test]
async fn events_list_prints_the_catalog_the_server_serves() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;

    let listing = run_ok(&app, &["events", "list"]).await;
    for event in hookgate::catalog::InboundEvent::ALL {
        assert!(
            listing.contains(event.name()),
            "{event} missing:\n{listing}"
        );
    }
    for event in hookgate::catalog::OutboundEvent::ALL {
        assert!(
            listing.contains(event.name()),
            "{event} missing:\n{listing}"
        );
    }
    assert!(listing.contains("work_order.status_changed") && listing.contains("`<prefix>.*`"));

    let args = ["events", "list", "--json"];
    let printed = one_json(&args, &run_ok(&app, &args).await);
    let served = app
        .rest(&key.api_token, "GET", "/api/v1/event-types", None)
        .await;
    assert_eq!(printed, served.body["data"]);

    // JSON Lines: one line per event of the direction.
    let args = ["events", "list", "--direction", "outbound", "--json"];
    let outbound = json_lines(&args, &run_ok(&app, &args).await);
    assert_eq!(json!(outbound), served.body["data"]["outbound"]);
    let listing = run_ok(&app, &["events", "list", "--direction", "inbound"]).await;
    assert!(listing.contains("test.connection") && !listing.contains("work_order.status_changed"));
    let bad = run(&app, &["events", "list", "--direction", "sideways"]).await;
    assert!(
        !bad.success && bad.stderr.contains("sideways"),
        "{}",
        bad.stderr
    );
}
