//! The server end to end on 127.0.0.1:0: WebSocket streams of a media video's frames, video
//! jobs from upload to downloaded outputs, bad messages, and a graceful shutdown.

#[path = "../../emotrack/tests/common/mod.rs"]
mod common;
mod running;

use std::path::{Path, PathBuf};
use std::time::Duration;

use emotrack::video::{DecodeOptions, Source, VideoInput};
use futures_util::SinkExt;
use running::{Running, close_frame, next_json, send_frame};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Polls a video job until it has finished; what it shows then.
async fn finished_job(client: &reqwest::Client, server: &Running, location: &str) -> Value {
    loop {
        let v: Value = client
            .get(server.url(location))
            .send()
            .await
            .expect("gets")
            .json()
            .await
            .expect("JSON");
        match v["state"].as_str() {
            Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => return v,
        }
    }
}

/// The job URL a `202 Accepted` names.
fn location_of(response: &reqwest::Response) -> String {
    response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

fn video(name: &str) -> Option<PathBuf> {
    Some(common::media_dir()?.join("videos").join(name))
}

/// The first `n` frames of a media video, as JPEG files' bytes.
fn jpeg_frames(path: &Path, n: usize) -> Vec<Vec<u8>> {
    let input = VideoInput::open(Source::File(path.to_path_buf()), DecodeOptions::default())
        .expect("the video opens");
    let decoder = input.decoder().expect("ffmpeg starts");
    let mut frame = image::RgbImage::new(1, 1);
    let mut frames = Vec::new();
    while frames.len() < n && decoder.read_into(&mut frame).expect("decodes") {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
            .encode_image(&frame)
            .expect("encodes");
        frames.push(jpeg);
    }
    decoder.stop(emotrack::video::StopCause::Requested);
    let _ = decoder.finish();
    frames
}

#[tokio::test]
async fn a_stream_keeps_its_face_on_one_track_and_two_streams_do_not_mix() {
    let (Some(fer), Some(hamilton)) = (video("fer_test.mp4"), video("short_hamilton_clip.mp4"))
    else {
        return;
    };
    let a_frames = jpeg_frames(&fer, 40);
    let b_frames = jpeg_frames(&hamilton, 40);
    let server = Running::start(|_| {}).await;
    let mut a = server.connect("").await.expect("connects");
    let mut b = server.connect("?detector=haar").await.expect("connects");
    let mut a_ids = std::collections::BTreeSet::new();
    let mut b_first_ids = Vec::new();
    let mut a_labelled = 0;
    for (i, (fa, fb)) in a_frames.iter().zip(&b_frames).enumerate() {
        send_frame(&mut a, fa).await;
        send_frame(&mut b, fb).await;
        let (ra, rb) = (next_json(&mut a).await, next_json(&mut b).await);
        for r in [&ra, &rb] {
            assert_eq!(r["type"], "frame", "{r}");
            assert_eq!(r["seq"], i as u64);
            assert_eq!(r["skipped"], 0, "lockstep clients skip nothing");
        }
        assert_eq!(
            (ra["width"].as_u64(), ra["height"].as_u64()),
            (Some(596), Some(336))
        );
        for face in ra["faces"].as_array().expect("faces") {
            a_ids.insert(face["id"].as_u64().expect("id"));
            let smoothed = face["smoothed"]
                .as_object()
                .expect("smoothed probabilities");
            assert_eq!(smoothed.len(), 7);
            let sum: f64 = smoothed.values().filter_map(Value::as_f64).sum();
            assert!((sum - 1.0).abs() < 0.01, "{sum}");
            assert!(smoothed.contains_key(face["label"].as_str().expect("label")));
            a_labelled += 1;
        }
        if b_first_ids.is_empty() {
            b_first_ids = rb["faces"]
                .as_array()
                .expect("faces")
                .iter()
                .filter_map(|f| f["id"].as_u64())
                .collect();
        }
    }
    assert_eq!(
        a_ids.into_iter().collect::<Vec<_>>(),
        vec![1],
        "one face, one stable id"
    );
    assert!(
        a_labelled >= 30,
        "the face is shown on most frames: {a_labelled}"
    );
    assert!(
        b_first_ids.first() == Some(&1),
        "the second stream numbers its own tracks from 1: {b_first_ids:?}"
    );
    server.shut_down().await;
}

#[tokio::test]
async fn a_client_sending_faster_than_analysis_gets_frames_skipped_not_queued() {
    let Some(fer) = video("fer_test.mp4") else {
        return;
    };
    let frames = jpeg_frames(&fer, 30);
    let server = Running::start(|_| {}).await;
    let mut ws = server.connect("").await.expect("connects");
    for f in &frames {
        send_frame(&mut ws, f).await;
    }
    let (mut answers, mut skipped) = (0u64, 0u64);
    loop {
        let r = next_json(&mut ws).await;
        answers += 1;
        skipped += r["skipped"].as_u64().expect("skipped");
        if r["seq"] == 29 {
            break;
        }
    }
    assert_eq!(
        answers + skipped,
        30,
        "every frame is answered or counted as skipped"
    );
    assert!(
        skipped > 0,
        "30 frames sent at once cannot all be analysed in turn"
    );
    server.shut_down().await;
}

#[tokio::test]
async fn bad_messages_get_an_error_or_their_close_code_and_other_streams_go_on() {
    let Some(fer) = video("fer_test.mp4") else {
        return;
    };
    let frame = jpeg_frames(&fer, 1).remove(0);
    let server = Running::start(|c| {
        c.limits.max_message_bytes = 256 << 10;
        c.limits.max_streams = 2;
    })
    .await;

    // A truncated JPEG gets an error answer; the stream goes on.
    let mut ws = server.connect("").await.expect("connects");
    send_frame(&mut ws, &frame[..frame.len() / 2]).await;
    let r = next_json(&mut ws).await;
    assert_eq!(
        (r["type"].as_str(), r["error"].as_str(), r["seq"].as_u64()),
        (Some("error"), Some("bad_image"), Some(0)),
        "{r}"
    );
    send_frame(&mut ws, &frame).await;
    assert_eq!(next_json(&mut ws).await["type"], "frame");
    // A bad setting is an error answer too.
    ws.send(Message::Text(
        r#"{"type":"settings","detect_every":0}"#.into(),
    ))
    .await
    .expect("sends");
    assert_eq!(next_json(&mut ws).await["error"], "bad_option");
    // So are two ways of smoothing at once, in a message or at connection (400).
    ws.send(Message::Text(
        r#"{"type":"settings","window":4,"ema":0.2}"#.into(),
    ))
    .await
    .expect("sends");
    let r = next_json(&mut ws).await;
    assert_eq!(r["error"], "bad_option", "{r}");
    assert!(
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("not both")),
        "{r}"
    );
    match server.connect("?window=4&ema=0.2").await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("window and ema are refused: {:?}", other.map(|_| ())),
    }
    // A refused message changes nothing, not even the detector it also names: the faces keep
    // YuNet's landmarks (Haar gives none).
    ws.send(Message::Text(
        r#"{"type":"settings","detector":"haar","window":4,"ema":0.2}"#.into(),
    ))
    .await
    .expect("sends");
    assert_eq!(next_json(&mut ws).await["error"], "bad_option");
    let mut answer = Value::Null;
    for _ in 0..4 {
        send_frame(&mut ws, &frame).await;
        answer = next_json(&mut ws).await;
    }
    let faces = answer["faces"].as_array().expect("faces");
    assert!(
        !faces.is_empty() && faces.iter().all(|f| f["landmarks"].is_array()),
        "{answer}"
    );
    ws.send(Message::Text(r#"{"type":"reset"}"#.into()))
        .await
        .expect("sends");
    send_frame(&mut ws, &frame).await;
    assert_eq!(next_json(&mut ws).await["type"], "frame");

    // Too many streams: the handshake is refused with 429.
    let _second = server.connect("").await.expect("a second stream fits");
    match server.connect("").await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("a third stream is refused: {:?}", other.map(|_| ())),
    }

    // Text that is not a command closes with 1007; an oversize frame with 1009.
    ws.send(Message::Text("hello".into())).await.expect("sends");
    assert_eq!(close_frame(&mut ws).await.0, 1007);
    let mut ws = server.connect("").await.expect("a slot is free again");
    send_frame(&mut ws, &vec![0xFF; 300 << 10]).await;
    assert_eq!(close_frame(&mut ws).await.0, 1009);

    // The server still serves.
    let mut ws = server.connect("").await.expect("connects");
    send_frame(&mut ws, &frame).await;
    assert_eq!(next_json(&mut ws).await["type"], "frame");
    server.shut_down().await;
}

