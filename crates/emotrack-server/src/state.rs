//! What every handler shares: the models, the CPU pool, the open streams, the jobs, the
//! metrics and the shutdown signal.

use std::sync::{Arc, Mutex, OnceLock};

use emotrack::detect::DetectorBackend;
use emotrack::{Analyzer, AnalyzerConfig};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::config::ServerConfig;
use crate::error::{ApiError, ConfigError};
use crate::jobs::Jobs;

/// Analyzers kept for requests that ask for other detector settings than the server's.
const CACHED_ANALYZERS: usize = 8;

/// The state every handler shares (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("ready", &self.is_ready())
            .field("open_streams", &self.open_streams())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ServerConfig,
    /// The server's own analyzer, once the models are loaded.
    analyzer: OnceLock<Arc<Analyzer>>,
    /// Analyzers for other detector settings, most recently used last.
    others: Mutex<Vec<(DetectorOptions, Arc<Analyzer>)>>,
    /// Permits to run on the CPU pool.
    cpu: Arc<Semaphore>,
    /// Permits to wait for the CPU pool (running or waiting).
    admission: Arc<Semaphore>,
    /// Permits to hold a stream open.
    streams: Arc<Semaphore>,
    jobs: Jobs,
    shutdown: watch::Sender<bool>,
}

/// Detector settings a request may choose (`?detector=haar&min_face=40&threshold=0.9`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetectorOptions {
    /// `yunet` (fastest, landmarks), `mtcnn` (landmarks) or `haar` (frontal faces);
    /// default: the server's `--detector` (`yunet` unless set).
    pub detector: Option<DetectorName>,
    /// Smallest face side searched for, in pixels (at least 12).
    pub min_face: Option<u32>,
    /// MTCNN's final face threshold or YuNet's score threshold, 0-1 (higher: fewer, surer
    /// faces).
    pub threshold: Option<f32>,
}

/// A face detector, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DetectorName {
    /// Viola-Jones Haar cascade.
    Haar,
    /// MTCNN.
    Mtcnn,
    /// YuNet.
    Yunet,
}

impl DetectorOptions {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The analyzer settings these options make of `base`: another detector (with its default
    /// settings; the same one keeps `base`'s), face size and score threshold.
    fn apply(&self, base: &AnalyzerConfig) -> AnalyzerConfig {
        let mut config = base.clone();
        let detector = &mut config.detector;
        if let Some(name) = self.detector {
            let wanted = name.backend();
            if wanted.name() != detector.backend.name() {
                detector.backend = wanted;
            }
        }
        if let Some(min_face) = self.min_face {
            detector.min_face = min_face;
        }
        if let Some(threshold) = self.threshold {
            detector.backend = detector.backend.clone().with_threshold(threshold);
        }
        config
    }
}

impl DetectorName {
    /// The backend of this name, with its default settings.
    fn backend(self) -> DetectorBackend {
        match self {
            Self::Haar => DetectorBackend::Haar(Default::default()),
            Self::Mtcnn => DetectorBackend::Mtcnn(Default::default()),
            Self::Yunet => DetectorBackend::Yunet(Default::default()),
        }
    }
}

impl AppState {
    /// The state for `config`, models not loaded yet (see [`AppState::load_models`]).
    pub fn new(config: ServerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let limits = config.limits;
        let jobs = Jobs::new(&config)?;
        let (shutdown, _) = watch::channel(false);
        Ok(Self(Arc::new(Inner {
            analyzer: OnceLock::new(),
            others: Mutex::new(Vec::new()),
            cpu: Arc::new(Semaphore::new(limits.workers)),
            admission: Arc::new(Semaphore::new(limits.workers + limits.max_waiting)),
            streams: Arc::new(Semaphore::new(limits.max_streams)),
            jobs,
            shutdown,
            config,
        })))
    }

    /// Loads the models (blocking: call it off the async runtime); `/readyz` answers 200 after.
    pub fn load_models(&self) -> Result<(), emotrack::Error> {
        let mut config = self.0.config.analyzer.clone();
        config.decode_limits.max_pixels = self.0.config.limits.max_pixels;
        let analyzer = Analyzer::new(config)?;
        let _ = self.0.analyzer.set(Arc::new(analyzer));
        Ok(())
    }

