//! The HTTP routes in-process (`Router` + `tower::ServiceExt::oneshot`): every route, every
//! error status, the token, CORS, limits, and that a bad request leaves the server serving.

#[path = "../../emotrack/tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use emotrack::{Analyzer, AnalyzerConfig};
use emotrack_server::{AppState, ServerConfig, app};
use serde_json::Value;
use tower::ServiceExt;

/// A photo of the shared media, or `None` (skipped) when the media folder is absent.
fn photo(name: &str) -> Option<(PathBuf, Vec<u8>)> {
    let path = common::media_dir()?.join("photos").join(name);
    let bytes = std::fs::read(&path).expect("the photo reads");
    Some((path, bytes))
}

fn ready_state(config: ServerConfig) -> AppState {
    let state = AppState::new(config).expect("valid config");
    state.load_models().expect("the built-in models load");
    state
}

fn server(config: ServerConfig) -> Router {
    app(ready_state(config))
}

fn default_server() -> Router {
    server(ServerConfig::new(AnalyzerConfig::default()))
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, header::HeaderMap, Bytes) {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body reads");
    (status, headers, body)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

fn post_image(uri: &str, content_type: &str, bytes: Vec<u8>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(bytes))
        .expect("request")
}

fn multipart(field: &str, bytes: &[u8]) -> Request<Body> {
    let boundary = "emotrack-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"x.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Request::post("/v1/analyze")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .expect("request")
}