#[tokio::test]
async fn an_idle_stream_is_closed_and_a_token_is_taken_from_the_subprotocol_or_query() {
    let server = Running::start(|c| {
        c.limits.idle_timeout = Duration::from_millis(500);
        c.token = Some("t0ken".into());
    })
    .await;
    match server.connect("").await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("no token, no stream: {:?}", other.map(|_| ())),
    }
    let mut ws = server
        .connect("?token=t0ken")
        .await
        .expect("the query token works");
    assert_eq!(
        close_frame(&mut ws).await.0,
        1001,
        "idle for longer than the timeout"
    );
    let mut request = format!("ws://{}/v1/stream", server.addr)
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "emotrack.v1, bearer.t0ken".parse().expect("header"),
    );
    let (_ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the subprotocol token works");
    assert_eq!(response.headers()["sec-websocket-protocol"], "emotrack.v1");
    server.shut_down().await;
}

#[tokio::test]
async fn a_video_job_runs_from_upload_to_downloaded_outputs() {
    let Some(fer) = video("fer_test.mp4") else {
        return;
    };
    let server = Running::start(|_| {}).await;
    let client = reqwest::Client::new();
    let created = client
        .post(server.url("/v1/videos"))
        .header("content-type", "video/mp4")
        .body(std::fs::read(&fer).expect("reads"))
        .send()
        .await
        .expect("uploads");
    assert_eq!(created.status(), 202);
    let location = location_of(&created);
    let job: Value = created.json().await.expect("JSON");
    assert_eq!(
        location,
        format!("/v1/videos/{}", job["id"].as_str().expect("id"))
    );
    let done = finished_job(&client, &server, &location).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["frames_done"], 115);
    let scratch = tempfile::tempdir().expect("temp");
    let mp4 = scratch.path().join("annotated.mp4");
    let link = done["files"]["annotated.mp4"]
        .as_str()
        .expect("a link to the video");
    let bytes = client
        .get(server.url(link))
        .send()
        .await
        .expect("downloads")
        .bytes()
        .await
        .expect("body");
    std::fs::write(&mp4, &bytes).expect("writes");
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&mp4)
        .output()
        .expect("ffprobe runs");
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        "115",
        "the annotated video plays every frame"
    );
    let jsonl = client
        .get(server.url(done["files"]["faces.jsonl"].as_str().expect("link")))
        .send()
        .await
        .expect("gets")
        .text()
        .await
        .expect("text");
    let first: Value =
        serde_json::from_str(jsonl.lines().next().expect("a record")).expect("JSON line");
    assert!(first["probabilities"].is_object(), "{first}");
    for file in ["tracks.csv", "timeline.png"] {
        let r = client
            .get(server.url(done["files"][file].as_str().expect("link")))
            .send()
            .await
            .expect("gets");
        assert_eq!(r.status(), 200, "{file}");
    }
    let dir = server
        .state
        .jobs()
        .root()
        .join(done["id"].as_str().expect("id"));
    assert!(dir.is_dir());
    assert_eq!(
        client
            .delete(server.url(&location))
            .send()
            .await
            .expect("deletes")
            .status(),
        204
    );
    assert_eq!(
        client
            .get(server.url(&location))
            .send()
            .await
            .expect("gets")
            .status(),
        404
    );
    assert!(!dir.exists(), "the job's files are deleted with it");
    server.shut_down().await;
}

