//! The master key: 32 random bytes read from the file named by
//! `secrets.master_key_file`. It never encrypts anything itself; HKDF derives
//! one independent key per purpose (label), so a key used for one domain can
//! never decrypt or forge data of another.
use aws_lc_rs::{aead, hkdf, hmac};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};
use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

use super::random;

/// Format byte of every ciphertext: `[FORMAT][key id: 4][nonce: 12][ct+tag]`.
const CIPHERTEXT_FORMAT: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
/// The config key naming the master key file, for error messages.
const KEY_NAME: &str = "secrets.master_key_file";
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// Labels of the keys derived from the master key, one per purpose.
pub mod labels {
    /// Seals RSA signing keys.
    pub const SIGNING_KEYS: &str = "authd/signing-keys/v1";
    /// Keys the login-throttle HMAC of email addresses.
    pub const LOGIN_THROTTLE: &str = "authd/login-throttle/v1";
    /// Keys the HMAC of idempotent requests' fingerprints.
    pub const IDEMPOTENCY: &str = "authd/idempotency-fingerprint/v1";
    /// Seals random data keys stored in `sealed_keys` (the audit key, the
    /// TOTP secrets' key, the recovery codes' key).
    pub const DATA_KEYS: &str = "authd/data-keys/v1";
    /// Derives the nonce and PKCE verifier of a federated sign-in from its state.
    pub const FEDERATION_STATE: &str = "authd/federation-state/v1";
    /// Reserved: personal data encrypted at rest.
    pub const PII: &str = "authd/pii/v1";
}

pub struct MasterKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

impl MasterKey {
    pub fn generate() -> anyhow::Result<Self> {
        Ok(Self(SecretBox::new(Box::new(random::bytes::<32>()?))))
    }

    /// Reads the key file named by config key `key`: base64 of exactly 32
    /// bytes (whitespace ignored). Errors name the key, never the value.
    pub fn load(key: &str, path: &Path) -> anyhow::Result<Self> {
        let text = crate::secret_files::read(key, path)?;
        // Every copy of the key on its way in is zeroed when dropped.
        let compact: Zeroizing<String> = Zeroizing::new(
            text.expose_secret()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect(),
        );
        let bytes = Zeroizing::new(
            STANDARD
                .decode(compact.as_bytes())
                .map_err(|_| anyhow::anyhow!("{key}: {} is not base64", path.display()))?,
        );
        anyhow::ensure!(
            bytes.len() == 32,
            "{key}: {} must hold exactly 32 bytes",
            path.display()
        );
        let mut key_bytes = Box::new([0u8; 32]);
        key_bytes.copy_from_slice(&bytes);
        Ok(Self(SecretBox::new(key_bytes)))
    }

    /// Loads the key file, or creates it (mode 0600) when `generate` allows.
    pub fn load_or_generate(path: &Path, generate: bool) -> anyhow::Result<Self> {
        if path.exists() || !generate {
            return Self::load(KEY_NAME, path);
        }
        let key = Self::generate()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        writeln!(file, "{}", STANDARD.encode(key.0.expose_secret()))?;
        tracing::warn!(path = %path.display(), "generated a new master key file (dev profile)");
        Ok(key)
    }

    /// The key for one purpose (see `labels`). HKDF cannot fail for a
    /// 32-byte output, but if it ever did, that is an error: never a key of
    /// zeros that every deployment would share.
    pub fn derive(&self, label: &str) -> anyhow::Result<DataKey> {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"authd master key v1");
        let prk = salt.extract(self.0.expose_secret());
        let mut out = SecretBox::new(Box::new([0u8; 32]));
        let info = [label.as_bytes()];
        prk.expand(&info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(out.expose_secret_mut()))
            .map_err(|_| anyhow::anyhow!("HKDF failed to derive the key {label:?}"))?;
        Ok(DataKey(out))
    }

    /// A short public identifier of this master key, carried in every
    /// ciphertext so a wrong or stale key file is named, not just "failed".
    pub fn id(&self) -> anyhow::Result<String> {
        let key = self.derive("authd/master-key-id/v1")?;
        Ok(hex(&key.hmac(b"id")[..KEY_ID_LEN]))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A 256-bit key for one purpose: AES-256-GCM sealing or HMAC-SHA256.
pub struct DataKey(SecretBox<[u8; 32]>);

impl DataKey {
    /// A random key (for data keys stored sealed).
    pub fn generate() -> anyhow::Result<Self> {
        Ok(Self(SecretBox::new(Box::new(random::bytes::<32>()?))))
    }

    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("a data key must be 32 bytes"))?;
        Ok(Self(SecretBox::new(Box::new(key))))
    }

    pub fn expose_bytes(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }

    /// Identifies the key in ciphertext headers (not secret: an HMAC of a
    /// constant).
    fn id(&self) -> [u8; KEY_ID_LEN] {
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&self.hmac(b"authd/ciphertext-key-id")[..KEY_ID_LEN]);
        id
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

