//! Commands of native intake and kept requests: `keys update` (provider secrets, keeping
//! requests), `providers list`, `mappings`, `inspect`, `replay`, and the developer tools
//! `trigger` (send a signed example) and `listen` (forward a company's outbound events to a
//! local URL, signed as a subscription's).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::clock;
use crate::config::Config;
use crate::inspect;
use crate::keys::ApiKey;
use crate::outbound::{catalog as events, signing};
use crate::providers::{self, catalog, manage, signature};
use crate::state::AppState;
use crate::store::KeptFilter;

/// The CLI has no client address of its own in the log.
const OPERATOR: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn print(json: bool, value: &Value, text: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

async fn state(config: Config) -> anyhow::Result<Arc<AppState>> {
    Ok(AppState::build(config)?)
}

/// The id of an existing company.
async fn existing_company(state: &AppState, name: &str) -> anyhow::Result<String> {
    let owned = name.to_string();
    state
        .store
        .read(move |r| r.company_id_by_name(&owned))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no company {name}"))
}

/// What `keys create` and `keys update` take for native intake: secrets of the catalog's
/// providers, and whether the key's requests are kept.
#[derive(Args)]
pub(super) struct IntakeArgs {
    /// A provider's secret, e.g. `stripe=whsec_…` (repeatable; `hookgate providers list` says
    /// what each provider's secret is).
    #[arg(long = "provider-secret", value_name = "PROVIDER=SECRET")]
    provider_secret: Vec<String>,
    /// Remove this provider's secret (repeatable).
    #[arg(long = "remove-provider-secret", value_name = "PROVIDER")]
    remove_provider_secret: Vec<String>,
    /// Keep this key's requests (headers and body) for inspect and replay: true or false.
    #[arg(long)]
    keep_requests: Option<bool>,
}

impl IntakeArgs {
    pub(super) fn is_empty(&self) -> bool {
        self.provider_secret.is_empty()
            && self.remove_provider_secret.is_empty()
            && self.keep_requests.is_none()
    }

    /// Applies the changes to `key_id`; returns the key as the server will see it.
    pub(super) async fn apply(
        &self,
        keys: &crate::keys::Keys,
        key_id: &str,
    ) -> anyhow::Result<Arc<ApiKey>> {
        let mut changes = Vec::new();
        for pair in &self.provider_secret {
            let (provider, secret) = pair.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("--provider-secret takes PROVIDER=SECRET, not {pair:?}")
            })?;
            let provider = manage::known(provider.trim())?;
            anyhow::ensure!(!secret.is_empty(), "the {} secret is empty", provider.name);
            changes.push((provider.name.clone(), Some(secret.to_string())));
        }
        for name in &self.remove_provider_secret {
            changes.push((manage::known(name.trim())?.name.clone(), None));
        }
        Ok(keys
            .update_intake(key_id, changes, self.keep_requests)
            .await?)
    }
}

/// What a key holds for native intake, as `keys create` and `keys update` print it.
pub(super) fn intake_view(key: &ApiKey) -> Value {
    json!({"providers": key.providers(), "keep_requests": key.keep_requests})
}

