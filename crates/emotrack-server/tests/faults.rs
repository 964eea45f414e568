//! Faults on a real listener: clients that vanish mid-upload, mid-download or mid-frame,
//! garbage on a WebSocket, a job's input cut short while it runs, a full disk and a shutdown
//! during a job. Each time the server answers the next client, and no job, temporary file or
//! complete-looking partial output is left behind.
//!
//! Clips are made at test time from the real fixture `fer_test.mp4` (one face, 115 frames).

#[path = "../../emotrack/tests/common/mod.rs"]
mod common;
mod running;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use emotrack::video::{DecodeOptions, Source, VideoInput};
use emotrack_server::jobs::FILES;
use futures_util::SinkExt;
use running::{PATIENCE, Running, Ws, close_frame, files_under, next_json, wait_for};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// The fixture clip, or its first `frames` frames re-encoded into `dir`.
fn clip(dir: &Path, frames: Option<u32>) -> PathBuf {
    let fer = common::fer_clip();
    let Some(n) = frames else {
        return fer;
    };
    let out = dir.join(format!("fer_{n}.mp4"));
    common::ffmpeg(&[
        "-i",
        fer.to_str().expect("UTF-8"),
        "-frames:v",
        &n.to_string(),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        out.to_str().expect("UTF-8"),
    ]);
    out
}

/// The fixture's first frame as a JPEG.
fn jpeg_frame() -> Vec<u8> {
    let input = VideoInput::open(Source::File(common::fer_clip()), DecodeOptions::default())
        .expect("the video opens");
    let decoder = input.decoder().expect("ffmpeg starts");
    let mut frame = image::RgbImage::new(1, 1);
    assert!(decoder.read_into(&mut frame).expect("decodes"));
    decoder.stop(emotrack::video::StopCause::Requested);
    let _ = decoder.finish();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&frame)
        .expect("encodes");
    jpeg
}

