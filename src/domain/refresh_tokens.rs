//! Opaque refresh tokens: 256 random bits, base64url. Only the SHA-256 is
//! ever stored, so a database leak yields no usable token.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::random;

/// Length of an encoded token: 32 bytes in unpadded base64url.
const ENCODED_LEN: usize = 43;

/// A token as the client holds it. `Debug` never shows it.
pub struct PlainToken(SecretString);

impl std::fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainToken([REDACTED])")
    }
}

impl PlainToken {
    pub fn generate() -> anyhow::Result<Self> {
        Ok(Self(SecretString::from(
            URL_SAFE_NO_PAD.encode(random::bytes::<32>()?),
        )))
    }

    /// A token presented by a client; anything not shaped like one of ours
    /// is refused without a database lookup.
    pub fn parse(presented: &str) -> Option<Self> {
        let ok = presented.len() == ENCODED_LEN
            && URL_SAFE_NO_PAD
                .decode(presented)
                .is_ok_and(|b| b.len() == 32);
        ok.then(|| Self(SecretString::from(presented)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn hash(&self) -> [u8; 32] {
        random::sha256(self.0.expose_secret().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let (Ok(a), Ok(b)) = (PlainToken::generate(), PlainToken::generate()) else {
            panic!("rng")
        };
        assert_ne!(a.expose(), b.expose());
        assert!(PlainToken::parse(a.expose()).is_some_and(|p| p.hash() == a.hash()));
    }

    #[test]
    fn debug_never_prints_the_token() {
        let Ok(token) = PlainToken::generate() else {
            panic!("rng")
        };
        let shown = format!("{token:?}");
        assert_eq!(shown, "PlainToken([REDACTED])");
        assert!(!shown.contains(token.expose()));
    }

    #[test]
    fn rejects_malformed_tokens() {
        for bad in ["", "short", &"a".repeat(44), &"!".repeat(43)] {
            assert!(PlainToken::parse(bad).is_none());
        }
    }
}
