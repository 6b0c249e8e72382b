//! `metav1.Status` failures with the real server's `reason`, `code`, messages and `details.causes`, because
//! clients branch on them (kube-rs maps the body into `ErrorResponse`; a spawner treats 409 AlreadyExists as
//! "already there").

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::resources::Resource;

/// One entry of `details.causes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

impl Cause {
    pub(crate) fn required(field: &str, detail: &str) -> Cause {
        Cause { reason: "FieldValueRequired".into(), message: detail.into(), field: field.into() }
    }

    pub(crate) fn invalid(field: &str, value: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: \"{value}\": {detail}"),
            field: field.into(),
        }
    }

    pub(crate) fn duplicate(field: &str, value: &str) -> Cause {
        Cause {
            reason: "FieldValueDuplicate".into(),
            message: format!("Duplicate value: \"{value}\""),
            field: field.into(),
        }
    }

    pub(crate) fn not_found(field: &str, value: &str) -> Cause {
        Cause { reason: "FieldValueNotFound".into(), message: format!("Not found: \"{value}\""), field: field.into() }
    }

    pub(crate) fn not_supported(field: &str, value: &str, supported: &[&str]) -> Cause {
        let quoted: Vec<String> = supported.iter().map(|value| format!("\"{value}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!("Unsupported value: \"{value}\": supported values: {}", quoted.join(", ")),
            field: field.into(),
        }
    }
}

/// A failure as the API server reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
}

impl Status {
    pub(crate) fn new(code: u16, reason: &str, message: String) -> Status {
        Status { code, reason: reason.into(), message, name: None, kind: None, causes: Vec::new() }
    }

    pub(crate) fn bad_request(message: String) -> Status {
        Status::new(400, "BadRequest", message)
    }

    pub(crate) fn not_found(resource: Resource, name: &str) -> Status {
        let mut status = Status::new(404, "NotFound", format!("{} \"{name}\" not found", resource.plural()));
        status.name = Some(name.into());
        status.kind = Some(resource.plural().into());
        status
    }

    pub(crate) fn already_exists(resource: Resource, name: &str) -> Status {
        let mut status = Status::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", resource.plural()));
        status.name = Some(name.into());
        status.kind = Some(resource.plural().into());
        status
    }

    pub(crate) fn conflict(resource: Resource, name: &str, detail: &str) -> Status {
        let mut status = Status::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {detail}", resource.plural()),
        );
        status.name = Some(name.into());
        status.kind = Some(resource.plural().into());
        status
    }

    pub(crate) fn invalid(resource: Resource, name: &str, causes: Vec<Cause>) -> Status {
        let details: Vec<String> = causes.iter().map(|cause| format!("{}: {}", cause.field, cause.message)).collect();
        let message = format!("{} \"{name}\" is invalid: {}", resource.kind(), details.join(", "));
        Status {
            code: 422,
            reason: "Invalid".into(),
            message,
            name: Some(name.into()),
            kind: Some(resource.kind().into()),
            causes,
        }
    }

    pub(crate) fn expired(message: String) -> Status {
        Status::new(410, "Expired", message)
    }

    pub(crate) fn method_not_allowed(message: String) -> Status {
        Status::new(405, "MethodNotAllowed", message)
    }

    pub(crate) fn injected(code: u16) -> Status {
        let reason = match code {
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        Status::new(code, reason, format!("injected failure ({code})"))
    }

    /// The `metav1.Status` object.
    pub fn to_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.name.is_some() || self.kind.is_some() || !self.causes.is_empty() {
            let mut details = serde_json::Map::new();
            if let Some(name) = &self.name {
                details.insert("name".into(), json!(name));
            }
            if let Some(kind) = &self.kind {
                details.insert("kind".into(), json!(kind));
            }
            if !self.causes.is_empty() {
                let causes: Vec<Value> = self
                    .causes
                    .iter()
                    .map(|cause| json!({"reason": cause.reason, "message": cause.message, "field": cause.field}))
                    .collect();
                details.insert("causes".into(), Value::Array(causes));
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

impl IntoResponse for Status {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (code, axum::Json(self.to_json())).into_response();
        if self.code == 429 {
            response.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}
