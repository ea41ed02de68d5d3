//! Secrets come from files (what Docker and Kubernetes secrets, Vault Agent
//! and the AWS Secrets Manager CSI driver produce), never inline. In the prod
//! profile authd refuses to start when a secret is given inline in a config
//! file or environment variable, or when a secret file is readable by group
//! or others. Errors name the config key, never the value.
use secrecy::SecretString;
use std::path::Path;

/// Config key names that hold secret values (`*_file` keys name files).
const SECRET_NAMES: &[&str] = &[
    "password",
    "secret",
    "private_key",
    "master_key",
    "api_key",
    "token",
];
const SECRET_ENDINGS: &[&str] = &["_password", "_secret", "_token"];

/// True for a dotted config key that holds a secret value inline.
pub fn is_inline_secret(key: &str) -> bool {
    let leaf = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    SECRET_NAMES.contains(&leaf.as_str())
        || SECRET_ENDINGS.iter().any(|ending| leaf.ends_with(ending))
}

/// Refuses a secret file that group or others may read.
pub fn check_permissions(key: &str, path: &Path) -> anyhow::Result<()> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("{key}: cannot read {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode();
        anyhow::ensure!(
            mode & 0o077 == 0,
            "{key}: {} is readable by group or others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    #[cfg(not(unix))]
    let _ = metadata;
    Ok(())
}

/// Reads a secret file, trimming surrounding whitespace (editors add a newline).
pub fn read(key: &str, path: &Path) -> anyhow::Result<SecretString> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{key}: cannot read {}: {e}", path.display()))?,
    );
    Ok(SecretString::from(text.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_inline_secrets_by_name() {
        for key in [
            "database.password",
            "smtp.password",
            "oidc.client_secret",
            "secrets.master_key",
            "x.api_key",
            "x.bot_token",
        ] {
            assert!(is_inline_secret(key), "{key}");
        }
        for key in [
            "secrets.master_key_file",
            "database.password_file",
            "auth.audience",
            "auth.access_token_ttl_secs",
            "secrets.generate_master_key",
            "http.addr",
        ] {
            assert!(!is_inline_secret(key), "{key}");
        }
    }
}
