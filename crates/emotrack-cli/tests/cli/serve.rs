//! `emotrack serve` as a user runs it: the URL it prints, answers equal to `emotrack
//! analyze` on the same photos, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
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

#[test]
fn serve_prints_its_url_answers_like_analyze_and_stops_cleanly_on_sigterm() {
    let Some(media) = media_dir() else {
        return;
    };
    let jobs = tempfile::tempdir().expect("tempdir");
    let mut server = Command::new(env!("CARGO_BIN_EXE_emotrack"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--job-dir",
            p(jobs.path()),
        ])
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
    // Keep reading the log so the server never blocks on a full pipe.
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
