//! Configuration: the documented defaults embedded from `config/hookgate.toml`, then the
//! config file, then `HOOKGATE_*` environment variables, layered by `figment` (which remembers
//! what set each value). Validated once, reporting every bad value at once with its key, its
//! value (secrets hidden) and what set it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

const EMBEDDED_DEFAULTS: &str = include_str!("../config/hookgate.toml");
pub const DEFAULT_CONFIG_PATH: &str = "config/hookgate.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    /// A bad value, with the setting's dotted name, the value as given (secrets hidden) and
    /// what set it (the file or the environment variable).
    #[error("invalid config value for `{key}` = {value} ({origin}): {reason}")]
    Invalid {
        key: String,
        value: String,
        origin: String,
        reason: String,
    },
}

/// Every problem with a configuration (at least one), found in one pass.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} configuration errors:", many.len())?;
                many.iter().try_for_each(|e| write!(f, "\n  - {e}"))
            }
        }
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![e])
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    /// A SQLite file path, or a `postgres://` URL.
    pub database: String,
    /// Redis for rate limits shared by every node (`redis://host:6379`); empty: per node.
    pub redis_url: String,
    pub public_url: String,
    pub master_key: Secret,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    pub max_body_bytes_in_flight: usize,
    pub header_timeout_secs: u64,
    pub body_timeout_secs: u64,
    pub request_timeout_secs: u64,
    pub max_listed_violations: usize,
    pub timestamp_tolerance_secs: i64,
    pub rotation_overlap_secs: i64,
    pub dynamics_header: String,
    pub idempotency_ttl_secs: i64,
    pub shutdown_grace_secs: u64,
    pub rate_limit: RateLimitConfig,
    pub writer: WriterConfig,
    pub retention: RetentionConfig,
    pub outbound: OutboundConfig,
    pub console: ConsoleConfig,
    pub requests: RequestsConfig,
}

/// Keeping inbound requests (headers and body) for `inspect` and `replay`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsConfig {
    /// Keep them (a key may opt out: `keys update --keep-requests false`).
    pub keep: bool,
    /// The most of one body kept; a longer body is cut, and cannot be replayed.
    pub max_body_bytes: usize,
}

/// A configured secret: usable, but never printed by `Debug`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

/// Shown (in the effective settings) as `<redacted>`, or `""` when unset.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub inbound_per_minute: u32,
    pub inbound_per_hour: u32,
    pub auth_failures_per_minute: u32,
    pub auth_failure_max_addresses: usize,
    pub rest_per_minute: u32,
    pub rest_per_hour: u32,
    pub rest_per_day: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WriterConfig {
    pub max_batch: usize,
    pub connections: usize,
    pub wal_restart_bytes: u64,
    pub max_database_bytes: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub ingest_log_days: u32,
    pub events_days: u32,
    pub deliveries_days: u32,
    /// Kept requests (headers and bodies), usually held for less time than the log.
    pub requests_days: u32,
    pub prune_batch: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    pub allow_http_urls: bool,
    pub allow_private_urls: bool,
    pub retry_schedule: Vec<u64>,
    pub delivery_timeout_secs: u64,
    pub disable_after_failures: u32,
    pub delivery_concurrency: usize,
    pub per_subscription_concurrency: usize,
    /// Requests written ahead of their answers on one connection (HTTP/1.1 pipelining); 1 is
    /// off.
    pub pipeline_depth: usize,
    /// Deliveries started per second across all subscriptions, at most; 0 is no cap.
    pub max_deliveries_per_second: u32,
}

/// The operator's console at `/admin`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Signs in as the admin, who sees every company; empty: only key tokens sign in.
    pub admin_password: Secret,
    /// A console session ends after this long without a request.
    pub session_idle_secs: u64,
}

/// Shorter admin passwords are refused at start: the console is reachable wherever the
/// gateway is, and failed logins are only slowed down, not stopped.
pub const MIN_ADMIN_PASSWORD_CHARS: usize = 12;

/// The deepest delivery pipeline allowed: deeper saves little more, and every request of a
/// pipeline waits behind the slowest answer before it.
pub const MOST_PIPELINE_DEPTH: usize = 64;

