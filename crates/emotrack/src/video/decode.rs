//! Decoding: `ffmpeg ... -f rawvideo -pix_fmt rgb24 pipe:1`, read frame by frame into
//! reusable [`RgbImage`] buffers.

use std::io::Read;
use std::process::{Child, ChildStdout, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use image::RgbImage;
use serde::Serialize;

use super::ffmpeg::{Program, StderrTail};
use super::probe::{VideoInfo, probe};
use super::source::Source;
use crate::error::{Error, Result};

/// Default for [`DecodeOptions::stall_timeout`].
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest frame side accepted (8K), so a bogus size cannot make us allocate gigabytes.
const MAX_SIDE: u32 = 8192;

/// How frames are read from a source. The defaults read every frame at its own size.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// Sample this many frames per second instead of every frame (`None`: every frame).
    pub fps: Option<f64>,
    /// Stop after this many seconds of video (`None`: to the end; forever for a camera).
    pub duration: Option<f64>,
    /// Resize frames to `(width, height)` (`None`: the source's size). The picture keeps its
    /// aspect ratio, centred with black bars where the shapes differ: stretched faces are missed
    /// by the detectors and misread by the classifier.
    pub size: Option<(u32, u32)>,
    /// End when no frame arrived for this long (a stream that stopped sending); also the time
    /// limit for `ffprobe`. Default 10 s; raise it for slow networks.
    pub stall_timeout: Duration,
    /// `Some(true)`: drop stale frames and keep only the newest (real time); `Some(false)`:
    /// every frame; `None`: live for cameras and streams, every frame for files.
    pub live: Option<bool>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            fps: None,
            duration: None,
            size: None,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            live: None,
        }
    }
}

impl DecodeOptions {
    /// Checks every field, saying which one to change.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(m));
        if let Some(fps) = self.fps
            && !(fps > 0.0 && fps <= 1000.0)
        {
            return bad(format!("fps is {fps}, it must be in (0, 1000]"));
        }
        if let Some(d) = self.duration
            && !(d > 0.0 && d.is_finite())
        {
            return bad(format!("duration is {d} s, it must be positive"));
        }
        if let Some((w, h)) = self.size
            && (!(16..=MAX_SIDE).contains(&w) || !(16..=MAX_SIDE).contains(&h))
        {
            return bad(format!(
                "the frame size {w}x{h} is out of range; each side must be 16..={MAX_SIDE}"
            ));
        }
        if self.stall_timeout < Duration::from_millis(100) {
            return bad("the stall timeout must be at least 0.1 s".into());
        }
        Ok(())
    }
}

/// An opened (probed) source with its decode options: everything needed to start decoding.
#[derive(Debug, Clone)]
pub struct VideoInput {
    source: Source,
    info: VideoInfo,
    options: DecodeOptions,
}

impl VideoInput {
    /// Validates the options and probes the source; fails with a message naming the problem
    /// (missing file, empty file, not a video, audio only, unknown codec, absent camera, ...).
    pub fn open(source: Source, options: DecodeOptions) -> Result<Self> {
        options.validate()?;
        let info = probe(&source, options.stall_timeout)?;
        if info.width > MAX_SIDE || info.height > MAX_SIDE {
            return Err(Error::video(
                source.to_string(),
                format!(
                    "frames are {}x{}, larger than {MAX_SIDE} pixels a side; resize it first",
                    info.width, info.height
                ),
            ));
        }
        Ok(Self {
            source,
            info,
            options,
        })
    }

    /// The source.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// What ffprobe said about it.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The decode options.
    pub fn options(&self) -> &DecodeOptions {
        &self.options
    }

    /// Whether stale frames are dropped (see [`DecodeOptions::live`]).
    pub fn is_live(&self) -> bool {
        self.options.live.unwrap_or_else(|| self.source.is_live())
    }

    /// Size of the decoded frames.
    pub fn frame_size(&self) -> (u32, u32) {
        self.options
            .size
            .unwrap_or((self.info.width, self.info.height))
    }

