//! `emotrack serve` as a user runs it: the URL it prints, answers equal to `emotrack
//! analyze` on the same photos, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::media_dir;
use crate::util::{emotrack, p, text};

/// One HTTP/1.1 request; the status and the body.
fn http(addr: &str, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("writes");
    stream.write_all(body).expect("writes");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("reads");
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header");
    let status = text(&answer[9..12]).parse().expect("a status");
    (status, answer[split + 4..].to_vec())
}

/// `emotrack serve` started as a user runs it, on a free port with `jobs` as its `--job-dir`
/// and `extra` arguments: the child, the address it printed, and its log (read to the end on
/// a thread, so the server never blocks on a full pipe); returns once `/readyz` answers 200.
fn start_serve(jobs: &Path, extra: &[&str]) -> (Child, String, JoinHandle<String>) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_emotrack"))
        .args(["serve", "--bind", "127.0.0.1:0", "--job-dir", p(jobs)])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut stderr = BufReader::new(server.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("reads");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split([';', ' ']).next())
        .unwrap_or_else(|| panic!("the URL is printed: {line}"))
        .to_owned();
    let log = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let start = Instant::now();
    while http(&addr, "GET", "/readyz", "text/plain", b"").0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "ready within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, addr, log)
}

#[test]
fn serve_prints_its_url_answers_like_analyze_and_stops_cleanly_on_sigterm() {
    let Some(media) = media_dir() else {
        return;
    };
    let jobs = tempfile::tempdir().expect("tempdir");
    let (mut server, addr, log) = start_serve(jobs.path(), &[]);
    for name in [
        "ageitgey_two_people.jpg",
        "facenet_pytorch_multiface.jpg",
        "linzaer_imgs_1.jpg",
    ] {
        let photo = media.join("photos").join(name);
        let out = emotrack(&["analyze", "--format", "json", p(&photo)]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let cli: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let (status, body) = http(
            &addr,
            "POST",
            "/v1/analyze",
            "image/jpeg",
            &std::fs::read(&photo).expect("reads"),
        );
        assert_eq!(status, 200, "{}", text(&body));
        let served: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert!(
            !served["faces"].as_array().expect("faces").is_empty(),
            "{name} shows faces"
        );
        assert_eq!(
            served["faces"], cli[0]["faces"],
            "{name}: the server and `emotrack analyze` agree"
        );
    }
    let (status, _) = http(&addr, "GET", "/healthz", "text/plain", b"");
    assert_eq!(status, 200);

    let kill = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let status = server.wait().expect("exits");
    let log = log.join().expect("the log reads");
    assert!(status.success(), "exit 0 on SIGTERM: {status}\n{log}");
    assert!(
        log.contains("route=/v1/analyze") && log.contains("status=200"),
        "one line per request:\n{log}"
    );
    assert!(
        !log.contains("image/jpeg") && !log.contains("Bearer"),
        "no request data in the log"
    );
    assert_eq!(
        std::fs::read_dir(jobs.path()).expect("lists").count(),
        0,
        "the job folder is deleted at shutdown"
    );
}

/// The stream's WebSocket handshake by hand; the open socket.
fn open_stream(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let head = format!(
        "GET /v1/stream HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("writes");
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("reads the answer");
        answer.push(byte[0]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 101"), "{}", text(&answer));
    stream
}

#[test]
fn sigterm_with_a_stream_an_upload_and_a_job_under_way_exits_0_and_leaves_no_file() {
    let clip = crate::common::fer_clip();
    let jobs = tempfile::tempdir().expect("tempdir");
    let (mut server, addr, log) = start_serve(jobs.path(), &["--shutdown-grace", "2"]);

    // A job under way.
    let video = std::fs::read(&clip).expect("reads");
    let (status, body) = http(&addr, "POST", "/v1/videos", "video/mp4", &video);
    assert_eq!(status, 202, "{}", text(&body));
    let job: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let location = format!("/v1/videos/{}", job["id"].as_str().expect("id"));
    loop {
        let (_, body) = http(&addr, "GET", &location, "text/plain", b"");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        if v["state"] == "running" && v["frames_done"].as_u64().is_some_and(|n| n > 0) {
            break;
        }
        assert!(v["state"] == "queued" || v["state"] == "running", "{v}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // An upload that has sent half of what it announced, and an open stream.
    let mut upload = TcpStream::connect(&addr).expect("connects");
    let head = format!(
        "POST /v1/videos HTTP/1.1\r\nHost: {addr}\r\nContent-Type: video/mp4\r\n\
         Content-Length: {}\r\n\r\n",
        video.len()
    );
    upload.write_all(head.as_bytes()).expect("writes");
    upload.write_all(&video[..video.len() / 2]).expect("writes");
    let mut stream = open_stream(&addr);
    let start = Instant::now();
    while std::fs::read_dir(jobs.path())
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|root| root.ok())
        .map_or(0, |root| {
            std::fs::read_dir(root.path()).map_or(0, Iterator::count)
        })
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the upload has a job folder"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let kill = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait().expect("waits") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = server.kill();
            panic!("still running a minute after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = log.join().expect("the log reads");
    assert!(status.success(), "exit 0 on SIGTERM: {status}\n{log}");
    // The stream was told the server is going away (close frame, code 1001).
    let mut closing = Vec::new();
    let _ = stream.read_to_end(&mut closing);
    assert!(
        closing
            .windows(4)
            .any(|w| w[0] == 0x88 && w[2..4] == [0x03, 0xE9]),
        "a close frame with 1001: {closing:?}"
    );
    drop(upload);
    assert_eq!(
        std::fs::read_dir(jobs.path()).expect("lists").count(),
        0,
        "nothing is left in --job-dir"
    );
}
