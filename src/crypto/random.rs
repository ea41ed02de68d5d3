//! Unpredictable bytes and their SHA-256, for opaque tokens.
use aws_lc_rs::{digest, rand};

/// `N` bytes from the operating system's CSPRNG.
pub fn bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut out = [0u8; N];
    rand::fill(&mut out).map_err(|_| anyhow::anyhow!("system random generator failed"))?;
    Ok(out)
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}
