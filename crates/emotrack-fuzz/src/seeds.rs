//! The first inputs of each target's corpus: the repo's real files (photos, format fixtures,
//! the built-in vibes, ffprobe's answers for the fixture videos), small photos of
//! `../shared/media` and FER-2013 when present, and a tiny valid model.
//!
//! `cargo run -p emotrack-fuzz --example write_seeds -- DIR` writes them to `DIR/<target>/`
//! (what `scripts/fuzz.sh` starts a corpus from); `tests/regressions.rs` replays them.

use std::path::{Path, PathBuf};
use std::process::Command;

use emotrack::classify::{Classifier, ModelConfig};

/// A seed: a file name and its bytes.
pub type Seed = (String, Vec<u8>);

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Files of `dir` up to `max_bytes` each, sorted by name; none when `dir` is absent.
fn files(dir: &Path, max_bytes: u64) -> Vec<Seed> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.metadata().is_ok_and(|m| m.len() <= max_bytes))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            Some((name, std::fs::read(&p).ok()?))
        })
        .collect()
}

/// Real pictures: the fixtures, the shared media's photos under 160 KB, and two FER-2013 faces
/// per class.
fn pictures() -> Vec<Seed> {
    let root = workspace_root();
    let fixtures = root.join("tests/fixtures");
    let mut seeds = Vec::new();
    for dir in ["photos", "no_faces", "formats"] {
        seeds.extend(files(&fixtures.join(dir), 160_000));
    }
    let shared = root.join("../shared");
    seeds.extend(files(&shared.join("media/photos"), 160_000));
    let fer = shared.join("datasets/fer2013/val");
    for class in [
        "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise",
    ] {
        seeds.extend(files(&fer.join(class), 4_000).into_iter().take(2));
    }
    seeds.sort();
    seeds.dedup_by(|a, b| a.0 == b.0);
    seeds
}

/// The seeds of target `name`.
///
/// # Panics
/// On an unknown target name.
pub fn seeds(name: &str) -> Vec<Seed> {
    match name {
        "image" => pictures(),
        "model" => vec![("tiny-resnet".into(), tiny_model_input())],
        "onnx" => vec![("tiny-resnet.onnx".into(), tiny_onnx())],
        "vibes" => files(&workspace_root().join("models"), 16_000)
            .into_iter()
            .filter(|(n, _)| n == "vibes.json")
            .collect(),
        "ffprobe" => probe_answers(),
        "http_analyze" => pictures()
            .into_iter()
            .zip(QUERIES.iter().cycle())
            .map(|((n, bytes), query)| (n, [query.as_bytes(), b"\n", &bytes].concat()))
            .collect(),
        "multipart" => pictures()
            .into_iter()
            .take(6)
            .map(|(n, bytes)| {
                let body = multipart_body(&n, &bytes);
                (n, body)
            })
            .collect(),
        "websocket" => websocket_sessions(),
        other => panic!("no fuzz target named {other}"),
    }
}

/// Query strings `/v1/analyze` takes.
const QUERIES: [&str; 5] = [
    "",
    "annotate=true",
    "detector=haar&min_face=30",
    "detector=mtcnn&threshold=0.8&min_face=20",
    "detector=yunet&threshold=0.7",
];

const BOUNDARY: &str = "emotrack-fuzz-boundary";