impl Config {
    /// Loads defaults, then `path` (an explicit path must exist; the default path may be
    /// absent), then the environment. Reports every bad value, not just the first.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        Self::load_with_env(path, |name| std::env::var(name).ok())
    }

    pub fn load_with_env(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let mut figment = Figment::from(Toml::string(EMBEDDED_DEFAULTS));
        let (file, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                // Checked here so that a syntax error names the file in our words.
                text.parse::<toml::Table>()
                    .map_err(|source| ConfigError::Parse {
                        path: file.clone(),
                        source,
                    })?;
                figment = figment.merge(Toml::file_exact(&file));
            }
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ConfigError::Read { path: file, source }.into()),
        }
        let mut errors = Vec::new();
        let figment = figment.merge(EnvOverlay::read(&env, &mut errors));
        let mut check = Check {
            figment: Figment::new(),
            errors,
        };
        let mut merged = check.dict(&figment);
        let defaults = check.dict(&Figment::from(Toml::string(EMBEDDED_DEFAULTS)));
        check.figment = figment;
        check.shape(&mut merged, &defaults, "");
        match Value::from(merged.clone()).deserialize::<Config>() {
            Ok(config) => {
                config
                    .validate(&mut |key, reason| check.invalid(lookup(&merged, key), key, reason));
                if check.errors.is_empty() {
                    Ok(config)
                } else {
                    Err(ConfigErrors(check.errors))
                }
            }
            Err(e) => {
                check.errors.push(ConfigError::Invalid {
                    key: "config".into(),
                    value: "…".into(),
                    origin: "merged".into(),
                    reason: e.to_string(),
                });
                Err(ConfigErrors(check.errors))
            }
        }
    }

    fn validate(&self, invalid: &mut impl FnMut(&str, &str)) {
        if let Err(e) = self.listen.parse::<SocketAddr>() {
            invalid("listen", &e.to_string());
        }
        if !self.master_key.0.is_empty()
            && !matches!(hex::decode(&self.master_key.0), Ok(bytes) if bytes.len() == 32)
        {
            invalid("master_key", "must be 64 hex characters");
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            invalid("public_url", "must start with http:// or https://");
        }
        if self.max_body_bytes == 0 {
            invalid("max_body_bytes", "must be positive");
        }
        if self.max_body_bytes_in_flight < self.max_body_bytes {
            invalid(
                "max_body_bytes_in_flight",
                "must be at least max_body_bytes",
            );
        }
        for (key, value) in [
            ("header_timeout_secs", self.header_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
            ("request_timeout_secs", self.request_timeout_secs),
            ("max_listed_violations", self.max_listed_violations as u64),
            (
                "rate_limit.auth_failure_max_addresses",
                self.rate_limit.auth_failure_max_addresses as u64,
            ),
        ] {
            if value == 0 {
                invalid(key, "must be positive");
            }
        }
        if self.timestamp_tolerance_secs <= 0 {
            invalid("timestamp_tolerance_secs", "must be positive");
        }
        let rl = &self.rate_limit;
        for (key, value) in [
            ("rate_limit.inbound_per_minute", rl.inbound_per_minute),
            ("rate_limit.inbound_per_hour", rl.inbound_per_hour),
            (
                "rate_limit.auth_failures_per_minute",
                rl.auth_failures_per_minute,
            ),
            ("rate_limit.rest_per_minute", rl.rest_per_minute),
            ("rate_limit.rest_per_hour", rl.rest_per_hour),
            ("rate_limit.rest_per_day", rl.rest_per_day),
        ] {
            if value == 0 {
                invalid(key, "must be positive");
            }
        }
        if self.writer.max_batch == 0 {
            invalid("writer.max_batch", "must be positive");
        }
        if self.writer.connections == 0 {
            invalid("writer.connections", "must be positive");
        }
        if self.writer.wal_restart_bytes < 1 << 20 {
            invalid("writer.wal_restart_bytes", "must be at least 1 MiB");
        }
        let redis = self.redis_url.trim();
        if !(redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            invalid(
                "redis_url",
                "must be empty or a redis:// (or rediss://) URL",
            );
        }
        if self.database.trim().is_empty() {
            invalid("database", "must name a SQLite file or a postgres:// URL");
        }
        if self.retention.prune_batch == 0 {
            invalid("retention.prune_batch", "must be positive");
        }
        if self.outbound.retry_schedule.is_empty() {
            invalid("outbound.retry_schedule", "needs at least one attempt");
        }
        if self.outbound.delivery_concurrency == 0 {
            invalid("outbound.delivery_concurrency", "must be positive");
        }
        if self.outbound.per_subscription_concurrency == 0 {
            invalid("outbound.per_subscription_concurrency", "must be positive");
        }
        if !(1..=MOST_PIPELINE_DEPTH).contains(&self.outbound.pipeline_depth) {
            invalid(
                "outbound.pipeline_depth",
                &format!("must be 1 (off) to {MOST_PIPELINE_DEPTH}"),
            );
        }
        let password = &self.console.admin_password.0;
        // A password shaped like a REST token would be taken for one at login.
        if !password.is_empty()
            && (password.chars().count() < MIN_ADMIN_PASSWORD_CHARS || password.starts_with("hkt_"))
        {
            invalid(
                "console.admin_password",
                &format!(
                    "must be empty (no admin login) or at least {MIN_ADMIN_PASSWORD_CHARS} characters, not starting with hkt_"
                ),
            );
        }
        if self.console.session_idle_secs == 0 {
            invalid("console.session_idle_secs", "must be positive");
        }
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().expect("validated at load")
    }

    /// The settings in force, secrets hidden, as one line of JSON (logged at start).
    pub fn effective(&self) -> String {
        serde_json::to_string(self).expect("config serializes")
    }
}

