//! `emotrack serve`: the HTTP and WebSocket server (crate `emotrack-server`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use emotrack_server::{AppState, Limits, ServerConfig};

use crate::options::AnalyzerArgs;
use crate::outcome::Outcome;

/// Arguments of `emotrack serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  emotrack serve                                  # http://127.0.0.1:7860, API docs at /docs
  emotrack serve --bind 0.0.0.0:7860 --token s3cret
  curl -F file=@photo.jpg http://127.0.0.1:7860/v1/analyze

Stops gracefully on Ctrl-C or SIGTERM: streams are closed, video jobs cancelled and their
files deleted.")]
pub struct Args {
    /// Address and port to listen on (0.0.0.0:7860 to accept other machines).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:7860",
        env = "EMOTRACK_BIND"
    )]
    pub bind: SocketAddr,
    /// Require this bearer token on every /v1 route and the stream.
    #[arg(long, env = "EMOTRACK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Allow browser pages served from ORIGIN (scheme, host and port, as browsers send it in
    /// their Origin header; `*` for any) to call the API; repeat for several. Closed by default.
    #[arg(long, value_name = "ORIGIN")]
    pub cors: Vec<String>,
    /// Largest image body, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 20)]
    pub max_body: usize,
    /// Largest video upload, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub max_video: u64,
    /// Largest image, in megapixels (checked from the header, before decoding).
    #[arg(long, value_name = "MP", default_value_t = 40)]
    pub max_pixels: u64,
    /// Largest stream message (one frame), in KiB.
    #[arg(long, value_name = "KIB", default_value_t = 4096)]
    pub max_message: usize,
    /// Streams open at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_streams)]
    pub max_streams: usize,
    /// Analyses running at once (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Video jobs queued or running at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_jobs)]
    pub max_jobs: usize,
    /// Video jobs running at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().job_workers)]
    pub job_workers: usize,
    /// Folder for video jobs' files (a private subfolder is made and deleted in it).
    #[arg(long, value_name = "DIR", env = "EMOTRACK_JOB_DIR")]
    pub job_dir: Option<PathBuf>,
    /// Seconds a finished video job and its files are kept.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub job_ttl: u64,
    /// Seconds an image request may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub request_timeout: u64,
    /// Seconds a stream may stay silent before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub idle_timeout: u64,
    /// Seconds in-flight work gets to finish on shutdown.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub shutdown_grace: u64,
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,
}

impl Args {
    fn to_config(&self) -> Result<ServerConfig> {
        let defaults = Limits::default();
        let workers = self.workers.unwrap_or(defaults.workers);
        let mut config = ServerConfig::new(self.analyzer.to_config()?);
        config.limits = Limits {
            max_body_bytes: self.max_body << 20,
            max_video_bytes: self.max_video << 20,
            max_pixels: self.max_pixels * 1_000_000,
            max_message_bytes: self.max_message << 10,
            max_streams: self.max_streams,
            workers,
            max_waiting: Limits::WAITING_PER_WORKER * workers,
            max_jobs: self.max_jobs,
            job_workers: self.job_workers,
            request_timeout: Duration::from_secs(self.request_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
        };
        config.token = self.token.clone();
        config.cors_origins = self.cors.clone();
        config.job_dir = self.job_dir.clone();
        config.job_ttl = Duration::from_secs(self.job_ttl);
        Ok(config)
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<Outcome> {
    let state = AppState::new(args.to_config()?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        let addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let auth = if state.config().token.is_some() {
            " (token required)"
        } else {
            ""
        };
        // One write: stderr is unbuffered, so a formatted eprintln! reaches a reader in pieces
        // (the address byte by byte), and scripts that wait for this line could read half of it.
        let ready =
            format!("emotrack serving on http://{addr}{auth}; API docs at http://{addr}/docs\n");
        std::io::stderr()
            .write_all(ready.as_bytes())
            .context("cannot write to stderr")?;
        emotrack_server::serve(listener, state, shutdown_signal()).await?;
        eprintln!("emotrack stopped");
        Ok(Outcome::Success)
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
