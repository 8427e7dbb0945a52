//! The API's one error type: every failure is a JSON body `{"error": {"kind", "message"}}`
//! with a status saying whose fault it was. Bad input is always a 4xx naming the problem; a
//! 5xx means the database or the server itself failed.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error as the API reports it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable kind (`invalid_query`, `not_found`, `unauthorized`, …).
    pub kind: &'static str,
    /// What was wrong, for a person.
    pub message: String,
}

/// The JSON body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ErrorDetail {
    kind: &'static str,
    message: String,
}

impl ApiError {
    /// An error with a status, a kind and a message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404: what the request names does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401: no token, or one that is not (or no longer) valid.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: a valid token whose scope does not allow this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 500: the server failed (a task panicked or was cancelled).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<vigil::Error> for ApiError {
    fn from(e: vigil::Error) -> Self {
        use vigil::Error as E;
        let (status, kind) = match &e {
            E::InvalidName { .. } => (StatusCode::BAD_REQUEST, "invalid_name"),
            E::InvalidDocument { .. } => (StatusCode::BAD_REQUEST, "invalid_document"),
            E::InvalidQuery { .. } => (StatusCode::BAD_REQUEST, "invalid_query"),
            E::UnsupportedOperator { .. } => (StatusCode::BAD_REQUEST, "unsupported_operator"),
            E::InvalidOperand { .. } => (StatusCode::BAD_REQUEST, "invalid_operand"),
            E::Decode { .. } | E::Encode { .. } => (StatusCode::BAD_REQUEST, "invalid_value"),
            E::UnknownCodec { .. } => (StatusCode::BAD_REQUEST, "unknown_codec"),
            E::WrongType { .. } => (StatusCode::BAD_REQUEST, "wrong_type"),
            E::InvalidData { .. } => (StatusCode::BAD_REQUEST, "invalid_data"),
            E::DuplicateId { .. } => (StatusCode::CONFLICT, "duplicate_id"),
            E::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            E::Model { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "model_failed"),
            E::Interrupted { .. } => (StatusCode::SERVICE_UNAVAILABLE, "interrupted"),
            E::Backend { .. } | E::Io { .. } => (StatusCode::SERVICE_UNAVAILABLE, "database"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        // The message with its causes, as the CLI prints them.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        ApiError::new(status, kind, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind,
                message: self.message,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// What handlers return.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// Runs blocking database work off the async threads: vigil's backends are synchronous.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> vigil::Result<T> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!(
            "the request's task failed: {e}"
        ))),
    }
}
