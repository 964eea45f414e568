//! `GET /v1/stream`: a WebSocket that analyses a live stream of frames (a browser's webcam, a
//! program's camera) with tracking and smoothing that belong to the connection.
//!
//! The client sends each frame as a binary message (JPEG or PNG) and may send text messages:
//! `{"type":"settings", ...}` (any of the connection's query options) or `{"type":"reset"}`.
//! The server answers every frame it analysed with a `{"type":"frame", ...}` message
//! ([`FrameMessage`]), and a frame it could not use with `{"type":"error", ...}`. A client that
//! sends faster than the server analyses gets frames skipped: the newest waiting frame wins
//! and the answer counts the frames skipped before it; nothing queues up.
//!
//! Close codes: 1000 when the client closes, 1001 when the server shuts down or the stream was
//! idle for `--idle-timeout`, 1007 for a text message that is not a valid command, 1009 for a
//! message above `--max-message`.

use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use emotrack::Analyzer;
use emotrack::video::{PipelineConfig, PipelineOverrides, StreamAnalyzer, TrackedFace};
use futures_util::future::OptionFuture;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;
use utoipa::IntoParams;

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::{AppState, DetectorOptions};
use crate::telemetry;

/// The subprotocol the server speaks (offered by clients that also send a token this way).
pub const PROTOCOL: &str = "emotrack.v1";

/// Tracking and smoothing options of a stream (query parameters at connection, or fields of a
/// `settings` message). Frame counts refer to 30 frames a second: a stream sending fewer
/// frames gets the same smoothing per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrackingOptions {
    /// Search the whole frame for faces every N frames, around known faces in between.
    pub detect_every: Option<u32>,
    /// Frames averaged to smooth each face's probabilities.
    pub window: Option<usize>,
    /// Smooth with an exponential moving average of this weight (0-1] instead of the window
    /// (not both in one request or message).
    pub ema: Option<f32>,
    /// Lead (0-1) another emotion's smoothed probability needs over the shown label's to
    /// change it.
    pub label_margin: Option<f32>,
    /// Seconds that lead must last.
    pub label_hold: Option<f32>,
    /// A lead (0-1) that changes the label after `label_fast_hold` seconds instead.
    pub label_fast_margin: Option<f32>,
    /// Seconds a lead of `label_fast_margin` must last.
    pub label_fast_hold: Option<f32>,
    /// Seconds a label stays up before it may change again.
    pub label_min_show: Option<f32>,
    /// Detections a face needs before it is shown.
    pub min_hits: Option<u32>,
    /// Frames a face may go unseen before its track ends.
    pub max_age: Option<u32>,
    /// Weight (0-1] of each new box in the box's moving average.
    pub box_alpha: Option<f32>,
    /// Smallest box overlap (IoU) that matches a face to its track.
    pub iou: Option<f32>,
}

impl TrackingOptions {
    /// `base` with these options applied (the library's [`PipelineOverrides`]: `window` and
    /// `ema` together are an error).
    fn apply(&self, base: &PipelineConfig) -> Result<PipelineConfig, emotrack::Error> {
        PipelineOverrides {
            detect_every: self.detect_every,
            min_hits: self.min_hits,
            max_age: self.max_age,
            iou: self.iou,
            box_alpha: self.box_alpha,
            window: self.window,
            ema: self.ema,
            label_margin: self.label_margin,
            label_hold: self.label_hold,
            label_fast_margin: self.label_fast_margin,
            label_fast_hold: self.label_fast_hold,
            label_min_show: self.label_min_show,
        }
        .apply(base)
    }
}

/// A text message from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Command {
    /// Changes detector or tracking options (tracking changes start the tracks afresh).
    Settings {
        #[serde(flatten)]
        detector: DetectorOptions,
        #[serde(flatten)]
        tracking: TrackingOptions,
    },
    /// Forgets every face: the next frame starts new tracks.
    Reset,
}

/// The fields a `settings` message may carry besides `type`: those of [`DetectorOptions`] and
/// [`TrackingOptions`] (serde's `flatten` cannot refuse unknown fields, so they are read from
/// the options' own query-parameter descriptions, which list every field).
fn settings_fields() -> &'static [String] {
    static FIELDS: OnceLock<Vec<String>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        DetectorOptions::into_params(|| None)
            .into_iter()
            .chain(TrackingOptions::into_params(|| None))
            .map(|p| p.name)
            .collect()
    })
}

