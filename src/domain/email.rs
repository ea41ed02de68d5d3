//! Email addresses, the identity of an account. The rule: nobody can register
//! an address that reads like another account's.
//!
//! - Trimmed, NFKC-normalised, at most 254 bytes (local part 64), in both
//!   the Unicode form and the form with an ASCII (punycode) domain.
//! - No control characters, no default-ignorable code points (zero-width
//!   spaces and joiners, soft hyphens, variation selectors, ...) and no
//!   bidirectional controls: invisible characters make different strings
//!   look the same, or reorder what is shown. Any other non-ASCII character
//!   must be one UTS #39 allows in identifiers (no symbols or emoji).
//! - Each label (the local part, each domain label) is written in a single
//!   script (UTS #39 mixed-script detection: Latin with Cyrillic is refused,
//!   Han with Katakana is not).
//! - The domain goes through IDNA / UTS #46 (mapping, STD3 rules, hyphen and
//!   DNS length checks) and is kept in its Unicode form, lower case.
//! - Accounts are found by `key` (the whole address, lower case) and must
//!   differ in `skeleton`, the UTS #39 confusable skeleton of `key`, which a
//!   unique column enforces.
use unicode_normalization::UnicodeNormalization;
use unicode_security::{GeneralSecurityProfile, MixedScript};

use crate::error::{Error, Result};

const MAX_BYTES: usize = 254;
const MAX_LOCAL_BYTES: usize = 64;

#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    display: String,
    key: String,
    skeleton: String,
}

// Addresses are PII: never print them, even in debug output.
impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Email([REDACTED])")
    }
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self> {
        let address: String = raw.trim().nfkc().collect();
        let (local, domain) = address.rsplit_once('@').ok_or(Error::InvalidEmail)?;
        let ascii_domain = idna::domain_to_ascii_strict(domain).map_err(|_| Error::InvalidEmail)?;
        let (domain, mapped) = idna::domain_to_unicode(&ascii_domain);
        mapped.map_err(|_| Error::InvalidEmail)?;
        let valid = is_valid_local(local)
            && is_valid_domain(&ascii_domain)
            && local.len() + 1 + ascii_domain.len() <= MAX_BYTES
            && local.len() + 1 + domain.len() <= MAX_BYTES
            && local.chars().chain(domain.chars()).all(is_allowed_char)
            && local.is_single_script()
            && domain.split('.').all(|label| label.is_single_script());
        if !valid {
            return Err(Error::InvalidEmail);
        }
        let display = format!("{local}@{domain}");
        let key = format!("{}@{domain}", local.to_lowercase());
        Ok(Self {
            skeleton: skeleton(&key),
            display,
            key,
        })
    }

    /// An address as accounts created before these rules stored it (trimmed,
    /// NFKC, lower-cased), so that such an account can still log in when
    /// `parse` now refuses its address. Never used to create an account.
    pub fn parse_legacy(raw: &str) -> Result<Self> {
        let display: String = raw.trim().nfkc().collect();
        let (local, domain) = display.rsplit_once('@').ok_or(Error::InvalidEmail)?;
        let legacy_domain = |d: &str| {
            d.split('.').count() >= 2
                && d.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars().all(|c| c == '-' || c.is_alphanumeric())
                })
        };
        if display.len() > MAX_BYTES || !is_valid_local(local) || !legacy_domain(domain) {
            return Err(Error::InvalidEmail);
        }
        let key = display.to_lowercase();
        Ok(Self {
            skeleton: skeleton(&key),
            display,
            key,
        })
    }

    /// The address as given (normalised), for display and mail.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The case-folded identity used for lookups and uniqueness.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The confusable skeleton of `key`: two addresses that read alike
    /// share it.
    pub fn skeleton(&self) -> &str {
        &self.skeleton
    }

    pub fn local_part(&self) -> &str {
        self.key.rsplit_once('@').map_or("", |(local, _)| local)
    }
}

/// The UTS #39 skeleton of an address key (also of keys stored before the
/// current rules, which may not parse any more).
pub fn skeleton(key: &str) -> String {
    unicode_security::skeleton(key).collect()
}

fn is_valid_local(local: &str) -> bool {
    let forbidden = |c: char| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"@".contains(c);
    !local.is_empty()
        && local.len() <= MAX_LOCAL_BYTES
        && !local.contains(forbidden)
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
}

/// The ASCII form of the domain: at least two labels, letters, digits and
/// hyphens only (IP literals and bare hosts are refused).
fn is_valid_domain(ascii: &str) -> bool {
    let labels: Vec<&str> = ascii.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c == '-' || c.is_ascii_alphanumeric())
        })
}

fn is_allowed_char(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_control();
    }
    !is_invisible(c) && c.identifier_allowed()
}