fn json(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// Asserts an error answer: its status and `error` code, and a message for a person.
fn assert_error(answer: &(StatusCode, header::HeaderMap, Bytes), status: StatusCode, code: &str) {
    let (got, headers, body) = answer;
    assert_eq!(*got, status, "{}", String::from_utf8_lossy(body));
    assert_eq!(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let v = json(body);
    assert_eq!(v["error"], code, "{v}");
    assert!(
        v["message"].as_str().is_some_and(|m| m.len() > 10),
        "a message says what to change: {v}"
    );
}

/// (label, x, y) of each face, for comparing answers.
fn faces_of(v: &Value) -> Vec<(String, i64, i64)> {
    let mut faces: Vec<_> = v["faces"]
        .as_array()
        .expect("faces")
        .iter()
        .map(|f| {
            let b = &f["box"];
            (
                f["label"].as_str().expect("label").to_owned(),
                b["x"].as_f64().expect("x").round() as i64,
                b["y"].as_f64().expect("y").round() as i64,
            )
        })
        .collect();
    faces.sort();
    faces
}

#[tokio::test]
async fn health_answers_at_once_and_readiness_waits_for_the_models() {
    let state = AppState::new(ServerConfig::new(AnalyzerConfig::default())).expect("config");
    let router = app(state.clone());
    let (status, _, body) = call(&router, get("/healthz")).await;
    assert_eq!(
        (status, json(&body)["status"].clone()),
        (StatusCode::OK, "ok".into())
    );
    assert_error(
        &call(&router, get("/readyz")).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
    );
    state.load_models().expect("models load");
    let (status, _, body) = call(&router, get("/readyz")).await;
    assert_eq!(
        (status, json(&body)["status"].clone()),
        (StatusCode::OK, "ready".into())
    );
}

#[tokio::test]
async fn an_image_gives_the_faces_the_library_finds_raw_or_multipart() {
    let Some((path, bytes)) = photo("ageitgey_two_people.jpg") else {
        return;
    };
    let router = default_server();
    let expected = Analyzer::new(AnalyzerConfig::default())
        .expect("analyzer")
        .analyze_file(&path)
        .expect("analyses");
    assert_eq!(expected.len(), 2, "the photo shows two people");

    let (status, _, body) = call(
        &router,
        post_image("/v1/analyze", "image/jpeg", bytes.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let raw = json(&body);
    let image = image::open(&path).expect("decodes");
    assert_eq!(
        (raw["width"].as_u64(), raw["height"].as_u64()),
        (Some(image.width().into()), Some(image.height().into()))
    );
    let mut want: Vec<_> = expected
        .iter()
        .map(|f| {
            (
                f.emotion.name().to_owned(),
                f.bbox.x.round() as i64,
                f.bbox.y.round() as i64,
            )
        })
        .collect();
    want.sort();
    assert_eq!(faces_of(&raw), want);

    let (status, _, body) = call(&router, multipart("file", &bytes)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        faces_of(&json(&body)),
        want,
        "multipart gives the same faces"
    );
}

#[tokio::test]
async fn annotate_answers_with_a_jpeg_of_the_same_size() {
    let Some((path, bytes)) = photo("ageitgey_kit_with_rose.jpg") else {
        return;
    };
    let router = default_server();
    let (status, headers, body) = call(
        &router,
        post_image("/v1/analyze?annotate=true", "image/jpeg", bytes),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/jpeg");
    let drawn = image::load_from_memory(&body).expect("a JPEG");
    let original = image::open(&path).expect("decodes");
    assert_eq!(drawn.width(), original.width());
    assert_eq!(drawn.height(), original.height());
}

#[tokio::test]
async fn bad_images_and_bodies_get_their_status_and_the_next_request_still_works() {
    let Some((_, good)) = photo("ageitgey_kit_with_rose.jpg") else {
        return;
    };
    let mut config = ServerConfig::new(AnalyzerConfig::default());
    config.limits.max_body_bytes = 1 << 20;
    let router = server(config);
    let truncated = good[..good.len() / 3].to_vec();
    // A PNG header that claims 100000 x 100000 pixels (10 gigapixels), and nothing else.
    let huge_png = common::png_header(100_000, 100_000);
    let cases = [
        (
            post_image(
                "/v1/analyze",
                "image/jpeg",
                b"this is not an image".to_vec(),
            ),
            StatusCode::BAD_REQUEST,
            "bad_image",
        ),
        (
            post_image("/v1/analyze", "image/jpeg", truncated),
            StatusCode::BAD_REQUEST,
            "bad_image",
        ),
        (
            post_image("/v1/analyze", "image/jpeg", Vec::new()),
            StatusCode::BAD_REQUEST,
            "bad_image",
        ),
        (
            post_image("/v1/analyze", "image/png", huge_png),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            post_image("/v1/analyze", "image/jpeg", vec![0xFF; 2 << 20]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            post_image("/v1/analyze", "text/plain", good.clone()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
        ),
        (
            Request::post("/v1/analyze")
                .body(Body::from(good.clone()))
                .expect("request"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
        ),
        (
            multipart("photo", &good),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            post_image("/v1/analyze?detector=opencv", "image/jpeg", good.clone()),
            StatusCode::BAD_REQUEST,
            "bad_option",
        ),
        (
            post_image("/v1/analyze?min_face=3", "image/jpeg", good.clone()),
            StatusCode::BAD_REQUEST,
            "bad_option",
        ),
        (
            post_image("/v1/analyze?threshold=abc", "image/jpeg", good.clone()),
            StatusCode::BAD_REQUEST,
            "bad_option",
        ),
        (
            get("/v1/videos/no-such-job"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Request::delete("/v1/videos/no-such-job")
                .body(Body::empty())
                .expect("request"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (get("/v1/nothing-here"), StatusCode::NOT_FOUND, "not_found"),
        (get("/v1/stream"), StatusCode::BAD_REQUEST, "bad_request"),
    ];
    for (i, (request, status, code)) in cases.into_iter().enumerate() {
        let what = format!("case {i}: {} {}", request.method(), request.uri());
        let answer = call(&router, request).await;
        assert_eq!(
            answer.0,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&answer.2)
        );
        assert_error(&answer, status, code);
        let (ok, _, _) = call(
            &router,
            post_image("/v1/analyze", "image/jpeg", good.clone()),
        )
        .await;
        assert_eq!(ok, StatusCode::OK, "a good image after {what}");
    }
}

#[tokio::test]
async fn an_image_above_the_pixel_limit_is_refused_from_its_header() {
    let Some((_, bytes)) = photo("ageitgey_kit_with_rose.jpg") else {
        return;
    };
    let mut config = ServerConfig::new(AnalyzerConfig::default());
    config.limits.max_pixels = 100_000; // the photo has 350 700
    let router = server(config);
    let answer = call(&router, post_image("/v1/analyze", "image/jpeg", bytes)).await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
}

#[tokio::test]
async fn other_detector_settings_are_honoured() {
    let Some((_, bytes)) = photo("ageitgey_two_people.jpg") else {
        return;
    };
    let router = default_server();
    for query in [
        "detector=haar",
        "detector=mtcnn&threshold=0.9",
        "detector=yunet&threshold=0.8",
        "min_face=40",
    ] {
        let (status, _, body) = call(
            &router,
            post_image(&format!("/v1/analyze?{query}"), "image/jpeg", bytes.clone()),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{query}: {}",
            String::from_utf8_lossy(&body)
        );
        let found = json(&body)["faces"].as_array().map_or(0, Vec::len);
        // Haar also finds a false face in this photo.
        assert!(found >= 2, "{query}: both people found ({found} faces)");
    }
    // A face threshold no face reaches finds none.
    let (_, _, body) = call(
        &router,
        post_image("/v1/analyze?threshold=1", "image/jpeg", bytes),
    )
    .await;
    assert_eq!(json(&body)["faces"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn a_token_guards_every_v1_route_but_not_health() {
    let Some((_, bytes)) = photo("ageitgey_kit_with_rose.jpg") else {
        return;
    };
    let mut config = ServerConfig::new(AnalyzerConfig::default());
    config.token = Some("s3cret token".into());
    let router = server(config);
    let answer = call(
        &router,
        post_image("/v1/analyze", "image/jpeg", bytes.clone()),
    )
    .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(answer.1.contains_key(header::WWW_AUTHENTICATE));
    let wrong = post_image("/v1/analyze", "image/jpeg", bytes.clone());
    let (mut parts, body) = wrong.into_parts();
    parts.headers.insert(
        header::AUTHORIZATION,
        "Bearer s3cret".parse().expect("header"),
    );
    assert_error(
        &call(&router, Request::from_parts(parts, body)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &call(&router, get("/v1/videos/x")).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    let mut right = post_image("/v1/analyze", "image/jpeg", bytes.clone());
    right.headers_mut().insert(
        header::AUTHORIZATION,
        "Bearer s3cret token".parse().expect("header"),
    );
    assert_eq!(call(&router, right).await.0, StatusCode::OK);
    let query = post_image("/v1/analyze?token=s3cret%20token", "image/jpeg", bytes);
    assert_eq!(
        call(&router, query).await.0,
        StatusCode::OK,
        "the token as a query parameter"
    );
    for open in [
        "/",
        "/assets/app.js",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
    ] {
        assert_eq!(call(&router, get(open)).await.0, StatusCode::OK, "{open}");
    }
}

#[tokio::test]
async fn cors_is_closed_unless_an_origin_is_allowed() {
    let preflight = || {
        Request::options("/v1/analyze")
            .header(header::ORIGIN, "https://app.example.com")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(Body::empty())
            .expect("request")
    };
    let closed = default_server();
    let (_, headers, _) = call(&closed, preflight()).await;
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));

    let mut config = ServerConfig::new(AnalyzerConfig::default());
    config.cors_origins = vec!["https://app.example.com".into()];
    let open = server(config);
    let (status, headers, _) = call(&open, preflight()).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let other = Request::get("/healthz")
        .header(header::ORIGIN, "https://evil.example.com")
        .body(Body::empty())
        .expect("request");
    let (_, headers, _) = call(&open, other).await;
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_a_request_id() {
    let router = default_server();
    for uri in ["/", "/healthz", "/docs", "/nowhere"] {
        let (_, headers, _) = call(&router, get(uri)).await;
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
        let csp = headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert!(headers.contains_key("x-request-id"), "{uri}");
    }
}

#[tokio::test]
async fn the_openapi_document_and_the_docs_page_list_every_route() {
    let router = default_server();
    let (status, _, body) = call(&router, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let doc = json(&body);
    let (_, _, page) = call(&router, get("/docs")).await;
    let page = String::from_utf8_lossy(&page);
    for path in [
        "/v1/analyze",
        "/v1/stream",
        "/v1/videos",
        "/v1/videos/{id}",
        "/v1/videos/{id}/{file}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} in the OpenAPI document"
        );
        assert!(page.contains(path), "{path} on /docs");
    }
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_frames() {
    let Some((_, bytes)) = photo("ageitgey_kit_with_rose.jpg") else {
        return;
    };
    let router = default_server();
    call(&router, post_image("/v1/analyze", "image/jpeg", bytes)).await;
    let (status, headers, body) = call(&router, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain"))
    );
    let text = String::from_utf8_lossy(&body);
    for needle in [
        "emotrack_http_requests_total{method=\"POST\",route=\"/v1/analyze\",status=\"200\"}",
        "emotrack_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/analyze\"",
        "emotrack_frames_analysed_total",
        "emotrack_faces_analysed_total",
        "emotrack_streams_open",
        "emotrack_jobs{state=\"running\"}",
    ] {
        assert!(text.contains(needle), "{needle} in\n{text}");
    }
}

#[tokio::test]
async fn a_busy_pool_refuses_with_429_and_retry_after() {
    let mut config = ServerConfig::new(AnalyzerConfig::default());
    config.limits.workers = 1;
    config.limits.max_waiting = 0;
    let state = ready_state(config);
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let busy = state.clone();
    let running = tokio::spawn(async move {
        busy.run_cpu(move || {
            let _ = started_tx.send(());
            wait.recv().is_ok()
        })
        .await
    });
    started.await.expect("the work starts");
    let refused = state.run_cpu(|| ()).await.expect_err("the pool is busy");
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.retry_after, Some(1));
    release.send(()).expect("the work waits");
    assert!(running.await.expect("joins").expect("ran"));
    assert!(state.run_cpu(|| ()).await.is_ok(), "free again");
}

#[tokio::test]
async fn a_video_upload_above_the_limit_is_refused_and_leaves_no_job() {
    let mut config = ServerConfig::new(AnalyzerConfig::default());
    config.limits.max_video_bytes = 1024;
    let state = ready_state(config);
    let router = app(state.clone());
    let upload = post_image("/v1/videos", "video/mp4", vec![0u8; 4096]);
    let answer = call(&router, upload).await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    assert_eq!(
        std::fs::read_dir(state.jobs().root())
            .expect("lists")
            .count(),
        0,
        "the partial upload is deleted"
    );
}

#[tokio::test]
async fn a_request_over_the_time_limit_answers_503_timeout() {
    let Some((_, bytes)) = photo("facenet_pytorch_multiface.jpg") else {
        return;
    };
    let mut config = ServerConfig::new(AnalyzerConfig::default());
    config.limits.request_timeout = std::time::Duration::from_millis(1);
    let router = server(config);
    let answer = call(&router, post_image("/v1/analyze", "image/jpeg", bytes)).await;
    assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "timeout");
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_their_types_and_validators() {
    let router = default_server();
    let (status, headers, body) = call(&router, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    let page = String::from_utf8(body.to_vec()).expect("UTF-8");
    assert!(page.contains(r#"<script type="module" src="/assets/app.js">"#));
    for (uri, kind) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/panels.js", "text/javascript; charset=utf-8"),
        ("/assets/style.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = call(&router, get(uri)).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(headers[header::CONTENT_TYPE], kind, "{uri}");
        assert!(!body.is_empty(), "{uri}");
        let etag = headers[header::ETAG].clone();
        let again = Request::get(uri)
            .header(header::IF_NONE_MATCH, etag)
            .body(Body::empty())
            .expect("request");
        let (status, _, body) = call(&router, again).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{uri} revalidated");
        assert!(body.is_empty());
    }
    for missing in [
        "/assets/nope.js",
        "/assets/index.html",
        "/assets/..%2FCargo.toml",
    ] {
        assert_eq!(
            call(&router, get(missing)).await.0,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
}
