//! Companies and API keys as the rest of the program sees them: creating, rotating and revoking
//! keys, and looking up a key with its secrets unsealed (cached for a moment, so a revocation
//! from the CLI takes effect within [`KEY_CACHE_TTL`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock;
use crate::crypto::{self, MasterKey};
use crate::store::{
    ApiKeyRecord, KeyIntake, KeySummary, NewKey, ReadConn, SecretChange, Store, StoreError,
};

pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);

/// An API key with its secrets in the clear; never logged (Debug is redacted).
#[derive(Clone)]
pub struct ApiKey {
    pub id: String,
    pub company_id: String,
    pub company_name: String,
    pub name: String,
    /// Secrets that verify `custom` signatures now: the current one, then the previous one
    /// while its rotation overlap lasts.
    pub signing_secrets: Vec<Vec<u8>>,
    pub square_signature_key: Option<Vec<u8>>,
    pub quickbooks_verifier_token: Option<Vec<u8>>,
    pub dynamics_key: Option<Vec<u8>>,
    /// Secrets for native provider intake, by provider name (`keys update --provider-secret`).
    pub provider_secrets: Vec<(String, Vec<u8>)>,
    /// Whether this key's requests (headers and body) are kept for inspection and replay.
    pub keep_requests: bool,
    pub body_only_signing: bool,
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    pub revoked: bool,
}

impl ApiKey {
    /// The key's secret for a provider's native requests; for Square, QuickBooks and Dynamics
    /// 365 the secret given at `keys create` serves when no other was set.
    pub fn provider_secret(&self, provider: &str) -> Option<&[u8]> {
        let own = self
            .provider_secrets
            .iter()
            .find(|(name, _)| name == provider)
            .map(|(_, secret)| secret.as_slice());
        own.or(match provider {
            "square" => self.square_signature_key.as_deref(),
            "quickbooks" => self.quickbooks_verifier_token.as_deref(),
            "dynamics365" => self.dynamics_key.as_deref(),
            _ => None,
        })
    }

