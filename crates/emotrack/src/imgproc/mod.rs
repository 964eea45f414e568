//! Image operations: loading with limits, grayscale conversion, resizing, cropping and face
//! alignment.
//!
//! Submodules hold one family of operations each; [`crop::face_crop`] is the one function that
//! turns a detected face into the classifier's input, used by training and inference alike;
//! [`crop::crop_as_input`] takes a face that is already cut out (a dataset's image).

pub mod area;
pub mod bgr;
pub mod crop;
pub mod gray;
pub mod load;
pub mod resize;
mod tiff_palette;
pub mod view;

pub use bgr::rgb_from_bgr;
pub use crop::{CropSettings, crop_as_input, face_crop};
pub use load::{DecodeLimits, decode_image, load_image};
pub use view::{AsRgbView, RgbView};
