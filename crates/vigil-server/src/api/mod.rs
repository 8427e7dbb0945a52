//! The JSON API under `/api`, its OpenAPI document (generated from the handlers' annotations
//! by utoipa), and the health check.

pub mod collections;
pub mod events;
pub mod listeners;
pub mod models;
pub mod tokens;
pub mod vectors;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "vigil", description = "Documents, models and listeners over HTTP. Every route but /health needs a token: `Authorization: Bearer <token>`."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    // Routed by hand (its path ends in a wildcard), so listed here.
    paths(collections::get_binary)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The health check's answer.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when the database does not answer.
    status: &'static str,
}

/// Whether the server and its database answer. The one route open without a token; it says
/// nothing else.
#[utoipa::path(get, path = "/health", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let db = state.db();
    match crate::error::blocking(move || db.list_collections()).await {
        Ok(_) => (StatusCode::OK, Json(Health { status: "ok" })),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
            }),
        ),
    }
}

/// The API's routes with their OpenAPI document.
pub fn routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(auth::sign_in, auth::whoami, auth::sign_out))
        .routes(routes!(collections::list))
        .routes(routes!(collections::drop))
        .routes(routes!(collections::count))
        .routes(routes!(collections::find_get, collections::insert))
        .routes(routes!(collections::find_post))
        .routes(routes!(collections::get_one))
        .routes(routes!(collections::update))
        .routes(routes!(collections::replace))
        .routes(routes!(collections::delete))
        .routes(routes!(vectors::like))
        .routes(routes!(models::list))
        .routes(routes!(models::get))
        .routes(routes!(models::predict))
        .routes(routes!(listeners::list))
        .routes(routes!(listeners::get))
        .routes(routes!(listeners::retry))
        .routes(routes!(listeners::errors))
        .routes(routes!(listeners::jobs))
        .routes(routes!(listeners::job))
        .routes(routes!(events::events))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .split_for_parts();
    let router = router.route(
        "/api/collections/{name}/documents/{id}/{*path}",
        get(collections::get_binary),
    );
    (router, api)
}
