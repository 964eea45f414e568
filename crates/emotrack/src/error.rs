//! The library's error type.
//!
//! Every error carries fields, not only prose: the file or source concerned ([`Error::path`],
//! [`Error::input`]), what is wrong ([`Error::what`]) and, where there is one, what to do about
//! it ([`Error::hint`]), plus a stable [`Error::code`]. Callers that show the file name
//! themselves (the CLI's per-file reports, a server's JSON errors) use the fields; `Display`
//! joins them into one sentence.

use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the library. Each message says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range; `what` names the field and the valid range.
    #[error("invalid configuration: {what}{}", Hint(.hint))]
    Config {
        /// Which setting is wrong, and why.
        what: String,
        /// What to set instead, if there is a usual value.
        hint: Option<String>,
    },
    /// A model file (weights or config) could not be read or does not match its architecture.
    #[error("model {path}: {what}{}", Hint(.hint))]
    Model {
        /// The file that was being read (`<embedded …>` for built-in models).
        path: PathBuf,
        /// What is wrong with it.
        what: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// An image could not be decoded or is unusable (too small, too large, corrupt).
    #[error("image {path}: {what}{}", Hint(.hint))]
    Image {
        /// The file that was being read.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// An input is larger than a limit allows (an image's pixels, an upload's bytes); nothing
    /// of it was decoded.
    #[error("{path}: {what}{}", Hint(.hint))]
    TooLarge {
        /// The file or upload concerned.
        path: PathBuf,
        /// Which limit it exceeds.
        what: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// A video source or output could not be opened, read or written (see [`crate::video`]).
    #[error("{input}: {what}{}", Hint(.hint))]
    Video {
        /// The source (file, camera, URL) or output file concerned.
        input: String,
        /// What is wrong.
        what: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// An I/O error while reading a file.
    #[error("{path}: {source}")]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Shows a hint after the problem, `; ` between them.
struct Hint<'a>(&'a Option<String>);

impl fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(hint) => write!(f, "; {hint}"),
            None => Ok(()),
        }
    }
}

impl Error {
    /// A setting out of range (add advice with [`Error::with_hint`]).
    pub fn config(what: impl Into<String>) -> Self {
        Self::Config {
            what: what.into(),
            hint: None,
        }
    }

    /// A model file that cannot be used.
    pub fn model(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Self::Model {
            path: path.into(),
            what: what.into(),
            hint: None,
        }
    }

    /// An image that cannot be used.
    pub fn image(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Self::Image {
            path: path.into(),
            what: what.into(),
            hint: None,
        }
    }

    /// An input larger than a limit allows.
    pub fn too_large(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Self::TooLarge {
            path: path.into(),
            what: what.into(),
            hint: None,
        }
    }

    /// A video source or output that cannot be used.
    pub fn video(input: impl Into<String>, what: impl Into<String>) -> Self {
        Self::Video {
            input: input.into(),
            what: what.into(),
            hint: None,
        }
    }

    /// The same error with advice on what to do (ignored by [`Error::Io`]).
    #[must_use]
    pub fn with_hint(mut self, advice: impl Into<String>) -> Self {
        match &mut self {
            Self::Config { hint, .. }
            | Self::Model { hint, .. }
            | Self::Image { hint, .. }
            | Self::TooLarge { hint, .. }
            | Self::Video { hint, .. } => *hint = Some(advice.into()),
            Self::Io { .. } => {}
        }
        self
    }

    /// A stable name for the kind of error (`config`, `model`, `image`, `too_large`, `video`, `io`), for
    /// programs that branch on it (a server's JSON `code`, scripts).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config { .. } => "config",
            Self::Model { .. } => "model",
            Self::Image { .. } => "image",
            Self::TooLarge { .. } => "too_large",
            Self::Video { .. } => "video",
            Self::Io { .. } => "io",
        }
    }

    /// The file concerned (`None` for settings and video sources, see [`Error::input`]).
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Model { path, .. }
            | Self::Image { path, .. }
            | Self::TooLarge { path, .. }
            | Self::Io { path, .. } => Some(path),
            Self::Config { .. } | Self::Video { .. } => None,
        }
    }

    /// The video source or output concerned, as the user named it.
    pub fn input(&self) -> Option<&str> {
        match self {
            Self::Video { input, .. } => Some(input),
            _ => None,
        }
    }

    /// What is wrong, without the file name or the hint.
    pub fn what(&self) -> String {
        match self {
            Self::Config { what, .. }
            | Self::Model { what, .. }
            | Self::Image { what, .. }
            | Self::TooLarge { what, .. }
            | Self::Video { what, .. } => what.clone(),
            Self::Io { source, .. } => source.to_string(),
        }
    }

    /// What to do about it, when the library knows.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Self::Config { hint, .. }
            | Self::Model { hint, .. }
            | Self::Image { hint, .. }
            | Self::TooLarge { hint, .. }
            | Self::Video { hint, .. } => hint.as_deref(),
            Self::Io { .. } => None,
        }
    }

    /// Whether this is a write that failed because the disk (or the device written to) is
    /// full: ENOSPC from a write here, or FFmpeg reporting it.
    pub fn is_disk_full(&self) -> bool {
        const ENOSPC_TEXT: &str = "No space left on device";
        match self {
            Self::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
            other => other.what().contains(ENOSPC_TEXT),
        }
    }

    /// The message without the file or source it concerns: what is wrong, then the hint.
    /// For reports that already name the file (one line per input).
    pub fn detail(&self) -> String {
        match self.hint() {
            Some(hint) => format!("{}; {hint}", self.what()),
            None => self.what(),
        }
    }
}

impl From<emotrack_nn::WeightsError> for Error {
    fn from(e: emotrack_nn::WeightsError) -> Self {
        Self::model(e.path, e.message)
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_joins_the_fields_and_detail_leaves_out_the_file() {
        let e = Error::image("a/b.jpg", "the image is 1x1 pixels").with_hint("use a larger photo");
        assert_eq!(
            e.to_string(),
            "image a/b.jpg: the image is 1x1 pixels; use a larger photo"
        );
        assert_eq!(e.detail(), "the image is 1x1 pixels; use a larger photo");
        assert_eq!(e.path(), Some(Path::new("a/b.jpg")));
        assert_eq!(e.hint(), Some("use a larger photo"));
        assert_eq!(e.code(), "image");
        let c = Error::config("min_face is 3, it must be at least 12 pixels");
        assert_eq!(
            c.to_string(),
            "invalid configuration: min_face is 3, it must be at least 12 pixels"
        );
        assert_eq!(c.hint(), None);
        assert_eq!(c.path(), None);
    }
}
