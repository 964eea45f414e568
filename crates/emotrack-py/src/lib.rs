//! The native module `emotrack._emotrack` of the Python package `emotrack`: thin pyo3 bindings
//! over the library, which does all the work.
//!
//! * `analyzer::Analyzer`: `Analyzer(detector="yunet", ...)`, `.analyze(image)` → faces
//!   (`faces::Face`), as `emotrack::Analyzer` does for the CLI's `analyze`; `.classify(crops)`
//!   → faces already cut out, read as the CLI's `eval` reads FER-2013
//!   (`emotrack::Analyzer::classify_crops`).
//! * `tracker::Tracker`: `.update(frame, timestamp)` → a `faces::FrameReport` of tracked
//!   faces, through `emotrack::video::StreamAnalyzer` (the server's WebSocket uses the same).
//! * `video::video`: an iterator of frame reports over `emotrack::video::VideoPipeline`
//!   (FFmpeg), with the CLI's outputs (annotated video, JSONL, CSV, timeline) as options.
//!
//! Images come in as paths, bytes, PIL images or NumPy arrays (`input`); every face converts
//! to a dict through `emotrack::report::FaceJson`, the JSON shape of the CLI and the server;
//! library errors become the Python exceptions of `emotrack.errors` (`errors`). Heavy work
//! runs with the GIL released (`Python::detach`).

mod analyzer;
mod errors;
mod faces;
mod input;
mod options;
mod tracker;
mod video;

use pyo3::prelude::*;

/// The native part of the `emotrack` package; import `emotrack` instead.
#[pymodule]
fn _emotrack(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "DETECTORS",
        emotrack::DetectorBackend::NAMES.map(str::to_owned).to_vec(),
    )?;
    m.add(
        "EMOTIONS",
        emotrack::Emotion::ALL.map(|e| e.name().to_owned()).to_vec(),
    )?;
    m.add_class::<analyzer::Analyzer>()?;
    m.add_class::<tracker::Tracker>()?;
    m.add_class::<faces::Box>()?;
    m.add_class::<faces::Face>()?;
    m.add_class::<faces::TrackedFace>()?;
    m.add_class::<faces::FrameReport>()?;
    m.add_class::<video::VideoFrames>()?;
    m.add_function(wrap_pyfunction!(video::video, m)?)?;
    Ok(())
}