impl Command {
    /// Reads a text message. The outer error (not JSON, no known `type`, a field of the wrong
    /// type) closes the stream; the inner one answers a command that names fields the server
    /// does not know (a misspelt setting would otherwise be ignored without a word), and
    /// nothing of it is applied.
    fn parse(text: &str) -> Result<Result<Self, ApiError>, serde_json::Error> {
        let command: Self = serde_json::from_str(text)?;
        let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)?;
        let known: &[String] = match command {
            Self::Settings { .. } => settings_fields(),
            Self::Reset => &[],
        };
        let unknown: Vec<&str> = fields
            .keys()
            .filter(|k| *k != "type" && !known.contains(k))
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            return Ok(Ok(command));
        }
        let allowed = if known.is_empty() {
            "a reset takes no fields".to_owned()
        } else {
            format!("settings take {}", known.join(", "))
        };
        Ok(Err(ApiError::bad_option(format!(
            "unknown field{} {} (nothing was changed); {allowed}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        ))))
    }
}

/// The answer to an analysed frame.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FrameMessage {
    /// The frame's number among the binary messages of this connection (0-based).
    pub seq: u64,
    /// When the server received it, in seconds since the connection opened.
    pub time: f64,
    /// Decoding and analysis time, in milliseconds.
    pub processing_ms: f64,
    /// Frames skipped since the previous answer (the client sent faster than the server
    /// analyses; the newest frame won).
    pub skipped: u64,
    /// The frame's width, in pixels.
    pub width: u32,
    /// The frame's height, in pixels.
    pub height: u32,
    /// The faces shown: track id, smoothed box, raw and smoothed probabilities, label, vibe.
    #[schema(value_type = Vec<Object>)]
    pub faces: Vec<TrackedFace>,
}

/// A message to the client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Outgoing {
    Frame(FrameMessage),
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        #[serde(flatten)]
        body: ErrorBody,
    },
}

/// Opens a stream: upgrade to a WebSocket (see the module docs for the protocol).
#[utoipa::path(get, path = "/v1/stream", tag = "streams",
    params(DetectorOptions, TrackingOptions,
        ("token" = Option<String>, Query, description = "The server's token, for clients that cannot set headers")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket request, or a bad option", body = ErrorBody),
        (status = 401, description = "Token missing or wrong", body = ErrorBody),
        (status = 429, description = "Too many streams open", body = ErrorBody),
        (status = 503, description = "Models still loading", body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    ApiQuery(detector): ApiQuery<DetectorOptions>,
    ApiQuery(tracking): ApiQuery<TrackingOptions>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|e| {
        ApiError::bad_request(format!(
            "{}: connect with a WebSocket client (ws://host/v1/stream)",
            e.body_text()
        ))
    })?;
    let analyzer = state.analyzer_for(detector).await?;
    let config = tracking.apply(&state.config().pipeline)?;
    let analysis = StreamAnalyzer::new(config)?;
    let permit = state.open_stream()?;
    let max = state.config().limits.max_message_bytes;
    Ok(upgrade
        .protocols([PROTOCOL])
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            let session = Session {
                state,
                analyzer,
                detector,
                analysis: Arc::new(Mutex::new(analysis)),
                _permit: permit,
            };
            session.run(socket)
        }))
}

/// One connection's state.
struct Session {
    state: AppState,
    analyzer: Arc<Analyzer>,
    detector: DetectorOptions,
    /// The connection's tracking; shared with the one analysis under way.
    analysis: Arc<Mutex<StreamAnalyzer>>,
    _permit: OwnedSemaphorePermit,
}

/// A frame waiting to be analysed.
struct Waiting {
    seq: u64,
    time: f64,
    bytes: axum::body::Bytes,
}

type Analysis = Pin<Box<dyn std::future::Future<Output = Outgoing> + Send>>;

