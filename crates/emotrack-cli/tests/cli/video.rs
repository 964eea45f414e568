//! `emotrack video` end to end: every output on the fixture clip, Ctrl-C, and bad inputs
//! (each made at test time from the real fixture clip). Needs `ffmpeg`/`ffprobe` on PATH.
//!
//! `tests/fixtures/videos/fer_test.mp4`: one woman in all 115 frames, no audio (see
//! tests/fixtures/README.md).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, FER_FRAMES, fer_clip, ffmpeg, streams};
use crate::util::{EXIT_PARTIAL_FAILURE, emotrack, p, text};

fn jsonl_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("the JSONL file exists")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn every_output_is_written_for_a_clip_with_one_face() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mp4, jsonl, csv, png) = (
        dir.path().join("annotated.mp4"),
        dir.path().join("faces.jsonl"),
        dir.path().join("tracks.csv"),
        dir.path().join("timeline.png"),
    );
    let clip = fer_clip();
    let out = emotrack(&[
        "video",
        p(&clip),
        "--out",
        p(&mp4),
        "--jsonl",
        p(&jsonl),
        "--csv",
        p(&csv),
        "--timeline",
        p(&png),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(
        !stderr.contains("ETA"),
        "no progress bar when not a terminal: {stderr}"
    );
    assert!(stdout.contains("115 frames analysed"), "{stdout}");
    assert!(stdout.contains("1 track"), "{stdout}");

    // The annotated video: every input frame, no audio (the input has none).
    assert_eq!(streams(&mp4), vec![("video".to_owned(), FER_FRAMES)]);

    // JSONL: one record per frame per face, one id, frames in order, named probabilities.
    let records = jsonl_records(&jsonl);
    assert!(
        records.len() as u64 >= FER_FRAMES * 8 / 10,
        "{}",
        records.len()
    );
    let frames: Vec<u64> = records.iter().filter_map(|r| r["frame"].as_u64()).collect();
    assert!(
        frames.windows(2).all(|w| w[0] < w[1]),
        "one face per frame, in order"
    );
    for r in &records {
        assert_eq!(r["id"], 1, "{r}");
        for key in [
            "time",
            "box",
            "detected_box",
            "detector_score",
            "probabilities",
            "smoothed",
            "label",
            "confidence",
            "vibe",
        ] {
            assert!(!r[key].is_null(), "{key} missing in {r}");
        }
        let label = r["label"].as_str().expect("label");
        assert_eq!(r["confidence"], r["smoothed"][label], "{r}");
        let sum: f64 = r["smoothed"]
            .as_object()
            .map(|m| m.values().filter_map(serde_json::Value::as_f64).sum())
            .unwrap_or(0.0);
        assert!((sum - 1.0).abs() < 1e-2, "probabilities sum to 1: {r}");
    }

    // CSV: a header and one track whose shares sum to 1.
    let csv = std::fs::read_to_string(&csv).expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[0].starts_with(
            "id,first_frame,last_frame,first_seen_s,last_seen_s,frames,dominant,angry"
        )
    );
    let cells: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(cells[0], "1");
    assert_eq!(cells[5].parse::<usize>().ok(), Some(records.len()));
    let shares: f64 = cells[7..]
        .iter()
        .filter_map(|c| c.parse::<f64>().ok())
        .sum();
    assert!((shares - 1.0).abs() < 1e-3, "{}", lines[1]);

    // The timeline is a PNG with one lane.
    let img = image::open(&png).expect("the timeline is a readable PNG");
    assert_eq!(img.width(), 1200);
}

#[test]
fn jsonl_can_stream_to_stdout_with_sampling() {
    let clip = fer_clip();
    let out = emotrack(&[
        "video",
        p(&clip),
        "--detector",
        "haar",
        "--fps",
        "5",
        "--jsonl",
        "-",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["frame"].as_u64().is_some_and(|f| f < 24), "{v}");
    }
    assert!(
        stderr.contains("frames analysed"),
        "the summary goes to stderr: {stderr}"
    );
}