/// Secrets whose value an error message must not show.
const SECRET_KEYS: &[&str] = &["master_key", "console.admin_password"];

/// Settings whose value is one of a few words.
const CHOICES: &[(&str, &[&str])] = &[("log_format", &["pretty", "json"])];

/// The layered configuration and the problems found in it.
struct Check {
    figment: Figment,
    errors: Vec<ConfigError>,
}

impl Check {
    /// Everything `figment` holds, as one table.
    fn dict(&mut self, figment: &Figment) -> Dict {
        match figment.data() {
            Ok(mut data) => data.remove(&Profile::Default).unwrap_or_default(),
            Err(e) => {
                self.errors.push(ConfigError::Invalid {
                    key: "config".into(),
                    value: "…".into(),
                    origin: "merged".into(),
                    reason: e.to_string(),
                });
                Dict::new()
            }
        }
    }

    /// Every key must exist in the defaults (which list every setting) with the same type,
    /// integers must not be negative, and words must be among their choices. A bad value is
    /// reported and replaced by its default, so that the other checks still run.
    fn shape(&mut self, merged: &mut Dict, defaults: &Dict, prefix: &str) {
        let keys: Vec<String> = merged.keys().cloned().collect();
        for key in keys {
            let dotted = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let reason = match (defaults.get(&key), merged.get_mut(&key)) {
                (None, _) => Some("unknown setting".to_string()),
                (Some(Value::Dict(_, inner)), Some(Value::Dict(_, given))) => {
                    self.shape(given, inner, &dotted);
                    None
                }
                (Some(default), Some(value)) if kind(default) != kind(value) => {
                    Some(format!("expected {}", kind(default)))
                }
                (Some(_), Some(value)) if value.to_i128().is_some_and(|n| n < 0) => {
                    Some("must not be negative".to_string())
                }
                (Some(_), value) => CHOICES
                    .iter()
                    .find(|(k, _)| *k == dotted)
                    .filter(|(_, words)| {
                        !words.contains(&value.and_then(|v| v.as_str()).unwrap_or_default())
                    })
                    .map(|(_, words)| format!("must be one of {}", words.join(", "))),
            };
            if let Some(reason) = reason {
                self.invalid(merged.get(&key), &dotted, &reason);
                match defaults.get(&key) {
                    Some(default) => merged.insert(key, default.clone()),
                    None => merged.remove(&key),
                };
            }
        }
    }

    /// Reports `value`, the setting `dotted`, as invalid, with what set it.
    fn invalid(&mut self, value: Option<&Value>, dotted: &str, reason: &str) {
        let origin = self.origin(dotted, value);
        self.errors.push(ConfigError::Invalid {
            key: dotted.to_string(),
            value: value.map_or("(missing)".to_string(), |v| shown(dotted, v)),
            origin,
            reason: reason.to_string(),
        });
    }

    /// What set `value`: the file, an environment variable, or the defaults.
    fn origin(&self, dotted: &str, value: Option<&Value>) -> String {
        let metadata = value
            .and_then(|v| self.figment.get_metadata(v.tag()))
            .or_else(|| self.figment.find_metadata(dotted));
        match metadata {
            Some(Metadata {
                source: Some(figment::Source::File(path)),
                ..
            }) => format!("from {}", path.display()),
            Some(m) if m.name == ENV_NAME => {
                let keys: Vec<&str> = dotted.split('.').collect();
                format!("set by {}", m.interpolate(&Profile::Default, &keys))
            }
            _ => "the default".to_string(),
        }
    }
}

