//! `emotrack analyze`, `eval`, `export` and `ensemble` end to end, on the fixture photos and
//! FER-2013.

use std::path::{Path, PathBuf};

use crate::common;
use crate::util::{EXIT_PARTIAL_FAILURE, emotrack, p, text};

fn good_photo() -> PathBuf {
    common::fixture("photos/ageitgey_kit_with_rose.jpg")
}

/// Analyses `bad` next to a good photo: the bad file is named on stderr with `expect` in its
/// message, the good photo is still analysed, and the exit code reports a partial failure.
fn assert_bad_input_reported(bad: &Path, expect: &str) {
    let good = good_photo();
    let out = emotrack(&[
        "analyze",
        "--detector",
        "haar",
        "--format",
        "jsonl",
        p(bad),
        p(&good),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(EXIT_PARTIAL_FAILURE),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains(p(bad)))
        .unwrap_or_else(|| panic!("{bad:?} not named in: {stderr}"));
    assert!(
        line.to_lowercase().contains(expect),
        "expected {expect:?} in {line:?}"
    );
    let good_line = stdout
        .lines()
        .find(|l| l.contains("kit_with_rose"))
        .expect("the good photo is reported");
    assert!(good_line.contains("\"faces\""), "{good_line}");
}

#[test]
fn analyze_lists_the_faces_of_a_photo_with_probabilities_and_vibes() {
    let out = emotrack(&["analyze", "--format", "json", p(&good_photo())]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let faces = v[0]["faces"].as_array().expect("faces");
    // The photo shows two people (counted by eye).
    assert_eq!(faces.len(), 2, "{v:#}");
    for f in faces {
        // Probabilities keyed by emotion name; the label is the most probable one.
        let probs = f["probabilities"].as_object().expect("probabilities");
        let names: Vec<&str> = probs.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"
            ]
        );
        let values: Vec<f64> = probs.values().filter_map(|x| x.as_f64()).collect();
        assert!((values.iter().sum::<f64>() - 1.0).abs() < 1e-3);
        let top = values.iter().copied().fold(f64::MIN, f64::max);
        assert_eq!(
            probs[f["label"].as_str().expect("label")].as_f64(),
            Some(top)
        );
        assert_eq!(f["confidence"].as_f64(), Some(top));
        for key in ["x", "y", "w", "h"] {
            assert!(f["box"][key].is_f64(), "box.{key} in {f}");
        }
        assert!(!f["vibe"].as_str().unwrap_or("").is_empty());
        assert_eq!(
            f["landmarks"].as_array().map(Vec::len),
            Some(5),
            "mtcnn gives five landmarks"
        );
    }
}

#[test]
fn yunet_finds_both_faces_with_landmarks_and_scores() {
    let out = emotrack(&[
        "analyze",
        "--detector",
        "yunet",
        "--format",
        "json",
        p(&good_photo()),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let faces = v[0]["faces"].as_array().expect("faces");
    // The two people (counted by eye), as with MTCNN.
    assert_eq!(faces.len(), 2, "{v:#}");
    for f in faces {
        let score = f["detector_score"].as_f64().expect("a score");
        assert!((0.6..=1.0).contains(&score), "{f}");
        assert_eq!(f["landmarks"].as_array().map(Vec::len), Some(5), "{f}");
    }
}

#[test]
fn corrupt_jpeg_is_reported_and_the_rest_analysed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = std::fs::read(good_photo()).expect("fixture");
    // Keep the JPEG header, destroy the entropy-coded data.
    for b in bytes.iter_mut().skip(800).take(4000) {
        *b = 0xFF;
    }
    bytes.truncate(6000);
    let bad = dir.path().join("corrupt.jpg");
    std::fs::write(&bad, bytes).expect("write");
    assert_bad_input_reported(&bad, "decode");
}

#[test]
fn zero_byte_file_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("empty.jpg");
    std::fs::write(&bad, b"").expect("write");
    assert_bad_input_reported(&bad, "empty");
}

#[test]
fn truncated_png_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let png = dir.path().join("full.png");
    image::open(good_photo())
        .expect("fixture decodes")
        .save(&png)
        .expect("png written");
    let bytes = std::fs::read(&png).expect("read");
    let bad = dir.path().join("truncated.png");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).expect("write");
    assert_bad_input_reported(&bad, "decode");
}

