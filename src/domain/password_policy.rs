//! Password policy per NIST SP 800-63B §5.1.1.2: NFKC-normalised, a length
//! window, no common passwords, not derived from the email's local part, and
//! no composition rules.
use std::collections::HashSet;
use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;

use crate::config::PasswordSettings;
use crate::domain::email::Email;

/// 30,000 most common passwords (zxcvbn's list, MIT; see data/).
const COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords.txt");

fn blocklist() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| COMMON_PASSWORDS.lines().filter(|l| !l.is_empty()).collect())
}

/// The form in which passwords are hashed and compared.
pub fn normalize(password: &str) -> String {
    password.nfkc().collect()
}

/// Every rule `normalized` breaks, as stable reason codes.
pub fn violations(
    normalized: &str,
    email: &Email,
    settings: &PasswordSettings,
) -> Vec<&'static str> {
    let mut reasons = Vec::new();
    let length = normalized.chars().count();
    if length < settings.min_length {
        reasons.push("too_short");
    }
    if length > settings.max_length {
        reasons.push("too_long");
    }
    if is_common(normalized) {
        reasons.push("common_password");
    }
    let local = email.local_part();
    if local.chars().count() >= 3 && normalized.to_lowercase().contains(local) {
        reasons.push("contains_email");
    }
    reasons
}

/// A listed password, also with digits or symbols merely appended
/// ("dragon2024!!" is "dragon" to an attacker's rule set).
fn is_common(normalized: &str) -> bool {
    let lower = normalized.to_lowercase();
    let list = blocklist();
    if list.contains(lower.as_str()) {
        return true;
    }
    let stem = lower.trim_end_matches(|c: char| !c.is_alphabetic());
    stem.chars().count() >= 4 && stem.len() < lower.len() && list.contains(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PasswordSettings {
        PasswordSettings {
            min_length: 12,
            max_length: 128,
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            pool_threads: 1,
            pool_queue: 1,
            pool_max_wait_ms: 1000,
        }
    }

    fn check(password: &str) -> Vec<&'static str> {
        let email = Email::parse("jonathan@example.com").map_err(|e| e.code());
        match email {
            Ok(email) => violations(&normalize(password), &email, &settings()),
            Err(code) => vec![code],
        }
    }

    #[test]
    fn blocklist_is_large_enough() {
        assert!(blocklist().len() >= 10_000);
    }

    #[test]
    fn accepts_long_uncommon_passphrases_without_composition_rules() {
        assert!(check("correct horse battery staple").is_empty());
        assert!(check("ūnicode pässwörd ok").is_empty());
    }

    #[test]
    fn reports_every_reason() {
        assert_eq!(check("short"), vec!["too_short"]);
        assert_eq!(check(&"x".repeat(129)), vec!["too_long"]);
        assert_eq!(check("1qaz2wsx3edc"), vec!["common_password"]);
        assert_eq!(check("baseball123456"), vec!["common_password"]);
        assert_eq!(check("my-JONATHAN-secret"), vec!["contains_email"]);
        assert_eq!(check("dragon"), vec!["too_short", "common_password"]);
    }

    #[test]
    fn length_counts_characters_after_nfkc() {
        // Twelve fullwidth digits are twelve characters, and NFKC turns them
        // into a listed password.
        assert_eq!(check("１２３４５６６５４３２１"), vec!["common_password"]);
    }
}