    /// Frames per second of the decoded sequence (the sampling rate with `fps`).
    pub fn frame_rate(&self) -> f64 {
        self.options.fps.unwrap_or(self.info.frame_rate)
    }

    /// Frames the decoder will deliver, when known (files and sequences).
    pub fn expected_frames(&self) -> Option<u64> {
        if self.is_live() {
            return None;
        }
        let full = match (self.options.fps, self.info.duration) {
            (Some(fps), Some(d)) => Some((d * fps).round() as u64),
            (Some(_), None) => None,
            (None, _) => self.info.frame_count,
        }?;
        Some(match self.options.duration {
            Some(limit) => full.min((limit * self.frame_rate()).ceil() as u64),
            None => full,
        })
    }

    /// Seconds from the container's start to decoded frame `index` (files), so times match a
    /// player's clock.
    pub fn frame_time(&self, index: u64) -> f64 {
        self.info.start_offset + index as f64 / self.frame_rate()
    }

    /// Starts decoding.
    pub fn decoder(&self) -> Result<Decoder> {
        Decoder::spawn(self)
    }
}

/// The ffmpeg filter that fits a picture inside `w` x `h` with its aspect ratio kept and pads
/// the rest with black, centred: frames of exactly that size, faces undistorted. Scaling
/// averages areas (the right filter for shrinking, and cheaper than the default bicubic) and
/// converts to RGB in the same pass, so the padding is added to the RGB picture.
fn fit_filter(w: u32, h: u32) -> String {
    format!(
        "scale={w}:{h}:force_original_aspect_ratio=decrease:flags=area,format=rgb24,\
         pad={w}:{h}:(ow-iw)/2:(oh-ih)/2"
    )
}

/// Why decoding was cut short by [`Decoder::stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopCause {
    /// On request (Ctrl-C, or an output that failed).
    Requested,
    /// No frame arrived within the stall timeout.
    Stalled,
}

/// How the `ffmpeg` decoder ended.
#[derive(Debug, Clone)]
pub struct DecoderExit {
    /// It exited with status 0.
    pub success: bool,
    /// Its exit status, as text.
    pub status: String,
    /// The last lines it wrote to stderr (errors only), joined with "; ".
    pub messages: String,
    /// Set when [`Decoder::stop`] ended it.
    pub stopped: Option<StopCause>,
    /// The stream ended inside a frame (a truncated file or a dropped connection).
    pub partial_frame: bool,
}

/// A running `ffmpeg` decoder. Every method takes `&self`, so a watchdog thread can
/// [`stop`](Decoder::stop) it while another thread is blocked in
/// [`read_into`](Decoder::read_into).
#[derive(Debug)]
pub struct Decoder {
    input: String,
    size: (u32, u32),
    stdout: Mutex<ChildStdout>,
    child: Mutex<Child>,
    stderr: Mutex<StderrTail>,
    reading_since: Mutex<Option<Instant>>,
    stopped: Mutex<Option<StopCause>>,
    partial_frame: Mutex<bool>,
    reached_end: Mutex<bool>,
}

