//! Encoding: `ffmpeg -f rawvideo ... -i pipe:0 -i INPUT -map 0:v -map 1:a? -c:v libx264
//! -pix_fmt yuv420p -c:a aac OUT`, so the annotated video keeps the input's audio.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};

use image::RgbImage;

use super::decode::VideoInput;
use super::ffmpeg::{Program, StderrTail};
use crate::error::{Error, Result};

/// Output containers we write H.264 + AAC into.
const EXTENSIONS: [&str; 4] = ["mp4", "m4v", "mov", "mkv"];

/// Longest gap (seconds) filled by repeating a live frame, so a long stall does not write
/// minutes of one still picture in a burst.
const MAX_LIVE_GAP: f64 = 10.0;

/// Writes frames to a video file through `ffmpeg`.
///
/// Files are written frame for frame at the decoded rate (keeping the input's frame count and
/// audio). Live frames arrive irregularly, so each is repeated until the next one's time, which
/// makes the video play at real speed. [`Encoder::finish`] (or dropping the encoder) closes
/// ffmpeg's input and waits for it, which always leaves a playable file.
#[derive(Debug)]
pub struct Encoder {
    path: PathBuf,
    size: (u32, u32),
    frame_rate: f64,
    live: bool,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: StderrTail,
    written: u64,
    first_time: Option<f64>,
    /// Why writing failed, once it has: the file is incomplete and `finish` says so.
    failed: Option<String>,
}

impl Encoder {
    /// Starts ffmpeg writing `path` (`.mp4`, `.m4v`, `.mov` or `.mkv`; overwritten if it
    /// exists) for frames decoded from `input`.
    pub fn create(path: &Path, input: &VideoInput) -> Result<Self> {
        let name = path.display().to_string();
        let ext = checked_extension(path)?;
        let (w, h) = input.frame_size();
        let live = input.is_live();
        let frame_rate = if live {
            input.info().frame_rate.clamp(1.0, 60.0)
        } else {
            input.frame_rate()
        };
        let audio = !live && input.source().may_have_audio() && input.info().has_audio;
        let mut cmd = Program::Ffmpeg.command();
        cmd.args(["-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]);
        cmd.arg("-s").arg(format!("{w}x{h}"));
        cmd.arg("-framerate").arg(format!("{frame_rate}"));
        if audio && input.info().start_offset > 0.0 {
            // The video starts after the audio in the input: keep them in sync.
            cmd.arg("-itsoffset")
                .arg(format!("{}", input.info().start_offset));
        }
        cmd.args(["-i", "pipe:0"]);
        if audio {
            if let Some(d) = input.options().duration {
                cmd.arg("-t").arg(format!("{d}"));
            }
            cmd.args(input.source().input_options());
            cmd.arg("-i").arg(input.source().input_arg());
            cmd.args(["-map", "0:v", "-map", "1:a?", "-c:a", "aac", "-shortest"]);
        } else {
            cmd.args(["-map", "0:v"]);
        }
        // libx264 with yuv420p needs even sides; pad odd ones by a pixel.
        cmd.args(["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]);
        cmd.args([
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
        ]);
        // One encoded frame per frame written (no duplicates to fill timestamp gaps).
        cmd.args(["-vsync", "passthrough"]);
        if ext != "mkv" {
            cmd.args(["-movflags", "+faststart"]);
        }
        cmd.arg(path);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = Program::Ffmpeg.spawn(&mut cmd, &name)?;
        let stderr = StderrTail::collect(child.stderr.take());
        let stdin = child.stdin.take();
        Ok(Self {
            path: path.to_path_buf(),
            size: (w, h),
            frame_rate,
            live,
            child,
            stdin,
            stderr,
            written: 0,
            first_time: None,
            failed: None,
        })
    }

    /// Checks, before anything runs, that [`Encoder::create`] can write `path`: a known
    /// extension and an existing folder.
    pub fn check_path(path: &Path) -> Result<()> {
        checked_extension(path).map(drop)
    }

    /// The output file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames written so far (live: counting repeats).
    pub fn frames_written(&self) -> u64 {
        self.written
    }

    /// Writes a frame shown at `time` seconds. Files: written once. Live: written as many
    /// times as needed to reach `time` at the output frame rate (at least once for the first
    /// frame; not at all if the previous frame already covers `time`).
    pub fn write(&mut self, image: &RgbImage, time: f64) -> Result<()> {
        if image.dimensions() != self.size {
            return Err(Error::video(
                self.path.display().to_string(),
                format!(
                    "frame is {}x{}, the video is {}x{}",
                    image.width(),
                    image.height(),
                    self.size.0,
                    self.size.1
                ),
            ));
        }
        if let Some(why) = &self.failed {
            return Err(Error::video(self.path.display().to_string(), why.clone()));
        }
        let copies = if self.live {
            let first = *self.first_time.get_or_insert(time);
            let target = ((time - first).max(0.0) * self.frame_rate).floor() as u64 + 1;
            let max_gap = (MAX_LIVE_GAP * self.frame_rate) as u64;
            target.saturating_sub(self.written).min(max_gap.max(1))
        } else {
            1
        };
        for _ in 0..copies {
            let result = match self.stdin.as_mut() {
                Some(stdin) => stdin.write_all(image.as_raw()),
                None => Err(std::io::ErrorKind::BrokenPipe.into()),
            };
            if let Err(e) = result {
                return Err(self.failure(&format!("cannot write frames to ffmpeg: {e}")));
            }
            self.written += 1;
        }
        Ok(())
    }

    /// Closes ffmpeg's input, waits for it to finish the file and checks that it succeeded.
    /// Without any frame written there is no video to make: ffmpeg is stopped and no file is
    /// left behind. After a failed [`Encoder::write`] this is that failure again: the file is
    /// incomplete.
    pub fn finish(mut self) -> Result<()> {
        self.close()
    }

    fn close(&mut self) -> Result<()> {
        let Some(stdin) = self.stdin.take() else {
            return match &self.failed {
                Some(why) => Err(Error::video(self.path.display().to_string(), why.clone())),
                None => Ok(()),
            };
        };
        drop(stdin);
        if self.written == 0 {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_file(&self.path);
            return Ok(());
        }
        match self.child.wait() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(self.failure(&format!("ffmpeg failed ({status})"))),
            Err(e) => Err(self.failure(&format!("cannot wait for ffmpeg: {e}"))),
        }
    }

    /// An error with ffmpeg's own messages (after making sure it has exited).
    fn failure(&mut self, what: &str) -> Error {
        self.stdin = None;
        let _ = self.child.wait();
        let messages = self.stderr.finish();
        let message = if messages.is_empty() {
            what.to_owned()
        } else {
            format!("{what}: {messages}")
        };
        self.failed.get_or_insert_with(|| message.clone());
        Error::video(self.path.display().to_string(), message)
    }
}

/// The lower-case extension of an output video path, after checking that it is one we write
/// and that its folder exists.
fn checked_extension(path: &Path) -> Result<String> {
    let err = |message: String| Error::video(path.display().to_string(), message);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if !EXTENSIONS.contains(&ext.as_str()) {
        return Err(err(format!(
            "cannot write .{ext} files; name the output .mp4, .mov or .mkv"
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(err(format!(
            "the folder {} does not exist; create it first",
            dir.display()
        )));
    }
    Ok(ext)
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
