//! Token management over the API (admin tokens only).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::AppState;
use crate::tokens::{self, Scope, TokenInfo};

/// A token to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    scope: Scope,
}

/// A created token: the only time its secret is shown.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    name: String,
    scope: Scope,
    token: String,
}

/// The tokens (names, scopes, creation times; never secrets or hashes).
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses((status = 200, body = [TokenInfo]), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Vec<TokenInfo>>> {
    let db = state.db();
    let mut list = blocking(move || tokens::list(&db)).await?;
    for t in &mut list {
        t.hash.clear();
    }
    Ok(Json(list))
}

/// Creates a token and shows it once.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let db = state.db();
    let name = new.name.clone();
    let token = blocking(move || tokens::create(&db, &name, new.scope)).await?;
    state.tokens_changed();
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            name: new.name,
            scope: new.scope,
            token,
        }),
    ))
}

/// Revokes a token: it stops working at once on this server, within a second on others.
#[utoipa::path(delete, path = "/api/tokens/{name}", tag = "tokens",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let db = state.db();
    let key = name.clone();
    let revoked = blocking(move || tokens::revoke(&db, &key)).await?;
    state.tokens_changed();
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no token `{name}`")))
    }
}
