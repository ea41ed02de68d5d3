//! The browser refresh cookie. `__Host-` makes browsers require `Secure`
//! and `Path=/` and refuse a `Domain`, so only authd's own host can set it;
//! `HttpOnly` keeps scripts away from it; `SameSite=Strict` keeps it off
//! cross-site requests.
//!
//! A sibling subdomain could plant a `__Secure-` cookie for the whole
//! domain (cookie tossing), and a browser without authd's own cookie would
//! then refresh into the planter's session. It cannot plant a `__Host-`
//! one. A request must still carry the cookie at most once (two or more
//! are refused; `refresh_cookies` counts them over every `Cookie` header),
//! in case a browser ever gets that wrong.
//!
//! A federated sign-in binds its `state` to the browser with a second
//! cookie per provider, `__Host-` too, `SameSite=Lax` (the provider's
//! redirect back is a cross-site navigation, which a `Strict` cookie would
//! miss), alive for the sign-in's 10 minutes.
use axum::http::{HeaderMap, HeaderValue, header};
use axum_extra::extract::cookie::{Cookie, SameSite};

use crate::error::{Error, Result};

pub const REFRESH_COOKIE: &str = "__Host-authd_refresh";
/// What `__Host-` requires.
const PATH: &str = "/";

/// The `Set-Cookie` value that deletes the refresh cookie. A constant, so
/// that error responses need no fallible conversion; a test checks that it
/// is what the cookie crate renders for `clearing_cookie`.
pub const CLEARING_HEADER: HeaderValue = HeaderValue::from_static(
    "__Host-authd_refresh=; HttpOnly; SameSite=Strict; Secure; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
);

pub fn refresh_cookie(token: &str, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build((REFRESH_COOKIE, token.to_owned()))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path(PATH)
        .max_age(time::Duration::seconds(max_age_secs))
        .build()
}

/// The state cookie of a sign-in through `provider` (provider ids are
/// `[a-z0-9_]`, fit for a cookie name): one per provider, since `__Host-`
/// cannot be scoped to the callback's path.
pub fn federation_cookie_name(provider: &str) -> String {
    format!("__Host-authd_federation_{provider}")
}

pub fn federation_cookie(provider: &str, state: &str, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build((federation_cookie_name(provider), state.to_owned()))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Lax)
        .path(PATH)
        .max_age(time::Duration::seconds(max_age_secs))
        .build()
}

/// Deletes the federation cookie: a state is good for one callback.
pub fn clearing_federation_cookie(provider: &str) -> Cookie<'static> {
    let mut cookie = federation_cookie(provider, "", 0);
    cookie.set_expires(time::OffsetDateTime::UNIX_EPOCH);
    cookie
}

/// The provider's federation cookie's value when the request carries
/// exactly one.
pub fn federation_state(headers: &HeaderMap, provider: &str) -> Option<String> {
    match &named(headers, &federation_cookie_name(provider))[..] {
        [one] => Some(one.clone()),
        _ => None,
    }
}

pub fn header(cookie: &Cookie<'_>) -> Result<HeaderValue> {
    HeaderValue::from_str(&cookie.encoded().to_string()).map_err(|_| {
        Error::Internal(anyhow::anyhow!(
            "the refresh cookie is not a valid header value"
        ))
    })
}

/// The refresh cookie's values, in the order sent, across every `Cookie`
/// header. Pairs that are not `name=value` are skipped, as browsers do. A
/// header with bytes outside ASCII is read lossily rather than skipped, so
/// that it cannot hide a second refresh cookie.
pub fn refresh_cookies(headers: &HeaderMap) -> Vec<String> {
    named(headers, REFRESH_COOKIE)
}

fn named(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .filter(|(found, _)| found.trim() == name)
                .map(|(_, value)| value.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clearing_cookie() -> Cookie<'static> {
        Cookie::build((REFRESH_COOKIE, ""))
            .http_only(true)
            .secure(true)
            .same_site(SameSite::Strict)
            .path(PATH)
            .max_age(time::Duration::ZERO)
            .expires(time::OffsetDateTime::UNIX_EPOCH)
            .build()
    }

    #[test]
    fn the_clearing_header_is_the_clearing_cookie() {
        let rendered = clearing_cookie().encoded().to_string();
        assert_eq!(CLEARING_HEADER.to_str().ok(), Some(rendered.as_str()));
    }

    fn headers(values: &[String]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.append(header::COOKIE, value);
            }
        }
        map
    }

    #[test]
    fn counts_the_refresh_cookie_across_headers() {
        let one = headers(&["a=1; __Host-authd_refresh=abc; b=2".into()]);
        assert_eq!(refresh_cookies(&one), ["abc"]);
        let tossed = headers(&[
            "__Host-authd_refresh=mine".into(),
            "x=1;__Host-authd_refresh=theirs".into(),
        ]);
        assert_eq!(refresh_cookies(&tossed), ["mine", "theirs"]);
        let look_alike = headers(&["__Host-authd_refresh2=x; __host-authd_refresh=y".into()]);
        assert!(refresh_cookies(&look_alike).is_empty());
    }

    proptest! {
        /// Whatever the headers hold: no panic, and every value returned
        /// was sent under exactly the refresh cookie's name.
        #[test]
        fn parsing_never_panics_and_finds_only_the_refresh_cookie(
            values in proptest::collection::vec("[ -~]{0,80}", 0..4),
            planted in 0usize..3,
        ) {
            let mut values = values;
            for i in 0..planted {
                values.push(format!("{REFRESH_COOKIE}=v{i}"));
            }
            let map = headers(&values);
            let found = refresh_cookies(&map);
            prop_assert!(found.len() >= planted);
            for value in found {
                prop_assert!(values
                    .iter()
                    .any(|v| v.contains(REFRESH_COOKIE) && v.contains(value.as_str())));
            }
        }
    }
}
