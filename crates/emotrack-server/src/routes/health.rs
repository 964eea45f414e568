//! `/healthz`, `/readyz` and `/metrics`: for load balancers, orchestrators and Prometheus.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::telemetry;

/// A status answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    pub status: &'static str,
}

/// The process is alive (answers even while the models load or the CPU is busy).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// The models are loaded: the server can analyse.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Status),
    (status = 503, description = "Models still loading, or shutting down", body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if *state.shutdown_signal().borrow() {
        return Err(ApiError::not_ready("the server is shutting down"));
    }
    state.analyzer()?;
    Ok(Json(Status { status: "ready" }))
}

/// Prometheus metrics: requests and latency per route, frames and faces analysed, frames
/// skipped, open streams, jobs by state.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    telemetry::streams_open(state.open_streams());
    state.jobs().report_metrics();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::prometheus().render(),
    )
}