#[derive(Subcommand)]
pub(super) enum ProvidersCommand {
    /// The providers whose own webhooks the gateway takes, and how each signs.
    List {
        /// Show the URL to give each provider for this key, and which it has a secret for.
        #[arg(long)]
        key: Option<String>,
        /// Print JSON, one object per line.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn providers(command: ProvidersCommand, config: Config) -> anyhow::Result<()> {
    let ProvidersCommand::List { key, json } = command;
    let state = state(config).await?;
    let key = match key {
        Some(id) => Some(manage::key_by_id(&state, &id).await?),
        None => None,
    };
    for p in catalog().all() {
        let view = manage::provider_view(&state, p, key.as_deref());
        print(json, &view, || {
            let mut line = format!("{:<18} {:<40} secret: {}", p.name, p.title, p.secret);
            if let Some(url) = view["url"].as_str() {
                let set = if view["configured"] == true {
                    "set"
                } else {
                    "not set"
                };
                line.push_str(&format!("\n{:<18} {url} (secret {set})", ""));
            }
            line
        });
    }
    Ok(())
}

#[derive(Subcommand)]
pub(super) enum MappingsCommand {
    /// The mappings of a company's keys.
    List {
        /// The company whose mappings to list.
        #[arg(long)]
        company: String,
        /// Only this key.
        #[arg(long)]
        key: Option<String>,
        /// Print JSON, one object per line.
        #[arg(long)]
        json: bool,
    },
    /// One key's mapping of a provider's events.
    Get {
        /// The key (`hk_…`).
        key_id: String,
        /// The provider.
        provider: String,
    },
    /// Sets a key's mapping of a provider's events from a JSON file (`-`: standard input).
    Set {
        /// The key (`hk_…`).
        key_id: String,
        /// The provider.
        provider: String,
        /// The mapping document (JSON; `-`: standard input).
        #[arg(long)]
        file: String,
    },
    /// Removes a mapping: the provider's events pass through again.
    Delete {
        /// The key (`hk_…`).
        key_id: String,
        /// The provider.
        provider: String,
    },
    /// What a sample provider body would become, without storing anything.
    Preview {
        /// The key (`hk_…`).
        key_id: String,
        /// The provider.
        provider: String,
        /// The provider's body (JSON file; `-`: standard input).
        #[arg(long)]
        body: String,
        /// A mapping to try instead of the stored one.
        #[arg(long)]
        mapping: Option<String>,
        /// A header the provider sends (`Name: value`, repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
    },
}

fn read_json(path: &str) -> anyhow::Result<Value> {
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{path} is not JSON: {e}"))
}

pub(super) async fn mappings(command: MappingsCommand, config: Config) -> anyhow::Result<()> {
    let state = state(config).await?;
    let show = |v: &Value| println!("{}", serde_json::to_string_pretty(v).expect("JSON"));
    match command {
        MappingsCommand::List { company, key, json } => {
            let company_id = existing_company(&state, &company).await?;
            for m in manage::list_mappings(&state, &company_id, key.as_deref()).await? {
                print(json, &m, || {
                    let rules = m["mapping"]["rules"].as_array().map_or(0, Vec::len);
                    format!(
                        "{}  {:<18} {rules} rule(s)  updated {}",
                        m["key_id"].as_str().unwrap_or(""),
                        m["provider"].as_str().unwrap_or(""),
                        m["updated_at"].as_str().unwrap_or("")
                    )
                });
            }
        }
        MappingsCommand::Get { key_id, provider } => {
            let key = manage::key_by_id(&state, &key_id).await?;
            show(&manage::get_mapping(&state, &key, &provider).await?);
        }
        MappingsCommand::Set {
            key_id,
            provider,
            file,
        } => {
            let key = manage::key_by_id(&state, &key_id).await?;
            let document = read_json(&file)?;
            manage::put_mapping(&state, &key, &provider, document).await?;
            println!("saved the {provider} mapping of {key_id}; the server uses it within seconds");
        }
        MappingsCommand::Delete { key_id, provider } => {
            let key = manage::key_by_id(&state, &key_id).await?;
            manage::delete_mapping(&state, &key, &provider).await?;
            println!("deleted the {provider} mapping of {key_id}: its events pass through");
        }
        MappingsCommand::Preview {
            key_id,
            provider,
            body,
            mapping,
            headers,
        } => {
            let key = manage::key_by_id(&state, &key_id).await?;
            let headers: serde_json::Map<String, Value> = headers
                .iter()
                .filter_map(|h| h.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), json!(v.trim())))
                .collect();
            let mut input = json!({"body": read_json(&body)?, "headers": headers});
            if let Some(path) = mapping {
                input["mapping"] = read_json(&path)?;
            }
            show(&manage::preview_input(&state, &key, &provider, input).await?);
        }
    }
    Ok(())
}

