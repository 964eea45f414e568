//! Video jobs: an uploaded video analysed in the background into an annotated video, JSONL
//! records, a per-track CSV and a timeline, kept for `--job-ttl` and then deleted.
//!
//! Jobs run a few at a time (`--job-workers`) on threads of their own, beside the CPU pool of
//! images and streams; at most `--max-jobs` are queued or running. Every job's files live in
//! its own subfolder of a private temporary folder, deleted with the job, after the TTL, and
//! at shutdown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use emotrack::Analyzer;
use emotrack::video::{
    DecodeOptions, EndReason, PipelineConfig, Source, VideoInput, VideoOutputs, VideoPipeline,
};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::config::ServerConfig;
use crate::error::{ApiError, ConfigError};
use crate::telemetry;

/// The files a finished job offers, as named in its folder and its links.
pub const FILES: [&str; 4] = ["annotated.mp4", "faces.jsonl", "tracks.csv", "timeline.png"];

/// Name of the uploaded video inside a job's folder.
const UPLOAD: &str = "upload.video";

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Being analysed.
    Running,
    /// Finished; its files can be downloaded.
    Done,
    /// Could not be analysed to the end (see its error): the video broke off, could not be
    /// read or an output could not be written. The outputs that could be finished remain and
    /// cover the frames before the failure (the error says so); one that could not is deleted.
    Failed,
    /// Stopped by a DELETE or a shutdown.
    Cancelled,
}

impl JobState {
    /// Whether the job has ended (done, failed or cancelled): its files no longer change.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One job.
#[derive(Debug)]
pub struct Job {
    id: String,
    dir: PathBuf,
    created: SystemTime,
    frames_done: AtomicU64,
    stop: AtomicBool,
    status: Mutex<Status>,
}

#[derive(Debug)]
struct Status {
    state: JobState,
    total: Option<u64>,
    error: Option<String>,
    finished: Option<Instant>,
}

/// A job as `GET /v1/videos/{id}` shows it.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    /// Frames analysed so far.
    pub frames_done: u64,
    /// Frames the video is expected to have, once known.
    pub frames_total: Option<u64>,
    /// What went wrong (`failed`), or why the video ended early.
    pub error: Option<String>,
    /// When the job was created, seconds since the Unix epoch.
    pub created: u64,
    /// Links to the outputs, once the job has finished: `annotated.mp4`, `faces.jsonl`,
    /// `tracks.csv`, `timeline.png` (those written).
    pub files: HashMap<String, String>,
}