impl Clone for DataKey {
    fn clone(&self) -> Self {
        DataKey(SecretBox::new(Box::new(*self.0.expose_secret())))
    }
}

impl DataKey {
    fn aead(&self) -> anyhow::Result<aead::LessSafeKey> {
        let key = aead::UnboundKey::new(&aead::AES_256_GCM, self.0.expose_secret())
            .map_err(|_| anyhow::anyhow!("invalid AES key"))?;
        Ok(aead::LessSafeKey::new(key))
    }

    /// AES-256-GCM with a random nonce; `aad` binds the ciphertext to its
    /// owner (e.g. a key id) so it cannot be swapped onto another row.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
        let nonce_bytes = random::bytes::<NONCE_LEN>()?;
        let mut in_out = plaintext.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce_bytes),
                aead::Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = Vec::with_capacity(HEADER_LEN + in_out.len());
        out.push(CIPHERTEXT_FORMAT);
        out.extend_from_slice(&self.id());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// The bytes every ciphertext this key seals starts with (format and
    /// key id): what tells, without opening it, which key sealed a row.
    pub fn sealing_header(&self) -> Vec<u8> {
        let mut header = vec![CIPHERTEXT_FORMAT];
        header.extend_from_slice(&self.id());
        header
    }

    /// The plaintext (a data key, a private key), zeroed when dropped.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        anyhow::ensure!(
            sealed.len() > HEADER_LEN && sealed[0] == CIPHERTEXT_FORMAT,
            "ciphertext has an unknown format"
        );
        let (key_id, rest) = sealed[1..].split_at(KEY_ID_LEN);
        anyhow::ensure!(
            key_id == self.id(),
            "ciphertext was sealed under another master key (key id {}); check secrets.master_key_file",
            hex(key_id)
        );
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow::anyhow!("bad nonce"))?;
        let mut in_out = Zeroizing::new(body.to_vec());
        let plain = self
            .aead()?
            .open_in_place(nonce, aead::Aad::from(aad), &mut in_out)
            .map_err(|_| anyhow::anyhow!("decryption failed: wrong master key or tampered data"))?;
        Ok(Zeroizing::new(plain.to_vec()))
    }

    pub fn hmac(&self, data: &[u8]) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.0.expose_secret());
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&key, data).as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_key_material() {
        let Ok(master) = MasterKey::generate() else {
            panic!("rng")
        };
        let Ok(data) = master.derive(labels::SIGNING_KEYS) else {
            panic!("derive")
        };
        let shown = format!("{master:?} {data:?}");
        assert_eq!(shown, "MasterKey([REDACTED]) DataKey([REDACTED])");
        let encoded = STANDARD.encode(data.expose_bytes());
        assert!(!shown.contains(&encoded));
    }

    #[test]
    fn derived_keys_differ_per_purpose_and_seal_round_trips() {
        let Ok(master) = MasterKey::generate() else {
            panic!("rng")
        };
        let (Ok(a), Ok(b)) = (
            master.derive(labels::SIGNING_KEYS),
            master.derive(labels::DATA_KEYS),
        ) else {
            panic!("derive")
        };
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        let sealed = a.seal(b"aad", b"secret").map_err(|e| e.to_string());
        let Ok(sealed) = sealed else { panic!("seal") };
        assert_eq!(
            a.open(b"aad", &sealed).ok().as_deref().map(Vec::as_slice),
            Some(&b"secret"[..])
        );
        // Wrong key, wrong associated data, or a flipped bit: refused.
        assert!(b.open(b"aad", &sealed).is_err());
        assert!(a.open(b"other", &sealed).is_err());
        let mut flipped = sealed.clone();
        if let Some(last) = flipped.last_mut() {
            *last ^= 1;
        }
        assert!(a.open(b"aad", &flipped).is_err());
    }
}
