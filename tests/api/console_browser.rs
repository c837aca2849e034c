//! The console in a real browser: headless Chromium, driven by playwright-core
//! (`tests/browser/console.mjs`), against the real server started here. Runs when
//! `HOOKGATE_TEST_BROWSER=1` (`.ci/run` sets it after installing Chromium and the npm
//! package); otherwise it says that it was left out. Screenshots at 1280 px and at phone width
//! are kept in `target/console-screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::receiver::Receiver;

const ADMIN_PASSWORD: &str = "browser-test-admin-password";

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("console-screenshots")
}

#[tokio::test]
async fn the_console_works_in_headless_chromium() {
    if std::env::var("HOOKGATE_TEST_BROWSER").as_deref() != Ok("1") {
        // Straight to stderr: the test harness would swallow an eprintln! of a passing test.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "console browser test left out: set HOOKGATE_TEST_BROWSER=1 to run it \
             (needs /usr/bin/chromium and `npm ci` in tests/browser; .ci/run does both)"
        );
        return;
    }
    let browser_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in {}",
        browser_dir.display()
    );
    // One attempt only: the delivery that fails stays failed until the console retries it.
    let app = spawn_app_with(&[
        ("HOOKGATE_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("HOOKGATE_RETRY_SCHEDULE", "0"),
    ])
    .await;
    let erp = app.create_key("acme", "erp").await;
    let crm = app.create_key("acme", "crm").await;
    let legacy = app.create_key("acme", "legacy").await;
    let (crm_receiver, legacy_receiver) = (Receiver::start().await, Receiver::start().await);
    let crm_sub = app
        .subscribe(
            &crm,
            json!({"name": "crm-sync", "url": crm_receiver.url, "events": ["project.*"]}),
        )
        .await;
    legacy_receiver.answer(&[503; 50]);
    app.subscribe(
        &legacy,
        json!({"name": "legacy-erp", "url": legacy_receiver.url, "events": ["project.created"]}),
    )
    .await;
    app.subscribe(
        &legacy,
        json!({"name": "archive", "url": legacy_receiver.url, "events": ["*"], "enabled": false}),
    )
    .await;
    // Some history for the log and the charts: accepted, refused and failed deliveries.
    for i in 0..6 {
        assert_eq!(
            app.post(&erp, &project_created(&format!("PRJ-{i}")))
                .await
                .status,
            200
        );
    }
    let forged = app
        .send(app.wrongly_signed(
            &erp,
            &serde_json::to_vec(&project_created("PRJ-X")).unwrap(),
        ))
        .await;
    assert_eq!(forged.status, 403);
    crm_receiver.wait_for(6).await;
    crm_receiver.answer(&[500]);

    let run = tokio::process::Command::new("node")
        .arg("console.mjs")
        .current_dir(&browser_dir)
        .env("CONSOLE_URL", &app.base)
        .env("CONSOLE_TOKEN", &crm.api_token)
        .env("CONSOLE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("SENDER_KEY_ID", &erp.key_id)
        .env("SENDER_SECRET", &erp.secret)
        .env("SUBSCRIPTION", "crm-sync")
        .env("SCREENSHOT_DIR", screenshot_dir())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test finishes within 4 minutes")
        .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    eprintln!("{stdout}");

    // What the browser did reached the server: the envelope it sent was stored, the failed
    // delivery was sent again and succeeded, the subscription is enabled, the key exists.
    app.settle().await;
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM ingest_log WHERE event_type = 'project.created' AND status = 200"
        )
        .await,
        7
    );
    let sub_id = crm_sub["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM subscriptions WHERE id = '{sub_id}' AND status = 'active'"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM deliveries WHERE subscription_id = '{sub_id}' AND status = 'succeeded'"
        ))
        .await,
        7
    );
    let statuses: Vec<u16> = app
        .rows(&format!(
            "SELECT a.status_code FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.subscription_id = '{sub_id}' AND d.record_id IN
               (SELECT record_id FROM events WHERE payload LIKE '%PRJ-LIVE%') ORDER BY a.id"
        ))
        .await
        .iter()
        .map(|r| r.u16(0).unwrap())
        .collect();
    assert_eq!(
        statuses,
        vec![500, 200],
        "one failed attempt, then the retry"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM api_keys WHERE name = 'made-in-browser'")
            .await,
        1
    );
    for name in [
        "login",
        "log",
        "subscriptions",
        "deliveries",
        "keys",
        "charts",
    ] {
        for width in ["1280", "phone"] {
            let file = screenshot_dir().join(format!("{name}-{width}.png"));
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            assert!(
                size > 1000,
                "screenshot {} is missing or empty",
                file.display()
            );
        }
    }
}