#[tokio::test]
async fn uploads_that_are_not_videos_fail_the_job_and_a_full_queue_answers_429() {
    let Some(fer) = video("fer_test.mp4") else {
        return;
    };
    let server = Running::start(|c| c.limits.max_jobs = 1).await;
    let client = reqwest::Client::new();
    let upload = |body: Vec<u8>| {
        client
            .post(server.url("/v1/videos"))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
    };
    let first = upload(std::fs::read(&fer).expect("reads"))
        .await
        .expect("uploads");
    assert_eq!(first.status(), 202);
    let location = location_of(&first);
    let busy = upload(b"more".to_vec()).await.expect("answers");
    assert_eq!(busy.status(), 429);
    assert!(busy.headers().contains_key("retry-after"));
    assert_eq!(
        client
            .delete(server.url(&location))
            .send()
            .await
            .expect("deletes")
            .status(),
        204
    );

    let text = upload(b"not a video at all".to_vec())
        .await
        .expect("uploads");
    assert_eq!(
        text.status(),
        202,
        "the upload is accepted; the job finds out"
    );
    let location = location_of(&text);
    let failed = finished_job(&client, &server, &location).await;
    assert_eq!(failed["state"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("video")),
        "{failed}"
    );
    let unsupported = client
        .post(server.url("/v1/videos"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .expect("answers");
    assert_eq!(unsupported.status(), 415);
    server.shut_down().await;
}

#[tokio::test]
async fn shutting_down_closes_streams_cancels_jobs_and_deletes_their_files() {
    let Some(fer) = video("fer_test.mp4") else {
        return;
    };
    let server = Running::start(|_| {}).await;
    let mut ws = server.connect("").await.expect("connects");
    let client = reqwest::Client::new();
    let created = client
        .post(server.url("/v1/videos"))
        .header("content-type", "video/mp4")
        .body(std::fs::read(&fer).expect("reads"))
        .send()
        .await
        .expect("uploads");
    assert_eq!(created.status(), 202);
    let root = server.state.jobs().root().to_path_buf();
    assert!(root.is_dir());
    let closing = tokio::spawn(async move { close_frame(&mut ws).await.0 });
    server.shut_down().await;
    assert_eq!(
        closing.await.expect("joins"),
        1001,
        "the stream is told the server is going away"
    );
    assert!(!root.exists(), "job files are deleted at shutdown");
}

#[tokio::test]
async fn finished_jobs_and_their_files_are_deleted_after_the_ttl() {
    let server = Running::start(|c| c.job_ttl = Duration::from_secs(1)).await;
    let client = reqwest::Client::new();
    let created = client
        .post(server.url("/v1/videos"))
        .header("content-type", "video/mp4")
        .body("not a video: the job fails at once")
        .send()
        .await
        .expect("uploads");
    let location = location_of(&created);
    let job = finished_job(&client, &server, &location).await;
    let dir = server
        .state
        .jobs()
        .root()
        .join(job["id"].as_str().expect("id"));
    assert!(dir.is_dir(), "kept while the TTL runs");
    let start = std::time::Instant::now();
    while client
        .get(server.url(&location))
        .send()
        .await
        .expect("gets")
        .status()
        != 404
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "expired within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!dir.exists(), "its folder went with it");
    server.shut_down().await;
}
