//! Collections and their documents: list, count, find (streamed as NDJSON), insert, update,
//! replace, delete, and binary values at their own URLs.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;
use vigil::{Datalayer, Document, Value};

use crate::auth::{Read, Write};
use crate::docs::{document_json, id_filter, value_at, Binary};
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::{JsonBody, Params};
use crate::state::AppState;

/// A collection with its size.
#[derive(Serialize, ToSchema)]
pub struct CollectionInfo {
    name: String,
    count: u64,
}

/// A number of documents.
#[derive(Serialize, ToSchema)]
pub struct Count {
    count: u64,
}

/// Query-string form of a find. `filter`, `sort` and `projection` are JSON text.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct FindParams {
    /// Mongo-style filter, e.g. `{"class": 7}`. Default: every document.
    filter: Option<String>,
    /// Mongo-style sort, e.g. `{"class": 1}`. Default: insertion order.
    sort: Option<String>,
    /// Mongo-style projection, e.g. `{"img": 0}`. Default: every field.
    projection: Option<String>,
    /// Documents to pass over first. Default: 0.
    skip: Option<u64>,
    /// At most this many (0: no limit). Default: no limit.
    limit: Option<u64>,
    /// How binary values are written. Default: base64.
    binary: Option<Binary>,
}

/// Body form of a find.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindBody {
    #[schema(value_type = Object)]
    filter: Option<Json_>,
    #[schema(value_type = Object)]
    sort: Option<Json_>,
    #[schema(value_type = Object)]
    projection: Option<Json_>,
    skip: Option<u64>,
    limit: Option<u64>,
    binary: Option<Binary>,
}

fn parse_param(what: &str, text: Option<&str>) -> ApiResult<Option<Json_>> {
    text.map(|t| {
        serde_json::from_str(t)
            .map_err(|e| ApiError::bad_request(format!("`{what}` is not valid JSON: {e}")))
    })
    .transpose()
}

impl TryFrom<FindParams> for FindBody {
    type Error = ApiError;
    fn try_from(p: FindParams) -> ApiResult<FindBody> {
        Ok(FindBody {
            filter: parse_param("filter", p.filter.as_deref())?,
            sort: parse_param("sort", p.sort.as_deref())?,
            projection: parse_param("projection", p.projection.as_deref())?,
            skip: p.skip,
            limit: p.limit,
            binary: p.binary,
        })
    }
}

/// A 404 unless the collection exists (its name is validated first: a bad one is a 400).
fn existing(db: &Datalayer, name: &str) -> vigil::Result<vigil::Collection> {
    let collection = db.collection(name)?;
    if !db.list_collections()?.iter().any(|c| c == name) {
        return Err(vigil::Error::NotFound {
            kind: "collection".into(),
            identifier: name.into(),
            version: None,
        });
    }
    Ok(collection)
}

/// The collections, with how many documents each holds.
#[utoipa::path(get, path = "/api/collections", tag = "documents",
    responses((status = 200, body = [CollectionInfo])))]
pub async fn list(_: Read, State(state): State<AppState>) -> ApiResult<Json<Vec<CollectionInfo>>> {
    let db = state.db();
    let out = blocking(move || {
        db.list_collections()?
            .into_iter()
            .map(|name| {
                let count = db.collection(&name)?.count(serde_json::json!({}))?;
                Ok(CollectionInfo { name, count })
            })
            .collect()
    })
    .await?;
    Ok(Json(out))
}

