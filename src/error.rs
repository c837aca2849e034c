//! The one error type that reaches clients: an HTTP status, a machine-readable code, a message
//! and optional details, rendered as `{"success": false, "error": {code, message, details}}`.
//! Every stage's own error converts into it; internal failures become an opaque 500 that
//! carries only the request id (the cause is logged, never shown).

use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<Value>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn with_details(mut self, details: Vec<Value>) -> ApiError {
        self.details = details;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(409, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(422, code, message)
    }

    /// Logs `cause` with the request id and returns the opaque 500 clients see.
    pub fn internal(cause: &dyn std::fmt::Display, request_id: &str) -> ApiError {
        tracing::error!(request_id, error = %cause, "internal error");
        ApiError::new(
            500,
            "internal_error",
            format!("internal error; quote request id {request_id} when reporting it"),
        )
    }

    pub fn body(&self) -> Value {
        json!({
            "success": false,
            "error": {"code": self.code, "message": self.message, "details": self.details},
        })
    }
}
