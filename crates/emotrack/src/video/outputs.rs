//! Everything a video run writes: the annotated video, the JSONL records, the per-track CSV
//! summary and the timeline plot, fed frame by frame from [`VideoPipeline::run`]'s callback
//! and finished together, whatever ended the run.
//!
//! ```no_run
//! # fn main() -> emotrack::error::Result<()> {
//! use std::sync::atomic::AtomicBool;
//! use emotrack::video::{DecodeOptions, Source, VideoInput, VideoOutputs, VideoPipeline};
//! use emotrack::{Analyzer, AnalyzerConfig};
//!
//! let analyzer = Analyzer::new(AnalyzerConfig::default())?;
//! let pipeline = VideoPipeline::new(&analyzer, Default::default())?;
//! let input = VideoInput::open(Source::parse("clip.mp4"), DecodeOptions::default())?;
//! // out/annotated.mp4, out/faces.jsonl, out/tracks.csv, out/timeline.png
//! let mut outputs = VideoOutputs::in_folder("out".as_ref(), &input)?;
//! let run = pipeline.run(&input, &AtomicBool::new(false), |image, report| {
//!     outputs.push(image, report)
//! });
//! // Finish every output even if the run failed: what was written stays valid.
//! let finished = outputs.finish();
//! run?;
//! for problem in &finished.problems {
//!     eprintln!("{problem}");
//! }
//! # Ok(()) }
//! ```
//!
//! [`VideoPipeline::run`]: super::VideoPipeline::run

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::RgbImage;

use super::decode::VideoInput;
use super::encode::Encoder;
use super::pipeline::{FrameReport, TrackedFace};
use super::records::{Summary, write_jsonl};
use super::timeline::Timeline;
use crate::annotate::Annotator;
use crate::error::{Error, Result};

/// The annotated video's name in an output folder ([`OutputTargets::in_folder`]).
pub const ANNOTATED_VIDEO: &str = "annotated.mp4";
/// The JSONL records' name in an output folder.
pub const FACES_JSONL: &str = "faces.jsonl";
/// The per-track CSV summary's name in an output folder.
pub const TRACKS_CSV: &str = "tracks.csv";
/// The timeline plot's name in an output folder.
pub const TIMELINE_PNG: &str = "timeline.png";

/// Where the JSONL records go.
pub enum JsonlTarget {
    /// A file, created (or truncated) when the outputs are created, written through a buffer.
    File(PathBuf),
    /// Any writer (a pipe, a socket, stdout), flushed after every frame so that a reader sees
    /// each frame's records at once. `name` stands for it in messages.
    Stream {
        /// What to call the writer in messages (`<stdout>`).
        name: String,
        /// Where the records go.
        writer: Box<dyn Write + Send>,
    },
}

impl JsonlTarget {
    /// The process's standard output.
    pub fn stdout() -> Self {
        Self::Stream {
            name: "<stdout>".into(),
            writer: Box::new(std::io::stdout()),
        }
    }

    /// The file, or the stream's name as a path.
    pub fn path(&self) -> PathBuf {
        match self {
            Self::File(path) => path.clone(),
            Self::Stream { name, .. } => PathBuf::from(name),
        }
    }
}

impl fmt::Debug for JsonlTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Stream { name, .. } => f.debug_struct("Stream").field("name", name).finish(),
        }
    }
}

/// Which outputs to write, and where; `None` leaves one out. The default writes nothing (the
/// per-track [`Summary`] is still kept).
#[derive(Debug, Default)]
pub struct OutputTargets {
    /// The annotated video (`.mp4`, `.m4v`, `.mov` or `.mkv`; see [`Encoder`]).
    pub video: Option<PathBuf>,
    /// One JSON line per frame per face ([`crate::report::FaceRecord`]).
    pub jsonl: Option<JsonlTarget>,
    /// The per-track summary ([`Summary::write_csv`]).
    pub csv: Option<PathBuf>,
    /// The timeline plot (PNG, [`Timeline`]).
    pub timeline: Option<PathBuf>,
}

impl OutputTargets {
    /// All four outputs in `dir` under their fixed names: [`ANNOTATED_VIDEO`], [`FACES_JSONL`],
    /// [`TRACKS_CSV`] and [`TIMELINE_PNG`].
    pub fn in_folder(dir: &Path) -> Self {
        Self {
            video: Some(dir.join(ANNOTATED_VIDEO)),
            jsonl: Some(JsonlTarget::File(dir.join(FACES_JSONL))),
            csv: Some(dir.join(TRACKS_CSV)),
            timeline: Some(dir.join(TIMELINE_PNG)),
        }
    }