/// The value of the setting `dotted` in `table`.
fn lookup<'t>(table: &'t Dict, dotted: &str) -> Option<&'t Value> {
    let (first, rest) = dotted.split_once('.').unwrap_or((dotted, ""));
    let value = table.get(first)?;
    match rest {
        "" => Some(value),
        rest => lookup(value.as_dict()?, rest),
    }
}

/// A value as an error message shows it: TOML syntax, secrets hidden.
fn shown(dotted: &str, value: &Value) -> String {
    if SECRET_KEYS.contains(&dotted) {
        let length = value.as_str().map_or(0, |s| s.chars().count());
        return format!("<hidden, {length} characters>");
    }
    toml::Value::try_from(value).map_or_else(|_| "…".to_string(), |v| v.to_string())
}

/// What kind of value a setting takes, as a message names it.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::String(..) | Value::Char(..) => "a string",
        Value::Num(..) if value.to_i128().is_some() => "an integer",
        Value::Num(..) => "a number",
        Value::Bool(..) => "true or false",
        Value::Array(..) => "a list",
        _ => "a table",
    }
}

/// The name of the environment's layer, by which an origin is recognised.
const ENV_NAME: &str = "HOOKGATE_* environment variables";

/// The `HOOKGATE_*` variables that are set, as a figment layer whose values name their
/// variable.
struct EnvOverlay(Dict);

impl EnvOverlay {
    /// Reads the variables; one that does not parse is reported and left out.
    fn read(env: &impl Fn(&str) -> Option<String>, errors: &mut Vec<ConfigError>) -> EnvOverlay {
        let mut root = Dict::new();
        for &(var, dotted, kind) in ENV_VARS {
            let Some(raw) = env(var) else { continue };
            let Some(value) = kind.parse(raw.trim()) else {
                errors.push(ConfigError::Invalid {
                    key: dotted.to_string(),
                    value: shown(dotted, &Value::from(raw.clone())),
                    origin: format!("set by {var}"),
                    reason: format!("cannot parse it as {}", kind.describe()),
                });
                continue;
            };
            let (table, key) = match dotted.split_once('.') {
                None => (&mut root, dotted),
                Some((section, key)) => {
                    let section = root
                        .entry(section.to_string())
                        .or_insert_with(|| Value::from(Dict::new()));
                    let Value::Dict(_, table) = section else {
                        unreachable!("sections are tables")
                    };
                    (table, key)
                }
            };
            table.insert(key.to_string(), value);
        }
        EnvOverlay(root)
    }
}

