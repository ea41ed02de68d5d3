//! The browser refresh cookie. `__Secure-` requires `Secure`; `HttpOnly`
//! keeps scripts away from it; `SameSite=Strict` and `Path=/v1/auth` keep it
//! off every request that does not need it.
use axum::http::HeaderValue;
use axum_extra::extract::cookie::{Cookie, SameSite};

pub const REFRESH_COOKIE: &str = "__Secure-authd_refresh";
const PATH: &str = "/v1/auth";

pub fn refresh_cookie(token: &str, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build((REFRESH_COOKIE, token.to_owned()))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path(PATH)
        .max_age(time::Duration::seconds(max_age_secs))
        .build()
}

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

pub fn header(cookie: &Cookie<'_>) -> HeaderValue {
    // Cookie values are base64url and attributes fixed ASCII: always valid.
    HeaderValue::from_str(&cookie.encoded().to_string()).unwrap_or(HeaderValue::from_static(""))
}

pub fn clearing_header() -> HeaderValue {
    header(&clearing_cookie())
}
