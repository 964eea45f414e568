//! What the server is started with: the models, the tracking defaults, the limits and the
//! access rules. `emotrack serve` fills it from its flags.

use std::path::PathBuf;
use std::time::Duration;

use emotrack::AnalyzerConfig;
use emotrack::video::PipelineConfig;

use crate::error::ConfigError;

/// Everything `emotrack serve` is started with.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// The models and detector settings requests start from (`?detector=` etc. adjust them).
    pub analyzer: AnalyzerConfig,
    /// Tracking and smoothing defaults for streams and video jobs.
    pub pipeline: PipelineConfig,
    /// Sizes, counts and times the server accepts.
    pub limits: Limits,
    /// A bearer token every `/v1` route and the stream require (`None`: open).
    pub token: Option<String>,
    /// Origins allowed to call the API from a browser page served elsewhere (empty: none).
    pub cors_origins: Vec<String>,
    /// Where video jobs keep their files (`None`: a private folder in the system's temporary
    /// folder). Each job gets a subfolder, deleted with the job.
    pub job_dir: Option<PathBuf>,
    /// How long a finished job and its files are kept.
    pub job_ttl: Duration,
}

/// Every limit, with a flag of `emotrack serve` each. The defaults suit one person's laptop and
/// a small shared service alike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest request body for an image (`/v1/analyze`), in bytes.
    pub max_body_bytes: usize,
    /// Largest video upload (`/v1/videos`), in bytes; streamed to disk, never held in memory.
    pub max_video_bytes: u64,
    /// Largest image accepted, in pixels (width x height), checked from its header.
    pub max_pixels: u64,
    /// Largest WebSocket message (one frame), in bytes.
    pub max_message_bytes: usize,
    /// Streams open at once; more are refused with 429.
    pub max_streams: usize,
    /// Analyses (images, stream frames) running at once on the CPU pool.
    pub workers: usize,
    /// Requests waiting for the CPU pool beyond the running ones; more are refused with 429.
    pub max_waiting: usize,
    /// Video jobs queued or running; more are refused with 429.
    pub max_jobs: usize,
    /// Video jobs running at once.
    pub job_workers: usize,
    /// Longest an HTTP request may take.
    pub request_timeout: Duration,
    /// A stream that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// On shutdown, how long in-flight work may take before it is cancelled.
    pub shutdown_grace: Duration,
}

impl Limits {
    /// Requests that may wait for each worker (`max_waiting` = this x `workers`).
    pub const WAITING_PER_WORKER: usize = 4;
}

impl Default for Limits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            max_body_bytes: 20 << 20,
            max_video_bytes: 1 << 30,
            max_pixels: 40_000_000,
            max_message_bytes: 4 << 20,
            max_streams: 16,
            workers: cores,
            max_waiting: Self::WAITING_PER_WORKER * cores,
            max_jobs: 8,
            job_workers: 1,
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// A configuration with the built-in models and default limits, jobs kept an hour.
    pub fn new(analyzer: AnalyzerConfig) -> Self {
        Self {
            analyzer,
            job_ttl: Duration::from_secs(3600),
            ..Self::default()
        }
    }

    /// Checks every setting, naming the flag to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let positive = [
            ("--max-body", l.max_body_bytes as u64),
            ("--max-video", l.max_video_bytes),
            ("--max-pixels", l.max_pixels),
            ("--max-message", l.max_message_bytes as u64),
            ("--max-streams", l.max_streams as u64),
            ("--workers", l.workers as u64),
            ("--max-jobs", l.max_jobs as u64),
            ("--job-workers", l.job_workers as u64),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError(format!("{flag} must be at least 1")));
        }
        let times = [
            ("--request-timeout", l.request_timeout),
            ("--idle-timeout", l.idle_timeout),
            ("--job-ttl", self.job_ttl),
        ];
        if let Some((flag, _)) = times.iter().find(|(_, d)| d.is_zero()) {
            return Err(ConfigError(format!("{flag} must be longer than 0 s")));
        }
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ConfigError(
                "the token is empty: pass a non-empty --token (or EMOTRACK_TOKEN), or none".into(),
            ));
        }
        self.pipeline
            .validate()
            .map_err(|e| ConfigError(e.to_string()))?;
        Ok(())
    }
}
