//! The one error type at the HTTP edge: JupyterHub's `{"status": <code>, "message": "..."}` body.
//!
//! Store and spawner failures that are not the client's fault are logged here and answered with a bare 500, so no
//! internal detail (SQL, paths, pids) ever reaches a client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use wasmhub_store::StoreError;

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Not Found")
    }

    /// Something went wrong on our side; `detail` goes to the log only.
    pub(crate) fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "hub API request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound { .. } => ApiError::not_found(),
            StoreError::Conflict { kind, name } => {
                ApiError::new(StatusCode::CONFLICT, format!("{kind} {name} already exists"))
            }
            StoreError::Invalid { what, reason } => ApiError::bad_request(format!("Invalid {what}: {reason}")),
            StoreError::Unavailable(error) => {
                tracing::warn!(%error, "hub API request failed: the database does not answer");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The hub's database is not answering; nothing was changed. Try again in a moment.",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.message)
    }
}

/// JupyterHub's error body for any status.
pub(crate) fn error_response(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "status": status.as_u16(), "message": message }).to_string();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Parses an optional JSON body: empty (or only whitespace) is `None`, anything unparsable is JupyterHub's 400.
pub(crate) fn parse_json_body(body: &[u8]) -> Result<Option<serde_json::Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|_| ApiError::bad_request("Invalid JSON in body of request"))
}

/// A JSON value as Python's `repr` prints the parsed value, for messages JupyterHub builds with `{value!r}`.
pub(crate) fn python_repr(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(number) => number.to_string(),
        Value::String(text) if text.contains('\'') && !text.contains('"') => format!("\"{text}\""),
        Value::String(text) => format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => format!("[{}]", items.iter().map(python_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{}: {}", python_repr(&Value::String(key.clone())), python_repr(value)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

/// Python's `type(value)` of a parsed JSON value, as JupyterHub's model checks print it.
pub(crate) fn python_type(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "<class 'NoneType'>",
        Value::Bool(_) => "<class 'bool'>",
        Value::Number(number) if number.is_f64() => "<class 'float'>",
        Value::Number(_) => "<class 'int'>",
        Value::String(_) => "<class 'str'>",
        Value::Array(_) => "<class 'list'>",
        Value::Object(_) => "<class 'dict'>",
    }
}
