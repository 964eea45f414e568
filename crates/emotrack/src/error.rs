//! The library's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the library. Each message says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range; the message names the field and the valid range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A model file (weights or config) could not be read or does not match its architecture.
    #[error("model {path}: {message}")]
    Model {
        /// The file that was being read (`<embedded>` for built-in models).
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// An image could not be decoded or is unusable (too small, too large, corrupt).
    #[error("image {path}: {message}")]
    Image {
        /// The file that was being read.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A video source or output could not be opened, read or written (see [`crate::video`]).
    #[error("{input}: {message}")]
    Video {
        /// The source (file, camera, URL) or output file concerned.
        input: String,
        /// What is wrong and what to do about it.
        message: String,
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

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
