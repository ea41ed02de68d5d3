//! The master key: 32 random bytes read from the file named by
//! `secrets.master_key_file`. It never encrypts anything itself; HKDF derives
//! one independent key per purpose (label), so a key used for one domain can
//! never decrypt or forge data of another.
use aws_lc_rs::{aead, hkdf, hmac};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox};
use std::io::Write;
use std::path::Path;

use super::random;

/// Version byte prefixed to every ciphertext, naming the master key
/// generation it was sealed under.
const CIPHERTEXT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

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

    /// Reads the key file: base64 of exactly 32 bytes (whitespace ignored).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read secrets.master_key_file {}: {e}",
                path.display()
            )
        })?;
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = STANDARD.decode(compact).map_err(|_| {
            anyhow::anyhow!("secrets.master_key_file {} is not base64", path.display())
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            anyhow::anyhow!(
                "secrets.master_key_file {} must hold exactly 32 bytes",
                path.display()
            )
        })?;
        Ok(Self(SecretBox::new(Box::new(key))))
    }

    /// Loads the key file, or creates it (mode 0600) when `generate` allows.
    pub fn load_or_generate(path: &Path, generate: bool) -> anyhow::Result<Self> {
        if path.exists() || !generate {
            return Self::load(path);
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

    /// The key for one purpose, e.g. `"signing-keys"`.
    pub fn derive(&self, label: &str) -> DataKey {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"authd master key v1");
        let prk = salt.extract(self.0.expose_secret());
        let mut out = [0u8; 32];
        let info = [label.as_bytes()];
        // Expanding 32 bytes of SHA-256 output cannot fail (limit is 255 * 32).
        if let Ok(okm) = prk.expand(&info, hkdf::HKDF_SHA256) {
            let _ = okm.fill(&mut out);
        }
        DataKey(SecretBox::new(Box::new(out)))
    }
}

/// A 256-bit key for one purpose: AES-256-GCM sealing or HMAC-SHA256.
pub struct DataKey(SecretBox<[u8; 32]>);

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
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(CIPHERTEXT_VERSION);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(
            sealed.len() > 1 + NONCE_LEN && sealed[0] == CIPHERTEXT_VERSION,
            "ciphertext has an unknown format or version"
        );
        let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow::anyhow!("bad nonce"))?;
        let mut in_out = body.to_vec();
        let plain = self
            .aead()?
            .open_in_place(nonce, aead::Aad::from(aad), &mut in_out)
            .map_err(|_| anyhow::anyhow!("decryption failed: wrong master key or tampered data"))?;
        Ok(plain.to_vec())
    }

    pub fn hmac(&self, data: &[u8]) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.0.expose_secret());
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&key, data).as_ref());
        out
    }
}
