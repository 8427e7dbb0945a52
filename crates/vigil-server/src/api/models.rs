//! Models: their versions and records (with `metric_values`), and predictions.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use utoipa::ToSchema;
use vigil::registry::MODEL;
use vigil::{Encoded, Value};

use crate::auth::Read;
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::{Params, Raw};
use crate::state::AppState;

/// A model and its versions.
#[derive(Serialize, ToSchema)]
pub struct ModelVersions {
    identifier: String,
    versions: Vec<u32>,
}

/// One version of a model: its stored record (kind, preprocessing, postprocessing,
/// `metric_values` per validation set, …).
#[derive(Serialize, ToSchema)]
pub struct ModelView {
    identifier: String,
    version: u32,
    #[schema(value_type = Object)]
    record: Json_,
}

/// A model version to use. Default: the latest.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct VersionParam {
    version: Option<u32>,
}

/// The models, with their versions.
#[utoipa::path(get, path = "/api/models", tag = "models",
    responses((status = 200, body = [ModelVersions])))]
pub async fn list(_: Read, State(state): State<AppState>) -> ApiResult<Json<Vec<ModelVersions>>> {
    let db = state.db();
    let all = blocking(move || db.show_all(MODEL)).await?;
    Ok(Json(
        all.into_iter()
            .map(|c| ModelVersions {
                identifier: c.identifier,
                versions: c.versions,
            })
            .collect(),
    ))
}

/// A model's record, with `metric_values`.
#[utoipa::path(get, path = "/api/models/{identifier}", tag = "models", params(VersionParam),
    responses((status = 200, body = ModelView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    _: Read,
    State(state): State<AppState>,
    Path(identifier): Path<String>,
    Params(v): Params<VersionParam>,
) -> ApiResult<Json<ModelView>> {
    let db = state.db();
    let id = identifier.clone();
    let stored = blocking(move || db.show_record(MODEL, &id, v.version)).await?;
    Ok(Json(ModelView {
        identifier,
        version: stored.version,
        record: stored.record,
    }))
}

/// A prediction.
#[derive(Serialize, ToSchema)]
pub struct Prediction {
    model: String,
    version: u32,
    #[schema(value_type = Object)]
    output: Json_,
}

/// Runs a stored model on one input: an image posted as its bytes (`Content-Type:
/// image/png`), or any JSON value (binary values as `{"$codec", "$base64"}`). Models are
/// loaded once and kept.
#[utoipa::path(post, path = "/api/models/{identifier}/predict", tag = "models", params(VersionParam),
    request_body(content = Object, description = "a PNG image (image/png) or a JSON value"),
    responses((status = 200, body = Prediction), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn predict(
    _: Read,
    State(state): State<AppState>,
    Path(identifier): Path<String>,
    Params(v): Params<VersionParam>,
    headers: HeaderMap,
    Raw(body): Raw,
) -> ApiResult<Json<Prediction>> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let input = match media.as_str() {
        "image/png" => Value::Encoded(Encoded::new(vigil::PngCodec::NAME, body.to_vec())),
        "application/json" => {
            let json: Json_ = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
            Value::from_extended_json(&json)?
        }
        other => {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send image/png or application/json, not {other:?}"),
            ))
        }
    };
    let (version, output) = blocking(move || {
        let (version, model) = state.model(&identifier, v.version)?;
        let output = model
            .predict_each(std::slice::from_ref(&input))
            .pop()
            .unwrap_or_else(|| Err(vigil::Error::model(&identifier, "no output")))?;
        Ok((version, (identifier, output)))
    })
    .await?;
    let (model, output) = output;
    Ok(Json(Prediction {
        model,
        version,
        output: output.to_json(),
    }))
}
