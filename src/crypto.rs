//! Cryptographic primitives: HMAC signatures, constant-time comparison, encryption of secrets
//! at rest, hashing of bearer tokens, and random identifiers. Pure functions; no I/O except
//! [`MasterKey::load_or_generate`].

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    HmacKey::new(key).sign(parts)
}

/// An HMAC-SHA256 key made ready once (its padded inner and outer hash states), for signing
/// many messages with one secret without deriving them again each time.
#[derive(Clone)]
pub struct HmacKey(HmacSha256);

impl HmacKey {
    pub fn new(key: &[u8]) -> HmacKey {
        HmacKey(<HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length"))
    }

    /// The HMAC of the concatenated parts.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

pub fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    hex::encode(hmac_sha256(key, parts))
}

pub fn hmac_base64(key: &[u8], parts: &[&[u8]]) -> String {
    B64.encode(hmac_sha256(key, parts))
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// `prefix` followed by `n` random bytes as lowercase hex.
pub fn random_id(prefix: &str, n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    format!("{prefix}{}", hex::encode(buf))
}

/// `prefix` + 24 hex characters that sort by creation time (microseconds, then 6 random
/// bytes). Stored ids are index keys: time-ordered ones land at the end of their B-tree, so a
/// batch of inserts dirties a few pages instead of one random page each.
pub fn sortable_id(prefix: &str) -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    format!(
        "{prefix}{:012x}{}",
        micros & 0xffff_ffff_ffff,
        hex::encode(random_bytes::<6>())
    )
}

pub fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", B64URL.encode(random_bytes::<32>()))
}

pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    B64.decode(text).ok()
}

pub fn base64_encode(data: &[u8]) -> String {
    B64.encode(data)
}

/// The key that encrypts every stored secret (ChaCha20-Poly1305, random nonce, the owning
/// row's id as associated data so a ciphertext cannot be moved to another row).
#[derive(Clone)]
pub struct MasterKey(ChaCha20Poly1305);

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("master key must be 64 hex characters")]
    BadFormat,
    #[error("cannot read or write master key file {0}: {1}")]
    Io(String, std::io::Error),
}

impl MasterKey {
    pub fn from_hex(text: &str) -> Result<MasterKey, MasterKeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| MasterKeyError::BadFormat)?;
        if bytes.len() != 32 {
            return Err(MasterKeyError::BadFormat);
        }
        Ok(MasterKey(
            ChaCha20Poly1305::new_from_slice(&bytes).expect("32-byte key"),
        ))
    }

    /// Uses `configured` when set; otherwise reads `file`, creating it with a fresh key the
    /// first time. Returns whether the key came from the file (the caller warns about it).
    pub fn load_or_generate(
        configured: &str,
        file: &Path,
    ) -> Result<(MasterKey, bool), MasterKeyError> {
        if !configured.is_empty() {
            return Ok((Self::from_hex(configured)?, false));
        }
        let io_err = |e| MasterKeyError::Io(file.display().to_string(), e);
        match std::fs::read_to_string(file) {
            Ok(text) => Ok((Self::from_hex(&text)?, true)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir).map_err(io_err)?;
                }
                let key = hex::encode(random_bytes::<32>());
                write_private(file, &key).map_err(io_err)?;
                Ok((Self::from_hex(&key)?, true))
            }
            Err(e) => Err(io_err(e)),
        }
    }

    pub fn encrypt(&self, plaintext: &[u8], aad: &str) -> Vec<u8> {
        let nonce = random_bytes::<12>();
        let mut out = nonce.to_vec();
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("encryption cannot fail for in-memory buffers");
        out.extend_from_slice(&sealed);
        out
    }

    pub fn decrypt(&self, sealed: &[u8], aad: &str) -> Option<Vec<u8>> {
        if sealed.len() < 12 {
            return None;
        }
        let (nonce, body) = sealed.split_at(12);
        self.0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: aad.as_bytes(),
                },
            )
            .ok()
    }
}

/// Creates `path` (which must not exist) readable by its owner only, holding `contents`.
#[cfg(unix)]
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_hex(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            mac,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key made ready once signs every message as a fresh one would.
        let key = HmacKey::new(b"Jefe");
        for _ in 0..2 {
            let mac = key.sign(&[b"what do ya want ", b"for nothing?"]);
            assert_eq!(
                hex::encode(mac),
                hmac_hex(b"Jefe", &[b"what do ya want for nothing?"])
            );
        }
    }

    #[test]
    fn sealed_secrets_round_trip_and_are_bound_to_their_row() {
        let key = MasterKey::from_hex(&"11".repeat(32)).unwrap();
        let sealed = key.encrypt(b"s3cret", "key_a");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(key.decrypt(&sealed, "key_a").unwrap(), b"s3cret");
        assert!(key.decrypt(&sealed, "key_b").is_none());
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
