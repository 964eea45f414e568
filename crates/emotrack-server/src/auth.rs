//! The optional bearer token: `Authorization: Bearer <token>`, or for WebSockets (whose
//! browser API cannot set headers) a `bearer.<token>` subprotocol or a `token` query
//! parameter. Compared in constant time; never logged.

use axum::extract::{Query, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// The subprotocol prefix that carries a token (`Sec-WebSocket-Protocol: emotrack.v1, bearer.T`).
pub const PROTOCOL_PREFIX: &str = "bearer.";

/// Lets a request through when the server has no token or the request carries it.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match &state.config().token {
        Some(token) if !carries(&request, token) => ApiError::unauthorized().into_response(),
        _ => next.run(request).await,
    }
}

/// The `token` query parameter.
#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn carries(request: &Request, token: &str) -> bool {
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let protocol = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(PROTOCOL_PREFIX));
    let query = Query::<TokenQuery>::try_from_uri(request.uri())
        .ok()
        .and_then(|q| q.0.token);
    [bearer, protocol, query.as_deref()]
        .into_iter()
        .flatten()
        .any(|given| same(given.as_bytes(), token.as_bytes()))
}

/// Equality whose time does not depend on where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3cre"));
        assert!(!same(b"s3cret", b"s3creT"));
    }
}
