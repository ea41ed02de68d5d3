//! HTTP: the router, its middleware stack, extractors and handlers. Handlers
//! only parse, call `domain`, and shape the response.
pub mod admin;
pub mod admin_routes;
pub mod client_ip;
pub mod cookies;
pub mod error_response;
pub mod extract;
pub mod idempotency;
pub mod origin;
pub mod rate_limit;
pub mod request_metrics;
pub mod routes;
pub mod server;
pub mod shed;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::Error;
use crate::state::AppState;
use admin_routes::AdminRoutes;
use rate_limit::RateLimiters;
use routes::{account, activity, auth, federation, health, me, me_account, mfa, well_known};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every (method, path) the router serves; the OpenAPI test compares this
/// list with openapi.yaml.
#[derive(Default)]
pub struct RouteTable(pub Vec<(Method, &'static str)>);

impl RouteTable {
    /// Serves `handler` for exactly `method` on `path`. A method axum cannot
    /// route on its own is an error, never a silent fallback to another.
    fn add<S, H, T>(
        &mut self,
        router: Router<S>,
        method: Method,
        path: &'static str,
        handler: H,
    ) -> anyhow::Result<Router<S>>
    where
        S: Clone + Send + Sync + 'static,
        H: Handler<T, S>,
        T: 'static,
    {
        anyhow::ensure!(
            !path.starts_with("/v1/admin"),
            "{path}: admin routes declare a permission (admin_routes::AdminRoutes::add)"
        );
        let filter = MethodFilter::try_from(method.clone())
            .map_err(|e| anyhow::anyhow!("cannot route {method} {path}: {e}"))?;
        self.0.push((method, path));
        Ok(router.route(path, on(filter, handler)))
    }
}

/// `Idempotency-Key` handling for a group of mutating routes. Callers add
/// it inside the group's rate limiter, so replays count against the limit.
fn idempotent(group: Router<AppState>, state: &AppState, refresh_cookie: bool) -> Router<AppState> {
    group.layer(axum::middleware::from_fn_with_state(
        idempotency::Idempotency::new(state.clone(), refresh_cookie),
        idempotency::middleware,
    ))
}

/// The public router, and its rate limiters (whose idle buckets the
/// caller trims now and then with `RateLimiters::shrink`).
/// Authentication in front of a group of routes (see `extract::authenticate`).
fn authenticated(group: Router<AppState>, state: &AppState) -> Router<AppState> {
    group.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        extract::authenticate,
    ))
}

pub fn router(state: AppState) -> anyhow::Result<(Router, RateLimiters)> {
    let (router, _, limiters) = build(state)?;
    Ok((router, limiters))
}

pub fn build(state: AppState) -> anyhow::Result<(Router, RouteTable, RateLimiters)> {
    let mut table = RouteTable::default();
    let limiters = RateLimiters::new(&state.settings.rate_limit, &state.metrics)?;
    let t = &mut table;
    let api = Router::new()
        .merge(auth_routes(t, &state, &limiters)?)
        .merge(me_routes(t, &state, &limiters)?)
        .merge(admin_api(t, &state)?);

    let public = Router::new();
    let public = t.add(
        public,
        Method::GET,
        "/.well-known/jwks.json",
        well_known::jwks,
    )?;
    let public = t.add(
        public,
        Method::GET,
        "/.well-known/openid-configuration",
        well_known::openid_configuration,
    )?;
    let public = t.add(public, Method::GET, "/healthz", health::healthz)?;
    let public = t.add(public, Method::GET, "/readyz", health::readyz)?;

    let router = Router::new()
        .merge(api)
        .merge(public)
        .fallback(|| async { Error::NotFound })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        // Outside the fallbacks, so preflight requests reach it for every route.
        .layer(origin::cors(&state.settings.http.allowed_origins))
        .layer(DefaultBodyLimit::max(state.settings.http.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.settings.http.max_body_bytes,
            refuse_declared_oversize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            client_ip::TrustedProxies::new(&state.settings.http.trusted_proxies),
            client_ip::resolve,
        ))
        .layer(crate::telemetry::http_trace_layer())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_metrics::record,
        ))
        // Outside the tracing and metrics that a refusal under a flood must
        // not pay for, inside the security headers that it must carry.
        .layer(axum::middleware::from_fn_with_state(
            shed::Shed::new(state.clone()),
            shed::when_saturated,
        ))
        // Responses may carry tokens or account data; only the JWKS and
        // discovery handlers opt into caching by setting their own value.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            hsts(state.settings.http.hsts_max_age_secs),
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::from_fn(
            crate::telemetry::sanitize_request_id,
        ))
        .with_state(state);
    Ok((router, table, limiters))
}

