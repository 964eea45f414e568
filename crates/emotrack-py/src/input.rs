//! What `analyze` and `update` accept as an image: a path (`str` or `os.PathLike`), encoded
//! bytes (`bytes`, `bytearray`, `memoryview`), a PIL image, or a NumPy array of shape
//! `(height, width, 3)` and dtype `uint8`, RGB unless `bgr=True` (OpenCV's frames).
//!
//! Files and bytes are decoded by the library (`Analyzer::load`, `Analyzer::decode`: format
//! from the content, EXIF orientation, size limits) with the GIL released.
//!
//! A C-contiguous RGB array (what `numpy.asarray(pil_image)`, `cv2.cvtColor(..,
//! cv2.COLOR_BGR2RGB)` and most decoders give) is read in place: the library analyses a view
//! of its buffer ([`emotrack::imgproc::RgbView`]) with the GIL released, as NumPy's own
//! functions read their operands. The array stays borrowed (rust-numpy's borrow flags keep
//! other Rust code from writing it) until the call returns; Python code that writes it from
//! another thread meanwhile changes what is analysed, as it would for `numpy.sum`. Any other
//! layout is copied once, while the GIL is held: a BGR array (channel order swapped in the
//! same pass, since the library reads RGB), a strided one (a crop, a transposed or reversed
//! view, a Fortran-ordered array) gathered in row order.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use emotrack::Analyzer;
use emotrack::imgproc::gray::gray_from_rgb;
use emotrack::imgproc::{AsRgbView, RgbView, decode_image, load_image, rgb_from_bgr};
use image::{GrayImage, RgbImage};
use numpy::ndarray::Dimension;
use numpy::{
    PyArray, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray, PyReadonlyArray3, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyString};

use crate::errors;

/// The name bytes go by in error messages.
const BYTES_NAME: &str = "<bytes>";
/// The name arrays and PIL images go by in error messages.
const ARRAY_NAME: &str = "<array>";

/// An image as the caller gave it, ready to be decoded without the GIL.
pub(crate) enum Picture<'py> {
    /// A file to load.
    Path(PathBuf),
    /// Encoded bytes held by Python (immutable `bytes`: read in place).
    Bytes(Bound<'py, PyBytes>),
    /// Encoded bytes copied out of a mutable buffer (`bytearray`, `memoryview`).
    Owned(Vec<u8>),
    /// Pixels already copied out of an array or a PIL image.
    Pixels(RgbImage),
    /// A C-contiguous RGB array, read in place.
    Array(InPlace<'py>),
}

/// A C-contiguous `(height, width, 3)` `uint8` array, borrowed for reading.
pub(crate) struct InPlace<'py> {
    array: PyReadonlyArray3<'py, u8>,
    width: u32,
    height: u32,
}

/// Pixels ready to analyse: decoded or copied into an image we own, or an array's own buffer.
pub(crate) enum Frame<'py> {
    /// Decoded from a file or bytes, or copied out of an array or a PIL image.
    Owned(RgbImage),
    /// A C-contiguous RGB array, read in place.
    Array(InPlace<'py>),
}

impl Frame<'_> {
    /// The pixels, borrowed: what the library analyses (send it into `py.detach`).
    pub fn view(&self) -> PyResult<RgbView<'_>> {
        match self {
            Self::Owned(image) => Ok(image.as_rgb_view()),
            Self::Array(InPlace {
                array,
                width,
                height,
            }) => {
                let py = array.py();
                let changed =
                    || errors::bad_image(py, "the array changed shape while it was being read");
                let pixels = array.as_slice().map_err(|_| changed())?;
                RgbView::from_raw(*width, *height, pixels).ok_or_else(changed)
            }
        }
    }
}

impl<'py> Picture<'py> {
    /// Sorts out what `image` is; `bgr` says the channel order of a NumPy array.
    pub fn extract(image: &Bound<'py, PyAny>, bgr: bool) -> PyResult<Self> {
        let py = image.py();
        if let Ok(s) = image.cast::<PyString>() {
            return Ok(Self::Path(PathBuf::from(s.to_cow()?.as_ref())));
        }
        if image.hasattr("__fspath__")? {
            let path: PathBuf = py
                .import("os")?
                .call_method1("fspath", (image,))?
                .extract()?;
            return Ok(Self::Path(path));
        }
        if let Ok(b) = image.cast::<PyBytes>() {
            return Ok(Self::Bytes(b.clone()));
        }
        if let Ok(b) = image.cast::<PyByteArray>() {
            return Ok(Self::Owned(b.to_vec()));
        }
        if image.is_instance_of::<PyMemoryView>() {
            let bytes = py
                .import("builtins")?
                .getattr("bytes")?
                .call1((image,))?
                .extract::<Vec<u8>>()?;
            return Ok(Self::Owned(bytes));
        }
        if is_ndarray(image)? {
            return from_array(image, bgr);
        }
        if image.hasattr("tobytes")? && image.hasattr("convert")? && image.hasattr("mode")? {
            return from_pil(image).map(Self::Pixels);
        }
        Err(PyTypeError::new_err(format!(
            "expected an image: a path, bytes, a PIL image or a NumPy array of shape \
             (height, width, 3) and dtype uint8; got {}",
            image.get_type().name()?
        )))
    }

