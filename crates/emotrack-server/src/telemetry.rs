//! Prometheus metrics and the one-line-per-request log.
//!
//! Metrics (all prefixed `emotrack_`): `http_requests_total{method,route,status}`,
//! `http_request_duration_seconds{method,route}` (histogram), `frames_analysed_total`,
//! `faces_analysed_total`, `frames_skipped_total`, `streams_open`, `jobs{state}`. The route is
//! the matched pattern (`/v1/videos/{id}`), never the raw path, so ids and tokens in URLs stay
//! out of both the metrics and the log.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets, seconds: from a cached answer to a large image.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The process-wide metrics recorder (installed on first use) and its Prometheus renderer.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (an embedding program's): render ours unrecorded.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// Counts, times and logs every request: one `info` line with method, route, status,
/// latency and request id (no query string, body or headers: no image data, no tokens).
pub async fn observe(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let latency = start.elapsed();
    let labels = [
        ("method", method.to_string()),
        ("route", route.clone()),
        ("status", status.to_string()),
    ];
    metrics::counter!("emotrack_http_requests_total", &labels).increment(1);
    metrics::histogram!(
        "emotrack_http_request_duration_seconds",
        "method" => method.to_string(),
        "route" => route.clone()
    )
    .record(latency.as_secs_f64());
    tracing::info!(
        method = %method,
        route = %route,
        status,
        latency_ms = format!("{:.1}", latency.as_secs_f64() * 1e3),
        request_id = %request_id,
        "request"
    );
    response
}

/// Counts an analysed frame (or image) and its faces.
pub fn frame_analysed(faces: usize) {
    metrics::counter!("emotrack_frames_analysed_total").increment(1);
    metrics::counter!("emotrack_faces_analysed_total").increment(faces as u64);
}

/// Counts frames a stream skipped (the newest waiting frame won).
pub fn frames_skipped(n: u64) {
    if n > 0 {
        metrics::counter!("emotrack_frames_skipped_total").increment(n);
    }
}

/// Sets the number of open streams.
pub fn streams_open(n: usize) {
    metrics::gauge!("emotrack_streams_open").set(n as f64);
}

/// Sets the number of jobs in a state.
pub fn jobs_in_state(state: &'static str, n: usize) {
    metrics::gauge!("emotrack_jobs", "state" => state).set(n as f64);
}
