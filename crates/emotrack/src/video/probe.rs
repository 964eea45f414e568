//! Video metadata from `ffprobe -print_format json`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ffmpeg::{Program, run_with_timeout};
use super::source::Source;
use crate::error::{Error, Result};
use crate::imgproc::DecodeLimits;

/// Frame rate assumed when a source does not state one (FFmpeg's image-sequence default).
pub const FALLBACK_FRAME_RATE: f64 = 25.0;

/// What `ffprobe` says about a source's first video stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoInfo {
    /// Frame width in pixels, as decoded (after the stream's rotation, if any).
    pub width: u32,
    /// Frame height in pixels, as decoded.
    pub height: u32,
    /// Frames per second (the average rate; the nominal rate when there is no average).
    pub frame_rate: f64,
    /// Frames in the stream, when known (files).
    pub frame_count: Option<u64>,
    /// Duration in seconds, when known (files).
    pub duration: Option<f64>,
    /// Seconds from the container's start to the first video frame (some files start their
    /// video after their audio).
    pub start_offset: f64,
    /// Video codec name (`h264`, `vp9`, ...).
    pub codec: String,
    /// Container format (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, ...).
    pub format: String,
    /// Whether the source has an audio stream.
    pub has_audio: bool,
}

#[derive(Debug, Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Debug, Deserialize)]
struct ProbeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    codec_tag_string: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    r_frame_rate: Option<String>,
    avg_frame_rate: Option<String>,
    nb_frames: Option<String>,
    duration: Option<String>,
    start_time: Option<String>,
    #[serde(default)]
    tags: std::collections::HashMap<String, String>,
    #[serde(default)]
    side_data_list: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct ProbeFormat {
    format_name: Option<String>,
    duration: Option<String>,
    start_time: Option<String>,
}

/// Runs `ffprobe` on a source (killed after `timeout`) and reads its first video stream.
///
/// Fails with a message naming the problem when the source is not a video FFmpeg can read,
/// has no video stream (audio only), or uses a codec FFmpeg cannot decode.
pub fn probe(source: &Source, timeout: Duration) -> Result<VideoInfo> {
    source.check()?;
    let input = source.to_string();
    let mut cmd = Program::Ffprobe.command();
    cmd.args(source.input_options());
    cmd.args([
        "-print_format",
        "json",
        "-show_streams",
        "-show_format",
        "-i",
    ]);
    cmd.arg(source.input_arg());
    let out = run_with_timeout(Program::Ffprobe, cmd, &input, timeout)?;
    let err = |message: String| Error::video(input.clone(), message);
    if !out.status.success() {
        let detail = if out.stderr.is_empty() {
            format!("ffprobe failed ({})", out.status)
        } else {
            out.stderr.clone()
        };
        return Err(err(format!(
            "not a video FFmpeg can read ({detail}); check that the file is a complete video \
             or the device/URL is right"
        )));
    }
    read_probe_json(&out.stdout, &input)
}

/// Reads what `ffprobe -print_format json -show_streams -show_format` printed for `input` (which
/// names it in errors): the first video stream's size, rate, length and codec.
pub fn read_probe_json(json: &[u8], input: &str) -> Result<VideoInfo> {
    let err = |message: String| Error::video(input, message);
    let parsed: ProbeOutput = serde_json::from_slice(json)
        .map_err(|e| err(format!("cannot read ffprobe's answer: {e}")))?;
    parse(parsed).map_err(err)
}