    /// Whether the models are loaded.
    pub fn is_ready(&self) -> bool {
        self.0.analyzer.get().is_some()
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// The video jobs.
    pub fn jobs(&self) -> &Jobs {
        &self.0.jobs
    }

    /// The server's analyzer, or 503 while the models load.
    pub fn analyzer(&self) -> Result<Arc<Analyzer>, ApiError> {
        self.0
            .analyzer
            .get()
            .cloned()
            .ok_or_else(|| ApiError::not_ready("the models are still loading; try again shortly"))
    }

    /// The analyzer for a request's detector options: the server's own, or one built for them
    /// (on the CPU pool) and kept for the next request that asks the same.
    pub async fn analyzer_for(&self, options: DetectorOptions) -> Result<Arc<Analyzer>, ApiError> {
        let base = self.analyzer()?;
        if options.is_default() {
            return Ok(base);
        }
        if let Some(found) = self.cached(&options) {
            return Ok(found);
        }
        let mut config = options.apply(&self.0.config.analyzer);
        config.decode_limits.max_pixels = self.0.config.limits.max_pixels;
        let built = Arc::new(self.run_cpu(move || Analyzer::new(config)).await??);
        let mut others = self.lock_others();
        others.push((options, Arc::clone(&built)));
        if others.len() > CACHED_ANALYZERS {
            others.remove(0);
        }
        Ok(built)
    }

    fn cached(&self, options: &DetectorOptions) -> Option<Arc<Analyzer>> {
        let mut others = self.lock_others();
        let i = others.iter().position(|(o, _)| o == options)?;
        let entry = others.remove(i);
        let found = Arc::clone(&entry.1);
        others.push(entry);
        Some(found)
    }

    fn lock_others(&self) -> std::sync::MutexGuard<'_, Vec<(DetectorOptions, Arc<Analyzer>)>> {
        // A panic while holding the lock leaves a usable list: recover it.
        self.0
            .others
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs CPU work on the bounded pool beside the async runtime, so the runtime keeps
    /// answering `/healthz` and open streams. Waits for a free worker; refuses with 429 when
    /// too many requests already wait. A panic in `work` is a 500, not a crash.
    pub async fn run_cpu<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let _waiting = Arc::clone(&self.0.admission)
            .try_acquire_owned()
            .map_err(|_| ApiError::busy("every worker is busy; try again in a moment", 1))?;
        self.wait_cpu(work).await
    }

    /// Runs CPU work on the pool as soon as a worker is free, however many wait (for streams,
    /// whose single frame in flight is bounded by `--max-streams` already).
    pub async fn wait_cpu<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.0.cpu)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::not_ready("the server is shutting down"))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "an analysis panicked");
            ApiError::internal("the analysis failed unexpectedly (a bug, please report it)")
        })
    }

    /// A permit to hold one stream open, or 429 when `--max-streams` are open.
    pub fn open_stream(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.0.streams)
            .try_acquire_owned()
            .map_err(|_| {
                ApiError::busy(
                    format!(
                        "{} streams are open, the most this server takes; try again later",
                        self.0.config.limits.max_streams
                    ),
                    5,
                )
            })
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.0.config.limits.max_streams - self.0.streams.available_permits()
    }

    /// Tells streams and jobs that the server is shutting down.
    pub fn begin_shutdown(&self) {
        self.0.shutdown.send_replace(true);
        self.0.jobs.cancel_all();
    }

    /// A receiver that changes to `true` when the server starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use emotrack::detect::{MtcnnSettings, YunetSettings};

    use super::*;

    #[test]
    fn detector_options_keep_the_server_s_settings_of_the_same_detector() {
        let mut base = AnalyzerConfig::default();
        base.detector.backend = DetectorBackend::Yunet(YunetSettings {
            frame_max_side: 480,
            ..YunetSettings::default()
        });
        // The same detector with a threshold: the server's other YuNet settings stay.
        let same = DetectorOptions {
            detector: Some(DetectorName::Yunet),
            min_face: Some(40),
            threshold: Some(0.8),
        }
        .apply(&base);
        let DetectorBackend::Yunet(yunet) = same.detector.backend else {
            panic!("still YuNet: {:?}", same.detector.backend);
        };
        assert_eq!((yunet.frame_max_side, yunet.score_threshold), (480, 0.8));
        assert_eq!(same.detector.min_face, 40);
        // Another detector starts from its defaults, with the threshold applied.
        let other = DetectorOptions {
            detector: Some(DetectorName::Mtcnn),
            min_face: None,
            threshold: Some(0.9),
        }
        .apply(&base);
        let expected = MtcnnSettings {
            onet_threshold: 0.9,
            ..MtcnnSettings::default()
        };
        assert_eq!(other.detector.backend, DetectorBackend::Mtcnn(expected));
        assert_eq!(other.detector.min_face, base.detector.min_face);
        assert_eq!(
            DetectorOptions::default().apply(&base).detector,
            base.detector
        );
    }
}
