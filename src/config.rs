//! Configuration: the documented defaults embedded from `config/hookgate.toml`, then the
//! config file, then `HOOKGATE_*` environment variables. Validated once, failing fast with a
//! message that names the offending key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
    #[error("invalid config value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    /// A SQLite file path, or a `postgres://` URL.
    pub database: String,
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
}

/// A configured secret: usable, but never printed by `Debug`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriterConfig {
    pub max_batch: usize,
    pub connections: usize,
    pub wal_restart_bytes: u64,
    pub max_database_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub ingest_log_days: u32,
    pub events_days: u32,
    pub deliveries_days: u32,
    pub prune_batch: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    pub allow_http_urls: bool,
    pub allow_private_urls: bool,
    pub retry_schedule: Vec<u64>,
    pub delivery_timeout_secs: u64,
    pub disable_after_failures: u32,
    pub delivery_concurrency: usize,
}

/// The operator's console at `/admin`.
#[derive(Debug, Clone, Deserialize)]
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
    /// absent), then the environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, |name| std::env::var(name).ok())
    }

    pub fn load_with_env(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut merged: toml::Table = EMBEDDED_DEFAULTS
            .parse()
            .expect("embedded default config is valid TOML");
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
                merge(&mut merged, table);
            }
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ConfigError::Read { path: file, source }),
        }
        apply_env(&mut merged, &env)?;
        let config: Config =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    key: "config",
                    reason: e.to_string(),
                })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_string(),
        };
        self.listen
            .parse::<SocketAddr>()
            .map_err(|e| invalid("listen", &e.to_string()))?;
        if !self.master_key.0.is_empty() {
            match hex::decode(&self.master_key.0) {
                Ok(bytes) if bytes.len() == 32 => {}
                _ => return Err(invalid("master_key", "must be 64 hex characters")),
            }
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err(invalid("public_url", "must start with http:// or https://"));
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes", "must be positive"));
        }
        if self.max_body_bytes_in_flight < self.max_body_bytes {
            return Err(invalid(
                "max_body_bytes_in_flight",
                "must be at least max_body_bytes",
            ));
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
                return Err(invalid(key, "must be positive"));
            }
        }
        if self.timestamp_tolerance_secs <= 0 {
            return Err(invalid("timestamp_tolerance_secs", "must be positive"));
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
                return Err(invalid(key, "must be positive"));
            }
        }
        if self.writer.max_batch == 0 {
            return Err(invalid("writer.max_batch", "must be positive"));
        }
        if self.writer.connections == 0 {
            return Err(invalid("writer.connections", "must be positive"));
        }
        if self.writer.wal_restart_bytes < 1 << 20 {
            return Err(invalid(
                "writer.wal_restart_bytes",
                "must be at least 1 MiB",
            ));
        }
        if self.database.trim().is_empty() {
            return Err(invalid(
                "database",
                "must name a SQLite file or a postgres:// URL",
            ));
        }
        if self.retention.prune_batch == 0 {
            return Err(invalid("retention.prune_batch", "must be positive"));
        }
        if self.outbound.retry_schedule.is_empty() {
            return Err(invalid(
                "outbound.retry_schedule",
                "needs at least one attempt",
            ));
        }
        if self.outbound.delivery_concurrency == 0 {
            return Err(invalid("outbound.delivery_concurrency", "must be positive"));
        }
        let password = &self.console.admin_password.0;
        // A password shaped like a REST token would be taken for one at login.
        if !password.is_empty()
            && (password.chars().count() < MIN_ADMIN_PASSWORD_CHARS || password.starts_with("hkt_"))
        {
            return Err(invalid(
                "console.admin_password",
                &format!(
                    "must be empty (no admin login) or at least {MIN_ADMIN_PASSWORD_CHARS} characters, not starting with hkt_"
                ),
            ));
        }
        if self.console.session_idle_secs == 0 {
            return Err(invalid("console.session_idle_secs", "must be positive"));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().expect("validated at load")
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `HOOKGATE_<KEY>` for top-level keys; `HOOKGATE_<KEY>` also for section keys whose names
/// are unique (e.g. `HOOKGATE_ALLOW_HTTP_URLS` sets `outbound.allow_http_urls`).
fn apply_env(
    table: &mut toml::Table,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    const KEYS: &[(&str, Option<&str>, &str, Kind)] = &[
        ("HOOKGATE_LISTEN", None, "listen", Kind::Str),
        ("HOOKGATE_DATABASE", None, "database", Kind::Str),
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
    for &(var, section, key, kind) in KEYS {
        let Some(raw) = env(var) else { continue };
        let value = kind.parse(raw.trim()).ok_or_else(|| ConfigError::Invalid {
            key: var,
            reason: format!("cannot parse {raw:?} as {}", kind.describe()),
        })?;
        let target = match section {
            None => &mut *table,
            Some(name) => table
                .entry(name)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("config sections are tables"),
        };
        target.insert(key.to_string(), value);
    }
    Ok(())
}

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

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
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
}