#[test]
fn one_pixel_image_is_reported_as_too_small() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("pixel.png");
    image::RgbImage::new(1, 1).save(&bad).expect("write");
    assert_bad_input_reported(&bad, "smaller than the smallest face");
}

#[test]
fn png_claiming_100000_pixels_a_side_is_refused_before_decoding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("huge.png");
    std::fs::write(&bad, common::png_header(100_000, 100_000)).expect("write");
    assert_bad_input_reported(&bad, "limit");
}

#[test]
fn text_file_is_reported_as_not_an_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("notes.jpg");
    std::fs::write(&bad, "these are my notes, not a photo\n").expect("write");
    assert_bad_input_reported(&bad, "not a supported image");
}

#[test]
fn empty_folder_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("nothing-here");
    std::fs::create_dir(&empty).expect("mkdir");
    assert_bad_input_reported(&empty, "no image files");
}

#[test]
fn unreadable_file_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A dangling symlink cannot be read by anyone, root included (chmod 000 does not stop root).
    let bad = dir.path().join("gone.jpg");
    std::os::unix::fs::symlink(dir.path().join("deleted-target.jpg"), &bad).expect("symlink");
    assert_bad_input_reported(&bad, "no such file");
}

#[test]
fn missing_path_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_bad_input_reported(&dir.path().join("does-not-exist.jpg"), "no such file");
}