/// `413` before a byte of the body is read when `Content-Length` already
/// says it is too large (the body limit alone would read up to the limit
/// first). The connection then closes: the body is never drained.
async fn refuse_declared_oversize(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Error::PayloadTooLarge.into_response(),
        _ => next.run(request).await,
    }
}

/// `/v1/auth/*`: anonymous callers.
fn auth_routes(
    t: &mut RouteTable,
    state: &AppState,
    limits: &RateLimiters,
) -> anyhow::Result<Router<AppState>> {
    let signup = t.add(Router::new(), Method::POST, "/v1/auth/signup", auth::signup)?;
    // Everything that checks a password, a second factor or a mailed link
    // shares the login bucket.
    let login = t.add(Router::new(), Method::POST, "/v1/auth/login", auth::login)?;
    let login = t.add(login, Method::POST, "/v1/auth/login/mfa", auth::login_mfa)?;
    let login = t.add(
        login,
        Method::POST,
        "/v1/auth/verify-email",
        account::verify_email,
    )?;
    let login = t.add(
        login,
        Method::POST,
        "/v1/auth/password/reset",
        account::reset_password,
    )?;
    // A sign-in start stores a row and a callback redeems a code: both
    // count against the login bucket. Browser navigations (GET): no
    // Idempotency-Key handling.
    let federated = t.add(
        Router::new(),
        Method::GET,
        "/v1/auth/federation/{id}/start",
        federation::start,
    )?;
    let federated = t.add(
        federated,
        Method::GET,
        "/v1/auth/federation/{id}/callback",
        federation::callback,
    )?;
    let listing = t.add(
        Router::new(),
        Method::GET,
        "/v1/auth/federation",
        federation::providers,
    )?;
    let mail = t.add(
        Router::new(),
        Method::POST,
        "/v1/auth/verify-email/resend",
        account::resend_verification,
    )?;
    let mail = t.add(
        mail,
        Method::POST,
        "/v1/auth/password/forgot",
        account::forgot_password,
    )?;
    let refresh = t.add(
        Router::new(),
        Method::POST,
        "/v1/auth/refresh",
        auth::refresh,
    )?;
    let refresh = t.add(refresh, Method::POST, "/v1/auth/logout", auth::logout)?;
    let cookie_routes = idempotent(refresh, state, true)
        .layer(limits.refresh.layer())
        .layer(axum::middleware::from_fn_with_state(
            origin::AllowedOrigins::new(&state.settings.http.allowed_origins),
            origin::require_allowed_origin,
        ));
    Ok(Router::new()
        .merge(idempotent(signup, state, false).layer(limits.signup.layer()))
        .merge(idempotent(login, state, false).layer(limits.login.layer()))
        .merge(federated.layer(limits.login.layer()))
        .merge(listing)
        .merge(idempotent(mail, state, false).layer(limits.mail.layer()))
        .merge(cookie_routes))
}

