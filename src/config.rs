//! Configuration: the documented defaults embedded from `config/hookgate.toml`, then the
//! config file, then `HOOKGATE_*` environment variables. Validated once, failing fast with a
//! message that names the offending key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
        let defaults: toml::Table = EMBEDDED_DEFAULTS
            .parse()
            .expect("embedded default config is valid TOML");
        let mut layers = Layers {
            merged: defaults.clone(),
            origins: HashMap::new(),
            errors: Vec::new(),
        };
        let (file, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let table: toml::Table = text.parse().map_err(|source| ConfigError::Parse {
                    path: file.clone(),
                    source,
                })?;
                layers.merge_file(&file, table);
            }
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ConfigError::Read { path: file, source }.into()),
        }
        layers.apply_env(&env);
        layers.check_shape(&defaults, "");
        let config = toml::Value::Table(layers.merged.clone()).try_into::<Config>();
        match config {
            Ok(config) => {
                config.validate(&mut layers);
                if layers.errors.is_empty() {
                    Ok(config)
                } else {
                    Err(ConfigErrors(layers.errors))
                }
            }
            Err(e) => {
                layers.errors.push(ConfigError::Invalid {
                    key: "config".into(),
                    value: "…".into(),
                    origin: "merged".into(),
                    reason: e.to_string(),
                });
                Err(ConfigErrors(layers.errors))
            }
        }
    }

    fn validate(&self, layers: &mut Layers) {
        let mut invalid = |key: &str, reason: &str| layers.invalid(key, reason);
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

/// The layers merged so far, where each value came from, and the problems found.
struct Layers {
    merged: toml::Table,
    /// Dotted key → what set it, for keys not at their default.
    origins: HashMap<String, String>,
    errors: Vec<ConfigError>,
}

impl Layers {
    fn merge_file(&mut self, path: &Path, overlay: toml::Table) {
        let origin = format!("from {}", path.display());
        merge(&mut self.merged, overlay, "", &mut |key| {
            self.origins.insert(key, origin.clone());
        });
    }

    fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) {
        for &(var, section, key, kind) in ENV_VARS {
            let Some(raw) = env(var) else { continue };
            let dotted = section.map_or(key.to_string(), |s| format!("{s}.{key}"));
            let origin = format!("set by {var}");
            let Some(value) = kind.parse(raw.trim()) else {
                self.errors.push(ConfigError::Invalid {
                    value: shown(&dotted, &toml::Value::String(raw.clone())),
                    key: dotted,
                    origin,
                    reason: format!("cannot parse it as {}", kind.describe()),
                });
                continue;
            };
            let target = match section {
                None => &mut self.merged,
                Some(name) => self
                    .merged
                    .entry(name)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .expect("config sections are tables"),
            };
            target.insert(key.to_string(), value);
            self.origins.insert(dotted, origin);
        }
    }

    /// Every key must exist in the defaults (which list every setting) with the same type,
    /// integers must not be negative, and words must be among their choices. A bad value is
    /// reported and replaced by its default, so that the other checks still run.
    fn check_shape(&mut self, defaults: &toml::Table, prefix: &str) {
        let keys: Vec<String> = table_at(&self.merged, prefix).keys().cloned().collect();
        for key in keys {
            let dotted = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let value = table_at(&self.merged, prefix)[&key].clone();
            let reason = match defaults.get(&key) {
                None => Some("unknown setting".to_string()),
                Some(toml::Value::Table(inner)) if value.is_table() => {
                    self.check_shape(inner, &dotted);
                    None
                }
                Some(default) if default.type_str() != value.type_str() => {
                    Some(format!("expected {}", describe(default)))
                }
                Some(_) if value.as_integer().is_some_and(|n| n < 0) => {
                    Some("must not be negative".to_string())
                }
                Some(_) => CHOICES
                    .iter()
                    .find(|(k, _)| *k == dotted)
                    .filter(|(_, words)| !words.contains(&value.as_str().unwrap_or_default()))
                    .map(|(_, words)| format!("must be one of {}", words.join(", "))),
            };
            if let Some(reason) = reason {
                self.invalid(&dotted, &reason);
                let table = table_at_mut(&mut self.merged, prefix);
                match defaults.get(&key) {
                    Some(default) => table.insert(key, default.clone()),
                    None => table.remove(&key),
                };
            }
        }
    }

    fn invalid(&mut self, dotted: &str, reason: &str) {
        let value = dotted
            .split('.')
            .try_fold(&toml::Value::Table(self.merged.clone()), |v, k| v.get(k))
            .map(|v| shown(dotted, v))
            .unwrap_or_else(|| "(missing)".to_string());
        self.errors.push(ConfigError::Invalid {
            key: dotted.to_string(),
            value,
            origin: self
                .origins
                .get(dotted)
                .cloned()
                .unwrap_or_else(|| "the default".to_string()),
            reason: reason.to_string(),
        });
    }
}

