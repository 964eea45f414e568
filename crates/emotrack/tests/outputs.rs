//! `VideoOutputs` on real clips: every output of a run in one folder, outputs finished when the
//! run stops early or an output fails, and the annotated video left out when no frame came.
//!
//! `short_hamilton_clip.mp4` (shared media; 640x360, 29.97 fps, one performer on stage, AAC
//! audio) is read for its first second; `tests/fixtures/videos/fer_test.mp4` (one woman in all
//! 115 frames, no audio) for the rest. These tests need `ffmpeg` and `ffprobe` on PATH.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use emotrack::report::FaceRecord;
use emotrack::video::{
    DecodeOptions, EndReason, JsonlTarget, OutputTargets, Source, VideoInput, VideoOutputs,
    VideoPipeline,
};
use emotrack::{Analyzer, AnalyzerConfig, DetectorBackend, DetectorConfig};

use common::{fer_clip, streams};

/// Haar: the fastest detector; these tests are about the outputs, not the faces.
fn analyzer() -> Analyzer {
    Analyzer::new(AnalyzerConfig {
        detector: DetectorConfig {
            backend: DetectorBackend::Haar(Default::default()),
            ..DetectorConfig::default()
        },
        ..AnalyzerConfig::default()
    })
    .expect("the built-in models load")
}

fn open(path: &Path, seconds: f64) -> VideoInput {
    let options = DecodeOptions {
        duration: Some(seconds),
        ..DecodeOptions::default()
    };
    VideoInput::open(Source::File(path.to_path_buf()), options).expect("the clip opens")
}

fn records(path: &Path) -> Vec<FaceRecord> {
    std::fs::read_to_string(path)
        .expect("the JSONL file exists")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn a_folder_gets_all_four_outputs_of_a_real_clip() {
    let Some(media) = common::media_dir() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("jobs/hamilton");
    let input = open(&media.join("videos/short_hamilton_clip.mp4"), 1.0);
    let analyzer = analyzer();
    let pipeline = VideoPipeline::new(&analyzer, Default::default()).expect("valid config");
    let mut outputs = VideoOutputs::in_folder(&folder, &input).expect("outputs start");
    let stats = pipeline
        .run(&input, &AtomicBool::new(false), |image, report| {
            outputs.push(image, report)
        })
        .expect("runs");
    let finished = outputs.finish();
    assert!(finished.problems.is_empty(), "{:?}", finished.problems);
    let names: Vec<_> = finished
        .written
        .iter()
        .map(|p| p.strip_prefix(&folder).expect("in the folder").to_owned())
        .collect();
    assert_eq!(
        names,
        ["annotated.mp4", "faces.jsonl", "tracks.csv", "timeline.png"].map(Path::new)
    );

    // Every frame in the video, with the input's audio.
    let s = streams(&folder.join("annotated.mp4"));
    assert_eq!(
        s.first(),
        Some(&("video".to_owned(), stats.analysed)),
        "{s:?}"
    );
    assert_eq!(s.get(1).map(|a| a.0.as_str()), Some("audio"), "{s:?}");

    // The JSONL reads back as the library's records, one per face shown, in frame order.
    let records = records(&folder.join("faces.jsonl"));
    let shown: u64 = finished.summary.tracks().map(|t| t.frames).sum();
    assert!(shown > 0, "the performer is tracked");
    assert_eq!(records.len() as u64, shown);
    assert!(records.windows(2).all(|w| w[0].frame <= w[1].frame));
    for r in &records {
        let smoothed = r
            .face
            .smoothed
            .expect("tracked faces have smoothed probabilities");
        assert_eq!(r.face.confidence, smoothed.get(r.face.label));
        assert!(r.face.id.is_some() && r.face.detected_box.is_some());
    }

    let csv = std::fs::read_to_string(folder.join("tracks.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 1 + finished.summary.len(), "{csv}");
    image::open(folder.join("timeline.png")).expect("the timeline is a PNG");
}

#[test]
fn a_stopped_run_still_finishes_every_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = open(&fer_clip(), 10.0);
    let analyzer = analyzer();
    let pipeline = VideoPipeline::new(&analyzer, Default::default()).expect("valid config");
    let mut outputs = VideoOutputs::in_folder(dir.path(), &input).expect("outputs start");
    let stop = AtomicBool::new(false);
    let mut pushed = 0;
    let stats = pipeline
        .run(&input, &stop, |image, report| {
            pushed += 1;
            if pushed == 10 {
                stop.store(true, Ordering::SeqCst);
            }
            outputs.push(image, report)
        })
        .expect("runs");
    assert_eq!(stats.end, EndReason::Stopped);
    let finished = outputs.finish();
    assert!(finished.problems.is_empty(), "{:?}", finished.problems);
    assert_eq!(finished.written.len(), 4);
    assert_eq!(
        streams(&dir.path().join("annotated.mp4")),
        vec![("video".to_owned(), stats.analysed)],
        "a playable video of the frames done"
    );
    assert!(stats.analysed < 115);
}

#[test]
fn an_output_that_cannot_be_written_is_reported_with_its_path_and_the_others_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gone = dir.path().join("gone");
    std::fs::create_dir(&gone).expect("mkdir");
    let targets = OutputTargets {
        video: Some(dir.path().join("a.mp4")),
        jsonl: Some(JsonlTarget::File(dir.path().join("a.jsonl"))),
        csv: Some(gone.join("tracks.csv")),
        timeline: None,
    };
    let input = open(&fer_clip(), 0.5);
    let analyzer = analyzer();
    let pipeline = VideoPipeline::new(&analyzer, Default::default()).expect("valid config");
    let mut outputs = VideoOutputs::create(targets, &input).expect("outputs start");
    // The CSV's folder disappears during the run.
    std::fs::remove_dir(&gone).expect("rmdir");
    pipeline
        .run(&input, &AtomicBool::new(false), |image, report| {
            outputs.push(image, report)
        })
        .expect("runs");
    let finished = outputs.finish();
    assert_eq!(finished.problems.len(), 1, "{:?}", finished.problems);
    let problem = &finished.problems[0];
    assert_eq!(problem.path, gone.join("tracks.csv"));
    assert!(
        problem.to_string().contains("tracks.csv was not finished"),
        "{problem}"
    );
    assert_eq!(
        finished.written,
        [dir.path().join("a.mp4"), dir.path().join("a.jsonl")]
    );
    records(&dir.path().join("a.jsonl"));
}

#[test]
fn without_any_frame_the_video_is_left_out_and_no_file_remains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = open(&fer_clip(), 1.0);
    let outputs = VideoOutputs::in_folder(dir.path(), &input).expect("outputs start");
    let finished = outputs.finish();
    assert!(finished.problems.is_empty(), "{:?}", finished.problems);
    assert_eq!(finished.not_written, [dir.path().join("annotated.mp4")]);
    assert!(!dir.path().join("annotated.mp4").exists());
    assert_eq!(finished.written.len(), 3, "JSONL, CSV and timeline");
}

#[test]
fn outputs_in_a_missing_folder_are_refused_before_anything_starts() {
    let input = open(&fer_clip(), 1.0);
    let targets = OutputTargets {
        jsonl: Some(JsonlTarget::File("/nonexistent/emotrack/a.jsonl".into())),
        ..OutputTargets::default()
    };
    let err = VideoOutputs::create(targets, &input).expect_err("no such folder");
    assert_eq!(err.input(), Some("/nonexistent/emotrack/a.jsonl"));
    assert!(err.to_string().contains("does not exist"), "{err}");
}
