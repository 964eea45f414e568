//! Library errors as Python exceptions: the classes of `emotrack.errors` (pure Python, so that
//! they can inherit from both `EmotrackError` and the built-in a caller expects: `ValueError`
//! for bad input, `FileNotFoundError`/`OSError` for files), carrying the library's message and
//! its fields (`code`, `what`, `hint`, `path`).

use std::io::ErrorKind;

use emotrack::Error;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// The Python module that defines the exception classes.
const ERRORS_MODULE: &str = "emotrack.errors";

/// `err` as an exception of `emotrack.errors`, chosen by its kind (never by its text).
pub(crate) fn to_py(py: Python<'_>, err: &Error) -> PyErr {
    let class = match err {
        Error::Config { .. } => "ConfigError",
        Error::Model { .. } => "ModelError",
        Error::Image { .. } => "ImageError",
        Error::TooLarge { .. } => "ImageTooLargeError",
        Error::Video { .. } => "VideoError",
        Error::Io { source, .. } => match source.kind() {
            ErrorKind::NotFound => "MissingFileError",
            ErrorKind::PermissionDenied => "FilePermissionError",
            _ => "FileError",
        },
        // `Error` is non-exhaustive: a kind added later is still an emotrack error.
        _ => "EmotrackError",
    };
    let errno = match err {
        Error::Io { source, .. } => source.raw_os_error(),
        _ => None,
    };
    raise(
        py,
        class,
        &err.to_string(),
        &[
            ("code", Some(err.code().to_owned())),
            ("what", Some(err.what())),
            ("hint", err.hint().map(str::to_owned)),
            ("path", err.path().map(|p| p.display().to_string())),
            ("input", err.input().map(str::to_owned)),
        ],
        errno,
    )
}

/// An input the bindings refuse before the library sees it (an array of the wrong shape or
/// type, an object that is no image): `ImageError`, a `ValueError`.
pub(crate) fn bad_image(py: Python<'_>, what: impl Into<String>) -> PyErr {
    let what = what.into();
    raise(
        py,
        "ImageError",
        &what,
        &[
            ("code", Some("image".to_owned())),
            ("what", Some(what.clone())),
        ],
        None,
    )
}

/// A setting the bindings refuse (an unknown option value): `ConfigError`, a `ValueError`.
pub(crate) fn bad_config(py: Python<'_>, what: impl Into<String>) -> PyErr {
    to_py(py, &Error::config(what))
}

/// An instance of `emotrack.errors.<class>(message)` with `fields` set as attributes (and
/// `errno`, for the `OSError` subclasses).
fn raise(
    py: Python<'_>,
    class: &str,
    message: &str,
    fields: &[(&str, Option<String>)],
    errno: Option<i32>,
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let cls = py.import(ERRORS_MODULE)?.getattr(class)?;
        let exc = cls.call1((PyString::new(py, message),))?;
        for (name, value) in fields {
            exc.setattr(*name, value.as_deref())?;
        }
        if let Some(errno) = errno {
            exc.setattr("errno", errno)?;
        }
        if let Some((_, Some(path))) = fields.iter().find(|(n, _)| *n == "path")
            && errno.is_some()
        {
            exc.setattr("filename", path)?;
        }
        Ok(PyErr::from_value(exc))
    };
    // Building the exception fails only if the package is broken (emotrack.errors missing):
    // then that failure is the error to show.
    build().unwrap_or_else(|e| e)
}