/// Runs `emotrack video CLIP` into a video, a JSONL file and a CSV, sends `signal` (`INT`,
/// `TERM`) once some frames are written, and checks what the stopped run leaves: exit code
/// `code`, a playable video of exactly the frames done, JSONL lines that are whole and cover
/// only those frames, and a CSV of them.
fn stopped_midway_by(signal: &str, code: i32, clip: &Path, extra: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mp4, jsonl, csv) = (
        dir.path().join("a.mp4"),
        dir.path().join("a.jsonl"),
        dir.path().join("a.csv"),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_emotrack"))
        .args(["video", p(clip), "--out", p(&mp4), "--jsonl", p(&jsonl)])
        .args(["--csv", p(&csv)])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    // Wait until some frames are done (the JSONL buffer has been written out once).
    let start = Instant::now();
    while std::fs::read_to_string(&jsonl).map_or(0, |s| s.lines().count()) < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no frame was written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let out = child.wait_with_output().expect("exits");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains("stopping"), "{stderr}");
    let done: u64 = stderr
        .split("stopped after ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in {stderr}"));
    assert!(done > 0, "{stderr}");
    let s = streams(&mp4);
    assert_eq!(
        s.first(),
        Some(&("video".to_owned(), done)),
        "a playable video of the frames done: {s:?}"
    );
    assert!(s[1..].iter().all(|(kind, _)| kind == "audio"), "{s:?}");
    let records = jsonl_records(&jsonl);
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|r| r["frame"].as_u64().is_some_and(|f| f < done)),
        "records of the frames done only"
    );
    let csv = std::fs::read_to_string(&csv).expect("the CSV is written");
    assert!(csv.starts_with("id,") && csv.ends_with('\n'), "{csv}");
}

#[test]
fn ctrl_c_finishes_a_playable_video_of_the_frames_done_and_exits_130() {
    let clip = fer_clip();
    stopped_midway_by("INT", 130, &clip, &[]);
}

#[test]
#[ignore = "slow: a 1080p video until stopped"]
fn sigterm_finishes_the_outputs_of_the_frames_done_and_exits_143() {
    let Some(media) = common::media_dir() else {
        return;
    };
    let clip = media.join("videos/facenet_pytorch_video.mp4");
    stopped_midway_by("TERM", 143, &clip, &[]);
    // The fixture clip too, with the fast detector.
    stopped_midway_by("TERM", 143, &fer_clip(), &["--detector", "haar"]);
}