    /// Checks, before anything runs, that every output can be written where it is asked for:
    /// its folder exists, and the video's extension is one [`Encoder`] writes.
    pub fn check(&self) -> Result<()> {
        if let Some(path) = &self.video {
            Encoder::check_path(path)?;
        }
        let jsonl = match &self.jsonl {
            Some(JsonlTarget::File(path)) => Some(path),
            _ => None,
        };
        for path in [jsonl, self.csv.as_ref(), self.timeline.as_ref()]
            .into_iter()
            .flatten()
        {
            check_folder(path)?;
        }
        Ok(())
    }
}

/// Refuses a file whose folder does not exist.
fn check_folder(path: &Path) -> Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(Error::video(
            path.display().to_string(),
            format!(
                "cannot write it: the folder {} does not exist",
                dir.display()
            ),
        )
        .with_hint("create the folder first")),
        _ => Ok(()),
    }
}

/// The JSONL records on their way out.
struct JsonlWriter {
    path: PathBuf,
    writer: Box<dyn Write + Send>,
    /// A file (deleted if it cannot be finished), not a stream; flushed only at the end,
    /// where a stream is flushed after every frame.
    is_file: bool,
    /// The first write that failed: the records after it are missing, whatever a later
    /// flush says, so [`JsonlWriter::finish`] fails with it.
    failed: Option<std::io::Error>,
}

impl JsonlWriter {
    fn create(target: JsonlTarget) -> Result<Self> {
        Ok(match target {
            JsonlTarget::File(path) => {
                let file = File::create(&path).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                Self {
                    path,
                    writer: Box::new(BufWriter::new(file)),
                    is_file: true,
                    failed: None,
                }
            }
            JsonlTarget::Stream { name, writer } => Self {
                path: name.into(),
                writer,
                is_file: false,
                failed: None,
            },
        })
    }

    fn write(&mut self, report: &FrameReport) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(self.io_error(std::io::Error::new(e.kind(), e.to_string())));
        }
        let result = write_jsonl(&mut self.writer, report).and_then(|()| {
            if self.is_file {
                Ok(())
            } else {
                self.writer.flush()
            }
        });
        result.map_err(|source| {
            self.failed = Some(std::io::Error::new(source.kind(), source.to_string()));
            self.io_error(source)
        })
    }

    fn finish(mut self) -> Result<PathBuf> {
        let flushed = self.writer.flush();
        match (self.failed.take(), flushed) {
            (Some(source), _) | (None, Err(source)) => Err(self.io_error(source)),
            (None, Ok(())) => Ok(self.path),
        }
    }

    fn io_error(&self, source: std::io::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// The outputs of one video run, fed a frame at a time with [`VideoOutputs::push`] and
/// completed with [`VideoOutputs::finish`]. The per-track [`Summary`] is always kept.
///
/// Dropping it without `finish` still leaves a playable video (the encoder closes ffmpeg's
/// input) and flushes the JSONL, but writes neither the CSV nor the timeline.
pub struct VideoOutputs {
    annotator: Annotator,
    encoder: Option<Encoder>,
    jsonl: Option<JsonlWriter>,
    csv: Option<PathBuf>,
    timeline: Option<(PathBuf, Timeline)>,
    summary: Summary,
    /// Seconds between frames, for the timeline's time axis.
    frame_interval: f64,
}

impl fmt::Debug for VideoOutputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VideoOutputs")
            .field("video", &self.encoder.as_ref().map(Encoder::path))
            .field("jsonl", &self.jsonl.as_ref().map(|j| &j.path))
            .field("csv", &self.csv)
            .field("timeline", &self.timeline.as_ref().map(|t| &t.0))
            .field("tracks", &self.summary.len())
            .finish_non_exhaustive()
    }
}

impl VideoOutputs {
    /// Checks the targets ([`OutputTargets::check`]), starts the encoder for frames of `input`
    /// and creates the JSONL file. The CSV and the timeline are written by
    /// [`VideoOutputs::finish`].
    pub fn create(targets: OutputTargets, input: &VideoInput) -> Result<Self> {
        targets.check()?;
        let encoder = match &targets.video {
            Some(path) => Some(Encoder::create(path, input)?),
            None => None,
        };
        let jsonl = match targets.jsonl {
            Some(target) => Some(JsonlWriter::create(target)?),
            None => None,
        };
        Ok(Self {
            annotator: Annotator::new(),
            encoder,
            jsonl,
            csv: targets.csv,
            timeline: targets.timeline.map(|path| (path, Timeline::new())),
            summary: Summary::new(),
            frame_interval: 1.0 / input.frame_rate(),
        })
    }

