//! The HTTP handlers, one module per resource.

pub mod analyze;
pub mod docs;
pub mod health;
pub mod page;
pub mod stream;
pub mod videos;
