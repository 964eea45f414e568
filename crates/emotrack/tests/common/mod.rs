//! Where tests find the real data that does not ship in the repo.
//!
//! * `EMOTRACK_MEDIA`: the shared photos and videos (default `<workspace>/../shared/media`).
//! * `EMOTRACK_FER2013`: FER-2013 in folder layout (default `<workspace>/../shared/datasets/fer2013`).
//!
//! When a folder is absent the test says so on stderr and returns early, unless
//! `EMOTRACK_REQUIRE_DATA=1` (set by `.ci/run`), which turns the absence into a failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn locate(var: &str, default_rel: &str) -> Option<PathBuf> {
    let dir = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(default_rel));
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "test data folder {} is absent; set {var} to where it lives",
        dir.display()
    );
    if std::env::var("EMOTRACK_REQUIRE_DATA").is_ok_and(|v| v == "1") {
        panic!("{msg} (EMOTRACK_REQUIRE_DATA=1 makes this a failure)");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// `../shared/media` (or `$EMOTRACK_MEDIA`), if present.
pub fn media_dir() -> Option<PathBuf> {
    locate("EMOTRACK_MEDIA", "../shared/media")
}

/// `../shared/datasets/fer2013` (or `$EMOTRACK_FER2013`), if present.
pub fn fer2013_dir() -> Option<PathBuf> {
    locate("EMOTRACK_FER2013", "../shared/datasets/fer2013")
}

/// A photo of the shared media (`photos/...`) as RGB; `None`, said on stderr, when the media
/// folder is absent (see [`media_dir`]) or the photo does not decode.
pub fn shared_photo(name: &str) -> Option<image::RgbImage> {
    let path = media_dir()?.join(name);
    match image::open(&path) {
        Ok(img) => Some(img.to_rgb8()),
        Err(e) if std::env::var("EMOTRACK_REQUIRE_DATA").is_ok_and(|v| v == "1") => {
            panic!(
                "{} does not decode: {e} (EMOTRACK_REQUIRE_DATA=1)",
                path.display()
            )
        }
        Err(e) => {
            eprintln!("SKIPPED: {}: {e}", path.display());
            None
        }
    }
}

/// Files in the repo's own `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    workspace_root().join("tests/fixtures").join(name)
}

/// A rayon pool of one thread, for the benches' single-thread figures (exits if it cannot be
/// built: a bench has nothing to measure without it).
pub fn single_thread_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap_or_else(|e| {
            eprintln!("cannot build a 1-thread pool: {e}");
            std::process::exit(1);
        })
}

/// 48x48 gray crops of real pictures: the repo's example photos (always present), and when
/// the FER-2013 folders are there, the first 10 validation images of every class.
pub fn real_crops() -> Vec<image::GrayImage> {
    let mut crops: Vec<image::GrayImage> = [
        "photos/ageitgey_kit_with_rose.jpg",
        "photos/linzaer_imgs_2.jpg",
    ]
    .iter()
    .map(|name| {
        let img = image::open(fixture(name)).expect("fixture photo decodes");
        image::imageops::resize(
            &img.to_luma8(),
            48,
            48,
            image::imageops::FilterType::Triangle,
        )
    })
    .collect();
    if let Some(fer) = fer2013_dir() {
        for class in [
            "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise",
        ] {
            let mut files: Vec<PathBuf> = std::fs::read_dir(fer.join("val").join(class))
                .expect("FER-2013 val class folder")
                .map(|e| e.expect("dir entry").path())
                .collect();
            files.sort();
            for f in files.iter().take(10) {
                crops.push(image::open(f).expect("FER image decodes").to_luma8());
            }
        }
    }
    crops
}

/// The largest difference between two sets of logits.
pub fn max_abs_diff(a: &[[f32; 7]], b: &[[f32; 7]]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Frames in `tests/fixtures/videos/fer_test.mp4` (`ffprobe -count_frames`).
pub const FER_FRAMES: u64 = 115;

/// The repo's one-face fixture clip, `tests/fixtures/videos/fer_test.mp4`.
pub fn fer_clip() -> PathBuf {
    fixture("videos/fer_test.mp4")
}

/// Runs `ffmpeg -y` quietly with `args`; fails the test if it fails.
pub fn ffmpeg(args: &[&str]) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `(codec_type, frames)` of every stream of a file, frames counted by decoding.
pub fn streams(path: &Path) -> Vec<(String, u64)> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-print_format", "json"])
        .args(["-show_entries", "stream=codec_type,nb_read_frames"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["codec_type"].as_str().unwrap_or("").to_owned(),
                        s["nb_read_frames"]
                            .as_str()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A minimal PNG whose header (IHDR, with a valid CRC) claims `w`x`h` pixels, followed by no
/// image data: what a forged or truncated upload looks like to a decoder.
pub fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    png
}

/// A JPEG file's bytes with an EXIF segment saying `orientation` (1-8) inserted after SOI: how
/// a phone stores a portrait photo (6: turn 90° clockwise to show it).
pub fn with_exif_orientation(jpeg: &[u8], orientation: u8) -> Vec<u8> {
    let mut exif = vec![0xFF, 0xE1, 0x00, 0x22];
    exif.extend_from_slice(b"Exif\0\0II*\0\x08\0\0\0");
    exif.extend_from_slice(&[1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, orientation, 0, 0, 0]);
    exif.extend_from_slice(&[0, 0, 0, 0]);
    let mut out = jpeg[..2].to_vec();
    out.extend(exif);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// `sum(byte[i] * (i % 65521 + 1))` over an image's raw RGB bytes, as the fixture scripts
/// (`scripts/mtcnn_fixtures.py`, `scripts/yunet_weights.py`) compute it: tells whether a test
/// decodes the same pixels a reference was made from.
pub fn rgb_checksum(image: &image::RgbImage) -> u64 {
    image
        .as_raw()
        .iter()
        .enumerate()
        .map(|(i, &b)| u64::from(b) * (i as u64 % 65521 + 1))
        .sum()
}