    /// All four outputs in `dir` ([`OutputTargets::in_folder`]), creating the folder (and its
    /// parents) if needed. Files already there are overwritten.
    pub fn in_folder(dir: &Path, input: &VideoInput) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Self::create(OutputTargets::in_folder(dir), input)
    }

    /// Adds a frame: its records, its summary and timeline entries, and the frame drawn with
    /// its faces (boxes, ids, labels, bars, vibes) to the video. `image` is drawn on only when
    /// a video is written.
    pub fn push(&mut self, image: &mut RgbImage, report: &FrameReport) -> Result<()> {
        self.summary.push(report);
        if let Some((_, timeline)) = self.timeline.as_mut() {
            timeline.push(report);
        }
        if let Some(jsonl) = self.jsonl.as_mut() {
            jsonl.write(report)?;
        }
        if let Some(encoder) = self.encoder.as_mut() {
            let overlays: Vec<_> = report.faces.iter().map(TrackedFace::overlay).collect();
            self.annotator.draw(image, &overlays);
            encoder.write(image, report.time)?;
        }
        Ok(())
    }

    /// What every track did over the frames pushed so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Finishes every output, each whatever happened to the others: the video is closed and
    /// ffmpeg waited for, the JSONL flushed, the CSV and the timeline written. What was written
    /// before a failed or stopped run stays valid.
    ///
    /// An output that cannot be finished (a write failed: full disk, lost folder, ffmpeg
    /// failed) is deleted rather than left incomplete under its final name, and listed in
    /// [`FinishedOutputs::problems`]; a file the run never wrote (a CSV whose creation was
    /// refused) is left alone.
    pub fn finish(self) -> FinishedOutputs {
        let mut done = FinishedOutputs {
            summary: Summary::new(),
            written: Vec::new(),
            not_written: Vec::new(),
            problems: Vec::new(),
        };
        if let Some(encoder) = self.encoder {
            let path = encoder.path().to_path_buf();
            let empty = encoder.frames_written() == 0;
            match encoder.finish() {
                Ok(()) if empty => done.not_written.push(path),
                result => done.record(path, result, Cleanup::Delete),
            }
        }
        if let Some(jsonl) = self.jsonl {
            let path = jsonl.path.clone();
            let cleanup = if jsonl.is_file {
                Cleanup::Delete
            } else {
                Cleanup::NotAFile
            };
            done.record(path, jsonl.finish().map(drop), cleanup);
        }
        if let Some(path) = self.csv {
            let result = write_file(&path, |w| self.summary.write_csv(w));
            done.record(path, result, Cleanup::Done);
        }
        if let Some((path, timeline)) = self.timeline {
            let result = timeline_png(&timeline, self.frame_interval, &path)
                .and_then(|png| write_file(&path, |w| w.write_all(&png)));
            done.record(path, result, Cleanup::Done);
        }
        done.summary = self.summary;
        done
    }
}

/// Creates `path` and writes it with `write`. A file created but not finished is deleted
/// here (it would be incomplete); one that could not be created is left as it was.
fn write_file(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut w = BufWriter::new(File::create(path).map_err(io_error)?);
    let written = write(&mut w).and_then(|()| w.flush());
    drop(w);
    written.map_err(|e| {
        let _ = std::fs::remove_file(path);
        io_error(e)
    })
}

/// The timeline drawn and encoded as PNG, in memory (so that writing it is one step).
fn timeline_png(timeline: &Timeline, frame_interval: f64, path: &Path) -> Result<Vec<u8>> {
    let image = timeline
        .render(frame_interval)
        .map_err(|e| Error::image(path, format!("cannot draw the timeline: {e}")))?;
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::image(path, format!("cannot encode the timeline: {e}")))?;
    Ok(png)
}