/// Drops a collection with everything in it, its listeners included.
#[utoipa::path(delete, path = "/api/collections/{name}", tag = "documents",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn drop(
    _: Write,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let db = state.db();
    blocking(move || {
        existing(&db, &name)?;
        db.drop_collection(&name)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many documents a filter matches.
#[utoipa::path(get, path = "/api/collections/{name}/count", tag = "documents",
    params(("filter" = Option<String>, Query, description = "Mongo-style filter as JSON")),
    responses((status = 200, body = Count), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn count(
    _: Read,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Params(params): Params<FindParams>,
) -> ApiResult<Json<Count>> {
    let filter = parse_param("filter", params.filter.as_deref())?.unwrap_or(serde_json::json!({}));
    let db = state.db();
    let count = blocking(move || existing(&db, &name)?.count(filter)).await?;
    Ok(Json(Count { count }))
}

/// Documents a filter matches, streamed as NDJSON (one document per line) in batches, never
/// the whole result in memory. An error after the first line (the database went away) ends
/// the stream with a line `{"error": {…}}`.
#[utoipa::path(get, path = "/api/collections/{name}/documents", tag = "documents",
    params(FindParams),
    responses((status = 200, content_type = "application/x-ndjson", description = "one document per line"),
              (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn find_get(
    _: Read,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Params(params): Params<FindParams>,
) -> ApiResult<Response> {
    stream_find(state.db(), name, params.try_into()?).await
}

/// [`find_get`] with the query in the body, for filters too long for a URL.
#[utoipa::path(post, path = "/api/collections/{name}/find", tag = "documents",
    request_body = FindBody,
    responses((status = 200, content_type = "application/x-ndjson", description = "one document per line"),
              (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn find_post(
    _: Read,
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<FindBody>,
) -> ApiResult<Response> {
    stream_find(state.db(), name, body).await
}

/// Lines are sent in chunks of about this many bytes.
const CHUNK: usize = 64 * 1024;

async fn stream_find(db: Datalayer, name: String, q: FindBody) -> ApiResult<Response> {
    let (started_tx, started_rx) = oneshot::channel::<vigil::Result<()>>();
    // A few chunks in flight: the database thread waits when the client reads slowly.
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let run = || -> vigil::Result<vigil::Cursor> {
            let collection = existing(&db, &name)?;
            let mut find = collection.find(q.filter.unwrap_or(serde_json::json!({})));
            if let Some(s) = q.sort {
                find = find.sort(s);
            }
            if let Some(p) = q.projection {
                find = find.projection(p);
            }
            find.skip(q.skip.unwrap_or(0))
                .limit(q.limit.unwrap_or(0))
                .run()
        };
        let cursor = match run() {
            Ok(c) => {
                let _ = started_tx.send(Ok(()));
                c
            }
            Err(e) => {
                let _ = started_tx.send(Err(e));
                return;
            }
        };
        let binary = q.binary.unwrap_or_default();
        let mut buf = Vec::with_capacity(CHUNK);
        for doc in cursor {
            match doc {
                Ok(doc) => {
                    // serde_json writes to a Vec without failing.
                    let _ = serde_json::to_writer(&mut buf, &document_json(&doc, binary, &name));
                    buf.push(b'\n');
                }
                Err(e) => {
                    let err = ApiError::from(e);
                    let line =
                        serde_json::json!({"error": {"kind": err.kind, "message": err.message}});
                    let _ = serde_json::to_writer(&mut buf, &line);
                    buf.push(b'\n');
                    break;
                }
            }
            if buf.len() >= CHUNK {
                let chunk = Bytes::from(std::mem::replace(&mut buf, Vec::with_capacity(CHUNK)));
                if tx.blocking_send(Ok(chunk)).is_err() {
                    return; // the client went away
                }
            }
        }
        if !buf.is_empty() {
            let _ = tx.blocking_send(Ok(Bytes::from(buf)));
        }
    });
    match started_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => {
            return Err(ApiError::internal(
                "the find's task ended before it started",
            ))
        }
    }
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// Parameters of a single document's view.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct DocParams {
    /// How binary values are written. Default: base64.
    binary: Option<Binary>,
}

async fn load_doc(state: &AppState, name: String, id: String) -> ApiResult<Document> {
    let db = state.db();
    let found = blocking(move || {
        existing(&db, &name)?
            .find_one(id_filter(&id))
            .map(|d| (d, id))
    })
    .await?;
    match found {
        (Some(doc), _) => Ok(doc),
        (None, id) => Err(ApiError::not_found(format!("no document with _id {id:?}"))),
    }
}

/// One document by `_id` (an integer id is written as its digits; a string id
/// percent-encoded).
#[utoipa::path(get, path = "/api/collections/{name}/documents/{id}", tag = "documents",
    params(DocParams),
    responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    _: Read,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Params(params): Params<DocParams>,
) -> ApiResult<Json<Json_>> {
    let doc = load_doc(&state, name.clone(), id).await?;
    Ok(Json(document_json(
        &doc,
        params.binary.unwrap_or_default(),
        &name,
    )))
}

/// A binary value of a document, as its bytes: served as `image/png` (or the codec's name
/// when that is a media type), else `application/octet-stream` with the codec in
/// `x-vigil-codec`. The path is the field's, `/`-separated (`img`, `frames/0`).
#[utoipa::path(get, path = "/api/collections/{name}/documents/{id}/{path}", tag = "documents",
    responses((status = 200, content_type = "application/octet-stream"),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_binary(
    _: Read,
    State(state): State<AppState>,
    Path((name, id, path)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let doc = load_doc(&state, name, id).await?;
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (codec, bytes) = match value_at(&doc, &segments) {
        Some(Value::Encoded(e)) => (e.codec().to_string(), e.bytes().to_vec()),
        Some(Value::Bytes(b)) => (vigil::codec::BYTES_CODEC.to_string(), b.clone()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`{path}` holds {}, not a binary value",
                other.kind()
            )))
        }
        None => {
            return Err(ApiError::not_found(format!(
                "the document has no field `{path}`"
            )))
        }
    };
    let media = if codec.contains('/') {
        codec.clone()
    } else {
        "application/octet-stream".into()
    };
    Ok((
        [
            (header::CONTENT_TYPE, media),
            (header::HeaderName::from_static("x-vigil-codec"), codec),
            (header::CACHE_CONTROL, "private, no-cache".into()),
        ],
        bytes,
    )
        .into_response())
}

/// Ids of inserted documents, in order.
#[derive(Serialize, ToSchema)]
pub struct Inserted {
    #[schema(value_type = Vec<Object>)]
    inserted_ids: Vec<Json_>,
}

/// Inserts one document (a JSON object) or many (an array), all in one transaction. Binary
/// values are `{"$codec": "image/png", "$base64": "…"}`. Documents get `_id` and `_fold` when
/// they have none.
#[utoipa::path(post, path = "/api/collections/{name}/documents", tag = "documents",
    request_body(content = Object, description = "a document, or an array of documents"),
    responses((status = 201, body = Inserted), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
pub async fn insert(
    _: Write,
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Json_>,
) -> ApiResult<(StatusCode, Json<Inserted>)> {
    let db = state.db();
    let ids = blocking(move || {
        let collection = db.collection(&name)?;
        let items = match body {
            Json_::Array(items) => items,
            one => vec![one],
        };
        let docs = items
            .iter()
            .enumerate()
            .map(|(i, item)| match Value::from_extended_json(item) {
                Ok(Value::Object(d)) => Ok(d),
                Ok(other) => Err(vigil::Error::InvalidDocument {
                    location: vigil::Location::default().in_document(i),
                    reason: format!("a document is a JSON object, found {}", other.kind()),
                }),
                Err(e) => Err(e),
            })
            .collect::<vigil::Result<Vec<Document>>>()?;
        collection.insert_many(docs)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Inserted {
            inserted_ids: ids.iter().map(Value::to_json).collect(),
        }),
    ))
}

/// An update: `{"filter": …, "update": {"$set": …}, "many": false, "upsert": false}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[schema(value_type = Object)]
    filter: Json_,
    #[schema(value_type = Object)]
    update: Json_,
    #[serde(default)]
    many: bool,
    /// Insert a document when none matches (the filter's equalities, updated).
    #[serde(default)]
    upsert: bool,
}

/// What an update or replace did.
#[derive(Serialize, ToSchema)]
pub struct Updated {
    matched: u64,
    modified: u64,
    /// The inserted document's `_id`, when an upsert inserted one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    upserted_id: Option<Json_>,
}

impl From<vigil::UpdateOutcome> for Updated {
    fn from(o: vigil::UpdateOutcome) -> Self {
        Updated {
            matched: o.matched,
            modified: o.modified,
            upserted_id: None,
        }
    }
}

impl From<vigil::UpsertOutcome> for Updated {
    fn from(o: vigil::UpsertOutcome) -> Self {
        Updated {
            matched: o.matched,
            modified: o.modified,
            upserted_id: o.upserted_id.map(|id| id.to_json()),
        }
    }
}

/// Applies MongoDB's update operators (`$set`, `$unset`, `$inc`, `$mul`, `$min`, `$max`,
/// `$rename`, `$push`, `$addToSet`, `$pull`, `$pop`, `$setOnInsert`) to the first matching
/// document, or to all with `many`; with `upsert`, inserts one when none matches.
#[utoipa::path(post, path = "/api/collections/{name}/update", tag = "documents",
    request_body = UpdateBody,
    responses((status = 200, body = Updated), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn update(
    _: Write,
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> ApiResult<Json<Updated>> {
    let db = state.db();
    let out = blocking(move || {
        let c = existing(&db, &name)?;
        let update = match Value::from_extended_json(&body.update)? {
            Value::Object(d) => d,
            other => {
                return Err(vigil::Error::WrongType {
                    expected: "an update object",
                    found: other.kind(),
                })
            }
        };
        match (body.many, body.upsert) {
            (false, true) => c.upsert_one(body.filter, update).map(Updated::from),
            (false, false) => c.update_one(body.filter, update).map(Updated::from),
            (true, false) => c.update_many(body.filter, update).map(Updated::from),
            // As MongoDB's `update_many` with `upsert`: one document inserted when none matched.
            (true, true) => match c.update_many(body.filter.clone(), update.clone())? {
                out if out.matched > 0 => Ok(Updated::from(out)),
                _ => c.upsert_one(body.filter, update).map(Updated::from),
            },
        }
    })
    .await?;
    Ok(Json(out))
}

/// A replacement: `{"filter": …, "document": {…}, "upsert": false}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceBody {
    #[schema(value_type = Object)]
    filter: Json_,
    #[schema(value_type = Object)]
    document: Json_,
    /// Insert the document when none matches.
    #[serde(default)]
    upsert: bool,
}

/// Replaces the first matching document, keeping its `_id`; with `upsert`, inserts the
/// document when none matches.
#[utoipa::path(post, path = "/api/collections/{name}/replace", tag = "documents",
    request_body = ReplaceBody,
    responses((status = 200, body = Updated), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn replace(
    _: Write,
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<ReplaceBody>,
) -> ApiResult<Json<Updated>> {
    let db = state.db();
    let out = blocking(move || {
        let c = existing(&db, &name)?;
        let doc = match Value::from_extended_json(&body.document)? {
            Value::Object(d) => d,
            other => {
                return Err(vigil::Error::WrongType {
                    expected: "a document object",
                    found: other.kind(),
                })
            }
        };
        if body.upsert {
            c.replace_or_insert(body.filter, doc).map(Updated::from)
        } else {
            c.replace_one(body.filter, doc).map(Updated::from)
        }
    })
    .await?;
    Ok(Json(out))
}

/// A delete: `{"filter": …, "many": false}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    #[schema(value_type = Object)]
    filter: Json_,
    #[serde(default)]
    many: bool,
}

/// How many documents went.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    deleted: u64,
}

/// Deletes the first matching document, or all with `many`.
#[utoipa::path(post, path = "/api/collections/{name}/delete", tag = "documents",
    request_body = DeleteBody,
    responses((status = 200, body = Deleted), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    _: Write,
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<DeleteBody>,
) -> ApiResult<Json<Deleted>> {
    let db = state.db();
    let deleted = blocking(move || {
        let c = existing(&db, &name)?;
        if body.many {
            c.delete_many(body.filter)
        } else {
            c.delete_one(body.filter)
        }
    })
    .await?;
    Ok(Json(Deleted { deleted }))
}
