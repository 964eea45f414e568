//! The runtime's one error: a weights file that does not fit the net being built.

use std::path::PathBuf;

/// A weights file could not be parsed, or a tensor is missing or has the wrong shape or type.
/// The message names the tensor and says what to change; `path` is the file's origin as given
/// to [`crate::Weights::from_bytes`].
#[derive(Debug, thiserror::Error)]
#[error("model {path}: {message}")]
pub struct WeightsError {
    /// The file the weights came from (`<embedded …>` for built-in weights).
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

/// Shorthand for results in this crate.
pub type Result<T, E = WeightsError> = std::result::Result<T, E>;
