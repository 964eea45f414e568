//! The emotrack server (`emotrack serve`): an HTTP API for images and video jobs, and a
//! WebSocket for live streams, over the same library code as the CLI.
//!
//! * [`app`] builds the [`Router`] (tests drive it in-process with `tower::ServiceExt`).
//! * [`serve`] runs it on a listener: loads the models in the background (`/readyz` says
//!   when), expires old video jobs, and shuts down gracefully.
//! * [`ServerConfig`] holds the models, limits and access rules; [`AppState`] what the
//!   handlers share.
//!
//! Routes: `GET /` (the web page, its files under `/assets/`), `POST /v1/analyze`, `POST /v1/videos`, `GET|DELETE /v1/videos/{id}`,
//! `GET /v1/videos/{id}/{file}`, `GET /v1/stream` (WebSocket), `GET /healthz`, `GET /readyz`,
//! `GET /metrics`, `GET /openapi.json`, `GET /docs`.

#![warn(missing_docs)]

mod auth;
pub mod config;
pub mod error;
mod extract;
pub mod jobs;
pub mod routes;
pub mod state;
mod telemetry;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

pub use auth::PROTOCOL_PREFIX;
pub use config::{Limits, ServerConfig};
pub use error::{ApiError, ConfigError, ServeError};
pub use routes::stream::PROTOCOL;
pub use state::AppState;

use crate::routes::{analyze, docs, health, page, stream, videos};

/// The content security policy of every answer: nothing from other sites, no framing.
const CSP: &str = "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; \
    connect-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

/// How often finished video jobs are checked against their TTL.
const EXPIRY_CHECK: Duration = Duration::from_secs(30);

/// The server's routes and middleware.
pub fn app(state: AppState) -> Router {
    // The metrics recorder must be in place before the first request records anything.
    telemetry::prometheus();
    let limits = state.config().limits;
    let api = Router::new()
        .route(
            "/v1/analyze",
            post(analyze::analyze)
                .layer(DefaultBodyLimit::max(limits.max_body_bytes))
                .layer(from_fn_with_state(state.clone(), extract::time_limit)),
        )
        .route(
            "/v1/videos",
            post(videos::create).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/videos/{id}", get(videos::get).delete(videos::delete))
        .route("/v1/videos/{id}/{file}", get(videos::file))
        .route("/v1/stream", get(stream::stream))
        .route_layer(from_fn_with_state(state.clone(), auth::require_token));
    let mut router = Router::new()
        .route("/", get(page::index))
        .route("/assets/{file}", get(page::asset))
        .route("/docs", get(docs::page))
        .route("/openapi.json", get(docs::openapi))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(api)
        .fallback(extract::not_found)
        .layer(from_fn(telemetry::observe))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"));
    if let Some(cors) = cors(&state.config().cors_origins) {
        router = router.layer(cors);
    }
    router
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// CORS for the given origins (`*` for any); `None` (closed) when there are none.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::LOCATION, header::RETRY_AFTER]),
    )
}

/// Serves `state` on `listener` until `shutdown` completes, then stops gracefully: no new
/// connections, streams closed (1001), running video jobs cancelled, in-flight requests
/// given `--shutdown-grace` to finish, every job file deleted.
///
/// The models load in the background; `/healthz` answers at once and `/readyz` once they
/// are loaded. Failing to load them stops the server with [`ServeError::Models`].
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
    let loader = state.clone();
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        match loader.load_models() {
            Ok(()) => tracing::info!(
                seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
                "models loaded, ready"
            ),
            Err(e) => {
                let _ = failed_tx.send(e);
            }
        }
    });
    let expiry = state.clone();
    let expiring = tokio::spawn(async move {
        let mut tick = tokio::time::interval(EXPIRY_CHECK.min(expiry.config().job_ttl));
        loop {
            tick.tick().await;
            expiry.jobs().expire();
        }
    });

    let stopping = state.clone();
    let load_error = std::sync::Arc::new(std::sync::Mutex::new(None));
    let load_error_slot = std::sync::Arc::clone(&load_error);
    let signal = async move {
        tokio::select! {
            () = shutdown => {}
            Ok(e) = failed_rx => {
                tracing::error!(error = %e, "cannot load the models");
                *load_error_slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
            }
        }
        tracing::info!("shutting down");
        stopping.begin_shutdown();
    };
    let grace = state.config().limits.shutdown_grace;
    let server = axum::serve(listener, app(state.clone())).with_graceful_shutdown(signal);
    let mut server = std::pin::pin!(server.into_future());
    let result = tokio::select! {
        r = &mut server => r,
        () = async {
            // Once shutdown begins, in-flight work gets `grace` to finish.
            let mut signal = state.shutdown_signal();
            let _ = signal.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(seconds = grace.as_secs(), "requests still running after the grace period were cut off");
            Ok(())
        }
    };
    expiring.abort();
    let deadline = tokio::time::Instant::now() + grace;
    while state.jobs().any_running() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_dir_all(state.jobs().root());
    let load_error = load_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(e) = load_error {
        return Err(ServeError::Models(e));
    }
    result.map_err(|source| ServeError::Io {
        what: "the server failed".into(),
        source,
    })
}