pub(super) async fn inspect(id: String, json: bool, config: Config) -> anyhow::Result<()> {
    let state = state(config).await?;
    let view = inspect::find(&state, None, &id).await?;
    if json {
        println!("{view}");
        return Ok(());
    }
    let entry = &view["entry"];
    println!(
        "#{} {} {} {} status {} {}",
        entry["id"],
        entry["received_at"].as_str().unwrap_or(""),
        view["request_id"].as_str().unwrap_or(""),
        entry["event_type"].as_str().unwrap_or("-"),
        entry["status"],
        entry["error_code"].as_str().unwrap_or("")
    );
    println!(
        "key {}  source {}  from {}",
        entry["key_id"].as_str().unwrap_or("-"),
        entry["source"].as_str().unwrap_or("-"),
        entry["client_addr"].as_str().unwrap_or("-")
    );
    if let Some(of) = view["replay_of"].as_str() {
        println!(
            "replay of {of}: {}",
            view["signature_check"].as_str().unwrap_or("")
        );
    }
    let request = &view["request"];
    if request.is_null() {
        println!(
            "(request not kept: {})",
            view["why_not_kept"].as_str().unwrap_or("")
        );
        return Ok(());
    }
    println!(
        "\n{} {}",
        request["method"].as_str().unwrap_or(""),
        request["target"].as_str().unwrap_or("")
    );
    for h in request["headers"].as_array().into_iter().flatten() {
        println!(
            "{}: {}",
            h[0].as_str().unwrap_or(""),
            h[1].as_str().unwrap_or("")
        );
    }
    println!("\n{}", body_text(&request["body"]));
    if request["body_truncated"] == true {
        println!(
            "… (cut: {} bytes in all; not replayable)",
            request["body_bytes"]
        );
    }
    let response = &view["response"];
    println!(
        "\n→ {}\n{}",
        response["status"],
        body_text(&response["body"])
    );
    Ok(())
}

fn body_text(body: &Value) -> String {
    if let Some(v) = body.get("json") {
        return serde_json::to_string_pretty(v).expect("JSON");
    }
    body.get("text")
        .or_else(|| body.get("base64"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// `replay`: one kept request, or every one a filter takes within a company.
#[derive(Args)]
pub(super) struct ReplayArgs {
    /// An ingest-log id or a request id (`req_…`); without it, the filter below picks.
    id: Option<String>,
    /// The company whose requests a filter replays.
    #[arg(long)]
    company: Option<String>,
    /// Only requests answered with this status.
    #[arg(long)]
    status: Option<u16>,
    /// RFC 3339 time, e.g. 2025-01-15T00:00:00Z.
    #[arg(long)]
    since: Option<String>,
    /// Only requests received before this RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Only this key.
    #[arg(long)]
    key: Option<String>,
    /// Only this provider's requests.
    #[arg(long)]
    provider: Option<String>,
    /// Only requests of this event type.
    #[arg(long)]
    event_type: Option<String>,
    /// At most this many requests.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Print JSON, one object per line.
    #[arg(long)]
    json: bool,
}

pub(super) async fn replay(args: ReplayArgs, config: Config) -> anyhow::Result<()> {
    let state = state(config).await?;
    let by = format!("the CLI ({})", whoami());
    let done = match &args.id {
        Some(id) => inspect::replay(&state, None, id, &by, OPERATOR).await?,
        None => {
            let company = args.company.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "give an ingest-log id, or --company with a filter (--status, --since, …)"
                )
            })?;
            let company_id = existing_company(&state, &company).await?;
            let time = |t: &Option<String>| {
                t.as_deref()
                    .map(|v| {
                        clock::parse_rfc3339_ms(v)
                            .ok_or_else(|| anyhow::anyhow!("{v:?} is not an RFC 3339 time"))
                    })
                    .transpose()
            };
            let filter = KeptFilter {
                company_id,
                status: args.status,
                since_ms: time(&args.since)?,
                until_ms: time(&args.until)?,
                key_id: args.key.clone(),
                provider: args.provider.clone(),
                event_type: args.event_type.clone(),
                limit: args.limit.clamp(1, 1000),
            };
            inspect::replay_matching(&state, filter, &by, OPERATOR).await?
        }
    };
    state.store.flush().await;
    if args.json {
        println!("{done}");
    } else if let Some(results) = done["results"].as_array() {
        for r in results {
            println!("{}", replay_line(r));
        }
        println!(
            "replayed {}, {} succeeded",
            done["replayed"], done["succeeded"]
        );
    } else {
        println!("{}", replay_line(&done));
    }
    Ok(())
}

fn replay_line(r: &Value) -> String {
    match r["status"].as_u64() {
        Some(status) => format!(
            "{} → {} as {} {}",
            r["replay_of"].as_str().unwrap_or(""),
            r["request_id"].as_str().unwrap_or(""),
            status,
            r["answer"]["error"]["code"].as_str().unwrap_or("")
        ),
        None => format!(
            "{} not replayed: {}",
            r["replay_of"].as_str().unwrap_or(""),
            r["error"]["message"].as_str().unwrap_or("")
        ),
    }
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "operator".into())
}

