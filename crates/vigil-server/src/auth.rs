//! Who is calling: a token from `Authorization: Bearer …`, or from the dashboard's session
//! cookie. Handlers state the scope they need in their signature ([`Read`], [`Write`],
//! [`Admin`]), so no route can forget to check.
//!
//! The cookie is `HttpOnly` and `SameSite=Strict`, and a request authenticated by it that
//! changes something must also carry the header `x-vigil-csrf: 1`, which a page of another
//! site cannot send without a CORS preflight this server never grants.

use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method};
use axum::response::{AppendHeaders, IntoResponse};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::AppState;
use crate::tokens::Scope;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "vigil_token";
/// The header cookie-authenticated writes must carry.
pub const CSRF_HEADER: &str = "x-vigil-csrf";

/// The caller, once its token checked out.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// The token's scope.
    pub scope: Scope,
}

/// A caller allowed to read.
pub struct Read(#[allow(dead_code)] pub Caller);
/// A caller allowed to write documents.
pub struct Write(#[allow(dead_code)] pub Caller);
/// A caller allowed to manage tokens.
pub struct Admin(#[allow(dead_code)] pub Caller);

fn cookie_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.to_string())
}

fn bearer_token(parts: &Parts) -> ApiResult<Option<String>> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok(Some(token.trim().to_string()))
        }
        _ => Err(ApiError::unauthorized(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

async fn authenticate(parts: &Parts, state: &AppState, needed: Scope) -> ApiResult<Caller> {
    let (token, by_cookie) = match bearer_token(parts)? {
        Some(t) => (t, false),
        None => match cookie_token(parts) {
            Some(t) => (t, true),
            None => {
                return Err(ApiError::unauthorized(
                    "no token: send `Authorization: Bearer <token>` (create one with `vigil token create`)",
                ))
            }
        },
    };
    let found = state
        .verify(&token)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
    let changes = !matches!(parts.method, Method::GET | Method::HEAD);
    if by_cookie && changes && parts.headers.get(CSRF_HEADER).is_none() {
        return Err(ApiError::forbidden(format!(
            "a change made with the session cookie must carry the `{CSRF_HEADER}` header"
        )));
    }
    if found.scope < needed {
        return Err(ApiError::forbidden(format!(
            "token `{}` has scope {}; this needs {needed}",
            found.name, found.scope
        )));
    }
    Ok(Caller {
        name: found.name.clone(),
        scope: found.scope,
    })
}

macro_rules! scoped {
    ($ty:ident, $scope:expr) => {
        impl FromRequestParts<AppState> for $ty {
            type Rejection = ApiError;
            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, Self::Rejection> {
                authenticate(parts, state, $scope).await.map($ty)
            }
        }
    };
}

scoped!(Read, Scope::Read);
scoped!(Write, Scope::Write);
scoped!(Admin, Scope::Admin);

/// A sign-in: the token to keep in the session cookie.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignIn {
    /// A token, as `vigil token create` printed it.
    pub token: String,
}

fn session_cookie(value: &str, max_age: Option<u64>) -> HeaderValue {
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    // Tokens are URL-safe base64 with a prefix: nothing in them needs quoting in a cookie.
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("vigil_token=; Path=/; Max-Age=0"))
}

/// Signs in: checks the token and keeps it in an `HttpOnly` session cookie, for the dashboard
/// (whose images and event stream cannot send an `Authorization` header).
#[utoipa::path(post, path = "/api/session", request_body = SignIn,
    responses((status = 200, body = Caller), (status = 401, body = crate::error::ErrorBody)))]
pub async fn sign_in(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SignIn>,
) -> ApiResult<impl IntoResponse> {
    let found = state
        .verify(body.token.trim())
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
    if body.token.trim().contains([';', ',', ' ']) {
        return Err(ApiError::bad_request(
            "a token never holds `;`, `,` or spaces",
        ));
    }
    let caller = Caller {
        name: found.name.clone(),
        scope: found.scope,
    };
    Ok((
        AppendHeaders([(SET_COOKIE, session_cookie(body.token.trim(), None))]),
        Json(caller),
    ))
}

/// The caller this request is authenticated as.
#[utoipa::path(get, path = "/api/session",
    responses((status = 200, body = Caller), (status = 401, body = crate::error::ErrorBody)))]
pub async fn whoami(Read(caller): Read) -> Json<Caller> {
    Json(caller)
}

/// Signs out: clears the session cookie.
#[utoipa::path(delete, path = "/api/session", responses((status = 204)))]
pub async fn sign_out() -> impl IntoResponse {
    (
        axum::http::StatusCode::NO_CONTENT,
        AppendHeaders([(SET_COOKIE, session_cookie("", Some(0)))]),
    )
}
