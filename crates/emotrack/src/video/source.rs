//! What a video comes from: a file, a webcam, a network stream or an image sequence.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// URL schemes read as network streams.
const STREAM_SCHEMES: [&str; 10] = [
    "rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://", "udp://", "tcp://",
    "srt://", "rtp://",
];

/// File extensions that make an `http(s)` URL a file to read frame by frame rather than a live
/// stream.
const FILE_EXTENSIONS: [&str; 8] = ["mp4", "mkv", "webm", "avi", "mov", "m4v", "mpg", "ts"];

/// A video source, classified from what the user typed (see [`Source::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A video file (mp4, mkv, webm, avi, mov, ...): every frame is processed.
    File(PathBuf),
    /// A V4L2 webcam such as `/dev/video0`: live.
    Camera(PathBuf),
    /// A network stream (`rtsp://`, `http(s)://` including HLS `.m3u8`, `rtmp://`, `udp://`,
    /// ...): live unless it is an `http(s)` URL of a video file.
    Stream(String),
    /// An image sequence: an FFmpeg pattern (`frames/%04d.png`) or a glob (`frames/*.jpg`),
    /// read at 25 frames per second.
    Sequence(String),
}

impl Source {
    /// Classifies a source: a URL with a known scheme is a stream, `/dev/video*` a camera, a
    /// path with `%d`-style numbering or glob characters an image sequence, anything else a
    /// file.
    pub fn parse(s: &str) -> Source {
        let lower = s.to_ascii_lowercase();
        if STREAM_SCHEMES.iter().any(|p| lower.starts_with(p)) {
            return Source::Stream(s.to_owned());
        }
        if s.starts_with("/dev/video") {
            return Source::Camera(PathBuf::from(s));
        }
        if is_numbered_pattern(s) || s.contains(['*', '?', '[']) {
            return Source::Sequence(s.to_owned());
        }
        Source::File(PathBuf::from(s))
    }

    /// Live sources run in real time: stale frames are dropped, the newest one wins.
    pub fn is_live(&self) -> bool {
        match self {
            Source::File(_) | Source::Sequence(_) => false,
            Source::Camera(_) => true,
            Source::Stream(url) => {
                let lower = url.to_ascii_lowercase();
                let is_http = lower.starts_with("http://") || lower.starts_with("https://");
                let path = lower.split(['?', '#']).next().unwrap_or("");
                let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
                !(is_http && FILE_EXTENSIONS.contains(&ext))
            }
        }
    }

    /// Whether the source may carry an audio track that the annotated video should keep.
    /// Live sources are not opened a second time for their audio.
    pub fn may_have_audio(&self) -> bool {
        !self.is_live() && !matches!(self, Source::Sequence(_))
    }

    /// The source as FFmpeg's `-i` argument.
    pub fn input_arg(&self) -> String {
        match self {
            Source::File(p) | Source::Camera(p) => p.to_string_lossy().into_owned(),
            Source::Stream(s) | Source::Sequence(s) => s.clone(),
        }
    }

    /// FFmpeg input options that go before `-i` (the same for ffprobe and ffmpeg).
    pub(crate) fn input_options(&self) -> Vec<String> {
        let mut args: Vec<&str> = Vec::new();
        match self {
            Source::File(_) => {}
            Source::Camera(_) => args.extend(["-f", "v4l2"]),
            Source::Stream(url) => {
                if url.to_ascii_lowercase().starts_with("rtsp") {
                    // UDP is often blocked by firewalls and loses packets; TCP just works.
                    args.extend(["-rtsp_transport", "tcp"]);
                }
            }
            Source::Sequence(pattern) => {
                args.extend(["-f", "image2"]);
                if !is_numbered_pattern(pattern) {
                    args.extend(["-pattern_type", "glob"]);
                }
            }
        }
        if self.is_live() {
            // Start after 1 s of stream analysis instead of FFmpeg's 5 s. (`-fflags nobuffer`
            // and `-flags low_delay` are not used: they drop the first frames and break H.264
            // with B-frames; stale frames are dropped by the pipeline instead.)
            args.extend(["-analyzeduration", "1000000"]);
        }
        args.into_iter().map(str::to_owned).collect()
    }