    /// The decoded image, checked for size by `analyzer` (too small to hold a face: an
    /// error, as `Analyzer::load` and `Analyzer::decode` check it). Decodes with the GIL
    /// released.
    pub fn load(self, py: Python<'_>, analyzer: &Analyzer) -> PyResult<Frame<'py>> {
        let name = match &self {
            Self::Path(path) => path.clone(),
            Self::Bytes(_) | Self::Owned(_) => PathBuf::from(BYTES_NAME),
            Self::Pixels(_) | Self::Array(_) => PathBuf::from(ARRAY_NAME),
        };
        let frame = self.decode(py, analyzer)?;
        let sides = frame.view()?.dimensions();
        analyzer
            .check_size(sides, &name)
            .map_err(|e| errors::to_py(py, &e))?;
        Ok(frame)
    }

    /// The decoded image, whatever its size, within `analyzer`'s decode limits. Decodes with
    /// the GIL released.
    fn decode(self, py: Python<'_>, analyzer: &Analyzer) -> PyResult<Frame<'py>> {
        let limits = analyzer.decode_limits();
        let result = match self {
            Self::Path(path) => py.detach(|| load_image(&path, limits)),
            Self::Bytes(bytes) => {
                let bytes = bytes.as_bytes();
                py.detach(|| decode_image(bytes, Path::new(BYTES_NAME), limits))
            }
            Self::Owned(bytes) => py.detach(|| decode_image(&bytes, Path::new(BYTES_NAME), limits)),
            Self::Pixels(image) => Ok(image),
            Self::Array(array) => return Ok(Frame::Array(array)),
        };
        result.map(Frame::Owned).map_err(|e| errors::to_py(py, &e))
    }
}

/// A face that is already cut out, as `Analyzer.classify` takes it: any image `analyze` takes,
/// or a NumPy array of gray pixels, shape `(height, width)` and dtype `uint8` (a FER-2013
/// image as `cv2.imread(path, cv2.IMREAD_GRAYSCALE)` gives it).
pub(crate) enum Crop<'py> {
    /// A colour picture (or a file or bytes, decoded to RGB).
    Picture(Picture<'py>),
    /// Gray pixels, copied out of a 2-D array.
    Gray(GrayImage),
}

impl<'py> Crop<'py> {
    /// Sorts out what `crop` is; `bgr` says the channel order of a colour NumPy array.
    pub fn extract(crop: &Bound<'py, PyAny>, bgr: bool) -> PyResult<Self> {
        if is_ndarray(crop)? && crop.cast::<PyUntypedArray>()?.ndim() == 2 {
            return gray_from_array(crop).map(Self::Gray);
        }
        Picture::extract(crop, bgr).map(Self::Picture)
    }

    /// The crop's gray pixels: files and bytes decoded within `analyzer`'s limits (any size:
    /// a crop is not searched for faces), colour converted to gray as `Analyzer::analyze`
    /// converts a picture.
    pub fn load(self, py: Python<'_>, analyzer: &Analyzer) -> PyResult<GrayImage> {
        match self {
            Self::Gray(gray) => Ok(gray),
            Self::Picture(picture) => Ok(gray_from_rgb(&picture.decode(py, analyzer)?.view()?)),
        }
    }
}

/// Whether `obj` is a NumPy array, without importing NumPy when the caller has not (then it
/// cannot be one).
fn is_ndarray(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    let loaded = py.import("sys")?.getattr("modules")?.contains("numpy")?;
    Ok(loaded && obj.cast::<PyUntypedArray>().is_ok())
}

/// An `(height, width, 3)` `uint8` array: borrowed when it is C-contiguous RGB, its pixels
/// copied out as RGB otherwise.
fn from_array<'py>(obj: &Bound<'py, PyAny>, bgr: bool) -> PyResult<Picture<'py>> {
    let py = obj.py();
    let untyped = obj.cast::<PyUntypedArray>()?;
    let shape = untyped.shape().to_vec();
    let dtype = untyped.dtype().str()?.to_string();
    let Ok(array) = obj.cast::<PyArray3<u8>>() else {
        return Err(errors::bad_image(
            py,
            format!(
                "expected a NumPy array of shape (height, width, 3) and dtype uint8, got shape \
                 {shape:?} and dtype {dtype}; convert it with array.astype(numpy.uint8) (values \
                 0-255), or give a gray image as numpy.stack([gray] * 3, axis=-1)"
            ),
        ));
    };
    let [h, w, channels] = [shape[0], shape[1], shape[2]];
    if channels != 3 {
        return Err(errors::bad_image(
            py,
            format!(
                "expected 3 channels (RGB, or BGR with bgr=True), got an array of shape \
                 {shape:?}; drop an alpha channel with array[..., :3]"
            ),
        ));
    }
    let (width, height) = sides(py, &shape, w, h)?;
    let readonly = borrow(array)?;
    if !bgr && readonly.is_c_contiguous() {
        return Ok(Picture::Array(InPlace {
            array: readonly,
            width,
            height,
        }));
    }
    let pixels = pixels_of(&readonly, bgr);
    RgbImage::from_raw(width, height, pixels)
        .map(Picture::Pixels)
        .ok_or_else(|| {
            errors::bad_image(py, format!("the array {shape:?} does not hold its pixels"))
        })
}