#[test]
fn folder_of_photos_gives_every_image_and_annotations_never_overwrite_originals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).expect("mkdir");
    for name in ["ageitgey_kit_with_rose.jpg", "linzaer_imgs_2.jpg"] {
        std::fs::copy(
            common::fixture(&format!("photos/{name}")),
            photos.join(name),
        )
        .expect("copy");
    }
    let original = std::fs::read(photos.join("linzaer_imgs_2.jpg")).expect("read");
    // Annotating into the input folder itself must not touch the originals.
    let out = emotrack(&[
        "analyze",
        "--format",
        "csv",
        "--annotate",
        p(&photos),
        p(&photos),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    assert!(csv.starts_with("path,face,x,y,w,h,detector_score,emotion,confidence,angry,"));
    // 2 faces in kit_with_rose + 4 in linzaer_imgs_2 (counted by eye).
    assert_eq!(csv.lines().count(), 1 + 6, "{csv}");
    assert_eq!(
        std::fs::read(photos.join("linzaer_imgs_2.jpg")).expect("read"),
        original
    );
    let annotated =
        image::open(photos.join("linzaer_imgs_2.emotrack.jpg")).expect("annotated image written");
    assert_eq!(annotated.width(), 1024);
}

#[test]
fn no_face_image_gives_an_empty_list_not_an_error() {
    let out = emotrack(&[
        "analyze",
        "--format",
        "jsonl",
        p(&common::fixture("no_faces/fer_no-faces_cartoon.jpg")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["faces"].as_array().map(Vec::len), Some(0));
}

#[test]
fn bad_settings_fail_at_start_with_advice() {
    let out = emotrack(&["analyze", "--min-face", "3", p(&good_photo())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("min_face"),
        "{}",
        text(&out.stderr)
    );
}

/// `emotrack eval --format json` on the split folder `data`, with `extra` flags, as JSON.
fn eval_json(data: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["eval", "--data", p(data), "--no-png", "--format", "json"];
    args.extend_from_slice(extra);
    let out = emotrack(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("eval --format json prints JSON")
}

#[test]
fn eval_runs_the_built_in_model_by_default() {
    let Some(fer) = common::fer2013_dir() else {
        return;
    };
    let val = fer.join("val");
    // On 140 val images, with `extra` flags.
    let eval = |extra: &[&str]| eval_json(&val, &[&["--limit", "140"], extra].concat());
    let report = eval(&[]);
    assert_eq!(report["model"], "built-in model");
    let accuracy = report["metrics"]["accuracy"]
        .as_f64()
        .expect("metrics.accuracy is a number");
    // The built-in model scores about 68% on val; chance is 1/7.
    assert!(accuracy > 0.45, "accuracy {accuracy} on 140 val images");
    assert_eq!(report["tta"], "none");

    // Ten-crop test-time augmentation: ten views of each image, the same count of images.
    let tta = eval(&["--tta", "ten-crop"]);
    assert_eq!(tta["tta"], "ten-crop");
    assert_eq!(tta["metrics"]["count"], report["metrics"]["count"]);
    let tta_accuracy = tta["metrics"]["accuracy"]
        .as_f64()
        .expect("metrics.accuracy is a number");
    assert!(
        tta_accuracy > 0.45,
        "accuracy {tta_accuracy} with ten-crop TTA"
    );

    // The built-in model against itself: the same predictions image by image, so nothing is
    // right for only one of them and McNemar's p is 1.
    let same = eval(&["--baseline"]);
    let baseline = &same["baseline"];
    assert_eq!(baseline["model"], "built-in model");
    assert_eq!(baseline["accuracy"], report["metrics"]["accuracy"]);
    assert_eq!(baseline["right_only_by_model"], 0);
    assert_eq!(baseline["right_only_by_baseline"], 0);
    assert_eq!(baseline["mcnemar_p"], 1.0);
    // With TTA the baseline sees the same views as the model.
    let same_tta = eval(&["--tta", "ten-crop", "--baseline"]);
    assert_eq!(same_tta["baseline"]["accuracy"], tta["metrics"]["accuracy"]);
    assert_eq!(same_tta["baseline"]["right_only_by_model"], 0);
}

#[test]
fn eval_writes_each_images_prediction_when_asked() {
    let Some(fer) = common::fer2013_dir() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("predictions.jsonl");
    let report = eval_json(
        &fer.join("val"),
        &["--limit", "70", "--predictions", p(&file)],
    );
    let text = std::fs::read_to_string(&file).expect("the predictions file is written");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(serde_json::json!(lines.len()), report["metrics"]["count"]);
    let mut right = 0;
    for line in &lines {
        let path = line["path"].as_str().expect("each line names its image");
        let label = line["label"].as_str().expect("and its true emotion");
        // The true emotion is the image's folder.
        assert!(
            path.contains(&format!("/{label}/")),
            "{path} labelled {label}"
        );
        let probabilities = line["probabilities"]
            .as_object()
            .expect("probabilities by emotion");
        assert_eq!(probabilities.len(), 7);
        let sum: f64 = probabilities.values().filter_map(|v| v.as_f64()).sum();
        assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to {sum}");
        let predicted = line["predicted"].as_str().expect("the predicted emotion");
        let top = probabilities
            .iter()
            .max_by(|a, b| a.1.as_f64().partial_cmp(&b.1.as_f64()).expect("numbers"))
            .map(|(k, _)| k.as_str());
        assert_eq!(top, Some(predicted));
        right += usize::from(predicted == label);
    }
    // The lines are the images the accuracy counts.
    let accuracy = report["metrics"]["accuracy"].as_f64().expect("accuracy");
    assert!((right as f64 / lines.len() as f64 - accuracy).abs() < 1e-9);
}

/// The project's accuracy target, checked where a user sees it: `emotrack eval` with the
/// built-in model on the whole val split scores at least 68%, the figure its config records.
#[test]
#[ignore = "slow: all 3,589 val images (~8 s in debug)"]
fn built_in_model_meets_the_accuracy_target_on_all_of_val() {
    let Some(fer) = common::fer2013_dir() else {
        return;
    };
    let report = eval_json(&fer.join("val"), &[]);
    assert_eq!(report["metrics"]["count"], 3589);
    let accuracy = report["metrics"]["accuracy"]
        .as_f64()
        .expect("metrics.accuracy is a number");
    assert!(
        accuracy >= 0.68,
        "the built-in model scores {accuracy} on val"
    );

    let (_, config) = emotrack::classify::embedded_model().expect("the built-in model's config");
    let recorded = f64::from(
        config
            .provenance
            .val_accuracy
            .expect("the built-in model's config records its val accuracy"),
    );
    // Within one image of the figure the embedded config records.
    assert!(
        (accuracy - recorded).abs() <= 1.0 / 3589.0,
        "eval gives {accuracy}, models/emotion.json records {recorded}"
    );
}

/// Asserts that `--model model` labels the media photo's two faces as the built-in model does,
/// each confidence within `tolerance`.
fn labels_the_photo_like_the_built_in_model(model: &Path, tolerance: f64) {
    let photo = good_photo();
    let analyze = |extra: &[&str]| {
        let mut args = vec!["analyze", "--format", "json", p(&photo)];
        args.extend_from_slice(extra);
        let out = emotrack(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("analyze prints JSON")
    };
    let (built_in, other) = (analyze(&[]), analyze(&["--model", p(model)]));
    let faces = |v: &serde_json::Value| v[0]["faces"].as_array().cloned().unwrap_or_default();
    assert_eq!(faces(&built_in).len(), 2);
    assert_eq!(faces(&other).len(), 2);
    for (a, b) in faces(&built_in).iter().zip(faces(&other)) {
        assert_eq!(a["label"], b["label"]);
        let (x, y) = (a["confidence"].as_f64(), b["confidence"].as_f64());
        assert!(
            matches!((x, y), (Some(x), Some(y)) if (x - y).abs() < tolerance),
            "{a} vs {b}"
        );
    }
}

#[test]
fn exported_onnx_model_analyses_photos_like_the_built_in_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let onnx = dir.path().join("emotion.onnx");
    let out = emotrack(&["export", "--onnx", p(&onnx)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        onnx.with_extension("json").is_file(),
        "config written beside it"
    );

    // Within the models' difference plus the 4-decimal rounding of the JSON.
    labels_the_photo_like_the_built_in_model(&onnx, 2e-4);

    let out = emotrack(&["export", "--onnx", p(&dir.path().join("emotion.bin"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("must end in .onnx"));
}

#[test]
fn float16_export_is_half_the_size_and_labels_photos_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let half = dir.path().join("emotion16.safetensors");
    let model = common::workspace_root().join("models/emotion.safetensors");
    let out = emotrack(&["export", "--model", p(&model), "--safetensors", p(&half)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let size = |f: &std::path::Path| std::fs::metadata(f).expect("file written").len() as f64;
    let ratio = size(&half) / size(&model);
    assert!(
        (0.45..0.55).contains(&ratio),
        "float16 file is {ratio:.3} of float32"
    );
    assert!(
        half.with_extension("json").is_file(),
        "config written beside it"
    );

    labels_the_photo_like_the_built_in_model(&half, 5e-3);

    // The built-in model has no file to read: the error says which to name.
    let out = emotrack(&["export", "--safetensors", p(&half)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--model"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn model_flag_takes_a_run_folder_and_names_a_folder_without_a_model() {
    // A training run folder holds its exported model as model.safetensors + model.json.
    let run = tempfile::tempdir().expect("tempdir");
    let models = common::workspace_root().join("models");
    for (from, to) in [
        ("emotion.safetensors", "model.safetensors"),
        ("emotion.json", "model.json"),
    ] {
        std::fs::copy(models.join(from), run.path().join(to)).expect("copy the built-in model");
    }
    let photo = good_photo();
    let analyze = |extra: &[&str]| {
        let mut args = vec![
            "analyze",
            "--format",
            "json",
            "--detector",
            "haar",
            p(&photo),
        ];
        args.extend_from_slice(extra);
        emotrack(&args)
    };
    let (built_in, from_run) = (analyze(&[]), analyze(&["--model", p(run.path())]));
    assert!(from_run.status.success(), "{}", text(&from_run.stderr));
    assert_eq!(text(&built_in.stdout), text(&from_run.stdout));

    let empty = tempfile::tempdir().expect("tempdir");
    let out = analyze(&["--model", p(empty.path())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is a folder without model.safetensors"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_model_config_with_a_zero_stride_or_width_is_refused_naming_the_field() {
    // Each of these used to pass validation and reach an assert in the runtime (a backtrace).
    let models = common::workspace_root().join("models");
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(models.join("emotion.json")).expect("the built-in config"),
    )
    .expect("JSON");
    let photo = good_photo();
    for (pointer, field) in [
        ("/architecture/stem_stride", "architecture.stem_stride"),
        ("/architecture/stem_channels", "architecture.stem_channels"),
        ("/architecture/strides/1", "architecture.strides[1]"),
        ("/architecture/widths/0", "architecture.widths[0]"),
        ("/architecture/blocks/2", "architecture.blocks[2]"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(
            models.join("emotion.safetensors"),
            dir.path().join("m.safetensors"),
        )
        .expect("copy the weights");
        let mut broken = config.clone();
        *broken.pointer_mut(pointer).expect("the field exists") = 0.into();
        std::fs::write(dir.path().join("m.json"), broken.to_string()).expect("write");
        let out = emotrack(&[
            "analyze",
            "--model",
            p(&dir.path().join("m.safetensors")),
            p(&photo),
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{field}: {stderr}");
        assert!(stderr.contains(field), "{field}: {stderr}");
        assert!(!stderr.contains("panicked"), "{field}: {stderr}");
    }
}

#[test]
fn a_phone_photo_stored_sideways_is_analysed_upright() {
    // What a phone writes for a portrait shot: the pixels turned 90° counter-clockwise, and an
    // EXIF orientation of 6 saying to turn them back. The faces must be those of the upright
    // photo, in its coordinates.
    let Some(media) = common::media_dir() else {
        return;
    };
    let upright = image::open(media.join("photos/ageitgey_two_people.jpg"))
        .expect("decodes")
        .to_rgb8();
    let dir = tempfile::tempdir().expect("tempdir");
    let encode = |img: &image::RgbImage| {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(img)
            .expect("encodes");
        jpeg
    };
    let plain = dir.path().join("upright.jpg");
    std::fs::write(&plain, encode(&upright)).expect("write");
    let sideways = dir.path().join("phone.jpg");
    let stored = image::imageops::rotate270(&upright);
    std::fs::write(
        &sideways,
        common::with_exif_orientation(&encode(&stored), 6),
    )
    .expect("write");
    let out = emotrack(&["analyze", "--format", "json", p(&plain), p(&sideways)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let (a, b) = (&v[0], &v[1]);
    assert_eq!(
        (b["width"].as_u64(), b["height"].as_u64()),
        (a["width"].as_u64(), a["height"].as_u64())
    );
    let faces = |r: &serde_json::Value| {
        let mut f: Vec<(String, f64, f64)> = r["faces"]
            .as_array()
            .expect("faces")
            .iter()
            .map(|f| {
                let x = f["box"]["x"].as_f64().expect("x");
                let y = f["box"]["y"].as_f64().expect("y");
                (f["label"].as_str().expect("label").to_owned(), x, y)
            })
            .collect();
        f.sort_by(|p, q| p.1.total_cmp(&q.1));
        f
    };
    let (fa, fb) = (faces(a), faces(b));
    assert_eq!(fa.len(), 2, "two people");
    assert_eq!(fa.len(), fb.len(), "{fa:?} vs {fb:?}");
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(x.0, y.0, "same label: {fa:?} vs {fb:?}");
        assert!(
            (x.1 - y.1).abs() < 8.0 && (x.2 - y.2).abs() < 8.0,
            "same place: {fa:?} vs {fb:?}"
        );
    }
}

/// `emotrack calibrate --json` with `extra` flags on the val split, as JSON.
fn calibrate_json(val: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["calibrate", "--data", p(val), "--json"];
    args.extend_from_slice(extra);
    let out = emotrack(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("calibrate --json prints JSON")
}

/// Issue 35: a temperature fitted on one half of val calibrates the other half without
/// changing the accuracy, and `--write` stores the whole split's fit in the model's config,
/// which every later run of the model then uses.
#[test]
#[ignore = "slow: all 3,589 val images, twice"]
fn calibrate_fits_a_temperature_on_held_out_halves_and_writes_it() {
    let Some(fer) = common::fer2013_dir() else {
        return;
    };
    let val = fer.join("val");
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("emotion.safetensors");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    std::fs::copy(repo.join("emotion.safetensors"), &model).expect("copy weights");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("emotion.json")).expect("config"))
            .expect("JSON");
    // Start uncalibrated.
    config
        .as_object_mut()
        .expect("object")
        .remove("temperature");
    std::fs::write(model.with_extension("json"), config.to_string()).expect("write config");

    let report = calibrate_json(&val, &["--model", p(&model), "--write"]);
    let fits = report["fits"].as_array().expect("fits");
    assert_eq!(fits.len(), 3);
    for fit in fits {
        let f = |k: &str| fit[k].as_f64().expect(k);
        assert_eq!(f("accuracy_before"), f("accuracy_after"), "{fit}");
        assert!(f("nll_after") < f("nll_before"), "{fit}");
        assert!(f("ece_after") < 0.045, "{fit}");
        assert!((0.01..0.04).contains(&f("ece_noise_floor")), "{fit}");
    }
    let written: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model.with_extension("json")).expect("config"),
    )
    .expect("JSON");
    let t = written["temperature"]
        .as_f64()
        .expect("a temperature is written");
    assert!((t - fits[2]["temperature"].as_f64().expect("t")).abs() < 1e-3);

    // The model now gives the calibrated probabilities: eval measures the fitted ECE, and
    // fitting again finds nothing left to change.
    let eval = eval_json(&val, &["--model", p(&model)]);
    let ece = eval["metrics"]["ece"].as_f64().expect("ece");
    assert!((ece - fits[2]["ece_after"].as_f64().expect("ece")).abs() < 1e-3);
    let png = dir.path().join("calibration.png");
    let again = calibrate_json(&val, &["--model", p(&model), "--plot", p(&png)]);
    let refit = again["fits"][2]["temperature"].as_f64().expect("t");
    assert!((refit - t).abs() < 2e-3, "{refit} vs {t}");

    // --plot: each half's curve, in the model's own temperatures, holds at its dot the
    // table's figures for that half, and dips to the lowest ECE the table gives there.
    let curves = again["curves"].as_array().expect("curves with --plot");
    for (curve, fit) in curves.iter().zip([&again["fits"][1], &again["fits"][0]]) {
        assert_eq!(curve["measured_on"], fit["measured_on"]);
        let dot = &curve["held_out"];
        let close = |a: &serde_json::Value, b: &serde_json::Value| {
            (a.as_f64().expect("number") - b.as_f64().expect("number")).abs() < 1e-4
        };
        assert!(
            close(&dot["temperature"], &fit["temperature"]),
            "{dot} vs {fit}"
        );
        assert!(close(&dot["ece"], &fit["ece_after"]), "{dot} vs {fit}");
        let points = curve["points"].as_array().expect("points");
        let ts: Vec<f64> = points
            .iter()
            .map(|q| q["temperature"].as_f64().expect("t"))
            .collect();
        assert!(
            (ts[0] - 0.5).abs() < 1e-4 && (ts[ts.len() - 1] - 1.5).abs() < 1e-4,
            "{ts:?}"
        );
        let lowest = points
            .iter()
            .map(|q| q["ece"].as_f64().expect("ece"))
            .fold(f64::INFINITY, f64::min);
        let best = fit["best_ece"].as_f64().expect("best");
        assert!(
            lowest >= best - 0.005 && lowest < best + 0.01,
            "{lowest} vs {best}"
        );
    }
    let image = image::open(&png).expect("a PNG");
    assert_eq!((image.width(), image.height()), (760, 560));
}

#[test]
fn calibrate_refuses_to_rewrite_the_built_in_model_or_a_missing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = emotrack(&["calibrate", "--data", p(dir.path()), "--write"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--model"),
        "{}",
        text(&out.stderr)
    );
    let missing = dir.path().join("nope.safetensors");
    let out = emotrack(&["calibrate", "--data", p(dir.path()), "--model", p(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
}

/// The Swin option shipped in `models/` (issue 36), checked where a user runs it: `--model
/// models/swin.safetensors` (float16) on all of val scores the accuracy its config records, and
/// the ResNet, the default, scores more on the same images.
#[test]
#[ignore = "slow: all 3,589 val images through the Swin (~15 s in debug)"]
fn shipped_swin_option_scores_its_recorded_accuracy_below_the_default() {
    let Some(fer) = common::fer2013_dir() else {
        return;
    };
    let swin = common::workspace_root().join("models/swin.safetensors");
    let report = eval_json(&fer.join("val"), &["--model", p(&swin), "--baseline"]);
    assert_eq!(report["metrics"]["count"], 3589);
    let accuracy = report["metrics"]["accuracy"].as_f64().expect("accuracy");
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(swin.with_extension("json")).expect("models/swin.json"),
    )
    .expect("models/swin.json is JSON");
    let recorded = config["provenance"]["val_accuracy"]
        .as_f64()
        .expect("models/swin.json records its val accuracy");
    assert!(
        (accuracy - recorded).abs() <= 1.0 / 3589.0,
        "eval gives {accuracy}, models/swin.json records {recorded}"
    );
    assert_eq!(config["architecture"]["kind"], "swin");
    let resnet = report["baseline"]["accuracy"].as_f64().expect("baseline");
    assert!(resnet > accuracy, "ResNet {resnet} vs Swin {accuracy}");
}