impl Session {
    async fn run(mut self, socket: WebSocket) {
        telemetry::streams_open(self.state.open_streams());
        let (mut tx, mut rx) = socket.split();
        let mut shutdown = self.state.shutdown_signal();
        let idle = self.state.config().limits.idle_timeout;
        let opened = Instant::now();
        let mut last_heard = Instant::now();
        let mut waiting: Option<Waiting> = None;
        let mut skipped = 0u64;
        let mut received = 0u64;
        let mut running: Option<Analysis> = None;
        let close = loop {
            if running.is_none()
                && let Some(frame) = waiting.take()
            {
                running = Some(Box::pin(self.analyse(frame, std::mem::take(&mut skipped))));
            }
            tokio::select! {
                message = rx.next() => {
                    last_heard = Instant::now();
                    match message {
                        None | Some(Ok(Message::Close(_))) => break None,
                        Some(Err(e)) => break Some(receive_error(&e, self.state.config().limits.max_message_bytes)),
                        Some(Ok(Message::Binary(bytes))) => {
                            let frame = Waiting { seq: received, time: opened.elapsed().as_secs_f64(), bytes };
                            received += 1;
                            if waiting.replace(frame).is_some() {
                                skipped += 1;
                                telemetry::frames_skipped(1);
                            }
                        }
                        Some(Ok(Message::Text(text))) => match Command::parse(&text) {
                            Ok(command) => {
                                let applied = match command {
                                    Ok(command) => self.apply(command).await,
                                    Err(unknown) => Err(unknown),
                                };
                                if let Err(e) = applied {
                                    let reply = Outgoing::Error { seq: None, body: body_of(e) };
                                    if send(&mut tx, &reply).await.is_err() {
                                        break None;
                                    }
                                }
                            }
                            Err(e) => break Some(close(close_code::INVALID, format!(
                                "not a command: {e}; send frames as binary messages and \
                                 {{\"type\":\"settings\",...}} or {{\"type\":\"reset\"}} as text"))),
                        },
                        Some(Ok(_)) => {} // ping and pong: answered by the WebSocket layer
                    }
                }
                Some(reply) = OptionFuture::from(running.as_mut()), if running.is_some() => {
                    running = None;
                    if send(&mut tx, &reply).await.is_err() {
                        break None;
                    }
                }
                () = tokio::time::sleep_until((last_heard + idle).into()) => {
                    break Some(close(close_code::AWAY, format!(
                        "no message for {} s (--idle-timeout)", idle.as_secs())));
                }
                // wait_for, not changed: a session that starts after the shutdown began (its
                // handshake answered just before) sees the flag already set and still says so.
                _ = async { shutdown.wait_for(|&down| down).await.is_ok() } => break Some(close(close_code::AWAY, "the server is shutting down".into())),
            }
        };
        if let Some(frame) = close {
            let _ = tx.send(Message::Close(Some(frame))).await;
        }
        let _ = tx.close().await;
        drop(self._permit);
        telemetry::streams_open(self.state.open_streams());
    }

    /// Decodes and analyses one frame on the CPU pool.
    fn analyse(
        &self,
        frame: Waiting,
        skipped: u64,
    ) -> impl std::future::Future<Output = Outgoing> + Send + 'static {
        let state = self.state.clone();
        let analyzer = Arc::clone(&self.analyzer);
        let analysis = Arc::clone(&self.analysis);
        async move {
            let seq = frame.seq;
            let work = move || -> Result<FrameMessage, ApiError> {
                let start = Instant::now();
                let image = analyzer.decode(&frame.bytes, Path::new("the frame"))?;
                let mut analysis = analysis
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let report = analysis.analyze(&analyzer, &image, frame.time);
                telemetry::frame_analysed(report.faces.len());
                Ok(FrameMessage {
                    seq,
                    time: frame.time,
                    processing_ms: start.elapsed().as_secs_f64() * 1e3,
                    skipped,
                    width: image.width(),
                    height: image.height(),
                    faces: report.faces,
                })
            };
            match state.wait_cpu(work).await.and_then(|r| r) {
                Ok(message) => Outgoing::Frame(message),
                Err(e) => Outgoing::Error {
                    seq: Some(seq),
                    body: body_of(e),
                },
            }
        }
    }

    /// Applies a command (while a frame is analysed, after it: the lock waits for it).
    async fn apply(&mut self, command: Command) -> Result<(), ApiError> {
        match command {
            Command::Reset => {
                let analysis = Arc::clone(&self.analysis);
                self.state.wait_cpu(move || lock(&analysis).reset()).await
            }
            Command::Settings { detector, tracking } => {
                // Every setting is checked before any is applied: a refused message changes
                // nothing.
                let analysis = Arc::clone(&self.analysis);
                let config = self
                    .state
                    .wait_cpu(move || {
                        let config = tracking.apply(lock(&analysis).config())?;
                        config.validate().map(|()| config)
                    })
                    .await??;
                let merged = merge(self.detector, detector);
                if merged != self.detector {
                    self.analyzer = self.state.analyzer_for(merged).await?;
                    self.detector = merged;
                }
                let analysis = Arc::clone(&self.analysis);
                self.state
                    .wait_cpu(move || lock(&analysis).set_config(config))
                    .await??;
                Ok(())
            }
        }
    }
}