/// `trigger`: a signed example of an inbound event type, or of a provider's event.
#[derive(Args)]
pub(super) struct TriggerArgs {
    /// An inbound event type (`work_order.created`, …), or with --provider a case of that
    /// provider's examples (`customer.created`); `--list` shows them.
    event_type: Option<String>,
    /// Send the provider's own body, signed its way, to /webhooks/inbound/PROVIDER/KEY.
    #[arg(long)]
    provider: Option<String>,
    /// The gateway's base URL (default: http:// + the configured listen address).
    #[arg(long)]
    url: Option<String>,
    /// The key to send as (default: the only active key).
    #[arg(long)]
    key: Option<String>,
    /// List what can be triggered.
    #[arg(long)]
    list: bool,
}

const ENVELOPE_EXAMPLES: &str = include_str!(concat!(env!("OUT_DIR"), "/trigger_examples.json"));
const PROVIDER_EXAMPLES: &str = include_str!("../../fixtures/providers/requests.json");

pub(super) async fn trigger(args: TriggerArgs, config: Config) -> anyhow::Result<()> {
    let envelopes: serde_json::Map<String, Value> =
        serde_json::from_str(ENVELOPE_EXAMPLES).expect("embedded examples are JSON");
    let provider_cases: Vec<Value> =
        serde_json::from_str(PROVIDER_EXAMPLES).expect("embedded provider examples are JSON");
    if args.list {
        envelopes.keys().for_each(|t| println!("{t}"));
        for c in &provider_cases {
            println!(
                "--provider {} {}",
                c["provider"].as_str().unwrap_or(""),
                c["case"].as_str().unwrap_or("")
            );
        }
        return Ok(());
    }
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen))
        .trim_end_matches('/')
        .to_string();
    let state = state(config).await?;
    let key = trigger_key(&state, args.key.as_deref()).await?;
    let client = reqwest::Client::new();
    let request = match &args.provider {
        None => {
            let name = args
                .event_type
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("name an event type (or --list)"))?;
            let example = envelopes.get(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "no example of {name:?}; `hookgate trigger --list` shows the event types"
                )
            })?;
            let body = serde_json::to_vec(example).expect("JSON");
            let ts = clock::now_secs();
            let secret = key
                .signing_secrets
                .first()
                .ok_or_else(|| anyhow::anyhow!("the key has no signing secret"))?;
            let signature =
                crate::crypto::hmac_hex(secret, &[ts.to_string().as_bytes(), b".", &body]);
            client
                .post(format!("{base}/webhooks/inbound"))
                .header("content-type", "application/json")
                .header("x-api-key", &key.id)
                .header("x-webhook-timestamp", ts.to_string())
                .header("x-webhook-signature", format!("sha256={signature}"))
                .body(body)
        }
        Some(provider) => {
            let provider = manage::known(provider)?;
            let case = provider_cases
                .iter()
                .filter(|c| c["provider"] == provider.name.as_str())
                .find(|c| args.event_type.as_deref().is_none_or(|e| c["case"] == e))
                .ok_or_else(|| {
                    anyhow::anyhow!("no {} example of that name; see --list", provider.name)
                })?;
            provider_request(
                &client,
                &base,
                &key,
                provider,
                case,
                &state.config.public_url,
            )?
        }
    };
    let response = request
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{base}: {e}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    println!("→ {status}\n{text}");
    if status >= 400 {
        anyhow::bail!("the gateway answered {status}");
    }
    Ok(())
}

async fn trigger_key(state: &AppState, key: Option<&str>) -> anyhow::Result<Arc<ApiKey>> {
    let id = match key {
        Some(id) => id.to_string(),
        None => {
            let active: Vec<_> = state
                .keys
                .list(None)
                .await?
                .into_iter()
                .filter(|k| !k.revoked)
                .collect();
            match active.as_slice() {
                [only] => only.key_id.clone(),
                [] => anyhow::bail!("no API key yet: `hookgate keys create`"),
                _ => anyhow::bail!("several keys: name one with --key"),
            }
        }
    };
    Ok(manage::key_by_id(state, &id).await?)
}