/// A value as an error message shows it: TOML syntax, secrets hidden.
fn shown(dotted: &str, value: &toml::Value) -> String {
    if SECRET_KEYS.contains(&dotted) {
        let length = value.as_str().map_or(0, |s| s.chars().count());
        return format!("<hidden, {length} characters>");
    }
    value.to_string()
}

fn describe(default: &toml::Value) -> &'static str {
    match default {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Array(_) => "a list",
        _ => "a table",
    }
}

fn table_at<'t>(table: &'t toml::Table, dotted: &str) -> &'t toml::Table {
    dotted
        .split('.')
        .filter(|k| !k.is_empty())
        .fold(table, |t, k| {
            t[k].as_table().expect("checked to be a table")
        })
}

fn table_at_mut<'t>(table: &'t mut toml::Table, dotted: &str) -> &'t mut toml::Table {
    dotted
        .split('.')
        .filter(|k| !k.is_empty())
        .fold(table, |t, k| {
            t.get_mut(k)
                .and_then(toml::Value::as_table_mut)
                .expect("checked to be a table")
        })
}

/// Overlays `overlay` on `base`, calling `set` with the dotted name of every value it sets.
fn merge(base: &mut toml::Table, overlay: toml::Table, prefix: &str, set: &mut impl FnMut(String)) {
    for (key, value) in overlay {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o, &dotted, set),
            (_, value) => {
                base.insert(key, value);
                set(dotted);
            }
        }
    }
}

