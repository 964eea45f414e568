//! Video: files, webcams, network streams and image sequences, analysed frame by frame with
//! tracking and smoothing.
//!
//! * [`Source`] classifies what the user typed; [`VideoInput::open`] probes it with
//!   `ffprobe -print_format json` ([`VideoInfo`]) and refuses bad input with a message that
//!   names the problem (missing, empty, not a video, audio only, unknown codec, absent camera).
//! * [`Decoder`] reads `ffmpeg ... -f rawvideo -pix_fmt rgb24 pipe:1` into reusable frames.
//! * [`StreamAnalyzer`] analyses one stream a frame at a time (tracking and smoothing, no
//!   FFmpeg): browser and API streams use it directly.
//! * [`VideoPipeline`] runs decode → analyse (detect every N frames, carry boxes in between,
//!   classify every visible track, smooth) → output as stages joined by bounded channels; live
//!   sources drop stale frames (newest wins, at most one frame waiting).
//! * [`Encoder`] writes annotated frames to H.264 with the input's audio through
//!   `ffmpeg -f rawvideo ... -i pipe:0 -i INPUT -map 0:v -map 1:a? -c:v libx264 -c:a aac`.
//! * [`records`] writes JSONL records and the per-track CSV summary, [`Timeline`] the plot,
//!   [`metrics`] measures what smoothing does.
//! * [`VideoOutputs`] composes them all (annotated video, JSONL, CSV, timeline) for a run and
//!   finishes every one whatever ended it; [`VideoOutputs::in_folder`] puts them in one folder
//!   under fixed names.
//! * [`batch`] reads a list of videos and splits it across workers ([`VideoList`], [`Shard`]).
//!
//! # Why FFmpeg as child processes
//!
//! FFmpeg runs as separate programs connected by pipes rather than through libav* bindings:
//! no `unsafe` or FFI, no libav development headers or bindgen at build time, any FFmpeg
//! version on `PATH` works (override with `EMOTRACK_FFMPEG` / `EMOTRACK_FFPROBE`), and a crash
//! in a codec cannot take emotrack down. Copying raw RGB frames through a pipe costs little at
//! the sizes emotion recognition needs (about 1 MB a frame at 640x480). Install FFmpeg with
//! `apt-get install ffmpeg` (Debian/Ubuntu).

pub mod batch;
mod decode;
mod encode;
mod ffmpeg;
mod mailbox;
pub mod metrics;
pub mod outputs;
mod pipeline;
mod probe;
pub mod records;
mod source;
mod stream;
mod timeline;

pub use crate::track::NOMINAL_FPS;
pub use batch::{ListedVideo, Shard, VideoList, output_name};
pub use decode::{
    DEFAULT_STALL_TIMEOUT, DecodeOptions, Decoder, DecoderExit, StopCause, VideoInput,
};
pub use encode::Encoder;
pub use metrics::{SmoothingRecorder, SmoothingStats};
pub use outputs::{FinishedOutputs, JsonlTarget, OutputError, OutputTargets, VideoOutputs};
pub use pipeline::{
    DEFAULT_DETECT_EVERY, EndReason, FrameReport, PipelineConfig, PipelineOverrides, RunStats,
    StageTimes, TrackedFace, VideoPipeline,
};
pub use probe::{FALLBACK_FRAME_RATE, VideoInfo, probe, read_probe_json};
pub use records::{Summary, TrackSummary, write_jsonl};
pub use source::{Source, cameras};
pub use stream::StreamAnalyzer;
pub use timeline::{MAX_LANES, Timeline};