    /// Checks what can be checked before running FFmpeg, with a message saying what to do:
    /// a file must exist, be a file and not be empty; a camera device must exist.
    pub fn check(&self) -> Result<()> {
        let err = |message: String| Err(Error::video(self.to_string(), message));
        match self {
            Source::File(path) => match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    err("no such file; check the path".into())
                }
                Err(e) => err(format!("cannot read it: {e}")),
                Ok(m) if m.is_dir() => err(
                    "is a folder; give a video file, or an image sequence such as \
                     'folder/%04d.png' or 'folder/*.jpg'"
                        .into(),
                ),
                Ok(m) if m.len() == 0 => err("the file is empty (0 bytes)".into()),
                Ok(_) => Ok(()),
            },
            Source::Camera(path) if !path.exists() => {
                let found = cameras();
                let list = if found.is_empty() {
                    "no camera is connected (no /dev/video* device)".to_owned()
                } else {
                    format!(
                        "cameras here: {}",
                        found
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                err(format!("this camera does not exist; {list}"))
            }
            Source::Sequence(pattern) => {
                let dir = Path::new(pattern)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty());
                match dir {
                    Some(d) if !d.contains_wildcard() && !d.is_dir() => {
                        err(format!("the folder {} does not exist", d.display()))
                    }
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.input_arg())
    }
}

trait ContainsWildcard {
    fn contains_wildcard(&self) -> bool;
}

impl ContainsWildcard for Path {
    fn contains_wildcard(&self) -> bool {
        self.to_string_lossy().contains(['*', '?', '['])
    }
}

/// `%d`, `%04d`, ...: FFmpeg's image2 numbering.
fn is_numbered_pattern(s: &str) -> bool {
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        let tail = &rest[i + 1..];
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        if tail[digits..].starts_with('d') {
            return true;
        }
        rest = tail;
    }
    false
}

/// The V4L2 devices present, sorted.
pub fn cameras() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/dev")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("video"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_classified_by_what_the_user_typed() {
        assert_eq!(Source::parse("clip.mp4"), Source::File("clip.mp4".into()));
        assert_eq!(
            Source::parse("/dev/video0"),
            Source::Camera("/dev/video0".into())
        );
        assert!(matches!(
            Source::parse("rtsp://cam.local/stream"),
            Source::Stream(_)
        ));
        assert!(matches!(
            Source::parse("HTTPS://x/live.m3u8"),
            Source::Stream(_)
        ));
        assert!(matches!(
            Source::parse("frames/%04d.png"),
            Source::Sequence(_)
        ));
        assert!(matches!(Source::parse("frames/*.jpg"), Source::Sequence(_)));
        assert_eq!(Source::parse("100%.mp4"), Source::File("100%.mp4".into()));
    }

    #[test]
    fn cameras_and_live_streams_are_live_but_files_and_http_files_are_not() {
        assert!(Source::parse("/dev/video0").is_live());
        assert!(Source::parse("rtsp://cam/1").is_live());
        assert!(Source::parse("https://x/live.m3u8").is_live());
        assert!(!Source::parse("https://x/clip.mp4?token=1").is_live());
        assert!(!Source::parse("clip.mkv").is_live());
        assert!(!Source::parse("f/%03d.jpg").is_live());
    }

    #[test]
    fn input_options_select_the_right_demuxer() {
        assert_eq!(
            Source::parse("/dev/video2").input_options()[..2],
            ["-f", "v4l2"]
        );
        assert!(
            Source::parse("rtsp://c/1")
                .input_options()
                .contains(&"tcp".to_owned())
        );
        assert!(
            Source::parse("f/*.png")
                .input_options()
                .contains(&"glob".to_owned())
        );
        assert!(
            !Source::parse("f/%04d.png")
                .input_options()
                .contains(&"glob".to_owned())
        );
        assert!(Source::parse("a.mp4").input_options().is_empty());
    }

    #[test]
    fn a_missing_camera_is_refused_before_running_ffmpeg() {
        let e = Source::parse("/dev/video987").check();
        let msg = e.map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(msg.contains("does not exist"), "{msg}");
    }
}
