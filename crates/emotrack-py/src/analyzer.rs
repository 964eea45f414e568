//! `emotrack.Analyzer`: the library's `Analyzer` (detector + emotion model + vibes), built once
//! and shared by every call, thread and `Tracker` made from it.

use std::path::PathBuf;
use std::sync::Arc;

use emotrack::Detection;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyString};

use crate::errors;
use crate::faces::{Box, Face};
use crate::input::{Crop, Picture};
use crate::options::AnalyzerOptions;

/// Finds the faces in an image and reads their emotions.
///
/// `detector` is `"yunet"` (default: the fastest, gives landmarks), `"mtcnn"` (also gives
/// landmarks) or `"haar"` (frontal faces only), as in the CLI. `model` is an emotion model file
/// (`.safetensors` or `.onnx` with its `.json` beside it) or a training run folder; `None` is
/// the built-in model. `min_face`/`max_face` bound the face sides searched, in pixels;
/// `threshold` is the face score MTCNN and YuNet need (0-1); `min_neighbors` (strictness) and
/// `scale_factor` (pyramid step) are Haar's, as OpenCV names them; `vibes` a file of vibe
/// messages laid out like the built-in one.
///
/// The analyzer is safe to share between threads; `analyze` releases the GIL.
#[pyclass(module = "emotrack", frozen)]
#[derive(Debug, Clone)]
pub struct Analyzer {
    pub(crate) inner: Arc<emotrack::Analyzer>,
    detector: String,
}

#[pymethods]
impl Analyzer {
    #[new]
    #[pyo3(signature = (detector = "yunet", model = None, *, min_face = None, max_face = None,
                        threshold = None, min_neighbors = None, scale_factor = None,
                        vibes = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        detector: &str,
        model: Option<PathBuf>,
        min_face: Option<u32>,
        max_face: Option<u32>,
        threshold: Option<f32>,
        min_neighbors: Option<u32>,
        scale_factor: Option<f32>,
        vibes: Option<PathBuf>,
    ) -> PyResult<Self> {
        let options = AnalyzerOptions {
            detector: detector.to_owned(),
            model,
            min_face,
            max_face,
            threshold,
            min_neighbors,
            scale_factor,
            vibes,
        };
        let config = options.to_config(py)?;
        let inner = py
            .detach(|| emotrack::Analyzer::new(config))
            .map_err(|e| errors::to_py(py, &e))?;
        Ok(Self {
            inner: Arc::new(inner),
            detector: detector.to_owned(),
        })
    }

    /// Every face in `image`, as `Face` objects (an empty list when there is none).
    ///
    /// `image` is a path, encoded bytes (JPEG, PNG, WebP, ...), a PIL image or a NumPy array of
    /// shape (height, width, 3) and dtype uint8, RGB unless `bgr=True` (OpenCV's frames). A
    /// C-contiguous RGB array is read in place while the GIL is released, as NumPy's own
    /// functions read theirs: do not write to it from another thread during the call. Any
    /// other array (BGR, a strided view) is copied once first.
    /// `boxes` (a list of `Box` or `(x, y, w, h)`) skips detection and reads the emotions of
    /// those boxes instead.
    #[pyo3(signature = (image, *, bgr = false, boxes = None))]
    fn analyze(
        &self,
        py: Python<'_>,
        image: &Bound<'_, PyAny>,
        bgr: bool,
        boxes: Option<Vec<BoxLike>>,
    ) -> PyResult<Vec<Face>> {
        let frame = Picture::extract(image, bgr)?.load(py, &self.inner)?;
        let image = frame.view()?;
        let analyzer = &self.inner;
        let faces = py.detach(|| match boxes {
            None => analyzer.analyze(&image),
            Some(boxes) => {
                let detections: Vec<Detection> = boxes
                    .iter()
                    .map(|b| Detection {
                        bbox: b.0.bbox(),
                        score: 1.0,
                        landmarks: None,
                    })
                    .collect();
                analyzer.classify_detections(&image, &detections)
            }
        });
        Ok(faces.into_iter().map(Face::from).collect())
    }

    /// The emotions of faces that are already cut out, without detection: a `Face` per crop,
    /// in order.
    ///
    /// `crops` is a list (or any iterable) of crops, each a path, encoded bytes, a PIL image, a
    /// NumPy array of shape (height, width, 3) (RGB unless `bgr=True`) or a gray NumPy array of
    /// shape (height, width), all uint8. Each crop is taken whole as the face: converted to
    /// gray as `analyze` converts a picture, resized to the model's input (48x48 for the
    /// built-in model) when it has another size, and classified as `emotrack eval` classifies
    /// FER-2013 images, so a 48x48 gray crop gets the probabilities `eval` computes for it. A
    /// face's `box` is its whole crop, its `detector_score` 1, its `landmarks` None.
    ///
    /// For a face inside a larger picture use `analyze(image, boxes=[...])` instead: it crops
    /// with the margin and eye alignment of detected faces.
    #[pyo3(signature = (crops, *, bgr = false))]
    fn classify(&self, py: Python<'_>, crops: &Bound<'_, PyAny>, bgr: bool) -> PyResult<Vec<Face>> {
        if is_one_image(crops)? {
            return Err(PyTypeError::new_err(
                "classify takes a list of crops: for one crop pass [crop], for an array of \
                 gray crops of shape (n, height, width) pass list(array)",
            ));
        }
        let mut grays = Vec::new();
        for (i, crop) in crops.try_iter()?.enumerate() {
            let gray = Crop::extract(&crop?, bgr)?.load(py, &self.inner)?;
            let (w, h) = gray.dimensions();
            if w == 0 || h == 0 {
                return Err(errors::bad_image(
                    py,
                    format!("crop {i} is {w}x{h} pixels: it holds no face"),
                ));
            }
            grays.push(gray);
        }
        let analyzer = &self.inner;
        let faces = py.detach(|| analyzer.classify_crops(grays));
        Ok(faces.into_iter().map(Face::from).collect())
    }

    /// The detector's name.
    #[getter]
    fn detector(&self) -> &str {
        &self.detector
    }

    fn __repr__(&self) -> String {
        format!(
            "Analyzer(detector={:?}, model={:?})",
            self.detector,
            self.inner.classifier().origin().display().to_string()
        )
    }
}