/// A `(height, width)` `uint8` array's pixels as gray.
fn gray_from_array(obj: &Bound<'_, PyAny>) -> PyResult<GrayImage> {
    let py = obj.py();
    let untyped = obj.cast::<PyUntypedArray>()?;
    let shape = untyped.shape().to_vec();
    let Ok(array) = obj.cast::<PyArray2<u8>>() else {
        let dtype = untyped.dtype().str()?.to_string();
        return Err(errors::bad_image(
            py,
            format!(
                "expected a gray NumPy array of dtype uint8, got dtype {dtype}; convert it with \
                 array.astype(numpy.uint8) (values 0-255)"
            ),
        ));
    };
    let (w32, h32) = sides(py, &shape, shape[1], shape[0])?;
    GrayImage::from_raw(w32, h32, pixels_of(&borrow(array)?, false)).ok_or_else(|| {
        errors::bad_image(py, format!("the array {shape:?} does not hold its pixels"))
    })
}

/// Width and height as the image types count them.
fn sides(py: Python<'_>, shape: &[usize], w: usize, h: usize) -> PyResult<(u32, u32)> {
    match (u32::try_from(w), u32::try_from(h)) {
        (Ok(w), Ok(h)) => Ok((w, h)),
        _ => Err(errors::bad_image(
            py,
            format!("the array {shape:?} is too large"),
        )),
    }
}

/// `array`, borrowed for reading. Fails only while Rust code elsewhere holds it mutably
/// borrowed.
fn borrow<'py, D: Dimension>(
    array: &Bound<'py, PyArray<u8, D>>,
) -> PyResult<PyReadonlyArray<'py, u8, D>> {
    array
        .try_readonly()
        .map_err(|e| errors::bad_image(array.py(), format!("the array cannot be read now: {e}")))
}

/// An array's elements in row order, copied out while the GIL is held: a C-contiguous array
/// in one pass (a `memcpy`, or `rgb_from_bgr` for `bgr`), any other layout (a crop, a
/// transposed or reversed view, a Fortran-ordered array) gathered first. `bgr` swaps the
/// first and third of every three bytes.
fn pixels_of<D: Dimension>(array: &PyReadonlyArray<'_, u8, D>, bgr: bool) -> Vec<u8> {
    let pixels: Cow<'_, [u8]> = if array.is_c_contiguous() {
        Cow::Borrowed(array.as_slice().unwrap_or_default())
    } else {
        Cow::Owned(array.as_array().iter().copied().collect())
    };
    if !bgr {
        return pixels.into_owned();
    }
    let mut rgb = vec![0; pixels.len()];
    rgb_from_bgr(&pixels, &mut rgb);
    rgb
}

/// A PIL image's pixels as RGB (`convert("RGB")` first unless it is RGB already).
fn from_pil(obj: &Bound<'_, PyAny>) -> PyResult<RgbImage> {
    let py = obj.py();
    let mode: String = obj.getattr("mode")?.extract()?;
    let rgb = if mode == "RGB" {
        obj.clone()
    } else {
        obj.call_method1("convert", ("RGB",))?
    };
    let (w, h): (u32, u32) = rgb.getattr("size")?.extract()?;
    let data = rgb.call_method0("tobytes")?;
    let bytes = data.cast::<PyBytes>()?.as_bytes().to_vec();
    RgbImage::from_raw(w, h, bytes).ok_or_else(|| {
        errors::bad_image(
            py,
            format!("the PIL image says {w}x{h} pixels but holds a different amount of data"),
        )
    })
}