/// What [`VideoOutputs::finish`] did.
#[derive(Debug)]
#[must_use = "the problems say which outputs are incomplete"]
pub struct FinishedOutputs {
    /// What every track did over the frames pushed.
    pub summary: Summary,
    /// The outputs finished, in the order video, JSONL, CSV, timeline.
    pub written: Vec<PathBuf>,
    /// Outputs left out because there was nothing to write: the annotated video when no frame
    /// was pushed (ffmpeg cannot make a video of no frames, and no file is left behind).
    pub not_written: Vec<PathBuf>,
    /// The outputs that could not be finished, each with its file (deleted: nothing incomplete
    /// is left under its name); the others are complete.
    pub problems: Vec<OutputError>,
}

/// What to do with an output that could not be finished.
#[derive(Clone, Copy)]
enum Cleanup {
    /// Delete its file: the run wrote into it from the start (the video, a JSONL file).
    Delete,
    /// Nothing: its writer already deleted what it had begun (CSV, timeline).
    Done,
    /// Nothing: it is a stream (stdout), not a file.
    NotAFile,
}

impl FinishedOutputs {
    /// Notes how an output ended, deleting a failed one as `cleanup` says.
    fn record(&mut self, path: PathBuf, result: Result<()>, cleanup: Cleanup) {
        match result {
            Ok(()) => self.written.push(path),
            Err(error) => {
                if let Cleanup::Delete = cleanup {
                    let _ = std::fs::remove_file(&path);
                }
                let deleted = !matches!(cleanup, Cleanup::NotAFile)
                    && std::fs::symlink_metadata(&path).is_err();
                self.problems.push(OutputError {
                    path,
                    error,
                    deleted,
                });
            }
        }
    }
}

/// An output that could not be finished.
#[derive(Debug)]
pub struct OutputError {
    /// The output file (or stream name, such as `<stdout>`).
    pub path: PathBuf,
    /// What went wrong.
    pub error: Error,
    /// Whether the incomplete file was deleted (or never made): nothing incomplete is left
    /// under its name.
    pub deleted: bool,
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} was not finished: {}",
            self.path.display(),
            self.error.detail()
        )?;
        if self.error.is_disk_full() {
            write!(f, " (the disk is full: free some space or write elsewhere)")?;
        }
        if self.deleted {
            write!(f, "; the incomplete file was deleted")?;
        }
        Ok(())
    }
}

impl std::error::Error for OutputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_holds_the_four_outputs_under_their_fixed_names() {
        let t = OutputTargets::in_folder(Path::new("jobs/42"));
        assert_eq!(t.video, Some(PathBuf::from("jobs/42/annotated.mp4")));
        assert_eq!(t.csv, Some(PathBuf::from("jobs/42/tracks.csv")));
        assert_eq!(t.timeline, Some(PathBuf::from("jobs/42/timeline.png")));
        assert_eq!(
            t.jsonl.as_ref().map(JsonlTarget::path),
            Some(PathBuf::from("jobs/42/faces.jsonl"))
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_file_whose_writing_fails_is_deleted_and_the_error_says_the_disk_is_full() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tracks.csv");
        // /dev/full answers every write with ENOSPC, as a full disk does.
        std::os::unix::fs::symlink("/dev/full", &path).expect("links");
        let err = write_file(&path, |w| w.write_all(&[b'x'; 100_000])).expect_err("ENOSPC");
        assert!(err.is_disk_full(), "{err}");
        assert!(
            std::fs::symlink_metadata(&path).is_err(),
            "nothing incomplete is left"
        );
        let mut done = FinishedOutputs {
            summary: Summary::new(),
            written: Vec::new(),
            not_written: Vec::new(),
            problems: Vec::new(),
        };
        done.record(path, Err(err), Cleanup::Done);
        let message = done.problems[0].to_string();
        assert!(
            message.contains("the disk is full") && message.contains("deleted"),
            "{message}"
        );
    }

    #[test]
    fn checking_names_the_output_whose_folder_is_missing() {
        let t = OutputTargets {
            csv: Some(PathBuf::from("/nonexistent/emotrack/tracks.csv")),
            ..OutputTargets::default()
        };
        let err = t.check().expect_err("the folder is missing");
        assert_eq!(err.input(), Some("/nonexistent/emotrack/tracks.csv"));
        assert!(err.what().contains("does not exist"), "{err}");
        assert!(err.hint().is_some());
        let t = OutputTargets {
            video: Some(PathBuf::from("out.webm")),
            ..OutputTargets::default()
        };
        assert!(t.check().expect_err("webm").to_string().contains(".mp4"));
        assert!(OutputTargets::default().check().is_ok());
    }
}