    /// The providers this key has a secret for.
    pub fn providers(&self) -> Vec<String> {
        let legacy = [
            ("square", self.square_signature_key.is_some()),
            ("quickbooks", self.quickbooks_verifier_token.is_some()),
            ("dynamics365", self.dynamics_key.is_some()),
        ];
        let mut names: Vec<String> = self
            .provider_secrets
            .iter()
            .map(|(n, _)| n.clone())
            .chain(
                legacy
                    .iter()
                    .filter(|(_, set)| *set)
                    .map(|(n, _)| n.to_string()),
            )
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// What a provider secret is bound to when sealed: its key and provider.
fn provider_secret_owner(key_id: &str, provider: &str) -> String {
    format!("{key_id}/{provider}")
}

/// A key's row with what it adds for native intake.
fn with_intake(
    r: &ReadConn,
    record: Option<ApiKeyRecord>,
) -> Result<Option<(ApiKeyRecord, KeyIntake)>, StoreError> {
    match record {
        None => Ok(None),
        Some(rec) => {
            let intake = r.key_intake(&rec.id)?;
            Ok(Some((rec, intake)))
        }
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("company", &self.company_name)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no active API key {0}")]
    NotFound(String),
    #[error("stored secret of key {0} cannot be decrypted: wrong master key?")]
    Unseal(String),
}

/// What `keys create` returns: the only time the secrets are shown.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedKey {
    pub key_id: String,
    pub secret: String,
    pub api_token: String,
    pub company: String,
    pub company_id: String,
    pub name: String,
}

#[derive(Debug, Clone, Default)]
pub struct KeyOptions {
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    pub square_signature_key: Option<String>,
    pub quickbooks_verifier_token: Option<String>,
    pub dynamics_key: Option<String>,
    pub body_only_signing: bool,
}

/// Changes to an existing key's provider secrets, in the clear (sealed before storing).
#[derive(Debug, Clone)]
pub(crate) struct ProviderSecrets {
    pub square_signature_key: SecretChange,
    pub quickbooks_verifier_token: SecretChange,
    pub dynamics_key: SecretChange,
}

impl ProviderSecrets {
    pub(crate) fn is_unchanged(&self) -> bool {
        [
            &self.square_signature_key,
            &self.quickbooks_verifier_token,
            &self.dynamics_key,
        ]
        .iter()
        .all(|c| matches!(c, SecretChange::Keep))
    }
}

/// When a lookup was made, and what it found (`None`: no such key).
type CachedKey = (Instant, Option<Arc<ApiKey>>);

#[derive(Clone)]
pub struct Keys {
    store: Store,
    master: MasterKey,
    cache: Arc<RwLock<HashMap<String, CachedKey>>>,
}

pub fn hash_api_token(token: &str) -> String {
    crypto::sha256_hex(token.as_bytes())
}

impl Keys {
    pub(crate) fn new(store: Store, master: MasterKey) -> Keys {
        Keys {
            store,
            master,
            cache: Arc::new(RwLock::new(HashMap::new())),
        }
    }

    pub async fn create(
        &self,
        company: &str,
        name: &str,
        options: KeyOptions,
    ) -> Result<CreatedKey, KeyError> {
        let key_id = crypto::random_id("hk_", 12);
        let secret = crypto::random_id("hks_", 24);
        let api_token = crypto::random_token("hkt_");
        let seal = |s: &Option<String>| {
            s.as_ref()
                .map(|v| self.master.encrypt(v.as_bytes(), &key_id))
        };
        let new = NewKey {
            id: key_id.clone(),
            company_id: String::new(),
            name: name.to_string(),
            secret_enc: self.master.encrypt(secret.as_bytes(), &key_id),
            square_key_enc: seal(&options.square_signature_key),
            quickbooks_token_enc: seal(&options.quickbooks_verifier_token),
            dynamics_key_enc: seal(&options.dynamics_key),
            body_only_signing: options.body_only_signing,
            per_minute: options.per_minute,
            per_hour: options.per_hour,
            api_token_hash: Some(hash_api_token(&api_token)),
            created_at: clock::now_secs(),
        };
        let company_name = company.to_string();
        let company_id = self
            .store
            .write(move |tx| {
                let company_id =
                    tx.ensure_company(&company_name, &crypto::random_id("co_", 8), new.created_at)?;
                crate::skills::ensure_default_work_types(tx, &company_id)?;
                tx.insert_key(&NewKey {
                    company_id: company_id.clone(),
                    ..new.clone()
                })?;
                Ok(company_id)
            })
            .await?;
        Ok(CreatedKey {
            key_id,
            secret,
            api_token,
            company: company.to_string(),
            company_id,
            name: name.to_string(),
        })
    }

    pub async fn revoke(&self, key_id: &str) -> Result<(), KeyError> {
        let id = key_id.to_string();
        let done = self
            .store
            .write(move |tx| tx.revoke_key(&id, clock::now_secs()))
            .await?;
        self.forget(key_id);
        if done {
            Ok(())
        } else {
            Err(KeyError::NotFound(key_id.to_string()))
        }
    }

    /// Issues a new signing secret; the old one keeps verifying for `overlap_secs`.
    pub async fn rotate(&self, key_id: &str, overlap_secs: i64) -> Result<String, KeyError> {
        let secret = crypto::random_id("hks_", 24);
        let sealed = self.master.encrypt(secret.as_bytes(), key_id);
        let id = key_id.to_string();
        let until = clock::now_secs() + overlap_secs;
        let done = self
            .store
            .write(move |tx| tx.rotate_key(&id, &sealed, until))
            .await?;
        self.forget(key_id);
        if done {
            Ok(secret)
        } else {
            Err(KeyError::NotFound(key_id.to_string()))
        }
    }

    /// Issues a new management (REST) token for the key, invalidating the previous one.
    pub(crate) async fn issue_api_token(&self, key_id: &str) -> Result<String, KeyError> {
        let token = crypto::random_token("hkt_");
        let hash = hash_api_token(&token);
        let id = key_id.to_string();
        let done = self
            .store
            .write(move |tx| tx.set_api_token_hash(&id, &hash))
            .await?;
        if done {
            Ok(token)
        } else {
            Err(KeyError::NotFound(key_id.to_string()))
        }
    }

    /// Sets, replaces or removes the provider secrets of an active key; returns the key as the
    /// server will see it (at once here; within [`KEY_CACHE_TTL`] in a running server).
    pub(crate) async fn update_provider_secrets(
        &self,
        key_id: &str,
        secrets: ProviderSecrets,
    ) -> Result<Arc<ApiKey>, KeyError> {
        let seal = |change: SecretChange| match change {
            SecretChange::Set(plain) => SecretChange::Set(self.master.encrypt(&plain, key_id)),
            other => other,
        };
        let (square, quickbooks, dynamics) = (
            seal(secrets.square_signature_key),
            seal(secrets.quickbooks_verifier_token),
            seal(secrets.dynamics_key),
        );
        let id = key_id.to_string();
        let done = self
            .store
            .write(move |tx| tx.set_provider_secrets(&id, &square, &quickbooks, &dynamics))
            .await?;
        self.forget(key_id);
        if !done {
            return Err(KeyError::NotFound(key_id.to_string()));
        }
        self.find(key_id)
            .await?
            .ok_or_else(|| KeyError::NotFound(key_id.to_string()))
    }

    pub(crate) async fn list(&self, company: Option<&str>) -> Result<Vec<KeySummary>, KeyError> {
        let company = company.map(str::to_string);
        Ok(self
            .store
            .read(move |r| r.list_keys(company.as_deref()))
            .await?)
    }

    /// The key with this public id, if it exists (revoked keys are returned with `revoked`).
    #[tracing::instrument(skip_all)]
    pub async fn find(&self, key_id: &str) -> Result<Option<Arc<ApiKey>>, KeyError> {
        if let Some((at, cached)) = self.cache.read().expect("key cache").get(key_id)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(cached.clone());
        }
        let id = key_id.to_string();
        let record = self
            .store
            .read(move |r| with_intake(r, r.key_by_id(&id)?))
            .await?;
        let key = record
            .map(|r| self.unseal_record(r))
            .transpose()?
            .map(Arc::new);
        let mut cache = self.cache.write().expect("key cache");
        if cache.len() > 100_000 {
            cache.clear(); // unknown ids sent at random must not grow the cache without bound
        }
        cache.insert(key_id.to_string(), (Instant::now(), key.clone()));
        Ok(key)
    }

    /// The active key whose management token this is.
    #[tracing::instrument(skip_all)]
    pub(crate) async fn find_by_api_token(
        &self,
        token: &str,
    ) -> Result<Option<Arc<ApiKey>>, KeyError> {
        let hash = hash_api_token(token);
        let record = self
            .store
            .read(move |r| with_intake(r, r.key_by_token_hash(&hash)?))
            .await?;
        Ok(record
            .map(|r| self.unseal_record(r))
            .transpose()?
            .map(Arc::new))
    }

    fn forget(&self, key_id: &str) {
        self.cache.write().expect("key cache").remove(key_id);
    }

    /// Seals a secret that belongs to the row `owner_id` (e.g. a subscription secret).
    pub fn seal(&self, plaintext: &[u8], owner_id: &str) -> Vec<u8> {
        self.master.encrypt(plaintext, owner_id)
    }

    pub(crate) fn unseal(&self, sealed: &[u8], owner_id: &str) -> Option<Vec<u8>> {
        self.master.decrypt(sealed, owner_id)
    }

    /// Whether this process's master key is the one of the database's check value.
    pub(crate) fn opens_master_key_check(&self, check: &[u8]) -> bool {
        crate::master_key::opens_check(&self.master, check)
    }

    /// Sets (`Some`) or removes (`None`) the key's secrets for native provider intake, and
    /// whether its requests are kept; the server sees the change within [`KEY_CACHE_TTL`].
    pub async fn update_intake(
        &self,
        key_id: &str,
        secrets: Vec<(String, Option<String>)>,
        keep_requests: Option<bool>,
    ) -> Result<Arc<ApiKey>, KeyError> {
        let sealed: Vec<(String, Option<Vec<u8>>)> = secrets
            .into_iter()
            .map(|(provider, secret)| {
                let owner = provider_secret_owner(key_id, &provider);
                let sealed = secret.map(|s| self.master.encrypt(s.as_bytes(), &owner));
                (provider, sealed)
            })
            .collect();
        let id = key_id.to_string();
        let found = self
            .store
            .write(move |tx| {
                if !tx.key_is_active(&id)? {
                    return Ok(false);
                }
                let now = clock::now_secs();
                for (provider, secret) in &sealed {
                    let owner = provider_secret_owner(&id, provider);
                    tx.set_provider_secret(&id, provider, &owner, secret.as_deref(), now)?;
                }
                if let Some(keep) = keep_requests {
                    tx.set_keep_requests(&id, keep, now)?;
                }
                Ok(true)
            })
            .await?;
        self.forget(key_id);
        if !found {
            return Err(KeyError::NotFound(key_id.to_string()));
        }
        self.find(key_id)
            .await?
            .ok_or_else(|| KeyError::NotFound(key_id.to_string()))
    }

    fn unseal_record(&self, (r, intake): (ApiKeyRecord, KeyIntake)) -> Result<ApiKey, KeyError> {
        let open = |blob: &[u8]| {
            self.master
                .decrypt(blob, &r.id)
                .ok_or_else(|| KeyError::Unseal(r.id.clone()))
        };
        let mut signing_secrets = vec![open(&r.secret_enc)?];
        if let (Some(prev), Some(until)) = (&r.previous_secret_enc, r.previous_expires_at)
            && until > clock::now_secs()
        {
            signing_secrets.push(open(prev)?);
        }
        let open_opt = |blob: &Option<Vec<u8>>| blob.as_deref().map(open).transpose();
        let provider_secrets = intake
            .provider_secrets
            .iter()
            .map(|(provider, sealed)| {
                self.master
                    .decrypt(sealed, &provider_secret_owner(&r.id, provider))
                    .map(|secret| (provider.clone(), secret))
                    .ok_or_else(|| KeyError::Unseal(r.id.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(ApiKey {
            provider_secrets,
            keep_requests: intake.keep_requests.unwrap_or(true),
            signing_secrets,
            square_signature_key: open_opt(&r.square_key_enc)?,
            quickbooks_verifier_token: open_opt(&r.quickbooks_token_enc)?,
            dynamics_key: open_opt(&r.dynamics_key_enc)?,
            body_only_signing: r.body_only_signing,
            per_minute: r.per_minute,
            per_hour: r.per_hour,
            revoked: r.revoked_at.is_some(),
            id: r.id,
            company_id: r.company_id,
            company_name: r.company_name,
            name: r.name,
        })
    }
}