impl Decoder {
    fn spawn(input: &VideoInput) -> Result<Self> {
        let name = input.source.to_string();
        let (w, h) = input.frame_size();
        let mut cmd = Program::Ffmpeg.command();
        cmd.arg("-nostdin");
        cmd.args(input.source.input_options());
        cmd.arg("-i").arg(input.source.input_arg());
        cmd.args(["-map", "0:v:0"]);
        if let Some(d) = input.options.duration {
            cmd.arg("-t").arg(format!("{d}"));
        }
        let mut filters = Vec::new();
        if let Some(fps) = input.options.fps {
            filters.push(format!("fps={fps}"));
        }
        // Always scale to the probed (or requested) size: frames then have the size we read
        // even if a stream changes resolution mid-way. The picture is fitted inside and
        // centred (letterboxed), never stretched.
        filters.push(fit_filter(w, h));
        cmd.arg("-vf").arg(filters.join(","));
        // One output frame per decoded frame (no duplicates to fill timestamp gaps), so the
        // annotated video has the input's frame count.
        cmd.args(["-vsync", "passthrough"]);
        cmd.args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = Program::Ffmpeg.spawn(&mut cmd, &name)?;
        let stderr = StderrTail::collect(child.stderr.take());
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::video(name, "cannot read ffmpeg's output"));
        };
        Ok(Self {
            input: name,
            size: (w, h),
            stdout: Mutex::new(stdout),
            child: Mutex::new(child),
            stderr: Mutex::new(stderr),
            reading_since: Mutex::new(None),
            stopped: Mutex::new(None),
            partial_frame: Mutex::new(false),
            reached_end: Mutex::new(false),
        })
    }

    /// Size of the frames read.
    pub fn frame_size(&self) -> (u32, u32) {
        self.size
    }

    /// Reads the next frame into `image` (reallocated only if its size differs). Returns
    /// `false` at the end of the stream (also after [`stop`](Decoder::stop)).
    pub fn read_into(&self, image: &mut RgbImage) -> Result<bool> {
        let (w, h) = self.size;
        if image.dimensions() != (w, h) {
            *image = RgbImage::new(w, h);
        }
        let Ok(mut stdout) = self.stdout.lock() else {
            return Ok(false);
        };
        self.set_reading(Some(Instant::now()));
        let buf: &mut [u8] = image;
        let mut filled = 0;
        let result = loop {
            if filled == buf.len() {
                break Ok(true);
            }
            match stdout.read(&mut buf[filled..]) {
                Ok(0) => break Ok(false),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    break Err(Error::video(
                        self.input.clone(),
                        format!("cannot read decoded frames from ffmpeg: {e}"),
                    ));
                }
            }
        };
        self.set_reading(None);
        if matches!(result, Ok(false)) {
            if let Ok(mut e) = self.reached_end.lock() {
                *e = true;
            }
            if filled > 0
                && let Ok(mut p) = self.partial_frame.lock()
            {
                *p = true;
            }
        }
        result
    }

    fn set_reading(&self, since: Option<Instant>) {
        if let Ok(mut r) = self.reading_since.lock() {
            *r = since;
        }
    }

    /// How long the read under way has been waiting for data (`None`: no read under way).
    pub fn blocked_for(&self) -> Option<Duration> {
        self.reading_since
            .lock()
            .ok()
            .and_then(|r| r.map(|t| t.elapsed()))
    }

    /// Ends decoding: kills ffmpeg, so a blocked read returns the end of the stream. The
    /// first cause given is the one reported.
    pub fn stop(&self, cause: StopCause) {
        if let Ok(mut s) = self.stopped.lock() {
            if s.is_some() {
                return;
            }
            *s = Some(cause);
        }
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
        }
    }

    /// Waits for ffmpeg to exit (killing it if frames are still unread) and says how it ended.
    pub fn finish(&self) -> DecoderExit {
        let stopped = self.stopped.lock().ok().and_then(|s| *s);
        let status = match self.child.lock() {
            Ok(mut child) => {
                // Before the end of the stream, frames are still unread: we stopped early, so
                // do not wait for the rest of the file.
                let at_end = self.reached_end.lock().is_ok_and(|e| *e);
                if !at_end && !matches!(child.try_wait(), Ok(Some(_))) {
                    let _ = child.kill();
                }
                child.wait().ok()
            }
            Err(_) => None,
        };
        let messages = self
            .stderr
            .lock()
            .map(|mut s| s.finish())
            .unwrap_or_default();
        DecoderExit {
            success: status.is_some_and(|s| s.success()),
            status: status.map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
            messages,
            stopped,
            partial_frame: self.partial_frame.lock().is_ok_and(|p| *p),
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock()
            && !matches!(child.try_wait(), Ok(Some(_)))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
