//! Searches answer from indexes, a page at a time: exact matches ignoring case, fuzzy ones
//! tolerant of typos, `limit` and `offset` to page, and never another company's records.

use hookgate::keys::KeyOptions;
use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope, spawn_app};

async fn projects(app: &TestApp, key: &hookgate::keys::CreatedKey, names: &[String]) {
    for (n, name) in names.iter().enumerate() {
        let sent = app
            .post(
                key,
                &envelope(
                    "project.created",
                    json!({"project_code": format!("PRJ-{n}"), "project_name": name,
                           "customer_name": "Acme", "location_name": "Site"}),
                ),
            )
            .await;
        assert_eq!(sent.status, 200, "{}", sent.body);
    }
}

fn names(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["project_name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn searches_page_through_indexed_matches() {
    let app = spawn_app().await;
    let options = KeyOptions {
        per_minute: Some(10_000),
        per_hour: Some(10_000),
        ..KeyOptions::default()
    };
    let key = app.create_key_with("acme", "erp", options.clone()).await;
    let mut all: Vec<String> = (0..60).map(|n| format!("Riverside Tower {n:02}")).collect();
    all.push("Skyline Tower Construction".into());
    all.push("Harbor Warehouse".into());
    projects(&app, &key, &all).await;
    let other = app.create_key_with("globex", "erp", options).await;
    projects(&app, &other, &["Riverside Tower Elsewhere".to_string()]).await;

    let search = |data: Value| envelope("project.search", data);
    // Fuzzy, with typos: the first page holds the default 50, and says there is more.
    let first = app
        .post(&key, &search(json!({"search_term": "Riversde Towr"})))
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["count"], 50);
    assert_eq!(first.body["has_more"], true);
    let second = app
        .post(
            &key,
            &search(json!({"search_term": "Riversde Towr", "offset": 50, "limit": 50})),
        )
        .await;
    assert_eq!(second.body["count"], 10, "{}", second.body);
    assert_eq!(second.body["has_more"], false);
    let mut seen: Vec<String> = names(&first.body);
    seen.extend(names(&second.body));
    seen.sort();
    let mut expected: Vec<String> = all[..60].to_vec();
    expected.sort();
    assert_eq!(
        seen, expected,
        "every Riverside project once, none of another company"
    );

    // Exact, ignoring case and surrounding spaces.
    let exact = app
        .post(
            &key,
            &search(json!({"search_term": " skyline tower construction ", "exact_match": true})),
        )
        .await;
    assert_eq!(names(&exact.body), ["Skyline Tower Construction"]);
    // Short terms match as substrings; a term that matches nothing answers an empty page.
    let short = app.post(&key, &search(json!({"search_term": "wa"}))).await;
    assert_eq!(names(&short.body), ["Harbor Warehouse"]);
    let none = app
        .post(&key, &search(json!({"search_term": "Quantum Foundry"})))
        .await;
    assert_eq!(
        (none.body["count"].clone(), none.body["has_more"].clone()),
        (json!(0), json!(false))
    );
    // A page larger than the maximum is refused.
    let too_big = app
        .post(&key, &search(json!({"search_term": "Tower", "limit": 501})))
        .await;
    assert_eq!(too_big.status, 400, "{}", too_big.body);
}
