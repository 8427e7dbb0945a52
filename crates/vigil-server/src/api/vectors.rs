//! Similarity search: the documents nearest a query by a vector index over a listener's
//! outputs (`Collection::like`).

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use utoipa::ToSchema;
use vigil::{LikeQuery, Value};

use crate::auth::Read;
use crate::docs::{document_json, Binary};
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::AppState;

/// What to search near: exactly one of `id` (a stored document's `_id`), `vector` (numbers),
/// `input` (the listener's input, e.g. `{"$codec": "image/png", "$base64": "…"}`) or
/// `document` (a document holding it at the listener's key).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LikeBody {
    #[schema(value_type = Object)]
    id: Option<Json_>,
    vector: Option<Vec<f32>>,
    #[schema(value_type = Object)]
    input: Option<Json_>,
    #[schema(value_type = Object)]
    document: Option<Json_>,
    /// The vector index. Default: the collection's only one.
    index: Option<String>,
    /// How many documents. Default: 10.
    n: Option<usize>,
    /// Mongo-style filter the documents must match. Default: every document.
    #[schema(value_type = Object)]
    filter: Option<Json_>,
    /// Scan every vector even where the index has an HNSW graph. Default: false.
    exact: Option<bool>,
    /// How binary values are written. Default: base64.
    binary: Option<Binary>,
}

/// A document and its score (cosine similarity or dot product: larger is nearer; Euclidean
/// distance: smaller is nearer).
#[derive(Serialize, ToSchema)]
pub struct SimilarView {
    score: f32,
    #[schema(value_type = Object)]
    document: Json_,
}

fn query(body: &mut LikeBody) -> ApiResult<LikeQuery> {
    let given = [
        body.id.is_some(),
        body.vector.is_some(),
        body.input.is_some(),
        body.document.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ApiError::bad_request(
            "give exactly one of `id`, `vector`, `input` or `document`",
        ));
    }
    Ok(if let Some(id) = body.id.take() {
        LikeQuery::Id(Value::from_extended_json(&id)?)
    } else if let Some(v) = body.vector.take() {
        LikeQuery::Vector(v)
    } else if let Some(input) = body.input.take() {
        LikeQuery::Input(Value::from_extended_json(&input)?)
    } else {
        match Value::from_extended_json(&body.document.take().unwrap_or_default())? {
            Value::Object(d) => LikeQuery::Document(d),
            other => {
                return Err(ApiError::bad_request(format!(
                    "`document` is {}, not an object",
                    other.kind()
                )))
            }
        }
    })
}

/// The documents nearest a query, nearest first, by a vector index over one of the
/// collection's listeners; `n` of them whenever `n` match the filter.
#[utoipa::path(post, path = "/api/collections/{name}/like", tag = "documents",
    request_body = LikeBody,
    responses((status = 200, body = [SimilarView]), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn like(
    _: Read,
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(mut body): JsonBody<LikeBody>,
) -> ApiResult<Json<Vec<SimilarView>>> {
    let query = query(&mut body)?;
    let db = state.db();
    let binary = body.binary.unwrap_or_default();
    let hits = blocking(move || {
        let mut like = db
            .collection(&name)?
            .like(query)
            .n(body.n.unwrap_or(10))
            .filter(body.filter.unwrap_or_else(|| serde_json::json!({})))
            .exact(body.exact.unwrap_or(false));
        if let Some(index) = &body.index {
            like = like.index(index);
        }
        Ok(like
            .run()?
            .into_iter()
            .map(|hit| SimilarView {
                score: hit.score,
                document: document_json(&hit.document, binary, &name),
            })
            .collect())
    })
    .await?;
    Ok(Json(hits))
}