/// Uploads a video; the job's URL.
async fn upload(client: &reqwest::Client, server: &Running, video: &Path) -> String {
    let created = client
        .post(server.url("/v1/videos"))
        .header("content-type", "video/mp4")
        .body(std::fs::read(video).expect("reads"))
        .send()
        .await
        .expect("uploads");
    assert_eq!(created.status(), 202, "the upload is accepted");
    created.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

async fn job(client: &reqwest::Client, server: &Running, location: &str) -> Value {
    client
        .get(server.url(location))
        .send()
        .await
        .expect("gets")
        .json()
        .await
        .expect("JSON")
}

/// Polls a job until `check` holds for what it shows; that view.
async fn job_when(
    client: &reqwest::Client,
    server: &Running,
    location: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let v = job(client, server, location).await;
        if check(&v) {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "never happened: {what}: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn finished(v: &Value) -> bool {
    !matches!(v["state"].as_str(), Some("queued" | "running"))
}

fn running_with_frames(v: &Value) -> bool {
    v["state"] == "running" && v["frames_done"].as_u64().is_some_and(|n| n >= 3)
}

/// Sends the head of a request whose Content-Length promises `declared` bytes, then `sent`
/// of them; the socket is the caller's to drop.
async fn cut_off_request(
    server: &Running,
    path: &str,
    content_type: &str,
    declared: usize,
    sent: &[u8],
) -> TcpStream {
    let mut socket = TcpStream::connect(server.addr).await.expect("connects");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {declared}\r\n\r\n",
        server.addr
    );
    socket.write_all(head.as_bytes()).await.expect("writes");
    socket.write_all(sent).await.expect("writes");
    socket.flush().await.expect("flushes");
    socket
}

/// Closes a socket abruptly: a reset, not an orderly close.
fn reset(socket: TcpStream) {
    socket.set_zero_linger().expect("SO_LINGER");
    drop(socket);
}

/// A WebSocket handshake by hand, so the test can then send broken frames.
async fn raw_stream(server: &Running) -> TcpStream {
    let mut socket = TcpStream::connect(server.addr).await.expect("connects");
    let head = format!(
        "GET /v1/stream HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    socket.write_all(head.as_bytes()).await.expect("writes");
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        socket
            .read_exact(&mut byte)
            .await
            .expect("reads the answer");
        answer.push(byte[0]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    socket
}

/// The header of a masked client binary frame of `len` bytes (mask 0: the payload is sent
/// as is).
fn binary_frame_header(len: u16) -> Vec<u8> {
    let mut h = vec![0x82, 0x80 | 126];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// Sends a frame and expects its analysis.
async fn frame_is_analysed(ws: &mut Ws, jpeg: &[u8]) {
    ws.send(Message::Binary(jpeg.to_vec().into()))
        .await
        .expect("sends");
    let v = next_json(ws).await;
    assert_eq!(v["type"], "frame", "{v}");
}

/// An error answer: its code, and a message a person can act on.
fn assert_error_message(v: &Value, code: &str, mentions: &str) {
    assert_eq!(
        (v["type"].as_str(), v["error"].as_str()),
        (Some("error"), Some(code)),
        "{v}"
    );
    let message = v["message"].as_str().unwrap_or_default();
    assert!(message.contains(mentions), "{mentions:?} not in {v}");
}

/// Deterministic noise (xorshift), standing in for random bytes.
fn noise(n: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn an_upload_cut_off_mid_body_leaves_no_job_no_file_and_the_server_serving() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let short = clip(tmp.path(), Some(10));
    let server = Running::start(|c| c.limits.max_jobs = 1).await;
    let client = reqwest::Client::new();
    let video = std::fs::read(common::fer_clip()).expect("reads");

    // A video upload that stops after 64 KiB (or 10 KiB) of 544 KiB, once the server stored
    // some of it; the client resets the connection, or closes it in order.
    for (content_type, sent, abrupt) in [
        ("video/mp4", 64 << 10, true),
        ("application/octet-stream", 10 << 10, false),
    ] {
        let socket = cut_off_request(
            &server,
            "/v1/videos",
            content_type,
            video.len(),
            &video[..sent],
        )
        .await;
        wait_for("the upload reaches the job's folder", || async {
            server
                .job_files()
                .iter()
                .any(|f| f.ends_with("upload.video"))
        })
        .await;
        if abrupt {
            reset(socket);
        } else {
            drop(socket);
        }
        wait_for("the aborted job's folder is deleted", || async {
            std::fs::read_dir(server.state.jobs().root()).map_or(0, Iterator::count) == 0
        })
        .await;
    }
    // --max-jobs is 1: a job left behind would make this a 429.
    let location = upload(&client, &server, &short).await;
    let done = job_when(&client, &server, &location, "the job ends", finished).await;
    assert_eq!(done["state"], "done", "{done}");

    // An image upload cut off half-way; the next image is analysed.
    let jpeg = jpeg_frame();
    let socket = cut_off_request(
        &server,
        "/v1/analyze",
        "image/jpeg",
        jpeg.len(),
        &jpeg[..jpeg.len() / 2],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await; // let the server start reading it
    reset(socket);
    let answer = client
        .post(server.url("/v1/analyze"))
        .header("content-type", "image/jpeg")
        .body(jpeg)
        .send()
        .await
        .expect("answers");
    assert_eq!(answer.status(), 200);
    let v: Value = answer.json().await.expect("JSON");
    assert_eq!(v["faces"].as_array().map(Vec::len), Some(1), "{v}");

    let job_dir = server.shut_down().await;
    assert_eq!(files_under(job_dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn a_download_cut_off_midway_leaves_the_file_whole_for_the_next_client() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let short = clip(tmp.path(), Some(10));
    let server = Running::start(|_| {}).await;
    let client = reqwest::Client::new();
    let location = upload(&client, &server, &short).await;
    let done = job_when(&client, &server, &location, "the job ends", finished).await;
    assert_eq!(done["state"], "done", "{done}");
    let id = done["id"].as_str().expect("id");
    let on_disk = std::fs::read(server.state.jobs().root().join(id).join("annotated.mp4"))
        .expect("the output is there");
    let link = format!("/v1/videos/{id}/annotated.mp4");

    for abrupt in [true, false] {
        let mut socket = TcpStream::connect(server.addr).await.expect("connects");
        let head = format!("GET {link} HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
        socket.write_all(head.as_bytes()).await.expect("writes");
        let mut some = [0u8; 64];
        let n = socket.read(&mut some).await.expect("reads");
        assert!(some[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &some[..n]);
        if abrupt {
            reset(socket);
        } else {
            drop(socket);
        }
        let whole = client
            .get(server.url(&link))
            .send()
            .await
            .expect("gets")
            .bytes()
            .await
            .expect("reads");
        assert!(whole == on_disk, "the next client gets the whole file");
    }
    server.shut_down().await;
}

#[tokio::test]
async fn a_websocket_cut_off_mid_frame_frees_its_slot_and_other_streams_go_on() {
    let jpeg = jpeg_frame();
    let server = Running::start(|c| c.limits.max_streams = 2).await;
    let mut other = server.connect("").await.expect("the stream opens");
    frame_is_analysed(&mut other, &jpeg).await;

    // Half a binary frame, then a reset.
    let mut socket = raw_stream(&server).await;
    wait_for("two streams are open", || async {
        server.state.open_streams() == 2
    })
    .await;
    let len = u16::try_from(jpeg.len()).expect("a small frame");
    socket
        .write_all(&binary_frame_header(len))
        .await
        .expect("writes");
    socket
        .write_all(&jpeg[..jpeg.len() / 2])
        .await
        .expect("writes");
    reset(socket);
    wait_for("the cut-off stream's slot is free", || async {
        server.state.open_streams() == 1
    })
    .await;
    frame_is_analysed(&mut other, &jpeg).await;

    // A whole frame, then gone before its answer; then gone in the middle of a header.
    for cut in [jpeg.len(), 1] {
        let mut socket = raw_stream(&server).await;
        let mut bytes = binary_frame_header(len);
        bytes.extend_from_slice(&jpeg);
        socket.write_all(&bytes[..cut + 2]).await.expect("writes");
        reset(socket);
        wait_for("the cut-off stream's slot is free", || async {
            server.state.open_streams() == 1
        })
        .await;
        frame_is_analysed(&mut other, &jpeg).await;
    }
    // Both slots can be taken again.
    let mut second = server.connect("").await.expect("the stream opens");
    frame_is_analysed(&mut second, &jpeg).await;
    server.shut_down().await;
}

#[tokio::test]
async fn garbage_on_a_websocket_gets_an_error_or_a_close_with_its_reason_and_others_go_on() {
    let jpeg = jpeg_frame();
    let server = Running::start(|c| c.limits.max_message_bytes = 256 << 10).await;
    let mut bystander = server.connect("").await.expect("the stream opens");
    frame_is_analysed(&mut bystander, &jpeg).await;

    // Random bytes as a frame: an error answer, and the stream goes on.
    let mut ws = server.connect("").await.expect("the stream opens");
    ws.send(Message::Binary(noise(4096).into()))
        .await
        .expect("sends");
    let v = next_json(&mut ws).await;
    assert_error_message(&v, "bad_image", "");
    assert_eq!(v["seq"], 0, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| m.len() > 10), "{v}");
    frame_is_analysed(&mut ws, &jpeg).await;
    frame_is_analysed(&mut bystander, &jpeg).await;

    // Settings with fields the server does not know: an error naming them, nothing applied.
    ws.send(Message::Text(
        r#"{"type":"settings","detect_evry":1,"window":4}"#.into(),
    ))
    .await
    .expect("sends");
    assert_error_message(&next_json(&mut ws).await, "bad_option", "detect_evry");
    ws.send(Message::Text(r#"{"type":"reset","hard":true}"#.into()))
        .await
        .expect("sends");
    assert_error_message(&next_json(&mut ws).await, "bad_option", "hard");
    frame_is_analysed(&mut ws, &jpeg).await;

    // Text that is not JSON: closed with 1007 and a reason.
    ws.send(Message::Text(r#"{"type":"settings","#.into()))
        .await
        .expect("sends");
    let (code, reason) = close_frame(&mut ws).await;
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("not a command"), "{reason}");
    frame_is_analysed(&mut bystander, &jpeg).await;

    // A message above --max-message: closed with 1009 and a reason naming the flag.
    let mut ws = server.connect("").await.expect("the stream opens");
    ws.send(Message::Binary(noise(300 << 10).into()))
        .await
        .expect("sends");
    let (code, reason) = close_frame(&mut ws).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("--max-message"), "{reason}");

    // Bytes that are no WebSocket frame at all: closed, the server goes on.
    let mut socket = raw_stream(&server).await;
    socket.write_all(&noise(256)).await.expect("writes");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut rest)).await;
    frame_is_analysed(&mut bystander, &jpeg).await;
    wait_for("only the bystander is open", || async {
        server.state.open_streams() == 1
    })
    .await;
    server.shut_down().await;
}

#[tokio::test]
async fn a_job_whose_upload_is_truncated_while_it_runs_fails_and_leaks_nothing() {
    let server = Running::start(|_| {}).await;
    let client = reqwest::Client::new();
    assert_eq!(server.job_files(), Vec::<String>::new(), "nothing before");
    let (location, id) = job_under_way(&client, &server).await;
    let dir = server.state.jobs().root().join(&id);
    let upload = dir.join("upload.video");
    let size = std::fs::metadata(&upload)
        .expect("the upload is there")
        .len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&upload)
        .expect("opens")
        .set_len(size / 2)
        .expect("truncates");

    let ended = job_when(&client, &server, &location, "the job ends", finished).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    let error = ended["error"].as_str().unwrap_or_default();
    assert!(error.contains("of 115 frames"), "{error}");
    assert!(
        error.contains("cover"),
        "says what the outputs hold: {error}"
    );
    assert!(
        ended["frames_done"].as_u64().is_some_and(|n| n < 115),
        "{ended}"
    );
    // Only outputs remain (the upload is gone), each readable as what it claims to be.
    let left = server.job_files();
    for file in &left {
        let name = file.rsplit('/').next().unwrap_or_default();
        assert!(FILES.contains(&name), "only outputs remain: {left:?}");
    }
    let annotated = dir.join("annotated.mp4");
    if annotated.exists() {
        let s = common::streams(&annotated);
        assert_eq!(
            s.first().map(|s| s.1),
            ended["frames_done"].as_u64(),
            "{s:?}"
        );
    }
    assert_eq!(
        client
            .delete(server.url(&location))
            .send()
            .await
            .expect("deletes")
            .status(),
        204
    );
    assert_eq!(server.job_files(), Vec::<String>::new(), "nothing after");
    server.shut_down().await;
}

#[tokio::test]
async fn a_job_whose_upload_is_deleted_while_it_runs_finishes_from_the_open_file() {
    // FFmpeg has the upload open once frames are analysed: deleting its name does not take the
    // data away (POSIX), so the job ends as if nothing happened, and the folder is cleaned up.
    let server = Running::start(|_| {}).await;
    let client = reqwest::Client::new();
    let (location, id) = job_under_way(&client, &server).await;
    std::fs::remove_file(server.state.jobs().root().join(&id).join("upload.video"))
        .expect("deletes the upload");

    let ended = job_when(&client, &server, &location, "the job ends", finished).await;
    assert_eq!(ended["state"], "done", "{ended}");
    assert_eq!(ended["frames_done"], 115, "{ended}");
    let left = server.job_files();
    assert_eq!(
        left.len(),
        FILES.len(),
        "every output, nothing else: {left:?}"
    );
    client
        .delete(server.url(&location))
        .send()
        .await
        .expect("deletes");
    assert_eq!(server.job_files(), Vec::<String>::new(), "nothing after");
    server.shut_down().await;
}

/// A job of the fixture clip, once its frames are being analysed: its location and id.
async fn job_under_way(client: &reqwest::Client, server: &Running) -> (String, String) {
    let location = upload(client, server, &common::fer_clip()).await;
    let running = job_when(
        client,
        server,
        &location,
        "frames are analysed",
        running_with_frames,
    )
    .await;
    let id = running["id"].as_str().expect("id").to_owned();
    (location, id)
}

/// With one job worker: a first job (the fixture clip) running, and a second one (`video`)
/// queued behind it, for a test to tamper with before the first is deleted. The first job's
/// location, the second's, and the second's folder.
async fn queued_behind_a_busy_job(
    client: &reqwest::Client,
    server: &Running,
    video: &Path,
) -> (String, String, PathBuf) {
    let (busy, _) = job_under_way(client, server).await;
    let waiting = upload(client, server, video).await;
    let id = job(client, server, &waiting).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let dir = server.state.jobs().root().join(id);
    (busy, waiting, dir)
}

#[tokio::test]
async fn a_job_whose_upload_is_deleted_fails_with_the_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let short = clip(tmp.path(), Some(10));
    let server = Running::start(|c| c.limits.job_workers = 1).await;
    let client = reqwest::Client::new();
    // The only worker is busy, so the second job waits; its upload is deleted meanwhile.
    let (busy, waiting, dir) = queued_behind_a_busy_job(&client, &server, &short).await;
    std::fs::remove_file(dir.join("upload.video")).expect("deletes the upload");
    client
        .delete(server.url(&busy))
        .send()
        .await
        .expect("deletes");

    let ended = job_when(&client, &server, &waiting, "the job ends", finished).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    let error = ended["error"].as_str().unwrap_or_default();
    assert!(error.contains("no such file"), "{error}");
    assert_eq!(ended["files"], serde_json::json!({}), "{ended}");
    server.shut_down().await;
}

#[tokio::test]
async fn a_full_disk_fails_the_job_with_the_reason_and_the_server_serves_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let short = clip(tmp.path(), Some(15));
    let server = Running::start(|c| c.limits.job_workers = 1).await;
    let client = reqwest::Client::new();
    // The only worker is busy, so the second job waits while its JSONL output is made a
    // link to /dev/full (every write: ENOSPC, what a full disk answers).
    let (busy, waiting, dir) = queued_behind_a_busy_job(&client, &server, &short).await;
    std::os::unix::fs::symlink("/dev/full", dir.join("faces.jsonl")).expect("links");
    client
        .delete(server.url(&busy))
        .send()
        .await
        .expect("deletes");

    let ended = job_when(&client, &server, &waiting, "the job ends", finished).await;
    assert_eq!(ended["state"], "failed", "{ended}");
    let error = ended["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("faces.jsonl") && error.contains("No space left on device"),
        "{error}"
    );
    assert!(error.contains("disk"), "says the disk is full: {error}");
    // The broken output is gone; what is listed is whole.
    assert!(
        std::fs::symlink_metadata(dir.join("faces.jsonl")).is_err(),
        "the broken output is removed"
    );
    let files = ended["files"].as_object().expect("files");
    assert!(!files.contains_key("faces.jsonl"), "{ended}");
    if dir.join("annotated.mp4").exists() {
        assert_eq!(common::streams(&dir.join("annotated.mp4")).len(), 1);
    }

    // The server serves on: another job runs to the end.
    let location = upload(&client, &server, &short).await;
    let done = job_when(&client, &server, &location, "the job ends", finished).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        done["files"].as_object().map(|f| f.len()),
        Some(4),
        "{done}"
    );
    let job_dir = server.shut_down().await;
    assert_eq!(files_under(job_dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn shutdown_during_a_job_cancels_it_and_deletes_every_file() {
    let server = Running::start(|c| c.limits.shutdown_grace = Duration::from_secs(5)).await;
    let client = reqwest::Client::new();
    let (_, id) = job_under_way(&client, &server).await;
    let state = server.state.clone();
    let job_dir = server.shut_down().await;
    let job = state.jobs().get(&id).expect("still listed in the state");
    assert_eq!(
        job.view().state,
        "cancelled",
        "the job was stopped, not finished"
    );
    assert!(job.view().files.is_empty(), "no outputs offered");
    assert_eq!(
        files_under(job_dir.path()),
        Vec::<String>::new(),
        "no file is left in --job-dir"
    );
    assert_eq!(
        std::fs::read_dir(job_dir.path()).map_or(0, Iterator::count),
        0,
        "not even the jobs folder"
    );
}