impl Job {
    fn lock(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the job's files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The job's state.
    pub fn state(&self) -> JobState {
        self.lock().state
    }

    /// What `GET /v1/videos/{id}` answers.
    pub fn view(&self) -> JobView {
        let status = self.lock();
        let files = if status.state.is_finished() {
            FILES
                .iter()
                .filter(|f| self.dir.join(f).is_file())
                .map(|f| ((*f).to_owned(), format!("/v1/videos/{}/{f}", self.id)))
                .collect()
        } else {
            HashMap::new()
        };
        JobView {
            id: self.id.clone(),
            state: status.state.name().to_owned(),
            frames_done: self.frames_done.load(Ordering::Relaxed),
            frames_total: status.total,
            error: status.error.clone(),
            created: self
                .created
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            files,
        }
    }

    fn set(&self, state: JobState, error: Option<String>) {
        let mut status = self.lock();
        status.state = state;
        if error.is_some() {
            status.error = error;
        }
        if state.is_finished() {
            status.finished = Some(Instant::now());
        }
    }
}

/// Every job, and the folder their files live in.
#[derive(Debug)]
pub struct Jobs {
    root: tempfile::TempDir,
    ttl: Duration,
    max_jobs: usize,
    pipeline: PipelineConfig,
    workers: Arc<Semaphore>,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

impl Jobs {
    /// An empty job list with a fresh private folder (in `--job-dir`, or the temporary folder).
    pub fn new(config: &ServerConfig) -> Result<Self, ConfigError> {
        let builder = {
            let mut b = tempfile::Builder::new();
            b.prefix("emotrack-jobs-");
            b
        };
        let root = match &config.job_dir {
            Some(dir) => builder.tempdir_in(dir),
            None => builder.tempdir(),
        }
        .map_err(|e| {
            ConfigError(format!(
                "cannot create a folder for video jobs in {}: {e}; pass a writable --job-dir",
                config
                    .job_dir
                    .clone()
                    .unwrap_or_else(std::env::temp_dir)
                    .display()
            ))
        })?;
        Ok(Self {
            root,
            ttl: config.job_ttl,
            max_jobs: config.limits.max_jobs,
            pipeline: config.pipeline,
            workers: Arc::new(Semaphore::new(config.limits.job_workers)),
            jobs: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The folder every job's subfolder is in.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// 429 unless another job may be queued.
    pub fn check_room(&self) -> Result<(), ApiError> {
        let active = self
            .lock()
            .values()
            .filter(|j| !j.state().is_finished())
            .count();
        if active >= self.max_jobs {
            return Err(ApiError::busy(
                format!(
                    "{active} video jobs are queued or running, the most this server takes; \
                     try again when one has finished"
                ),
                30,
            ));
        }
        Ok(())
    }

    /// A new job with an empty folder, and the path its upload goes to (not queued yet).
    pub fn create(&self) -> Result<(Arc<Job>, PathBuf), ApiError> {
        self.check_room()?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.root.path().join(&id);
        std::fs::create_dir(&dir)
            .map_err(|e| ApiError::internal(format!("cannot create the job's folder: {e}")))?;
        let job = Arc::new(Job {
            id: id.clone(),
            dir: dir.clone(),
            created: SystemTime::now(),
            frames_done: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            status: Mutex::new(Status {
                state: JobState::Queued,
                total: None,
                error: None,
                finished: None,
            }),
        });
        self.lock().insert(id, Arc::clone(&job));
        Ok((job, dir.join(UPLOAD)))
    }

    /// Runs a created job whose upload is complete, when a worker is free.
    pub fn start(&self, job: Arc<Job>, analyzer: Arc<Analyzer>) {
        let workers = Arc::clone(&self.workers);
        let pipeline = self.pipeline;
        tokio::spawn(async move {
            let Ok(_permit) = workers.acquire_owned().await else {
                return;
            };
            if job.stop.load(Ordering::Relaxed) {
                job.set(JobState::Cancelled, None);
                return;
            }
            job.set(JobState::Running, None);
            let runner = Arc::clone(&job);
            let outcome =
                tokio::task::spawn_blocking(move || run(&runner, &analyzer, pipeline)).await;
            let (state, error) = match outcome {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(job = %job.id, error = %e, "a video job panicked");
                    (
                        JobState::Failed,
                        Some("the analysis failed unexpectedly (a bug, please report it)".into()),
                    )
                }
            };
            job.set(state, error);
            let _ = std::fs::remove_file(job.dir.join(UPLOAD));
            tracing::info!(job = %job.id, state = state.name(), "video job ended");
        });
    }

    /// A job by id, or 404.
    pub fn get(&self, id: &str) -> Result<Arc<Job>, ApiError> {
        self.lock().get(id).cloned().ok_or_else(|| {
            ApiError::not_found(format!(
                "no video job {id:?} (finished jobs are deleted after the TTL)"
            ))
        })
    }

    /// Forgets a job and deletes its files; a running job is stopped first (its thread
    /// deletes what it still writes when it ends).
    pub fn remove(&self, id: &str) -> Result<(), ApiError> {
        let job = self
            .lock()
            .remove(id)
            .ok_or_else(|| ApiError::not_found(format!("no video job {id:?}")))?;
        job.stop.store(true, Ordering::Relaxed);
        delete_when_idle(job);
        Ok(())
    }

    /// Deletes finished jobs older than the TTL.
    pub fn expire(&self) {
        let ttl = self.ttl;
        let expired: Vec<Arc<Job>> = {
            let mut jobs = self.lock();
            let old: Vec<String> = jobs
                .iter()
                .filter(|(_, j)| j.lock().finished.is_some_and(|f| f.elapsed() > ttl))
                .map(|(id, _)| id.clone())
                .collect();
            old.iter().filter_map(|id| jobs.remove(id)).collect()
        };
        for job in expired {
            tracing::info!(job = %job.id, "video job expired");
            delete_when_idle(job);
        }
    }

    /// Asks every job to stop (shutdown).
    pub fn cancel_all(&self) {
        for job in self.lock().values() {
            job.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Whether any job is still running.
    pub fn any_running(&self) -> bool {
        self.lock().values().any(|j| j.state() == JobState::Running)
    }

    /// Publishes the number of jobs in each state.
    pub fn report_metrics(&self) {
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        for job in self.lock().values() {
            *counts.entry(job.state().name()).or_default() += 1;
        }
        for state in [
            JobState::Queued,
            JobState::Running,
            JobState::Done,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            telemetry::jobs_in_state(state.name(), counts.get(state.name()).copied().unwrap_or(0));
        }
    }
}

/// Deletes a job's folder now, or when its thread ends if it is running.
fn delete_when_idle(job: Arc<Job>) {
    if job.state() != JobState::Running {
        let _ = std::fs::remove_dir_all(&job.dir);
        return;
    }
    tokio::spawn(async move {
        while job.state() == JobState::Running {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = std::fs::remove_dir_all(&job.dir);
    });
}

/// Analyses a job's upload into its folder: the state it ends in, and its error.
fn run(job: &Job, analyzer: &Analyzer, config: PipelineConfig) -> (JobState, Option<String>) {
    let upload = job.dir.join(UPLOAD);
    let input = match VideoInput::open(Source::File(upload), DecodeOptions::default()) {
        Ok(input) => input,
        Err(e) => return (JobState::Failed, Some(describe(&e))),
    };
    job.lock().total = input.expected_frames();
    let pipeline = match VideoPipeline::new(analyzer, config) {
        Ok(p) => p,
        Err(e) => return (JobState::Failed, Some(describe(&e))),
    };
    let mut outputs = match VideoOutputs::in_folder(&job.dir, &input) {
        Ok(o) => o,
        Err(e) => return (JobState::Failed, Some(describe(&e))),
    };
    let result = pipeline.run(&input, &job.stop, |image, report| {
        outputs.push(image, report)?;
        job.frames_done.fetch_add(1, Ordering::Relaxed);
        telemetry::frame_analysed(report.faces.len());
        Ok(())
    });
    let finished = outputs.finish();
    let problems: Vec<String> = finished
        .problems
        .iter()
        .map(|p| {
            let deleted = if p.deleted { " (deleted)" } else { "" };
            format!("{} was not finished{deleted}", describe(&p.error))
        })
        .collect();
    let frames = job.frames_done.load(Ordering::Relaxed);
    match result {
        Err(e) => (
            JobState::Failed,
            Some(format!(
                "{}; the outputs that remain cover the {frames} frames before",
                describe(&e)
            )),
        ),
        Ok(_) if job.stop.load(Ordering::Relaxed) => (JobState::Cancelled, None),
        Ok(_) if !problems.is_empty() => (
            JobState::Failed,
            Some(format!(
                "{}; the other outputs are complete",
                problems.join("; ")
            )),
        ),
        Ok(stats) => match stats.end {
            EndReason::Failed(why) => (
                JobState::Failed,
                Some(format!(
                    "the video broke off after {frames} frames ({why}); the outputs cover \
                     those frames only"
                )),
            ),
            _ => (JobState::Done, None),
        },
    }
}

/// A job's error for its owner: the output concerned by name (never the server's folders),
/// what went wrong and, when the disk is full, whose problem that is.
fn describe(e: &emotrack::Error) -> String {
    let file = e
        .path()
        .or_else(|| e.input().map(Path::new))
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .filter(|n| FILES.contains(n));
    let mut message = match file {
        Some(name) => format!("{name}: {}", e.detail()),
        None => e.detail(),
    };
    if e.is_disk_full() {
        message.push_str(
            " (the server's disk is full: its operator must free space or move --job-dir)",
        );
    }
    message
}