fn parse(p: ProbeOutput) -> std::result::Result<VideoInfo, String> {
    let has_audio = p
        .streams
        .iter()
        .any(|s| s.codec_type.as_deref() == Some("audio"));
    let Some(v) = p
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video"))
    else {
        return Err(if has_audio {
            "has no video stream (audio only); give a video with pictures".into()
        } else {
            "has no video stream".into()
        });
    };
    let codec = v.codec_name.clone().unwrap_or_default();
    if codec.is_empty() || codec == "none" {
        let tag = v.codec_tag_string.clone().unwrap_or_default();
        return Err(format!(
            "its video codec is unknown to FFmpeg (tag {tag:?}); convert it to H.264 first, \
             e.g. with another tool, or install an FFmpeg build that supports it"
        ));
    }
    let (Some(mut width), Some(mut height)) = (v.width, v.height) else {
        return Err("the video stream has no frame size; the file may be damaged".into());
    };
    // The largest side read is the images' (a frame is allocated at this size).
    let max_side = DecodeLimits::default().max_side;
    if width == 0 || height == 0 || width > max_side || height > max_side {
        return Err(format!(
            "the video stream's frame size is {width}x{height}; sides from 1 to {max_side} \
             pixels are read, so the file may be damaged"
        ));
    }
    if rotation(v).rem_euclid(180) == 90 {
        // FFmpeg rotates such frames upright when decoding, swapping the sides.
        std::mem::swap(&mut width, &mut height);
    }
    let frame_rate = [&v.avg_frame_rate, &v.r_frame_rate]
        .into_iter()
        .filter_map(|r| r.as_deref().and_then(rational))
        .find(|r| *r > 0.0 && *r <= 1000.0)
        .unwrap_or(FALLBACK_FRAME_RATE);
    let number = |s: &Option<String>| s.as_deref().and_then(|s| s.parse::<f64>().ok());
    let format = p.format.as_ref();
    let duration = number(&v.duration)
        .or_else(|| format.and_then(|f| number(&f.duration)))
        .filter(|d| d.is_finite() && *d > 0.0);
    let frame_count = v
        .nb_frames
        .as_deref()
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .or_else(|| duration.map(|d| (d * frame_rate).round() as u64));
    let start_offset = match (
        number(&v.start_time),
        format.and_then(|f| number(&f.start_time)),
    ) {
        (Some(v), Some(f)) if v > f => v - f,
        _ => 0.0,
    };
    Ok(VideoInfo {
        width,
        height,
        frame_rate,
        frame_count,
        duration,
        start_offset,
        codec,
        format: format
            .and_then(|f| f.format_name.clone())
            .unwrap_or_default(),
        has_audio,
    })
}

/// The stream's display rotation in degrees (side data in newer FFmpeg, a tag in older).
fn rotation(v: &ProbeStream) -> i64 {
    let side = v
        .side_data_list
        .iter()
        .find_map(|d| d.get("rotation").and_then(serde_json::Value::as_f64));
    let tag = v.tags.get("rotate").and_then(|r| r.parse::<f64>().ok());
    side.or(tag).map_or(0, |r| r.round() as i64)
}

/// `"30000/1001"` → 29.97; `"0/0"` → None.
fn rational(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    let (n, d) = (n.parse::<f64>().ok()?, d.parse::<f64>().ok()?);
    (d != 0.0 && n.is_finite()).then(|| n / d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_json(json: &str) -> std::result::Result<VideoInfo, String> {
        parse(serde_json::from_str(json).map_err(|e| e.to_string())?)
    }

    #[test]
    fn a_typical_mp4_is_read_with_its_rate_count_offset_and_audio() {
        let info = parse_json(
            r#"{"streams":[
                {"codec_type":"video","codec_name":"h264","width":640,"height":360,
                 "r_frame_rate":"2997/100","avg_frame_rate":"2997/100","nb_frames":"275",
                 "duration":"9.175843","start_time":"0.852019"},
                {"codec_type":"audio","codec_name":"aac","start_time":"0.008005"}],
               "format":{"format_name":"mov,mp4","duration":"10.008","start_time":"0.008005"}}"#,
        )
        .expect("valid");
        assert_eq!((info.width, info.height), (640, 360));
        assert!((info.frame_rate - 29.97).abs() < 1e-9);
        assert_eq!(info.frame_count, Some(275));
        assert!((info.start_offset - 0.844014).abs() < 1e-6);
        assert!(info.has_audio);
    }

    #[test]
    fn rotated_streams_swap_width_and_height() {
        let info = parse_json(
            r#"{"streams":[{"codec_type":"video","codec_name":"h264","width":1920,"height":1080,
                "avg_frame_rate":"30/1","side_data_list":[{"rotation":-90}]}]}"#,
        )
        .expect("valid");
        assert_eq!((info.width, info.height), (1080, 1920));
    }

    #[test]
    fn audio_only_and_unknown_codecs_are_refused_with_a_reason() {
        let audio = parse_json(r#"{"streams":[{"codec_type":"audio","codec_name":"aac"}]}"#);
        assert!(audio.err().unwrap_or_default().contains("audio only"));
        let unknown = parse_json(
            r#"{"streams":[{"codec_type":"video","codec_tag_string":"ZZZZ","width":2,"height":2}]}"#,
        );
        assert!(
            unknown
                .err()
                .unwrap_or_default()
                .contains("codec is unknown")
        );
    }

    #[test]
    fn missing_rates_fall_back_and_counts_come_from_the_duration() {
        let info = parse_json(
            r#"{"streams":[{"codec_type":"video","codec_name":"png","width":8,"height":8,
                "avg_frame_rate":"0/0","r_frame_rate":"0/0"}],"format":{"duration":"2.0"}}"#,
        )
        .expect("valid");
        assert_eq!(info.frame_rate, FALLBACK_FRAME_RATE);
        assert_eq!(info.frame_count, Some(50));
    }
}
