//! Request helpers whose failures are JSON errors like every other.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Answers 503 with a JSON error when a request takes longer than `--request-timeout`.
pub async fn time_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.config().limits.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError {
            code: "timeout",
            ..ApiError::not_ready(format!(
                "the request took longer than {} s (--request-timeout); send a smaller image",
                limit.as_secs()
            ))
        }
        .into_response(),
    }
}

/// 404 for every unknown route.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the API is described at /docs")
}

/// [`axum::extract::Query`] whose rejection is a JSON `bad_option` error.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e| {
                ApiError::bad_option(format!(
                    "{}; the options are listed at /docs",
                    e.body_text()
                ))
            })
    }
}
