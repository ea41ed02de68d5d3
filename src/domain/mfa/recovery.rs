//! Recovery codes: ten per account, each 10 characters of Crockford base32
//! (50 random bits), shown as `xxxxx-xxxxx`, usable once. Only an
//! HMAC-SHA-256 of each, under the recovery-code data key and bound to the
//! user, is stored: at 50 bits a keyed hash cannot be brute-forced from a
//! database dump, and checking one costs no Argon2.
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::crypto::{DataKey, random};

pub const COUNT: usize = 10;
const LENGTH: usize = 10;
/// Crockford's base32 alphabet, lower case: no i, l, o or u to misread.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A recovery code as shown to the user once. `Debug` never shows it.
pub struct RecoveryCode(SecretString);

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode([REDACTED])")
    }
}

impl RecoveryCode {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A fresh set of codes and the hashes to store for them.
pub fn generate(
    key: &DataKey,
    user_id: Uuid,
) -> anyhow::Result<(Vec<RecoveryCode>, Vec<[u8; 32]>)> {
    let mut codes = Vec::with_capacity(COUNT);
    let mut hashes = Vec::with_capacity(COUNT);
    for _ in 0..COUNT {
        // 256 is a multiple of 32: masking keeps each character uniform.
        let raw = random::bytes::<LENGTH>()?;
        let chars: String = raw
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
            .collect();
        hashes.push(hash(key, user_id, &chars));
        let (head, tail) = chars.split_at(LENGTH / 2);
        codes.push(RecoveryCode(SecretString::from(format!("{head}-{tail}"))));
    }
    Ok((codes, hashes))
}

/// The stored form of what a user typed, if it can be a code at all: case,
/// hyphens and spaces do not matter, and the letters Crockford reads as
/// digits (i, l → 1; o → 0) are read so.
pub fn hash_input(key: &DataKey, user_id: Uuid, typed: &str) -> Option<[u8; 32]> {
    let normalized: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'i' | 'l' => '1',
            'o' => '0',
            other => other,
        })
        .collect();
    let valid = normalized.len() == LENGTH && normalized.bytes().all(|b| ALPHABET.contains(&b));
    valid.then(|| hash(key, user_id, &normalized))
}

fn hash(key: &DataKey, user_id: Uuid, code: &str) -> [u8; 32] {
    let mut input = user_id.as_bytes().to_vec();
    input.extend_from_slice(code.as_bytes());
    key.hmac(&input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ten_distinct_easy_to_type_and_match_their_hashes() {
        let Ok(key) = DataKey::generate() else {
            panic!("rng")
        };
        let user = Uuid::new_v4();
        let Ok((codes, hashes)) = generate(&key, user) else {
            panic!("rng")
        };
        assert_eq!((codes.len(), hashes.len()), (COUNT, COUNT));
        for (code, stored) in codes.iter().zip(&hashes) {
            let shown = code.expose();
            assert_eq!(shown.len(), 11);
            assert_eq!(shown.as_bytes()[5], b'-');
            assert_eq!(hash_input(&key, user, shown), Some(*stored));
            // Typed in upper case, without the hyphen, with spaces.
            let sloppy = format!(" {} ", shown.replace('-', "").to_uppercase());
            assert_eq!(hash_input(&key, user, &sloppy), Some(*stored));
            // Another user's code is another hash.
            assert_ne!(hash_input(&key, Uuid::new_v4(), shown), Some(*stored));
            assert_eq!(format!("{code:?}"), "RecoveryCode([REDACTED])");
        }
        let mut unique = hashes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
    }

    #[test]
    fn crockford_look_alikes_read_as_digits_and_junk_is_refused() {
        let Ok(key) = DataKey::generate() else {
            panic!("rng")
        };
        let user = Uuid::nil();
        assert_eq!(
            hash_input(&key, user, "1o1o1-IOLI0"),
            hash_input(&key, user, "10101-10110")
        );
        for junk in ["", "abcde", "abcde-abcdeX", "abcde-abcdu", "abcde_abcde"] {
            assert_eq!(hash_input(&key, user, junk), None, "{junk}");
        }
    }
}
