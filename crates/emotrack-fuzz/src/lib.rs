//! What each fuzz target feeds its bytes to: one function per parser that takes outside bytes.
//!
//! The cargo-fuzz project in `fuzz/` calls these from its targets (one line each), and
//! `tests/regressions.rs` replays every input saved under `fuzz/regressions/<target>/` and the
//! seed corpora through the same functions in `cargo test`. A function returns normally for any
//! input the code refuses cleanly; it panics (which the fuzzer reports as a crash) when the code
//! under test panics or answers a server error.
//!
//! | target | what it reads |
//! |---|---|
//! | [`image()`] | an image file, decoded by `imgproc::decode_image` and analysed |
//! | [`model`] | a model config (JSON), a NUL byte, then safetensors weights; run once |
//! | [`onnx`] | an ONNX graph imported as a classifier and run once |
//! | [`vibes`] | a vibes file (JSON) |
//! | [`ffprobe`] | what `ffprobe -print_format json` printed |
//! | [`http_analyze`] | a query string line, then the body of `POST /v1/analyze` |
//! | [`multipart`] | a boundary line, then a `multipart/form-data` body for `/v1/analyze` |
//! | [`websocket`] | a stream session's messages (binary frames and JSON commands) |

#![warn(missing_docs)]

pub mod seeds;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use emotrack::classify::{Architecture, Classifier, ModelConfig, OnnxOutputs};
use emotrack::imgproc::{DecodeLimits, decode_image};
use emotrack::{Analyzer, AnalyzerConfig, EmotionScores};
use emotrack_server::{AppState, ServerConfig, app};
use futures_util::{SinkExt, StreamExt};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

/// A target's name (its folder under `fuzz/corpus` and `fuzz/regressions`, and its binary in
/// `fuzz/`) and the function it feeds.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 8] = [
    ("image", image),
    ("model", model),
    ("onnx", onnx),
    ("vibes", vibes),
    ("ffprobe", ffprobe),
    ("http_analyze", http_analyze),
    ("multipart", multipart),
    ("websocket", websocket),
];

/// Limits that keep one input's work small: a fuzzer that spends a second per input finds
/// little. The size checks themselves are exercised all the same (a header claiming more is
/// refused before decoding).
const FUZZ_LIMITS: DecodeLimits = DecodeLimits {
    max_side: 2048,
    max_pixels: 1_000_000,
    max_alloc: 64 << 20,
};

fn analyzer() -> &'static Analyzer {
    static ANALYZER: OnceLock<Analyzer> = OnceLock::new();
    ANALYZER.get_or_init(|| {
        Analyzer::new(AnalyzerConfig::default()).expect("the built-in analyzer loads")
    })
}

/// An image file: decoded with limits, then analysed (detection, alignment, classification).
pub fn image(data: &[u8]) {
    if let Ok(image) = decode_image(data, Path::new("fuzz"), FUZZ_LIMITS) {
        let _ = analyzer().analyze(&image);
    }
}

/// Whether a panic happened inside tract, which `emotrack::classify` catches while it reads an
/// ONNX graph and reports as a malformed file (tract panics on some malformed graphs: see
/// `fuzz/regressions/onnx`). Every other panic is a crash.
pub fn is_caught_tract_panic(info: &std::panic::PanicHookInfo<'_>) -> bool {
    info.location()
        .is_some_and(|l| l.file().contains("/tract-"))
}

/// Lets tract's panics unwind to the library's `catch_unwind` instead of reaching the panic
/// hook the fuzzer installs, which aborts on any panic, caught or not.
fn let_tract_panics_unwind() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !is_caught_tract_panic(info) {
                previous(info);
            }
        }));
    });
}

/// A model config, a NUL byte, then the weights: loaded as `--model` would, and run once.
pub fn model(data: &[u8]) {
    let_tract_panics_unwind();
    let (json, weights) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(config) = serde_json::from_slice::<ModelConfig>(json) else {
        return;
    };
    if let Ok(classifier) = Classifier::from_bytes(weights, config, Path::new("fuzz")) {
        run_once(&classifier);
    }
}

/// An ONNX graph, imported as a classifier of 48-pixel crops and run once.
pub fn onnx(data: &[u8]) {
    let_tract_panics_unwind();
    let config = ModelConfig {
        architecture: Architecture::Onnx {
            outputs: OnnxOutputs::Logits,
        },
        ..emotrack::classify::embedded_model()
            .expect("the built-in model's config")
            .1
    };
    if let Ok(classifier) = Classifier::from_bytes(data, config, Path::new("fuzz.onnx")) {
        run_once(&classifier);
    }
}

/// Classifies one gray crop of the classifier's input size.
fn run_once(classifier: &Classifier) {
    let side = classifier.input_size();
    let crop = image::GrayImage::from_fn(side, side, |x, y| image::Luma([(x * 5 + y * 3) as u8]));
    let _ = classifier.classify(&[crop]);
}

/// A vibes file, and a message picked from it.
pub fn vibes(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(vibes) = emotrack::vibes::Vibes::from_json(text, Path::new("fuzz.json")) {
        let _ = vibes.message(&EmotionScores::from_logits(&[
            0.1, 0.0, 0.2, 2.0, 1.0, 0.3, 0.0,
        ]));
    }
}