/// `/v1/me*`: the caller's own account. Changes authenticate before
/// anything else runs (see `extract::authenticate`).
fn me_routes(
    t: &mut RouteTable,
    state: &AppState,
    limits: &RateLimiters,
) -> anyhow::Result<Router<AppState>> {
    let reads = t.add(Router::new(), Method::GET, "/v1/me", me::me)?;
    let reads = t.add(reads, Method::GET, "/v1/me/activity", activity::activity)?;
    let reads = t.add(
        reads,
        Method::GET,
        "/v1/me/sessions",
        me_account::list_sessions,
    )?;
    let posts = t.add(
        Router::new(),
        Method::POST,
        "/v1/me/mfa/totp/setup",
        mfa::setup,
    )?;
    let posts = t.add(
        posts,
        Method::POST,
        "/v1/me/mfa/totp/activate",
        mfa::activate,
    )?;
    let posts = t.add(
        posts,
        Method::POST,
        "/v1/me/mfa/recovery-codes",
        mfa::regenerate,
    )?;
    let posts = t.add(
        posts,
        Method::POST,
        "/v1/me/password",
        me_account::change_password,
    )?;
    let posts = t.add(
        posts,
        Method::POST,
        "/v1/me/email",
        me_account::change_email,
    )?;
    let posts = t.add(
        posts,
        Method::POST,
        "/v1/me/sessions/revoke-others",
        me_account::revoke_other_sessions,
    )?;
    let deletes = t.add(
        Router::new(),
        Method::DELETE,
        "/v1/me/mfa/totp",
        mfa::disable,
    )?;
    let deletes = t.add(
        deletes,
        Method::DELETE,
        "/v1/me",
        me_account::delete_account,
    )?;
    let deletes = t.add(
        deletes,
        Method::DELETE,
        "/v1/me/sessions/{id}",
        me_account::revoke_session,
    )?;
    Ok(reads
        .merge(authenticated(idempotent(posts, state, false), state).layer(limits.login.layer()))
        .merge(authenticated(deletes, state).layer(limits.login.layer())))
}

/// `/v1/admin/*`: each route with the permission it needs.
fn admin_api(t: &mut RouteTable, state: &AppState) -> anyhow::Result<Router<AppState>> {
    use crate::domain::admin::permissions::require::*;
    use routes::admin;
    Ok(AdminRoutes::new(t, state)
        .add::<ReadUsers, _, _>(Method::GET, "/v1/admin/users", admin::list_users)?
        .add::<ReadUsers, _, _>(Method::GET, "/v1/admin/users/{id}", admin::get_user)?
        .add::<DisableAccounts, _, _>(
            Method::POST,
            "/v1/admin/users/{id}/disable",
            admin::disable_user,
        )?
        .add::<DisableAccounts, _, _>(
            Method::POST,
            "/v1/admin/users/{id}/enable",
            admin::enable_user,
        )?
        .add::<ManageRoles, _, _>(Method::PUT, "/v1/admin/users/{id}/roles", admin::set_roles)?
        .add::<RevokeSessions, _, _>(
            Method::POST,
            "/v1/admin/users/{id}/sessions/revoke",
            admin::revoke_sessions,
        )?
        .add::<ResetMfa, _, _>(Method::DELETE, "/v1/admin/users/{id}/mfa", admin::reset_mfa)?
        .add::<ResendVerification, _, _>(
            Method::POST,
            "/v1/admin/users/{id}/verification/resend",
            admin::resend_verification,
        )?
        .add::<ReadAudit, _, _>(Method::GET, "/v1/admin/audit", admin::audit)?
        .router())
}

/// `Strict-Transport-Security`, or none when `max_age_secs` is 0 (off by
/// default: the header pins browsers to HTTPS for every subdomain, which an
/// operator has to opt into knowingly).
fn hsts(max_age_secs: u64) -> Option<HeaderValue> {
    (max_age_secs > 0)
        .then(|| format!("max-age={max_age_secs}; includeSubDomains"))
        .and_then(|value| HeaderValue::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn status(router: &Router, method: Method) -> u16 {
        let request = Request::builder()
            .method(method)
            .uri("/thing")
            .body(Body::empty())
            .unwrap_or_default();
        match router.clone().oneshot(request).await {
            Ok(response) => response.status().as_u16(),
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn routes_answer_exactly_their_declared_method() {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ] {
            let mut table = RouteTable::default();
            let Ok(router) = table.add(Router::new(), method.clone(), "/thing", || async { "ok" })
            else {
                panic!("{method} should be routable")
            };
            for other in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
            ] {
                let expected = if other == method { 200 } else { 405 };
                assert_eq!(
                    status(&router, other.clone()).await,
                    expected,
                    "{method} route, {other} request"
                );
            }
            assert_eq!(table.0, vec![(method, "/thing")]);
        }
    }

    #[test]
    fn methods_axum_cannot_route_are_refused() {
        let mut table = RouteTable::default();
        let odd = Method::from_bytes(b"PURGE").unwrap_or(Method::CONNECT);
        assert!(
            table
                .add(Router::<()>::new(), odd, "/thing", || async { "ok" })
                .is_err()
        );
        assert!(table.0.is_empty());
    }
}
