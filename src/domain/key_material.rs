//! What differs between the two signing algorithms (RS256: RSA-2048+ with
//! SHA-256; ES256: ECDSA P-256 with SHA-256): generating a key pair, its
//! public parameters and JWK, its RFC 7638 thumbprint (the kid), signing
//! with the parsed private key, and the verifying key. Everything else about
//! keys (sealing, rotation, the key set) is the same for both (`keys`).
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::crypto::random;

pub use crate::config::SigningAlgorithm;

// The enum lives in config (what `keys.algorithm` names); what it means
// to jsonwebtoken is the domain's business.
impl SigningAlgorithm {
    /// jsonwebtoken's name for it (verification).
    pub fn jwt(self) -> Algorithm {
        match self {
            Self::RS256 => Algorithm::RS256,
            Self::ES256 => Algorithm::ES256,
        }
    }
}

/// The public half: RSA (n, e) or P-256 (x, y), big-endian, unpadded for
/// RSA and 32 bytes each for P-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256 { x: Vec<u8>, y: Vec<u8> },
}

impl PublicKey {
    pub fn algorithm(&self) -> SigningAlgorithm {
        match self {
            Self::Rsa { .. } => SigningAlgorithm::RS256,
            Self::P256 { .. } => SigningAlgorithm::ES256,
        }
    }

    /// The JWK members that identify the key, in RFC 7638's lexicographic
    /// order (so the thumbprint can hash their JSON as is).
    fn required_members(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match self {
            Self::Rsa { n, e } => json!({ "e": b64(e), "kty": "RSA", "n": b64(n) }),
            Self::P256 { x, y } => {
                json!({ "crv": "P-256", "kty": "EC", "x": b64(x), "y": b64(y) })
            }
        }
    }

    /// RFC 7638 thumbprint: a kid derived from the public key itself.
    pub fn thumbprint(&self) -> String {
        // serde_json's map keeps keys sorted, as RFC 7638 requires.
        let canonical = self.required_members().to_string();
        URL_SAFE_NO_PAD.encode(random::sha256(canonical.as_bytes()))
    }

    pub fn jwk(&self, kid: &str) -> Value {
        let mut jwk = self.required_members();
        if let Value::Object(members) = &mut jwk {
            members.insert("use".into(), "sig".into());
            members.insert("alg".into(), self.algorithm().name().into());
            members.insert("kid".into(), kid.into());
        }
        jwk
    }

    pub fn decoding_key(&self) -> anyhow::Result<DecodingKey> {
        Ok(match self {
            Self::Rsa { n, e } => DecodingKey::from_rsa_raw_components(n, e),
            Self::P256 { x, y } => DecodingKey::from_ec_components(
                &URL_SAFE_NO_PAD.encode(x),
                &URL_SAFE_NO_PAD.encode(y),
            )?,
        })
    }
}

/// A new key pair: its public half and its PKCS#8 private key.
pub fn generate(
    algorithm: SigningAlgorithm,
    rsa_bits: u32,
) -> anyhow::Result<(PublicKey, Zeroizing<Vec<u8>>)> {
    match algorithm {
        SigningAlgorithm::RS256 => {
            let size = match rsa_bits {
                3072 => KeySize::Rsa3072,
                4096 => KeySize::Rsa4096,
                _ => KeySize::Rsa2048,
            };
            let pair = RsaKeyPair::generate(size)
                .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
            let public = pair.public_key();
            let key = PublicKey::Rsa {
                n: public.modulus().big_endian_without_leading_zero().to_vec(),
                e: public.exponent().big_endian_without_leading_zero().to_vec(),
            };
            let pkcs8 = pair
                .as_der()
                .map_err(|_| anyhow::anyhow!("RSA key export failed"))?;
            Ok((key, Zeroizing::new(pkcs8.as_ref().to_vec())))
        }
        SigningAlgorithm::ES256 => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(|_| anyhow::anyhow!("P-256 key generation failed"))?;
            // Uncompressed point: 0x04 || x || y.
            let point = pair.public_key().as_ref();
            anyhow::ensure!(point.len() == 65 && point[0] == 4, "unexpected P-256 point");
            let key = PublicKey::P256 {
                x: point[1..33].to_vec(),
                y: point[33..].to_vec(),
            };
            let pkcs8 = pair
                .to_pkcs8v1()
                .map_err(|_| anyhow::anyhow!("P-256 key export failed"))?;
            Ok((key, Zeroizing::new(pkcs8.as_ref().to_vec())))
        }
    }
}

/// A private key parsed once (parsing and checking it costs more than a
/// signature), ready to sign.
pub enum Signer {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
}

impl Signer {
    pub fn from_pkcs8(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> anyhow::Result<Self> {
        Ok(match algorithm {
            SigningAlgorithm::RS256 => Self::Rsa(
                RsaKeyPair::from_pkcs8(pkcs8)
                    .map_err(|e| anyhow::anyhow!("RSA key does not parse: {e}"))?,
            ),
            SigningAlgorithm::ES256 => Self::P256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|e| anyhow::anyhow!("P-256 key does not parse: {e}"))?,
            ),
        })
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        match self {
            Self::Rsa(_) => SigningAlgorithm::RS256,
            Self::P256(_) => SigningAlgorithm::ES256,
        }
    }

    /// The JWS signature of `input` (RS256: PKCS#1 v1.5; ES256: r || s,
    /// 64 bytes, as RFC 7518 requires).
    pub fn sign(&self, rng: &SystemRandom, input: &[u8]) -> anyhow::Result<Vec<u8>> {
        match self {
            Self::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, rng, input, &mut signature)
                    .map_err(|_| anyhow::anyhow!("RS256 signing failed"))?;
                Ok(signature)
            }
            Self::P256(pair) => Ok(pair
                .sign(rng, input)
                .map_err(|_| anyhow::anyhow!("ES256 signing failed"))?
                .as_ref()
                .to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_follow_rfc_7638() {
        // RFC 7638 section 3.1's example key and thumbprint.
        let n = URL_SAFE_NO_PAD
            .decode("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
            .unwrap_or_default();
        let e = URL_SAFE_NO_PAD.decode("AQAB").unwrap_or_default();
        let key = PublicKey::Rsa { n, e };
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn each_algorithm_signs_what_its_public_key_verifies() {
        let rng = SystemRandom::new();
        for algorithm in [SigningAlgorithm::RS256, SigningAlgorithm::ES256] {
            let Ok((public, pkcs8)) = generate(algorithm, 2048) else {
                panic!("generate {algorithm:?}")
            };
            assert_eq!(public.algorithm(), algorithm);
            let Ok(signer) = Signer::from_pkcs8(algorithm, &pkcs8) else {
                panic!("parse {algorithm:?}")
            };
            let Ok(signature) = signer.sign(&rng, b"header.payload") else {
                panic!("sign {algorithm:?}")
            };
            let Ok(decoding) = public.decoding_key() else {
                panic!("decoding key {algorithm:?}")
            };
            let encoded = URL_SAFE_NO_PAD.encode(&signature);
            let verified = jsonwebtoken::crypto::verify(
                &encoded,
                b"header.payload",
                &decoding,
                algorithm.jwt(),
            );
            assert_eq!(verified.ok(), Some(true), "{algorithm:?}");
            let jwk = public.jwk("kid-1");
            assert_eq!(jwk["alg"], algorithm.name());
            assert_eq!(jwk["kid"], "kid-1");
        }
        assert!(
            Signer::from_pkcs8(SigningAlgorithm::ES256, &[0u8; 16]).is_err(),
            "garbage"
        );
    }
}