impl Provider for EnvOverlay {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENV_NAME).interpolater(|_: &Profile, keys: &[&str]| {
            let dotted = keys.join(".");
            ENV_VARS
                .iter()
                .find(|(_, key, _)| *key == dotted)
                .map_or_else(|| dotted.clone(), |(var, _, _)| var.to_string())
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

/// The environment variables and the settings they set: `HOOKGATE_<KEY>` for top-level keys,
/// and also for section keys whose names are unique (e.g. `HOOKGATE_ALLOW_HTTP_URLS` sets
/// `outbound.allow_http_urls`).
#[rustfmt::skip]
const ENV_VARS: &[(&str, &str, Kind)] = &[
    ("HOOKGATE_LISTEN", "listen", Kind::Str),
    ("HOOKGATE_DATABASE", "database", Kind::Str),
    ("HOOKGATE_REDIS_URL", "redis_url", Kind::Str),
    ("HOOKGATE_PUBLIC_URL", "public_url", Kind::Str),
    ("HOOKGATE_MASTER_KEY", "master_key", Kind::Str),
    ("HOOKGATE_LOG_FORMAT", "log_format", Kind::Str),
    ("HOOKGATE_MAX_BODY_BYTES", "max_body_bytes", Kind::Int),
    ("HOOKGATE_MAX_BODY_BYTES_IN_FLIGHT", "max_body_bytes_in_flight", Kind::Int),
    ("HOOKGATE_HEADER_TIMEOUT_SECS", "header_timeout_secs", Kind::Int),
    ("HOOKGATE_BODY_TIMEOUT_SECS", "body_timeout_secs", Kind::Int),
    ("HOOKGATE_REQUEST_TIMEOUT_SECS", "request_timeout_secs", Kind::Int),
    ("HOOKGATE_MAX_LISTED_VIOLATIONS", "max_listed_violations", Kind::Int),
    ("HOOKGATE_TIMESTAMP_TOLERANCE_SECS", "timestamp_tolerance_secs", Kind::Int),
    ("HOOKGATE_ROTATION_OVERLAP_SECS", "rotation_overlap_secs", Kind::Int),
    ("HOOKGATE_DYNAMICS_HEADER", "dynamics_header", Kind::Str),
    ("HOOKGATE_IDEMPOTENCY_TTL_SECS", "idempotency_ttl_secs", Kind::Int),
    ("HOOKGATE_SHUTDOWN_GRACE_SECS", "shutdown_grace_secs", Kind::Int),
    ("HOOKGATE_INBOUND_PER_MINUTE", "rate_limit.inbound_per_minute", Kind::Int),
    ("HOOKGATE_INBOUND_PER_HOUR", "rate_limit.inbound_per_hour", Kind::Int),
    ("HOOKGATE_AUTH_FAILURES_PER_MINUTE", "rate_limit.auth_failures_per_minute", Kind::Int),
    ("HOOKGATE_AUTH_FAILURE_MAX_ADDRESSES", "rate_limit.auth_failure_max_addresses", Kind::Int),
    ("HOOKGATE_REST_PER_MINUTE", "rate_limit.rest_per_minute", Kind::Int),
    ("HOOKGATE_REST_PER_HOUR", "rate_limit.rest_per_hour", Kind::Int),
    ("HOOKGATE_REST_PER_DAY", "rate_limit.rest_per_day", Kind::Int),
    ("HOOKGATE_WRITER_MAX_BATCH", "writer.max_batch", Kind::Int),
    ("HOOKGATE_WRITER_CONNECTIONS", "writer.connections", Kind::Int),
    ("HOOKGATE_WAL_RESTART_BYTES", "writer.wal_restart_bytes", Kind::Int),
    ("HOOKGATE_MAX_DATABASE_BYTES", "writer.max_database_bytes", Kind::Int),
    ("HOOKGATE_RETENTION_INGEST_LOG_DAYS", "retention.ingest_log_days", Kind::Int),
    ("HOOKGATE_RETENTION_EVENTS_DAYS", "retention.events_days", Kind::Int),
    ("HOOKGATE_RETENTION_REQUESTS_DAYS", "retention.requests_days", Kind::Int),
    ("HOOKGATE_KEEP_REQUESTS", "requests.keep", Kind::Bool),
    ("HOOKGATE_KEEP_REQUEST_BYTES", "requests.max_body_bytes", Kind::Int),
    ("HOOKGATE_RETENTION_DELIVERIES_DAYS", "retention.deliveries_days", Kind::Int),
    ("HOOKGATE_ALLOW_HTTP_URLS", "outbound.allow_http_urls", Kind::Bool),
    ("HOOKGATE_ALLOW_PRIVATE_URLS", "outbound.allow_private_urls", Kind::Bool),
    ("HOOKGATE_RETRY_SCHEDULE", "outbound.retry_schedule", Kind::IntList),
    ("HOOKGATE_DELIVERY_TIMEOUT_SECS", "outbound.delivery_timeout_secs", Kind::Int),
    ("HOOKGATE_DISABLE_AFTER_FAILURES", "outbound.disable_after_failures", Kind::Int),
    ("HOOKGATE_DELIVERY_CONCURRENCY", "outbound.delivery_concurrency", Kind::Int),
    ("HOOKGATE_PER_SUBSCRIPTION_CONCURRENCY", "outbound.per_subscription_concurrency", Kind::Int),
    ("HOOKGATE_DELIVERY_PIPELINE_DEPTH", "outbound.pipeline_depth", Kind::Int),
    ("HOOKGATE_MAX_DELIVERIES_PER_SECOND", "outbound.max_deliveries_per_second", Kind::Int),
    ("HOOKGATE_ADMIN_PASSWORD", "console.admin_password", Kind::Str),
    ("HOOKGATE_CONSOLE_SESSION_IDLE_SECS", "console.session_idle_secs", Kind::Int),
];

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    IntList,
}

impl Kind {
    fn parse(self, raw: &str) -> Option<Value> {
        Some(match self {
            Kind::Str => Value::from(raw.to_string()),
            Kind::Int => Value::from(raw.parse::<i64>().ok()?),
            Kind::Bool => Value::from(match raw.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return None,
            }),
            Kind::IntList => Value::from(
                raw.split(',')
                    .map(|s| s.trim().parse::<i64>().ok())
                    .collect::<Option<Vec<_>>>()?,
            ),
        })
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Int => "an integer",
            Kind::Bool => "true or false",
            Kind::IntList => "comma-separated integers",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(Some(Path::new(EMBEDDED_PATH)), move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }
    const EMBEDDED_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/hookgate.toml");

    #[test]
    fn defaults_match_the_seed() {
        let c = load(&[]).unwrap();
        assert_eq!(c.rate_limit.inbound_per_hour, 1000);
        assert_eq!(c.rate_limit.inbound_per_minute, 50);
        assert_eq!(
            c.outbound.retry_schedule,
            vec![0, 60, 300, 900, 3600, 21600]
        );
        assert_eq!(c.max_body_bytes, 1 << 20);
    }

    #[test]
    fn env_overrides_file() {
        let c = load(&[
            ("HOOKGATE_LISTEN", "127.0.0.1:9999"),
            ("HOOKGATE_RETRY_SCHEDULE", "0,1,1"),
            ("HOOKGATE_ALLOW_HTTP_URLS", "true"),
        ])
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9999");
        assert_eq!(c.outbound.retry_schedule, vec![0, 1, 1]);
        assert!(c.outbound.allow_http_urls);
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = load(&[("HOOKGATE_MASTER_KEY", "abc")]).unwrap_err();
        assert!(err.to_string().contains("master_key"), "{err}");
        let err = load(&[("HOOKGATE_INBOUND_PER_HOUR", "lots")]).unwrap_err();
        assert!(
            err.to_string().contains("HOOKGATE_INBOUND_PER_HOUR"),
            "{err}"
        );
    }

    #[test]
    fn the_admin_password_is_long_and_not_token_shaped() {
        assert!(load(&[("HOOKGATE_ADMIN_PASSWORD", "a long admin password")]).is_ok());
        for weak in ["short", "hkt_looks-like-a-token"] {
            let err = load(&[("HOOKGATE_ADMIN_PASSWORD", weak)]).unwrap_err();
            assert!(err.to_string().contains("console.admin_password"), "{err}");
            assert!(
                !err.to_string().contains(weak),
                "the secret is not echoed: {err}"
            );
        }
    }

    #[test]
    fn every_bad_value_is_reported_at_once_with_its_origin_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(
            &file,
            "listen = 8080\nlog_format = \"xml\"\nlisten_port = 1\n[outbound]\nretry_schedule = []\ndelivery_timeout_secs = -1\n",
        )
        .unwrap();
        let env = [
            ("HOOKGATE_MASTER_KEY", "abc"),
            ("HOOKGATE_INBOUND_PER_HOUR", "lots"),
            ("HOOKGATE_REST_PER_DAY", "0"),
        ];
        let errors = Config::load_with_env(Some(&file), |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap_err();
        let text = errors.to_string();
        let from_file = format!("(from {})", file.display());
        for expected in [
            format!("`listen` = 8080 {from_file}: expected a string"),
            format!("`log_format` = \"xml\" {from_file}: must be one of pretty, json"),
            format!("`listen_port` = 1 {from_file}: unknown setting"),
            format!("`outbound.retry_schedule` = [] {from_file}: needs at least one attempt"),
            format!("`outbound.delivery_timeout_secs` = -1 {from_file}: must not be negative"),
            "`master_key` = <hidden, 3 characters> (set by HOOKGATE_MASTER_KEY): must be 64 hex characters".to_string(),
            "`rate_limit.inbound_per_hour` = \"lots\" (set by HOOKGATE_INBOUND_PER_HOUR)".to_string(),
            "`rate_limit.rest_per_day` = 0 (set by HOOKGATE_REST_PER_DAY): must be positive".to_string(),
        ] {
            assert!(text.contains(&expected), "{expected:?} not in:\n{text}");
        }
        assert_eq!(errors.0.len(), 8, "{text}");
        assert!(!text.contains("\"abc\""), "the master key is shown: {text}");
    }

    #[test]
    fn the_effective_settings_hide_secrets() {
        let c = load(&[("HOOKGATE_LISTEN", "127.0.0.1:9999")]).unwrap();
        let shown: serde_json::Value = serde_json::from_str(&c.effective()).unwrap();
        assert_eq!(shown["master_key"], "");
        assert_eq!(shown["listen"], "127.0.0.1:9999");
        assert_eq!(shown["outbound"]["retry_schedule"][1], 60);
        let c = load(&[(
            "HOOKGATE_MASTER_KEY",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        )])
        .unwrap();
        assert!(!c.effective().contains("0011"), "{}", c.effective());
        assert!(c.effective().contains("<redacted>"));
    }
}