fn multipart_body(name: &str, bytes: &[u8]) -> Vec<u8> {
    [
        format!(
            "{BOUNDARY}\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
        bytes,
        format!("\r\n--{BOUNDARY}--\r\n").as_bytes(),
    ]
    .concat()
}

/// Sessions: commands, then a real photo as a frame (the last message takes the rest).
fn websocket_sessions() -> Vec<Seed> {
    let command = |json: &str| {
        let len = u8::try_from(json.len().div_ceil(64)).unwrap_or(u8::MAX - 1);
        // An odd kind is text; the length byte counts 64-byte units (plus one byte), so the
        // command is padded with spaces to fill them.
        let padded = format!("{json:<width$}", width = usize::from(len) * 64 + 1);
        [&[1, len][..], padded.as_bytes()].concat()
    };
    let frame = |bytes: &[u8]| [&[0, u8::MAX][..], bytes].concat();
    let fixtures = workspace_root().join("tests/fixtures");
    let mut photos = files(&fixtures.join("photos"), 160_000);
    photos.extend(files(&fixtures.join("formats"), 160_000));
    photos
        .into_iter()
        .take(4)
        .enumerate()
        .map(|(i, (n, bytes))| {
            let mut session = Vec::new();
            if i % 2 == 1 {
                session.extend(command(
                    r#"{"type":"settings","detector":"haar","min_face":40,"detect_every":2,"ema":0.3}"#,
                ));
                session.extend(command(r#"{"type":"reset"}"#));
            }
            session.extend(frame(&bytes));
            (n, session)
        })
        .collect()
}

/// ffprobe's answers for the fixture and shared videos (when ffprobe is installed), and two
/// made-up ones: audio only, and a phone video turned 90°.
fn probe_answers() -> Vec<Seed> {
    let root = workspace_root();
    let mut videos = vec![root.join("tests/fixtures/videos/fer_test.mp4")];
    videos.extend(
        files(&root.join("../shared/media/videos"), u64::MAX)
            .into_iter()
            .map(|(n, _)| root.join("../shared/media/videos").join(n)),
    );
    let mut seeds: Vec<Seed> = videos
        .iter()
        .filter_map(|v| {
            let out = Command::new("ffprobe")
                .args(["-v", "quiet", "-print_format", "json", "-show_streams"])
                .args(["-show_format", "-i"])
                .arg(v)
                .output()
                .ok()?;
            let name = v.file_name()?.to_string_lossy().into_owned();
            out.status.success().then(|| (name + ".json", out.stdout))
        })
        .collect();
    seeds.push((
        "audio-only.json".into(),
        br#"{"streams":[{"codec_type":"audio","codec_name":"aac"}],"format":{"format_name":"mp3","duration":"3.5"}}"#.to_vec(),
    ));
    seeds.push((
        "rotated.json".into(),
        br#"{"streams":[{"codec_type":"video","codec_name":"h264","width":1920,"height":1080,"avg_frame_rate":"30000/1001","r_frame_rate":"30/1","nb_frames":"300","duration":"10.01","start_time":"0.05","side_data_list":[{"rotation":-90}],"tags":{"rotate":"90"}}],"format":{"format_name":"mov,mp4","duration":"10.01","start_time":"0.0"}}"#.to_vec(),
    ));
    seeds
}

/// A tiny ResNet's config: a 4-channel stem, one stage of one 8-channel block.
fn tiny_config() -> ModelConfig {
    let (_, built_in) = emotrack::classify::embedded_model().expect("the built-in model's config");
    let json = serde_json::json!({
        "architecture": {
            "kind": "resnet", "stem_channels": 4, "stem_stride": 2,
            "widths": [8], "blocks": [1], "strides": [2]
        },
        "input_size": 48,
        "classes": built_in.classes,
        "normalization": built_in.normalization,
    });
    serde_json::from_value(json).expect("a valid config")
}

/// The tiny ResNet's weights (values made up, shapes right), as safetensors.
fn tiny_weights() -> Vec<u8> {
    let mut tensors: Vec<(String, Vec<usize>)> =
        vec![("stem.conv.weight".into(), vec![4, 1, 3, 3])];
    let bn = |prefix: &str, c: usize| {
        ["weight", "bias", "running_mean", "running_var"]
            .map(|p| (format!("{prefix}.{p}"), vec![c]))
    };
    tensors.extend(bn("stem.bn", 4));
    let block = "stages.0.0";
    tensors.push((format!("{block}.conv1.weight"), vec![8, 4, 3, 3]));
    tensors.extend(bn(&format!("{block}.bn1"), 8));
    tensors.push((format!("{block}.conv2.weight"), vec![8, 8, 3, 3]));
    tensors.extend(bn(&format!("{block}.bn2"), 8));
    tensors.push((format!("{block}.shortcut.conv.weight"), vec![8, 4, 1, 1]));
    tensors.extend(bn(&format!("{block}.shortcut.bn"), 8));
    tensors.push(("head.weight".into(), vec![7, 8]));
    tensors.push(("head.bias".into(), vec![7]));
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let positive = name.ends_with("running_var") || name.ends_with("bn.weight");
            let bytes = (0..n)
                .flat_map(|i| {
                    let v = if positive {
                        1.0
                    } else {
                        ((i % 7) as f32 - 3.0) / 10.0
                    };
                    f32::to_le_bytes(v)
                })
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(name, shape, bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .expect("a tensor view");
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, None).expect("serialises")
}

/// The `model` target's input for the tiny ResNet: config, NUL, weights.
fn tiny_model_input() -> Vec<u8> {
    let config = serde_json::to_vec(&tiny_config()).expect("serialises");
    [config, vec![0], tiny_weights()].concat()
}

/// The tiny ResNet exported to ONNX.
fn tiny_onnx() -> Vec<u8> {
    let classifier = Classifier::from_bytes(&tiny_weights(), tiny_config(), Path::new("tiny"))
        .expect("the tiny model loads");
    classifier.to_onnx().expect("exports").0
}
