//! Errors: JSON answers with the right status, and start-up failures.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A setting `emotrack serve` cannot start with; the message names the flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A bad setting.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The models could not be loaded.
    #[error("cannot load the models: {0}")]
    Models(#[from] emotrack::Error),
    /// The address could not be bound, or serving failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// An error answer: `{"error": "<code>", "message": "<what to change>"}` with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable name (`bad_image`, `too_large`, ...).
    pub code: &'static str,
    /// What went wrong and what to change, for a person.
    pub message: String,
    /// Seconds to wait before trying again (429, 503).
    pub retry_after: Option<u32>,
}

/// The JSON body of an error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable name: `bad_request`, `bad_image`, `bad_option`,
    /// `too_large`, `unsupported_type`, `unauthorized`, `not_found`, `busy`, `not_ready`,
    /// `timeout`, `internal`.
    pub error: &'static str,
    /// What went wrong and what to change.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: a malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400: an option out of range.
    pub fn bad_option(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_option", message)
    }

    /// 413: a body or image above a limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 415: a body of a type the route does not take.
    pub fn unsupported_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
            message,
        )
    }

    /// 401: a missing or wrong token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this server needs a token: send `Authorization: Bearer <token>` (streams: the \
             `token` query parameter or the `bearer.<token>` WebSocket subprotocol)",
        )
    }

    /// 404: an unknown job or file.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 429: too much at once; try again after `retry_after` seconds.
    pub fn busy(message: impl Into<String>, retry_after: u32) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "busy", message)
        }
    }

    /// 503: the models are still loading, or the server is shutting down.
    pub fn not_ready(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
        }
    }

    /// 500: a bug; the message says so.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<emotrack::Error> for ApiError {
    fn from(e: emotrack::Error) -> Self {
        let message = e.detail();
        match e {
            emotrack::Error::Image { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "bad_image", message)
            }
            emotrack::Error::TooLarge { .. } => Self::too_large(message),
            emotrack::Error::Config { .. } => Self::bad_option(message),
            other => Self::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"emotrack\""),
            );
        }
        response
    }
}