/// What ffprobe printed.
pub fn ffprobe(data: &[u8]) {
    let _ = emotrack::video::read_probe_json(data, "fuzz.mp4");
}

/// The runtime the server targets run on (two workers, like the machine's cores).
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// The server's state with its models loaded, shared by every request of a run.
fn server_state() -> &'static AppState {
    static STATE: OnceLock<AppState> = OnceLock::new();
    STATE.get_or_init(|| {
        let mut config = ServerConfig::new(AnalyzerConfig::default());
        config.limits.max_pixels = FUZZ_LIMITS.max_pixels;
        config.limits.max_streams = 64;
        let state = AppState::new(config).expect("a valid server config");
        state.load_models().expect("the built-in models load");
        state
    })
}

/// Sends one request to the router in-process; a 5xx answer (a panic in a handler becomes a
/// 500) is a bug.
fn call(request: Request<Body>) {
    static ROUTER: OnceLock<axum::Router> = OnceLock::new();
    let router = ROUTER.get_or_init(|| app(server_state().clone())).clone();
    let status = runtime().block_on(async move {
        let response = router.oneshot(request).await.expect("the router answers");
        let status = response.status();
        let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
        status
    });
    assert!(
        !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
        "the server answered {status}"
    );
}

/// Splits off the first line (at most 256 bytes) as text.
fn first_line(data: &[u8]) -> (String, &[u8]) {
    let end = data.iter().take(256).position(|&b| b == b'\n');
    match end {
        Some(at) => (
            String::from_utf8_lossy(&data[..at]).into_owned(),
            &data[at + 1..],
        ),
        None => (String::new(), data),
    }
}

/// A query string (first line, e.g. `detector=haar&min_face=30&annotate=true`), then the image
/// body of `POST /v1/analyze`.
pub fn http_analyze(data: &[u8]) {
    let (query, body) = first_line(data);
    let uri = format!("/v1/analyze?{}", query.trim());
    let Ok(request) = Request::post(uri)
        .header(header::CONTENT_TYPE, "image/jpeg")
        .body(Body::from(body.to_vec()))
    else {
        return; // not a URI a client could send
    };
    call(request);
}

/// A boundary (first line), then a `multipart/form-data` body for `POST /v1/analyze`.
pub fn multipart(data: &[u8]) {
    let (boundary, body) = first_line(data);
    let Ok(request) = Request::post("/v1/analyze")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={}", boundary.trim()),
        )
        .body(Body::from(body.to_vec()))
    else {
        return; // not a header a client could send
    };
    call(request);
}

/// A real listener on loopback, serving the same state, for the WebSocket target.
fn listener_address() -> SocketAddr {
    static ADDRESS: OnceLock<SocketAddr> = OnceLock::new();
    *ADDRESS.get_or_init(|| {
        runtime().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("binds loopback");
            let address = listener.local_addr().expect("an address");
            let state = server_state().clone();
            tokio::spawn(emotrack_server::serve(
                listener,
                state,
                std::future::pending(),
            ));
            address
        })
    })
}

/// One stream session's messages. Each message is a kind byte and a length byte `n`, then
/// `64n + 1` bytes (the rest when `n` is 255, and for the 16th): an even header sends them as a binary frame, an odd one
/// as a text message (commands such as `{"type":"settings","min_face":40}`). Every frame is
/// answered (a report, or an error naming the frame) or the server closes with a reason; the
/// session must end without a hang.
pub fn websocket(data: &[u8]) {
    let messages = Arc::new(split_messages(data));
    let address = listener_address();
    runtime().block_on(async move {
        let url = format!("ws://{address}/v1/stream");
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the server accepts a stream");
        for message in messages.iter() {
            if ws.send(message.clone()).await.is_err() {
                break; // the server closed the connection, with a reason
            }
        }
        // The last frame is always answered (older ones may be skipped): wait for its answer,
        // or for the server to close, then close.
        let frames = messages.iter().filter(|m| m.is_binary()).count();
        let Some(last) = frames.checked_sub(1).map(|n| n as u64) else {
            let _ = ws.close(None).await;
            return;
        };
        let answered = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(Ok(reply)) = ws.next().await {
                let Message::Text(text) = reply else {
                    if reply.is_close() {
                        return;
                    }
                    continue;
                };
                let seq = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["seq"].as_u64());
                if seq == Some(last) {
                    return;
                }
            }
        })
        .await;
        assert!(
            answered.is_ok(),
            "the last frame was not answered within 20 s"
        );
        let _ = ws.send(Message::Close(None)).await;
        while let Some(Ok(_)) = ws.next().await {}
    });
}

fn split_messages(mut data: &[u8]) -> Vec<Message> {
    const MOST: usize = 16;
    let mut messages = Vec::new();
    while let [kind, len, rest @ ..] = data {
        // A length byte of 255, or the last message allowed, takes the rest (a whole JPEG).
        let len = if *len == u8::MAX || messages.len() + 1 == MOST {
            rest.len()
        } else {
            (usize::from(*len) * 64 + 1).min(rest.len())
        };
        let (payload, tail) = rest.split_at(len);
        messages.push(if kind % 2 == 0 {
            Message::binary(payload.to_vec())
        } else {
            Message::text(String::from_utf8_lossy(payload).into_owned())
        });
        data = tail;
    }
    messages
}
