//! Password policy per NIST SP 800-63B §5.1.1.2: a length window counted in
//! code points as typed (NFKC would let one typed character such as U+FDFA
//! count as eighteen), no common passwords and nothing derived from the
//! email's local part (both judged on the NFKC form, which is also what is
//! hashed), and no composition rules.
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

/// Every rule `typed` (the password as the client sent it) breaks, as
/// stable reason codes.
pub fn violations(typed: &str, email: &Email, settings: &PasswordSettings) -> Vec<&'static str> {
    let normalized = normalize(typed);
    let normalized = normalized.as_str();
    let mut reasons = Vec::new();
    let length = typed.chars().count();
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
            shed_delay_ms: 0,
            pool_nice: 0,
        }
    }

    fn check(password: &str) -> Vec<&'static str> {
        let email = Email::parse("jonathan@example.com").map_err(|e| e.code());
        match email {
            Ok(email) => violations(password, &email, &settings()),
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
    fn length_counts_code_points_as_typed() {
        // NFKC expands these (U+FDFA to 18 characters, ¼ to 3), but a user
        // typed one and four characters.
        assert_eq!(check("\u{FDFA}"), vec!["too_short"]);
        assert_eq!(check("¼¼¼¼"), vec!["too_short"]);
        // Twelve fullwidth digits are twelve characters, and NFKC turns them
        // into a listed password.
        assert_eq!(check("１２３４５６６５４３２１"), vec!["common_password"]);
    }

    proptest::proptest! {
        /// Never a panic; the length reasons follow the typed code points
        /// exactly; normalising first never changes the verdict on length.
        #[test]
        fn length_reasons_follow_typed_code_points(password in "\\PC{0,140}") {
            let reasons = check(&password);
            let typed = password.chars().count();
            proptest::prop_assert_eq!(reasons.contains(&"too_short"), typed < 12);
            proptest::prop_assert_eq!(reasons.contains(&"too_long"), typed > 128);
            proptest::prop_assert!(reasons.iter().all(|r| [
                "too_short", "too_long", "common_password", "contains_email"
            ].contains(r)));
        }
    }
}
