//! A server on a real listener (127.0.0.1:0) with a jobs folder of its own, and what a test
//! client needs to talk to it: shared by `live.rs` and `faults.rs`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use emotrack::AnalyzerConfig;
use emotrack_server::{AppState, ServeError, ServerConfig, serve};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client's end of a stream.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for a state the server reaches on its own (a guard against hanging, not a
/// timing assertion: each takes well under a second when things work).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running server and what stops it.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    /// The `--job-dir`: holds the server's private jobs folder, and nothing once it stopped.
    job_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Running {
    /// Starts a server with the default config changed by `tune`; returns once its models
    /// are loaded.
    pub async fn start(tune: impl FnOnce(&mut ServerConfig)) -> Self {
        let job_dir = tempfile::tempdir().expect("tempdir");
        let mut config = ServerConfig::new(AnalyzerConfig::default());
        config.job_dir = Some(job_dir.path().to_path_buf());
        tune(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("address");
        let state = AppState::new(config).expect("valid config");
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        wait_for("the models load", || async { state.is_ready() }).await;
        Self {
            addr,
            state,
            job_dir,
            stop: Some(stop),
            done,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Opens a stream; `query` is empty or starts with `?`.
    pub async fn connect(&self, query: &str) -> Result<Ws, WsError> {
        let request = format!("ws://{}/v1/stream{query}", self.addr)
            .into_client_request()
            .expect("request");
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(ws, _)| ws)
    }

    /// Every file under the jobs folder, as paths relative to it.
    pub fn job_files(&self) -> Vec<String> {
        files_under(self.state.jobs().root())
    }

    /// Stops the server and waits for it; the `--job-dir`, to look at what is left.
    pub async fn shut_down(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, self.done)
            .await
            .expect("shutdown completes")
            .expect("joins")
            .expect("stops cleanly");
        self.job_dir
    }
}

/// Polls `check` until it holds; fails the test after [`PATIENCE`].
pub async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < PATIENCE, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Files (not folders) under `dir`, relative to it, sorted; empty when `dir` is absent.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap_or(&path);
                out.push(rel.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Sends one frame (a binary message).
pub async fn send_frame(ws: &mut Ws, bytes: &[u8]) {
    ws.send(Message::Binary(bytes.to_vec().into()))
        .await
        .expect("sends");
}

/// The next JSON text message (pings and pongs skipped).
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("an answer")
            .expect("the stream is open")
            .expect("a message");
        match message {
            Message::Text(t) => return serde_json::from_str(&t).expect("JSON"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// The close frame the server ends the stream with: its code and reason.
pub async fn close_frame(ws: &mut Ws) -> (u16, String) {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("closes")
        {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) | None => return (1005, String::new()),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("no close frame: {e}"),
        }
    }
}