/// The provider's example, sent to this key's URL and signed now with its secret there.
fn provider_request(
    client: &reqwest::Client,
    base: &str,
    key: &ApiKey,
    provider: &providers::Provider,
    case: &Value,
    public_url: &str,
) -> anyhow::Result<reqwest::RequestBuilder> {
    let secret = key.provider_secret(&provider.name).ok_or_else(|| {
        anyhow::anyhow!(
            "key {} has no {} secret: `hookgate keys update {} --provider-secret {}=…`",
            key.id,
            provider.name,
            key.id,
            provider.name
        )
    })?;
    let query = case["target"]
        .as_str()
        .and_then(|t| t.split_once('?'))
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    let target = format!("/webhooks/inbound/{}/{}{query}", provider.name, key.id);
    let body = case["body"].as_str().unwrap_or("").to_string();
    let method = case["method"].as_str().unwrap_or("POST");
    let mut headers: Vec<(String, String)> = case["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string()))
        .collect();
    let fresh = signature::sign(
        provider,
        secret,
        &signature::Request {
            method,
            target: &target,
            headers: &headers,
            body: body.as_bytes(),
            public_url,
        },
        clock::now_secs(),
    )
    .map_err(anyhow::Error::msg)?;
    headers.retain(|(name, _)| !fresh.iter().any(|(n, _)| n == name));
    headers.extend(fresh);
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut request = client.request(method, format!("{base}{target}")).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    Ok(request)
}

/// `listen`: a company's outbound events, forwarded to a local URL as they happen.
#[derive(Args)]
pub(super) struct ListenArgs {
    /// Where to POST each event, e.g. http://localhost:3000/hook.
    #[arg(long)]
    forward_to: String,
    /// The company whose events to forward (default: the company of --key).
    #[arg(long)]
    company: Option<String>,
    /// Forward as this key's subscriptions would receive them: its own changes are skipped.
    #[arg(long)]
    key: Option<String>,
    /// Event types, as a subscription's (default: everything, pass-through events too).
    #[arg(long = "events", value_delimiter = ',')]
    events: Vec<String>,
    /// The secret deliveries are signed with (default: a new one, printed at start).
    #[arg(long)]
    secret: Option<String>,
    /// Payload: full or thin.
    #[arg(long, default_value = "full")]
    payload: String,
}

pub(super) async fn listen(args: ListenArgs, config: Config) -> anyhow::Result<()> {
    let state = state(config).await?;
    let key = match &args.key {
        Some(id) => Some(manage::key_by_id(&state, id).await?),
        None => None,
    };
    let company_id = match (&args.company, &key) {
        (Some(name), _) => existing_company(&state, name).await?,
        (None, Some(key)) => key.company_id.clone(),
        (None, None) => anyhow::bail!("name --company or --key"),
    };
    let patterns = if args.events.is_empty() {
        vec!["*".to_string(), "source.*".to_string()]
    } else {
        events::parse_patterns(&args.events)?
    };
    let secret = args.secret.clone().unwrap_or_else(|| {
        format!(
            "whsec_{}",
            crate::crypto::base64_encode(&crate::crypto::random_bytes::<32>())
        )
    });
    let signing_secret = signing::SigningSecret::new(&secret);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let company = company_id.clone();
    // Follows the published order, as subscriptions' deliveries do, from now: the lines below
    // say it is listening only once "now" is fixed, so nothing sent after them is missed.
    let mut after = state
        .store
        .write(move |tx| tx.latest_position(&company))
        .await?;
    eprintln!(
        "forwarding events of {company_id} to {} (Ctrl-C stops)",
        args.forward_to
    );
    eprintln!("signed as a subscription with secret {secret}");
    loop {
        let company = company_id.clone();
        let batch = state
            .store
            .read(move |r| r.events_after(&company, after, 200))
            .await?;
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        for event in batch {
            after = event.position;
            let echo = key
                .as_ref()
                .is_some_and(|k| event.origin_key_id.as_deref() == Some(k.id.as_str()));
            if echo || !events::matches(&patterns, &event.event_type) {
                continue;
            }
            let body = signing::body(
                &args.payload,
                &event.payload,
                &event.entity,
                &event.record_id,
            );
            let meta = signing::DeliveryMeta {
                webhook_id: &event.event_id,
                event_type: &event.event_type,
                subscription_name: "hookgate-listen",
                attempt: 0,
                timestamp: clock::now_secs(),
            };
            let mut request = client
                .post(&args.forward_to)
                .header("content-type", "application/json");
            for (name, value) in signing::headers(&[&signing_secret], &meta, &body) {
                request = request.header(name, value.as_ref());
            }
            let outcome = match request.body(body.into_owned()).send().await {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) => format!("failed: {e}"),
            };
            println!(
                "{} {:<36} {} → {outcome}",
                clock::now_rfc3339(),
                event.event_type,
                event.event_id
            );
        }
    }
}