#[test]
fn a_full_disk_fails_the_run_and_deletes_the_output_it_could_not_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = |name: &str| dir.path().join(name);
    let clip = fer_clip();
    let run = |out: &Path, jsonl: &Path, csv: &Path| {
        emotrack(&[
            "video",
            p(&clip),
            "--detector",
            "haar",
            "--duration",
            "1",
            "--out",
            p(out),
            "--jsonl",
            p(jsonl),
            "--csv",
            p(csv),
        ])
    };
    // /dev/full answers every write with ENOSPC, as a full disk does.
    std::os::unix::fs::symlink("/dev/full", at("full.mp4")).expect("links");
    let out = run(&at("full.mp4"), &at("a.jsonl"), &at("a.csv"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains("the disk is full"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        std::fs::symlink_metadata(at("full.mp4")).is_err(),
        "the unfinished video is deleted"
    );
    jsonl_records(&at("a.jsonl"));

    std::os::unix::fs::symlink("/dev/full", at("full.jsonl")).expect("links");
    let out = run(&at("b.mp4"), &at("full.jsonl"), &at("b.csv"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        std::fs::symlink_metadata(at("full.jsonl")).is_err(),
        "the unfinished JSONL is deleted"
    );
    let s = streams(&at("b.mp4"));
    assert!(
        s.len() == 1 && s[0].1 > 0,
        "the video of the frames before plays: {s:?}"
    );
}

#[test]
fn a_truncated_input_is_refused_before_any_output_is_made() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = |name: &str| dir.path().join(name);
    // fer_test.mp4 has its index at the end: cut in half it cannot be read at all.
    let bytes = std::fs::read(fer_clip()).expect("read");
    std::fs::write(at("cut.mp4"), &bytes[..bytes.len() / 2]).expect("write");
    let out = emotrack(&[
        "video",
        p(&at("cut.mp4")),
        "--out",
        p(&at("a.mp4")),
        "--jsonl",
        p(&at("a.jsonl")),
        "--csv",
        p(&at("a.csv")),
        "--timeline",
        p(&at("a.png")),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("lists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["cut.mp4"], "no output is made");
}

#[test]
#[ignore = "slow: 275 frames"]
fn the_annotated_video_keeps_the_input_audio() {
    let Some(media) = common::media_dir() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("hamilton.mp4");
    let clip = media.join("videos/short_hamilton_clip.mp4");
    let out = emotrack(&["video", p(&clip), "--detector", "haar", "--out", p(&mp4)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = streams(&mp4);
    assert_eq!(s.first(), Some(&("video".to_owned(), 275)), "{s:?}");
    assert_eq!(s.get(1).map(|a| a.0.as_str()), Some("audio"), "{s:?}");
}

/// Runs `emotrack video` on a bad input: exit code 1, the input named on stderr with
/// `expect` in the message, no panic, nothing on stdout.
fn assert_refused(input: &str, expect: &str) {
    let out = emotrack(&["video", input, "--detector", "haar"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(line.contains(input), "names the input: {line}");
    assert!(
        line.to_lowercase().contains(expect),
        "expected {expect:?} in {line}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_inputs_are_refused_by_name_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = |name: &str| dir.path().join(name);
    let clip = fer_clip();

    assert_refused(p(&at("missing.mp4")), "no such file");

    std::fs::write(at("empty.mp4"), b"").expect("write");
    assert_refused(p(&at("empty.mp4")), "empty");

    std::fs::write(at("notes.mp4"), "not a video at all\n").expect("write");
    assert_refused(p(&at("notes.mp4")), "not a video");

    // fer_test.mp4 has its index at the end: half of it has no index.
    let bytes = std::fs::read(&clip).expect("read");
    std::fs::write(at("half.mp4"), &bytes[..bytes.len() / 2]).expect("write");
    assert_refused(p(&at("half.mp4")), "not a video");

    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        "-c:a",
        "aac",
        p(&at("tone.m4a")),
    ]);
    assert_refused(p(&at("tone.m4a")), "audio only");

    ffmpeg(&["-i", p(&clip), "-c", "copy", p(&at("ok.mkv"))]);
    let mkv = std::fs::read(at("ok.mkv")).expect("read");
    let id = b"V_MPEG4/ISO/AVC";
    let pos = mkv
        .windows(id.len())
        .position(|w| w == id)
        .expect("codec id");
    let mut patched = mkv.clone();
    patched[pos..pos + id.len()].copy_from_slice(b"V_EMOTRACK/NONE");
    std::fs::write(at("unknown.mkv"), patched).expect("write");
    assert_refused(p(&at("unknown.mkv")), "codec is unknown");

    assert_refused("/dev/video63", "camera does not exist");
}

#[test]
fn a_truncated_streamable_file_ends_early_with_valid_outputs_and_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = dir.path().join("fs.mp4");
    let clip = fer_clip();
    ffmpeg(&[
        "-i",
        p(&clip),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        p(&whole),
    ]);
    let bytes = std::fs::read(&whole).expect("read");
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let (mp4, jsonl) = (dir.path().join("a.mp4"), dir.path().join("a.jsonl"));
    let out = emotrack(&[
        "video",
        p(&cut),
        "--detector",
        "haar",
        "--out",
        p(&mp4),
        "--jsonl",
        p(&jsonl),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_PARTIAL_FAILURE), "{stderr}");
    assert!(
        stderr.contains("broke off") && stderr.contains("of 115 frames"),
        "{stderr}"
    );
    let s = streams(&mp4);
    assert_eq!(s.len(), 1);
    assert!(s[0].1 > 10 && s[0].1 < FER_FRAMES, "{s:?}");
    jsonl_records(&jsonl);
}

#[test]
fn a_stream_that_stops_sending_ends_with_a_warning_and_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ts = dir.path().join("clip.ts");
    let clip = fer_clip();
    ffmpeg(&["-i", p(&clip), "-c", "copy", "-f", "mpegts", p(&ts)]);
    let data = std::fs::read(&ts).expect("read");
    // An HTTP server: the first connection (the probe) gets the whole stream, the next one
    // half of it, then nothing while the connection stays open.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://127.0.0.1:{}/live",
        listener.local_addr().expect("addr").port()
    );
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let data = data.clone();
            std::thread::spawn(move || {
                let _ = conn.read(&mut [0u8; 4096]);
                let head = "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n\r\n";
                let end = if n == 0 { data.len() } else { data.len() / 2 };
                if conn.write_all(head.as_bytes()).is_ok() && conn.write_all(&data[..end]).is_ok() {
                    std::thread::sleep(Duration::from_secs(30));
                }
            });
        }
    });
    let mp4 = dir.path().join("a.mp4");
    let out = emotrack(&[
        "video",
        &url,
        "--detector",
        "haar",
        "--stall-timeout",
        "2",
        "--out",
        p(&mp4),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_PARTIAL_FAILURE), "{stderr}");
    assert!(stderr.contains("sent no frame for 2 s"), "{stderr}");
    assert_eq!(streams(&mp4).len(), 1, "the annotated video is readable");
}

#[test]
fn bad_flags_and_output_names_are_refused_before_decoding() {
    let clip = fer_clip();
    let out = emotrack(&["video", p(&clip), "--detect-every", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("detect_every"),
        "{}",
        text(&out.stderr)
    );
    let out = emotrack(&["video", p(&clip), "--ema", "1.5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("EMA alpha is 1.5"),
        "{}",
        text(&out.stderr)
    );
    let out = emotrack(&["video", p(&clip), "--ema", "0.2", "--window", "4"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap refuses both smoothings at once"
    );
    let out = emotrack(&["video", p(&clip), "--out", "/tmp/x.webm"]);
    assert!(text(&out.stderr).contains(".mp4"), "{}", text(&out.stderr));
    let out = emotrack(&["video", p(&clip), "--csv", "/nonexistent/dir/x.csv"]);
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bench_smoothing_help_explains_each_measure() {
    let out = emotrack(&["bench", "smoothing", "--help"]);
    let help = text(&out.stdout);
    for needle in [
        "label changes/min",
        "shortest",
        "flickers",
        "second difference",
        "sustained raw change",
        "0.3 s",
        "--sweep",
    ] {
        assert!(help.contains(needle), "{needle:?} not in: {help}");
    }
}

#[test]
#[ignore = "slow: runs the benchmarks once on the fixture clip"]
fn the_video_benchmarks_print_their_tables() {
    let clip = fer_clip();
    let out = emotrack(&["bench", "smoothing", p(&clip), "--detector", "haar"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains("| fer_test.mp4 |") && stdout.contains("| all |"),
        "{stdout}"
    );
    // The sweep replays label settings on the same recording and draws the trade-off.
    let dir = tempfile::tempdir().expect("tempdir");
    let png = dir.path().join("sweep.png");
    let out = emotrack(&[
        "bench",
        "smoothing",
        p(&clip),
        "--detector",
        "haar",
        "--sweep",
        "--lag",
        p(&clip),
        "--plot",
        p(&png),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains("settings replayed") && stdout.contains("settings meet every target"),
        "{stdout}"
    );
    let plot = image::open(&png).expect("the plot is a PNG");
    assert!(plot.width() >= 600, "{}", plot.width());
    let out = emotrack(&["bench", "video", p(&clip), "--detectors", "haar,yunet"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for detector in ["haar", "yunet"] {
        assert!(
            stdout.contains(&format!("| fer_test.mp4 | {detector} | 1 | 115 |")),
            "{stdout}"
        );
    }
}

#[test]
#[ignore = "slow: times the three detectors on the fixture photos"]
fn the_detection_benchmark_times_every_detector() {
    let photos = common::fixture("photos");
    let out = emotrack(&["bench", "detect", p(&photos), "--seconds", "0"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Each detector on one thread and on all; YuNet finds the six faces (two and four,
    // counted by eye).
    for detector in ["haar", "mtcnn", "yunet"] {
        let row = format!("| {detector} (");
        assert_eq!(stdout.matches(&row).count(), 2, "{stdout}");
    }
    assert!(
        stdout.contains("| yunet (6 faces in 2 images) |"),
        "{stdout}"
    );
}

#[test]
fn the_classifier_benchmark_times_a_baseline_beside_the_model() {
    let out = emotrack(&[
        "bench",
        "classify",
        "--batch",
        "1,2",
        "--seconds",
        "0",
        "--baseline",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The built-in model's cost from its layout (models/README.md: 35.6 M).
    assert!(
        stdout.contains("built-in model, 35.6 M multiply-adds per face; baseline: built-in model"),
        "{stdout}"
    );
    // Every setting of the model, then of the baseline: 2 batches x 2 thread counts each.
    for role in ["model", "baseline"] {
        assert_eq!(
            stdout.matches(&format!("| {role} batch ")).count(),
            4,
            "{stdout}"
        );
    }
}

/// The four files `--out-dir` writes for each video.
const FOLDER_OUTPUTS: [&str; 4] = ["annotated.mp4", "faces.jsonl", "tracks.csv", "timeline.png"];

fn assert_folder_outputs(dir: &Path) {
    for name in FOLDER_OUTPUTS {
        assert!(
            dir.join(name).is_file(),
            "{name} missing in {}",
            dir.display()
        );
    }
    assert!(!jsonl_records(&dir.join("faces.jsonl")).is_empty());
}

/// Folders (video names) under `dir`, sorted.
fn folders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn out_dir_puts_a_videos_four_outputs_in_a_folder_named_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = fer_clip();
    let out = emotrack(&[
        "video",
        p(&clip),
        "--detector",
        "haar",
        "--duration",
        "1",
        "--out-dir",
        p(dir.path()),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(folders(dir.path()), ["fer_test"]);
    assert_folder_outputs(&dir.path().join("fer_test"));
}

#[test]
fn a_list_is_split_across_shards_each_video_into_its_own_folder() {
    let Some(media) = common::media_dir() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("videos.txt");
    let (fer, hamilton) = (
        media.join("videos/fer_test.mp4"),
        media.join("videos/short_hamilton_clip.mp4"),
    );
    std::fs::write(
        &list,
        format!("# two clips\n\n{}\n  {}  \n", p(&fer), p(&hamilton)),
    )
    .expect("write the list");
    let results = dir.path().join("results");
    let shard = |s: &str| {
        emotrack(&[
            "video",
            "--list",
            p(&list),
            "--shard",
            s,
            "--out-dir",
            p(&results),
            "--detector",
            "haar",
            "--duration",
            "1",
        ])
    };
    // Worker 1 of 2 takes the second video only (comments and blank lines do not count).
    let out = shard("1/2");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("shard 1/2 takes 1 of 2 videos"), "{stderr}");
    assert_eq!(folders(&results), ["short_hamilton_clip"]);
    assert!(text(&out.stdout).contains("short_hamilton_clip.mp4: "));
    // Worker 0 of 2 adds the first.
    let out = shard("0/2");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(folders(&results), ["fer_test", "short_hamilton_clip"]);
    assert_folder_outputs(&results.join("fer_test"));
    assert_folder_outputs(&results.join("short_hamilton_clip"));
}

#[test]
fn a_video_of_a_list_that_fails_is_named_and_the_others_are_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("videos.txt");
    let missing = dir.path().join("missing.mp4");
    let clip = fer_clip();
    std::fs::write(&list, format!("{}\n{}\n", p(&missing), p(&clip))).expect("write");
    let results = dir.path().join("results");
    let args = |list: &Path| {
        vec![
            "video".to_owned(),
            "--list".into(),
            p(list).into(),
            "--out-dir".into(),
            p(&results).into(),
            "--detector".into(),
            "haar".into(),
            "--duration".into(),
            "1".into(),
        ]
    };
    let run = |list: &Path| {
        let a = args(list);
        emotrack(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run(&list);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_PARTIAL_FAILURE), "{stderr}");
    assert!(stderr.contains("1 of 2 videos done"), "{stderr}");
    let failed = stderr
        .lines()
        .find(|l| l.starts_with("failed:"))
        .unwrap_or_else(|| panic!("no failed line: {stderr}"));
    assert!(failed.contains("missing.mp4 (line 1)"), "{failed}");
    assert_folder_outputs(&results.join("fer_test"));

    // Nothing could be done: exit code 1.
    let only_missing = dir.path().join("missing.txt");
    std::fs::write(&only_missing, format!("{}\n", p(&missing))).expect("write");
    let out = run(&only_missing);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("none of the 1 video could be analysed"),
        "{stderr}"
    );
}

#[test]
fn a_bad_shard_or_list_is_refused_and_an_empty_shard_is_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("videos.txt");
    let clip = fer_clip();
    std::fs::write(&list, format!("{}\n", p(&clip))).expect("write");
    let results = dir.path().join("results");
    let with_shard = |list: &Path, shard: &str| {
        emotrack(&[
            "video",
            "--list",
            p(list),
            "--shard",
            shard,
            "--out-dir",
            p(&results),
        ])
    };
    let out = with_shard(&list, "3/2");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--shard 3/2: INDEX must be below COUNT"),
        "{stderr}"
    );
    let out = with_shard(&list, "two");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("INDEX/COUNT"),
        "{}",
        text(&out.stderr)
    );

    // A list of one video has nothing for worker 1 of 2: done, nothing written.
    let out = with_shard(&list, "1/2");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("no video for shard 1/2"), "{stderr}");
    assert!(!results.exists());

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "# nothing yet\n\n").expect("write");
    let out = with_shard(&empty, "0/1");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("names no video"),
        "{}",
        text(&out.stderr)
    );

    // --shard needs --list, and --list needs --out-dir (clap: usage error).
    let out = emotrack(&["video", p(&clip), "--shard", "0/2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = emotrack(&["video", "--list", p(&list)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