fn lock(m: &Mutex<StreamAnalyzer>) -> std::sync::MutexGuard<'_, StreamAnalyzer> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Detector options where `new` overrides what it sets.
fn merge(old: DetectorOptions, new: DetectorOptions) -> DetectorOptions {
    DetectorOptions {
        detector: new.detector.or(old.detector),
        min_face: new.min_face.or(old.min_face),
        threshold: new.threshold.or(old.threshold),
    }
}

fn body_of(e: ApiError) -> ErrorBody {
    ErrorBody {
        error: e.code,
        message: e.message,
    }
}

fn close(code: u16, reason: String) -> CloseFrame {
    // A close reason is at most 123 bytes.
    let mut reason = reason;
    if reason.len() > 123 {
        let mut cut = 120;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push_str("...");
    }
    CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    }
}

/// The close frame for a receive error: 1009 for an oversize message, 1002 otherwise.
fn receive_error(e: &axum::Error, max: usize) -> CloseFrame {
    let text = e.to_string();
    if text.contains("too long") || text.contains("too big") || text.contains("Space limit") {
        close(
            close_code::SIZE,
            format!("a message is larger than {} KiB (--max-message)", max >> 10),
        )
    } else {
        close(close_code::PROTOCOL, format!("protocol error: {text}"))
    }
}

async fn send(
    tx: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    message: &Outgoing,
) -> Result<(), axum::Error> {
    let text = serde_json::to_string(message).unwrap_or_else(|e| {
        format!(r#"{{"type":"error","error":"internal","message":"cannot write the answer: {e}"}}"#)
    });
    tx.send(Message::Text(Utf8Bytes::from(text))).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_listed_settings_field_is_one_the_options_read() {
        let examples = [
            ("detector", json!("haar")),
            ("min_face", json!(40)),
            ("threshold", json!(0.5)),
            ("detect_every", json!(2)),
            ("window", json!(4)),
            ("ema", json!(0.3)),
            ("label_margin", json!(0.2)),
            ("label_hold", json!(1.0)),
            ("label_fast_margin", json!(0.4)),
            ("label_fast_hold", json!(0.1)),
            ("label_min_show", json!(0.3)),
            ("min_hits", json!(2)),
            ("max_age", json!(9)),
            ("box_alpha", json!(0.5)),
            ("iou", json!(0.4)),
        ];
        assert_eq!(examples.len(), settings_fields().len());
        for (field, value) in examples {
            assert!(settings_fields().iter().any(|f| f == field), "{field}");
            let text = json!({"type": "settings", field: value}).to_string();
            let read = matches!(
                Command::parse(&text),
                Ok(Ok(Command::Settings { detector, tracking }))
                    if detector != DetectorOptions::default()
                        || tracking != TrackingOptions::default()
            );
            assert!(read, "{field} is read into the options");
        }
    }

    #[test]
    fn unknown_fields_are_named_and_bad_json_is_refused() {
        let Ok(Err(e)) = Command::parse(r#"{"type":"settings","windw":4,"iou":0.3}"#) else {
            panic!("an unknown field is an error answer");
        };
        assert!(
            e.message.starts_with("unknown field windw "),
            "{}",
            e.message
        );
        assert!(matches!(
            Command::parse(r#"{"type":"reset","x":1}"#),
            Ok(Err(_))
        ));
        assert!(matches!(
            Command::parse(r#"{"type":"reset"}"#),
            Ok(Ok(Command::Reset))
        ));
        assert!(Command::parse(r#"{"type":"settings","#).is_err());
        assert!(Command::parse(r#"{"type":"bogus"}"#).is_err());
    }
}
