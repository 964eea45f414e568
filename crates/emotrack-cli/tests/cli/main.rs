//! The `emotrack` binary end to end. Every CLI test lives in this one test binary (one link,
//! shared helpers): `analyze` for photos, `video` for videos, cameras and streams, `serve` for
//! the server.

#[path = "../../../emotrack/tests/common/mod.rs"]
mod common;
mod util;

mod analyze;
mod serve;
mod video;