/// The environment variables: `HOOKGATE_<KEY>` for top-level keys, and also for section keys
/// whose names are unique (e.g. `HOOKGATE_ALLOW_HTTP_URLS` sets `outbound.allow_http_urls`).
const ENV_VARS: &[(&str, Option<&str>, &str, Kind)] = &[
    ("HOOKGATE_LISTEN", None, "listen", Kind::Str),
    ("HOOKGATE_DATABASE", None, "database", Kind::Str),
    ("HOOKGATE_REDIS_URL", None, "redis_url", Kind::Str),
    ("HOOKGATE_PUBLIC_URL", None, "public_url", Kind::Str),
    ("HOOKGATE_MASTER_KEY", None, "master_key", Kind::Str),
    ("HOOKGATE_LOG_FORMAT", None, "log_format", Kind::Str),
    ("HOOKGATE_MAX_BODY_BYTES", None, "max_body_bytes", Kind::Int),
    (
        "HOOKGATE_MAX_BODY_BYTES_IN_FLIGHT",
        None,
        "max_body_bytes_in_flight",
        Kind::Int,
    ),
    (
        "HOOKGATE_HEADER_TIMEOUT_SECS",
        None,
        "header_timeout_secs",
        Kind::Int,
    ),
    (
        "HOOKGATE_BODY_TIMEOUT_SECS",
        None,
        "body_timeout_secs",
        Kind::Int,
    ),
    (
        "HOOKGATE_REQUEST_TIMEOUT_SECS",
        None,
        "request_timeout_secs",
        Kind::Int,
    ),
    (
        "HOOKGATE_MAX_LISTED_VIOLATIONS",
        None,
        "max_listed_violations",
        Kind::Int,
    ),
    (
        "HOOKGATE_TIMESTAMP_TOLERANCE_SECS",
        None,
        "timestamp_tolerance_secs",
        Kind::Int,
    ),
    (
        "HOOKGATE_ROTATION_OVERLAP_SECS",
        None,
        "rotation_overlap_secs",
        Kind::Int,
    ),
    (
        "HOOKGATE_DYNAMICS_HEADER",
        None,
        "dynamics_header",
        Kind::Str,
    ),
    (
        "HOOKGATE_IDEMPOTENCY_TTL_SECS",
        None,
        "idempotency_ttl_secs",
        Kind::Int,
    ),
    (
        "HOOKGATE_SHUTDOWN_GRACE_SECS",
        None,
        "shutdown_grace_secs",
        Kind::Int,
    ),
    (
        "HOOKGATE_INBOUND_PER_MINUTE",
        Some("rate_limit"),
        "inbound_per_minute",
        Kind::Int,
    ),
    (
        "HOOKGATE_INBOUND_PER_HOUR",
        Some("rate_limit"),
        "inbound_per_hour",
        Kind::Int,
    ),
    (
        "HOOKGATE_AUTH_FAILURES_PER_MINUTE",
        Some("rate_limit"),
        "auth_failures_per_minute",
        Kind::Int,
    ),
    (
        "HOOKGATE_AUTH_FAILURE_MAX_ADDRESSES",
        Some("rate_limit"),
        "auth_failure_max_addresses",
        Kind::Int,
    ),
    (
        "HOOKGATE_REST_PER_MINUTE",
        Some("rate_limit"),
        "rest_per_minute",
        Kind::Int,
    ),
    (
        "HOOKGATE_REST_PER_HOUR",
        Some("rate_limit"),
        "rest_per_hour",
        Kind::Int,
    ),
    (
        "HOOKGATE_REST_PER_DAY",
        Some("rate_limit"),
        "rest_per_day",
        Kind::Int,
    ),
    (
        "HOOKGATE_WRITER_MAX_BATCH",
        Some("writer"),
        "max_batch",
        Kind::Int,
    ),
    (
        "HOOKGATE_WRITER_CONNECTIONS",
        Some("writer"),
        "connections",
        Kind::Int,
    ),
    (
        "HOOKGATE_WAL_RESTART_BYTES",
        Some("writer"),
        "wal_restart_bytes",
        Kind::Int,
    ),
    (
        "HOOKGATE_MAX_DATABASE_BYTES",
        Some("writer"),
        "max_database_bytes",
        Kind::Int,
    ),
    (
        "HOOKGATE_RETENTION_INGEST_LOG_DAYS",
        Some("retention"),
        "ingest_log_days",
        Kind::Int,
    ),
    (
        "HOOKGATE_RETENTION_EVENTS_DAYS",
        Some("retention"),
        "events_days",
        Kind::Int,
    ),
    (
        "HOOKGATE_RETENTION_REQUESTS_DAYS",
        Some("retention"),
        "requests_days",
        Kind::Int,
    ),
    (
        "HOOKGATE_KEEP_REQUESTS",
        Some("requests"),
        "keep",
        Kind::Bool,
    ),
    (
        "HOOKGATE_KEEP_REQUEST_BYTES",
        Some("requests"),
        "max_body_bytes",
        Kind::Int,
    ),
    (
        "HOOKGATE_RETENTION_DELIVERIES_DAYS",
        Some("retention"),
        "deliveries_days",
        Kind::Int,
    ),
    (
        "HOOKGATE_ALLOW_HTTP_URLS",
        Some("outbound"),
        "allow_http_urls",
        Kind::Bool,
    ),
    (
        "HOOKGATE_ALLOW_PRIVATE_URLS",
        Some("outbound"),
        "allow_private_urls",
        Kind::Bool,
    ),
    (
        "HOOKGATE_RETRY_SCHEDULE",
        Some("outbound"),
        "retry_schedule",
        Kind::IntList,
    ),
    (
        "HOOKGATE_DELIVERY_TIMEOUT_SECS",
        Some("outbound"),
        "delivery_timeout_secs",
        Kind::Int,
    ),
    (
        "HOOKGATE_DISABLE_AFTER_FAILURES",
        Some("outbound"),
        "disable_after_failures",
        Kind::Int,
    ),
    (
        "HOOKGATE_DELIVERY_CONCURRENCY",
        Some("outbound"),
        "delivery_concurrency",
        Kind::Int,
    ),
    (
        "HOOKGATE_PER_SUBSCRIPTION_CONCURRENCY",
        Some("outbound"),
        "per_subscription_concurrency",
        Kind::Int,
    ),
    (
        "HOOKGATE_ADMIN_PASSWORD",
        Some("console"),
        "admin_password",
        Kind::Str,
    ),
    (
        "HOOKGATE_CONSOLE_SESSION_IDLE_SECS",
        Some("console"),
        "session_idle_secs",
        Kind::Int,
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    IntList,
}

impl Kind {
    fn parse(self, raw: &str) -> Option<toml::Value> {
        Some(match self {
            Kind::Str => toml::Value::String(raw.to_string()),
            Kind::Int => toml::Value::Integer(raw.parse().ok()?),
            Kind::Bool => toml::Value::Boolean(match raw.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return None,
            }),
            Kind::IntList => toml::Value::Array(
                raw.split(',')
                    .map(|s| s.trim().parse().ok().map(toml::Value::Integer))
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
