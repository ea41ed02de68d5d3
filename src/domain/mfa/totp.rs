//! RFC 6238 time-based one-time passwords as every authenticator app makes
//! them: HMAC-SHA-1, 6 digits, 30-second steps, one step of skew either
//! way. `totp-rs` computes and compares the codes (in constant time); the
//! caller refuses a step that is not later than the last one accepted.
use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretBox};
use time::OffsetDateTime;
use totp_rs::{Algorithm, Builder};
use uuid::Uuid;

use crate::crypto::{DataKey, random};

pub const DIGITS: u8 = 6;
pub const STEP_SECS: u64 = 30;
const SKEW_STEPS: u16 = 1;
/// 160 bits, the size RFC 4226 recommends and authenticator apps expect.
const SECRET_BYTES: usize = 20;

/// What is left unescaped in the otpauth label and issuer.
const LABEL_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'@')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'+');

/// A TOTP shared secret. `Debug` never shows it.
pub struct TotpSecret(SecretBox<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

impl TotpSecret {
    pub fn generate() -> anyhow::Result<Self> {
        Ok(Self::from_bytes(random::bytes::<SECRET_BYTES>()?.to_vec()))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// RFC 4648 base32 without padding, as authenticator apps take it.
    pub fn base32(&self) -> String {
        totp_rs::Secret::from(self.0.expose_secret().clone()).to_base32()
    }

    /// AES-256-GCM under the TOTP data key, bound to the user.
    pub fn seal(&self, key: &DataKey, user_id: Uuid) -> anyhow::Result<Vec<u8>> {
        key.seal(user_id.as_bytes(), self.0.expose_secret())
    }

    pub fn open(key: &DataKey, user_id: Uuid, sealed: &[u8]) -> anyhow::Result<Self> {
        // Moved out of the zeroing wrapper into the SecretBox, not copied.
        let mut plain = key.open(user_id.as_bytes(), sealed)?;
        Ok(Self::from_bytes(std::mem::take(&mut *plain)))
    }

    /// The time step whose code `code` is, within one step of `now`; `None`
    /// for a wrong or malformed code. Spaces (as apps show `123 456`) are
    /// ignored.
    pub fn matching_step(&self, code: &str, now: OffsetDateTime) -> Option<i64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let time = u64::try_from(now.unix_timestamp()).ok()?;
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_skew(SKEW_STEPS)
            .with_step_duration(STEP_SECS)
            .with_secret(self.0.expose_secret().clone())
            .build()
            .ok()?;
        totp.check(&code, time)
            .and_then(|step| i64::try_from(step).ok())
    }
}

/// The key URI authenticator apps read (Google's key-uri format), with
/// every parameter spelled out.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &TotpSecret) -> String {
    let issuer = utf8_percent_encode(issuer, LABEL_SAFE).to_string();
    let account = utf8_percent_encode(account, LABEL_SAFE);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        secret.base32()
    )
}

/// Base64 (standard, padded), as the setup response carries the PNG.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// RFC 6238 Appendix B (SHA-1 rows), truncated to 6 digits as RFC 4226
    /// truncation defines: the last six of the 8-digit values.
    const VECTORS: [(i64, &str); 6] = [
        (59, "287082"),
        (1111111109, "081804"),
        (1111111111, "050471"),
        (1234567890, "005924"),
        (2000000000, "279037"),
        (20000000000, "353130"),
    ];

    #[test]
    fn rfc_6238_vectors_match_at_their_own_step() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        for (unix, code) in VECTORS {
            let step = unix / 30;
            assert_eq!(secret.matching_step(code, at(unix)), Some(step), "T={unix}");
            // One step of skew either way is accepted, two are not.
            assert_eq!(
                secret.matching_step(code, at(unix + 30)),
                Some(step),
                "T={unix}+30"
            );
            assert_eq!(
                secret.matching_step(code, at(unix - 30)),
                Some(step),
                "T={unix}-30"
            );
            assert_eq!(
                secret.matching_step(code, at(unix + 60)),
                None,
                "T={unix}+60"
            );
            assert_eq!(
                secret.matching_step(code, at(unix - 60)),
                None,
                "T={unix}-60"
            );
        }
    }

    #[test]
    fn malformed_codes_never_match() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        for bad in ["", "28708", "2870822", "+87082", "28708a", "２８７０８２"] {
            assert_eq!(secret.matching_step(bad, at(59)), None, "{bad}");
        }
        assert_eq!(secret.matching_step("287 082", at(59)), Some(1));
    }

    #[test]
    fn the_uri_spells_out_every_parameter() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            otpauth_uri("Acme Auth", "alice@example.com", &secret),
            "otpauth://totp/Acme%20Auth:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Auth&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn secrets_are_160_random_bits_sealed_to_their_user() {
        let (Ok(a), Ok(b)) = (TotpSecret::generate(), TotpSecret::generate()) else {
            panic!("rng")
        };
        assert_eq!(a.base32().len(), 32);
        assert_ne!(a.base32(), b.base32());
        assert_eq!(format!("{a:?}"), "TotpSecret([REDACTED])");
        let Ok(key) = DataKey::generate() else {
            panic!("rng")
        };
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let Ok(sealed) = a.seal(&key, alice) else {
            panic!("seal")
        };
        let opened = TotpSecret::open(&key, alice, &sealed).map(|s| s.base32());
        assert_eq!(opened.ok(), Some(a.base32()));
        assert!(TotpSecret::open(&key, bob, &sealed).is_err());
    }
}