/// Default-ignorable code points (Unicode `DerivedCoreProperties`), which
/// include the bidirectional controls (U+061C, U+200E/F, U+202A-E,
/// U+2066-9). Checked by name, before the identifier rule that would also
/// refuse them, so that the rule stays true whatever the Unicode version.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}'
        | '\u{17B4}'..='\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(raw: &str) -> Option<String> {
        Email::parse(raw).ok().map(|e| e.key().to_owned())
    }

    #[test]
    fn normalises_and_folds_case() {
        let email = Email::parse("  Alice@Example.COM ").map_err(|e| e.code());
        let email = email.as_ref().map(|e| (e.as_str(), e.key()));
        assert_eq!(email, Ok(("Alice@example.com", "alice@example.com")));
    }

    #[test]
    fn nfkc_folds_compatibility_forms() {
        // Fullwidth letters are the same address as their ASCII forms.
        assert_eq!(
            key("ｂｏｂ@example.com").as_deref(),
            Some("bob@example.com")
        );
    }

    #[test]
    fn internationalised_domains_are_mapped_by_uts46() {
        assert_eq!(
            key("hans@BÜCHER.example").as_deref(),
            Some("hans@bücher.example")
        );
        // The punycode form is the same domain.
        assert_eq!(
            key("hans@xn--bcher-kva.example").as_deref(),
            Some("hans@bücher.example")
        );
        assert_eq!(key("josé@example.com").as_deref(), Some("josé@example.com"));
        assert_eq!(key("用户@例子.中国").as_deref(), Some("用户@例子.中国"));
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
            "a@[127.0.0.1]",
            "a@example.com.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(190));
        assert!(long.len() > 254);
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn rejects_invisible_and_bidi_characters() {
        for bad in [
            "kel\u{200B}vin@example.com",
            "\u{202E}nivlek@example.com",
            "kel\u{00AD}vin@example.com",
            "kelvin\u{2066}@example.com",
            "kel\u{FE0F}vin@example.com",
            "kelvin@exa\u{200D}mple.com",
            "kel\u{0007}vin@example.com",
            "kelvin😀@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rejects_mixed_script_labels() {
        // Cyrillic е (U+0435) among Latin letters, in the local part and in
        // the domain.
        assert!(Email::parse("k\u{0435}lvin@example.com").is_err());
        assert!(Email::parse("kelvin@\u{0435}xample.com").is_err());
        // One script per label is fine, and so are digits and punctuation.
        assert!(
            Email::parse("\u{043A}\u{0435}\u{043B}\u{0432}\u{0438}\u{043D}@example.com").is_ok()
        );
        assert!(Email::parse("kelvin.2024+news@example.com").is_ok());
    }

    #[test]
    fn look_alikes_share_a_skeleton() {
        let skeleton = |raw: &str| Email::parse(raw).ok().map(|e| e.skeleton().to_owned());
        let original = skeleton("kelvin@example.com");
        assert!(original.is_some());
        // Whole-script Cyrillic "асе" next to Latin "ace".
        assert_eq!(
            skeleton("ace@example.com"),
            skeleton("\u{0430}\u{0441}\u{0435}@example.com")
        );
        assert_eq!(
            skeleton("paypal@example.com"),
            skeleton("paypa1@example.com")
        );
        assert_ne!(
            skeleton("kelvin@example.com"),
            skeleton("kevin@example.com")
        );
    }

    #[test]
    fn legacy_addresses_keep_their_old_key() {
        let legacy = Email::parse_legacy("Kel\u{200B}vin@Example.com").map(|e| e.key().to_owned());
        assert_eq!(legacy.ok().as_deref(), Some("kel\u{200B}vin@example.com"));
    }

    #[test]
    fn debug_does_not_print_the_address() {
        let email = Email::parse("secret.person@example.com").map(|e| format!("{e:?}"));
        assert_eq!(email.ok().as_deref(), Some("Email([REDACTED])"));
    }

    proptest! {
        /// Whatever the input: no panic; an accepted address holds no
        /// invisible, bidi or control character, fits 254 bytes, has one
        /// script per label, and parses again to the same key and skeleton.
        #[test]
        fn accepted_addresses_keep_the_invariants(
            local in "\\PC{1,20}",
            domain in "(\\PC{1,10}\\.){1,3}[a-z]{2,6}",
        ) {
            let raw = format!("{local}@{domain}");
            if let Ok(email) = Email::parse(&raw) {
                let shown = email.as_str();
                prop_assert!(shown.len() <= MAX_BYTES);
                prop_assert!(!shown.chars().any(|c| is_invisible(c) || c.is_control()));
                let (l, d) = shown.rsplit_once('@').unwrap_or_default();
                prop_assert!(l.is_single_script());
                prop_assert!(d.split('.').all(|label| label.is_single_script()));
                let again = Email::parse(shown);
                prop_assert_eq!(again.as_ref().map(Email::key).ok(), Some(email.key()));
                prop_assert_eq!(again.as_ref().map(Email::skeleton).ok(), Some(email.skeleton()));
            }
        }

        #[test]
        fn arbitrary_input_never_panics(raw in "\\PC{0,300}") {
            let _ = Email::parse(&raw);
            let _ = Email::parse_legacy(&raw);
        }
    }
}
