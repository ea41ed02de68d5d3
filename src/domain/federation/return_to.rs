//! Where a federated sign-in sends the browser at the end. Only a path on
//! authd's own origin, or a URL under one of `http.allowed_origins`: never
//! anywhere else (no open redirect).
use url::Url;

use crate::error::{Error, Result};

const MAX_CHARS: usize = 2048;

/// `return_to` as given, once it is safe to redirect to; `/` when absent.
pub fn check(requested: Option<&str>, allowed_origins: &[String]) -> Result<String> {
    let Some(target) = requested else {
        return Ok("/".to_owned());
    };
    if target.is_empty()
        || target.len() > MAX_CHARS
        || target
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(Error::InvalidReturnTo);
    }
    if target.starts_with('/') {
        // `//host` and `/\host` are protocol-relative to browsers.
        if target.starts_with("//") {
            return Err(Error::InvalidReturnTo);
        }
        return Ok(target.to_owned());
    }
    let url = Url::parse(target).map_err(|_| Error::InvalidReturnTo)?;
    let origin = url.origin().ascii_serialization();
    let allowed = matches!(url.scheme(), "https" | "http")
        && url.username().is_empty()
        && url.password().is_none()
        && allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(&origin));
    if allowed {
        Ok(url.to_string())
    } else {
        Err(Error::InvalidReturnTo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["https://app.example.com".to_owned()]
    }

    #[test]
    fn paths_and_allowed_origins_pass() {
        assert_eq!(check(None, &allowed()).ok().as_deref(), Some("/"));
        for ok in ["/", "/admin?tab=users#x", "https://app.example.com/after"] {
            assert!(check(Some(ok), &allowed()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "https://app.example.com.evil.example/",
            "https://app.example.com@evil.example/",
            "https://user@app.example.com/",
            "http://app.example.com/",
            "javascript:alert(1)",
            "data:text/html,x",
            "evil.example",
            "/ok\r\nSet-Cookie: x=1",
            "/tab\tbed",
        ] {
            assert!(
                matches!(check(Some(bad), &allowed()), Err(Error::InvalidReturnTo)),
                "{bad:?}"
            );
        }
        let long = format!("/{}", "a".repeat(MAX_CHARS));
        assert!(check(Some(&long), &allowed()).is_err());
    }
}
