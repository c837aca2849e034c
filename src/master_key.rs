//! The master key's life beside the database: a check value (a known text sealed with the
//! key, kept in the database) proves at start-up that the configured key is the one every
//! stored secret was sealed with, so a wrong key is refused at once instead of failing every
//! call; and rotation re-seals every stored secret under a new key in one transaction.

use std::path::Path;

use crate::crypto::MasterKey;
use crate::store::{SealedValue, Store, StoreError};

const CHECK_NAME: &str = "master_key_check";
const CHECK_TEXT: &[u8] = b"hookgate master key check";
/// The associated data of the check value: no stored secret is sealed with it.
const CHECK_AAD: &str = "meta:master_key_check";

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(
        "the master key ({origin}) is not the key this database's secrets are sealed with: set HOOKGATE_MASTER_KEY to that key, or re-seal every secret under a new key with `hookgate master-key rotate --new-key HEX`"
    )]
    Mismatch { origin: String },
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Where the key came from, for the message of a mismatch.
pub(crate) fn origin(configured: bool, file: &Path) -> String {
    if configured {
        "HOOKGATE_MASTER_KEY, or config `master_key`".to_string()
    } else {
        format!(
            "the file {}, used while HOOKGATE_MASTER_KEY is unset",
            file.display()
        )
    }
}

/// Whether `sealed` is the check value of `master`.
pub(crate) fn opens_check(master: &MasterKey, sealed: &[u8]) -> bool {
    master.decrypt(sealed, CHECK_AAD).as_deref() == Some(CHECK_TEXT)
}

/// The stored check value, if the database has one yet.
pub(crate) async fn stored_check(store: &Store) -> Result<Option<Vec<u8>>, StoreError> {
    store.read(|r| r.meta_value(CHECK_NAME)).await
}

/// Refuses `master` unless it opens the database's check value. A database without one (new,
/// or from before check values) gets one, once every secret already stored opens with
/// `master`.
pub(crate) async fn verify(
    store: &Store,
    master: &MasterKey,
    origin: &str,
) -> Result<(), CheckError> {
    let mismatch = || CheckError::Mismatch {
        origin: origin.to_string(),
    };
    let check = match stored_check(store).await? {
        Some(check) => check,
        None => {
            let samples = store.read(|r| r.sealed_samples()).await?;
            if !samples.iter().all(|s| opens(master, s)) {
                return Err(mismatch());
            }
            // Another process may have stored its own check value meanwhile: the stored one
            // decides.
            let fresh = master.encrypt(CHECK_TEXT, CHECK_AAD);
            store
                .write(move |tx| tx.insert_meta_if_absent(CHECK_NAME, &fresh))
                .await?
        }
    };
    if opens_check(master, &check) {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// [`verify`] for start-up code that is not async (and may run inside a runtime or not): on
/// a thread of its own with a runtime of its own, waited for.
pub(crate) fn verify_blocking(
    store: &Store,
    master: &MasterKey,
    origin: &str,
) -> Result<(), CheckError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| CheckError::Store(StoreError::Unavailable(e.to_string())))?
                    .block_on(verify(store, master, origin))
            })
            .join()
            .expect("the master key check does not panic")
    })
}

fn opens(master: &MasterKey, value: &SealedValue) -> bool {
    master.decrypt(&value.sealed, &value.row_id).is_some()
}

/// Re-seals every stored secret, and the check value, under `new` in one transaction.
/// Returns how many secrets were re-sealed. Fails, changing nothing, if any stored secret
/// does not open with `current`.
pub async fn rotate(
    store: &Store,
    current: MasterKey,
    new: MasterKey,
) -> Result<usize, StoreError> {
    store
        .write(move |tx| {
            let values = tx.sealed_values()?;
            for value in &values {
                let plain = current
                    .decrypt(&value.sealed, &value.row_id)
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "{}.{} of {} does not open with the current master key",
                            value.table, value.column, value.row_id
                        ))
                    })?;
                tx.replace_sealed_value(&SealedValue {
                    sealed: new.encrypt(&plain, &value.row_id),
                    ..value.clone()
                })?;
            }
            tx.set_meta_value(CHECK_NAME, &new.encrypt(CHECK_TEXT, CHECK_AAD))?;
            Ok(values.len())
        })
        .await
}
