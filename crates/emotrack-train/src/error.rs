//! Errors of data loading, training, export and evaluation.

use std::path::PathBuf;

/// A dataset folder that cannot be used as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The split folder (e.g. `fer2013/train`) does not exist.
    #[error(
        "dataset folder {0} does not exist; pass the FER-2013 folder that holds train/ and val/"
    )]
    MissingFolder(PathBuf),
    /// One of the seven class folders is absent.
    #[error(
        "class folder {class:?} is missing in {dir}; every split needs angry, disgust, fear, happy, neutral, sad and surprise"
    )]
    MissingClass {
        /// The split folder.
        dir: PathBuf,
        /// The missing class name.
        class: String,
    },
    /// A sub-folder whose name is not one of the seven emotions.
    #[error(
        "unknown class folder {name:?} in {dir}; class folders must be named angry, disgust, fear, happy, neutral, sad or surprise"
    )]
    UnknownClass {
        /// The split folder.
        dir: PathBuf,
        /// The unexpected folder name.
        name: String,
    },
    /// No readable image at all in the split.
    #[error("no readable images in {0}; check that the class folders hold 48x48 JPEG/PNG files")]
    EmptySplit(PathBuf),
    /// Listing a folder failed.
    #[error("cannot read folder {path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Anything that stops training, export or evaluation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The dataset cannot be used.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A configuration value is invalid; the message says which and how to fix it.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Reading or writing a run file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint or model file is malformed or does not fit the model.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A JSON file (config, state) could not be parsed.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Drawing a plot failed.
    #[error("drawing {path}: {message}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }
}
