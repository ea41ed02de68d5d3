//! Email addresses: trimmed, NFKC-normalised, at most 254 bytes, compared
//! case-insensitively through `key` (the unique column).
use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

const MAX_BYTES: usize = 254;
const MAX_LOCAL_BYTES: usize = 64;

#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    display: String,
    key: String,
}

// Addresses are PII: never print them, even in debug output.
impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Email([REDACTED])")
    }
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self> {
        let display: String = raw.trim().nfkc().collect();
        if display.len() > MAX_BYTES || !is_valid_syntax(&display) {
            return Err(Error::InvalidEmail);
        }
        let key = display.to_lowercase();
        Ok(Self { display, key })
    }

    /// The address as given (normalised), for display and mail.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The case-folded identity used for lookups and uniqueness.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn local_part(&self) -> &str {
        self.key.rsplit_once('@').map_or("", |(local, _)| local)
    }
}

fn is_valid_syntax(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let forbidden = |c: char| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"@".contains(c);
    !local.is_empty()
        && local.len() <= MAX_LOCAL_BYTES
        && !local.contains(forbidden)
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && is_valid_domain(domain)
}

fn is_valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c == '-' || c.is_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_folds_case() {
        let email = Email::parse("  Alice@Example.COM ").map_err(|e| e.code());
        let email = email.as_ref().map(|e| (e.as_str(), e.key()));
        assert_eq!(email, Ok(("Alice@Example.COM", "alice@example.com")));
    }

    #[test]
    fn nfkc_folds_compatibility_forms() {
        // Fullwidth letters are the same address as their ASCII forms.
        let a = Email::parse("ｂｏｂ@example.com")
            .map(|e| e.key().to_owned())
            .ok();
        assert_eq!(a.as_deref(), Some("bob@example.com"));
    }

    #[test]
    fn rejects_bad_syntax_and_length() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a b@example.com",
            "a@exa_mple.com",
            "a..b@example.com",
            "a@-example.com",
            "a@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(190));
        assert!(long.len() > 254);
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn debug_does_not_print_the_address() {
        let email = Email::parse("secret.person@example.com").map(|e| format!("{e:?}"));
        assert_eq!(email.ok().as_deref(), Some("Email([REDACTED])"));
    }
}