/// A box given to `analyze(boxes=...)`: a `Box` or an `(x, y, w, h)` sequence.
#[derive(Debug)]
pub(crate) struct BoxLike(Box);

impl<'a, 'py> FromPyObject<'a, 'py> for BoxLike {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = obj.cast::<Box>() {
            return Ok(Self(*b.get()));
        }
        let (x, y, w, h): (f32, f32, f32, f32) = obj.extract()?;
        if !(w > 0.0 && h > 0.0 && [x, y, w, h].iter().all(|v| v.is_finite())) {
            return Err(errors::bad_image(
                obj.py(),
                format!(
                    "a box is (x, y, width, height) in pixels, finite, with a positive width \
                     and height; got ({x}, {y}, {w}, {h})"
                ),
            ));
        }
        Ok(Self(Box::from(emotrack::BBox { x, y, w, h })))
    }
}

impl Analyzer {
    /// The library analyzer `given`, or a new one with `detector` at its defaults (the
    /// `analyzer=None` of `Tracker` and `video`), built with the GIL released.
    pub(crate) fn given_or_named(
        py: Python<'_>,
        given: Option<&Analyzer>,
        detector: &str,
    ) -> PyResult<Arc<emotrack::Analyzer>> {
        if let Some(a) = given {
            return Ok(a.inner.clone());
        }
        let config = AnalyzerOptions::named(detector).to_config(py)?;
        let built = py
            .detach(|| emotrack::Analyzer::new(config))
            .map_err(|e| errors::to_py(py, &e))?;
        Ok(Arc::new(built))
    }
}

/// Whether `obj` is one image rather than a list of them: a string, bytes, a path, a NumPy
/// array or a PIL image (all iterable, or almost, so `classify` could misread them).
fn is_one_image(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyBytes>()
        || obj.is_instance_of::<PyByteArray>()
        || obj.is_instance_of::<PyMemoryView>()
        || obj.hasattr("__fspath__")?
        || obj.hasattr("__array_interface__")?
        || (obj.hasattr("tobytes")? && obj.hasattr("mode")?))
}
