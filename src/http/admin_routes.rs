//! How `/v1/admin` routes are built: only through `AdminRoutes::add`, which
//! takes the route's permission as a type and puts its check in front of
//! everything else on the route (idempotency, body parsing, the handler).
//! `RouteTable::add` refuses `/v1/admin` paths, so a route without a
//! permission cannot exist.
use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};

use crate::domain::admin::authorize::{self, AdminCaller};
use crate::domain::admin::permissions::{Permission, Required};
use crate::error::{Error, Result};
use crate::http::RouteTable;
use crate::http::extract::Bearer;
use crate::http::idempotency;
use crate::state::AppState;

pub const PREFIX: &str = "/v1/admin/";

pub struct AdminRoutes<'t> {
    router: Router<AppState>,
    table: &'t mut RouteTable,
    state: AppState,
}

impl<'t> AdminRoutes<'t> {
    pub fn new(table: &'t mut RouteTable, state: &AppState) -> Self {
        Self {
            router: Router::new(),
            table,
            state: state.clone(),
        }
    }

    /// Serves `handler` for `method` on `path`, for callers holding `P`.
    /// Mutating routes also honour `Idempotency-Key` (behind the check).
    pub fn add<P, H, T>(
        self,
        method: Method,
        path: &'static str,
        handler: H,
    ) -> anyhow::Result<Self>
    where
        P: Required,
        H: Handler<T, AppState>,
        T: 'static,
    {
        anyhow::ensure!(path.starts_with(PREFIX), "{path} is not an admin route");
        let filter = MethodFilter::try_from(method.clone())
            .map_err(|e| anyhow::anyhow!("cannot route {method} {path}: {e}"))?;
        let mut route = on(filter, handler);
        if method != Method::GET {
            route = route.layer(axum::middleware::from_fn_with_state(
                idempotency::Idempotency::new(self.state.clone(), false),
                idempotency::middleware,
            ));
        }
        let route = route.layer(axum::middleware::from_fn_with_state(
            (self.state.clone(), P::PERMISSION),
            require,
        ));
        self.table.0.push((method, path));
        Ok(Self {
            router: self.router.route(path, route),
            ..self
        })
    }

    pub fn router(self) -> Router<AppState> {
        self.router
    }
}

/// The check: a bearer token (401 without), an open session of an enabled
/// account whose current roles grant the permission (403 `forbidden`),
/// and MFA on that session (403 `mfa_required`).
async fn require(
    State((state, permission)): State<(AppState, Permission)>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let caller = match Bearer::from_request_parts(&mut parts, &state).await {
        Ok(Bearer(claims)) => authorize::authorize(&state, &claims, permission).await,
        Err(error) => Err(error),
    };
    match caller {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => error.into_response(),
    }
}

/// The authorized admin, as `require` found them. Absent (a handler on a
/// route `require` does not guard): refused.
pub struct Admin(pub AdminCaller);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        parts
            .extensions
            .get::<AdminCaller>()
            .copied()
            .map(Admin)
            .ok_or(Error::Forbidden)
    }
}
