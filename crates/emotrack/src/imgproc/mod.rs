//! Image operations: grayscale conversion, resizing, cropping and face alignment.
//!
//! Submodules hold one family of operations each; [`face_crop`] is the one function that turns a
//! detected face into the classifier's input, used by training and inference alike.

pub mod area;
pub mod gray;
pub mod resize;
