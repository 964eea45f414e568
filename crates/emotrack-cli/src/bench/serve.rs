//! `emotrack bench serve`: the server under load, from the outside. It starts `emotrack serve`
//! as a child process (so its memory is its own), then:
//!
//! 1. N WebSocket clients on loopback send a media video's frames, fitted into 640x480 and
//!    encoded as JPEG once beforehand, at a fixed rate like cameras (not waiting for
//!    answers); per answered frame, the time from sending to the answer. Frames the server
//!    skipped (a newer one was waiting) are counted, never queued.
//!    With `--photo-every`, a photo request arrives every few seconds meanwhile (the soak
//!    test: `--seconds 600 --photo-every 1`); the server's resident memory is sampled every
//!    second, and the latency's p95 is compared between the first and the last `--window`.
//! 2. `/v1/analyze` requests per second from a few concurrent clients on the media photos,
//!    against `emotrack analyze`'s own time per image on the same photos, run in the same
//!    session: the ratio says what serving over HTTP costs or gains.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use emotrack::video::{DecodeOptions, Source, StopCause, VideoInput};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::inputs::{Input, expand};
use crate::outcome::Outcome;

/// Arguments of `emotrack bench serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Concurrent streams.
    #[arg(long, default_value_t = 8)]
    streams: usize,
    /// Frames a second each stream sends.
    #[arg(long, default_value_t = 15.0)]
    fps: f64,
    /// Seconds the streams run.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// The video whose frames the streams send (default: fer_test.mp4 of ../shared/media).
    #[arg(long, value_name = "FILE")]
    video: Option<PathBuf>,
    /// Seconds of `/v1/analyze` requests (0 skips that part).
    #[arg(long, default_value_t = 20.0)]
    analyze_seconds: f64,
    /// Concurrent `/v1/analyze` clients.
    #[arg(long, default_value_t = 4)]
    analyze_clients: usize,
    /// Detector the server runs (`emotrack serve --detector`).
    #[arg(long, default_value = "yunet")]
    detector: String,
    /// The streams' query options (as a browser page would pass them), e.g. `detect_every=3`.
    #[arg(long, value_name = "QUERY", default_value = "")]
    stream_options: String,
    /// During the streams, one `/v1/analyze` request with a media photo every SECONDS (0: none).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    photo_every: f64,
    /// Seconds at the start and at the end of the streams whose latency p95 are compared.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    window: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// What the run measured.
#[derive(Debug, Serialize)]
struct Report {
    streams: usize,
    fps: f64,
    seconds: f64,
    window: f64,
    detector: String,
    stream_options: String,
    frames_sent: u64,
    frames_answered: u64,
    frames_skipped: u64,
    skipped_percent: f64,
    latency_ms_p50: f64,
    latency_ms_p95: f64,
    latency_ms_p99: f64,
    latency_ms_p95_first_window: f64,
    latency_ms_p95_last_window: f64,
    processing_ms_p50: f64,
    processing_ms_p95: f64,
    server_rss_mb_start: f64,
    server_rss_mb_streams_10s: f64,
    server_rss_mb_after_streams: f64,
    server_rss_mb_peak: f64,
    /// The server's memory at the end of each minute of the streams (flat or growing).
    server_rss_mb_per_minute: Vec<f64>,
    server_rss_mb_end: f64,
    photo_requests: u64,
    photo_latency_ms_p95: f64,
    analyze_requests_per_second: Option<f64>,
    cli_images_per_second: Option<f64>,
    http_vs_cli_ratio: Option<f64>,
}

/// The server child, killed if the benchmark fails half-way.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the benchmark.
pub fn serve(args: ServeArgs) -> Result<Outcome> {
    let video = args
        .video
        .clone()
        .unwrap_or_else(|| super::default_media().join("videos/fer_test.mp4"));
    let frames = jpeg_frames(&video)?;
    let photos = photos()?;
    let server = start_server(&args.detector)?;
    let start_rss = rss_mb(server.child.id());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Memory every second during the streams: 10 s in (warmed up) against the end says flat
    // or growing; the peak, how much it needs.
    let sampler = MemorySampler::start(server.child.id());
    let started = Instant::now();
    let (streams, photo_ms) = runtime.block_on(async {
        let photos_meanwhile = run_photo_requests(&server.addr, &args, &photos, started);
        let streams = run_streams(&server.addr, &args, Arc::new(frames), started);
        tokio::try_join!(streams, photos_meanwhile)
    })?;
    let samples = sampler.stop();
    let rss_10s = samples
        .get(10)
        .or(samples.last())
        .copied()
        .unwrap_or(f64::NAN);
    let peak = samples.iter().copied().fold(f64::NAN, f64::max);
    let after_streams = rss_mb(server.child.id());
    let analyze = if args.analyze_seconds > 0.0 {
        let served = runtime.block_on(run_analyze(&server.addr, &args, &photos))?;
        let cli = cli_images_per_second(&photos)?;
        Some((served, cli))
    } else {
        None
    };
    let end_rss = rss_mb(server.child.id());
    let in_window = |from: f64, to: f64| {
        let ms = streams
            .latencies_ms
            .iter()
            .filter(|(at, _)| (from..to).contains(at));
        percentiles(ms.map(|&(_, ms)| ms).collect())(0.95)
    };
    let first_window = in_window(0.0, args.window);
    let last_window = in_window(args.seconds - args.window, f64::INFINITY);
    let photo_requests = photo_ms.len() as u64;
    let photo_p95 = percentiles(photo_ms)(0.95);
    let latency = percentiles(streams.latencies_ms.into_iter().map(|(_, ms)| ms).collect());
    let processing = percentiles(streams.processing_ms);
    let report = Report {
        streams: args.streams,
        fps: args.fps,
        seconds: args.seconds,
        window: args.window,
        detector: args.detector.clone(),
        stream_options: args.stream_options.clone(),
        frames_sent: streams.sent,
        frames_answered: streams.answered,
        frames_skipped: streams.skipped,
        skipped_percent: 100.0 * streams.skipped as f64 / streams.sent.max(1) as f64,
        latency_ms_p50: latency(0.50),
        latency_ms_p95: latency(0.95),
        latency_ms_p99: latency(0.99),
        latency_ms_p95_first_window: first_window,
        latency_ms_p95_last_window: last_window,
        processing_ms_p50: processing(0.50),
        processing_ms_p95: processing(0.95),
        server_rss_mb_start: start_rss,
        server_rss_mb_streams_10s: rss_10s,
        server_rss_mb_after_streams: after_streams,
        server_rss_mb_peak: peak,
        server_rss_mb_per_minute: samples.iter().skip(60).step_by(60).copied().collect(),
        photo_requests,
        photo_latency_ms_p95: photo_p95,
        server_rss_mb_end: end_rss,
        analyze_requests_per_second: analyze.map(|a| a.0),
        cli_images_per_second: analyze.map(|a| a.1),
        http_vs_cli_ratio: analyze.map(|(served, cli)| served / cli),
    };
    drop(server);
    print(&report, args.json)?;
    Ok(Outcome::Success)
}

/// The `q`-quantile of the values (NaN for none).
fn percentiles(mut values: Vec<f64>) -> impl Fn(f64) -> f64 {
    values.sort_by(f64::total_cmp);
    move |q| {
        if values.is_empty() {
            f64::NAN
        } else {
            values[((values.len() - 1) as f64 * q).round() as usize]
        }
    }
}

fn print(r: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!(
        "{} streams x {} fps for {} s ({} detector{}), 640x480 JPEG frames",
        r.streams,
        r.fps,
        r.seconds,
        r.detector,
        if r.stream_options.is_empty() {
            String::new()
        } else {
            format!(", ?{}", r.stream_options)
        }
    );
    println!(
        "| sent | answered | skipped | latency p50 / p95 / p99 ms | processing p50 / p95 ms | RSS MB idle / streams at 10 s / end of streams / after analyze |"
    );
    println!("|---:|---:|---:|---|---|---|");
    println!(
        "| {} | {} | {} ({:.1}%) | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} | {:.0} / {:.0} / {:.0} / {:.0} |",
        r.frames_sent,
        r.frames_answered,
        r.frames_skipped,
        r.skipped_percent,
        r.latency_ms_p50,
        r.latency_ms_p95,
        r.latency_ms_p99,
        r.processing_ms_p50,
        r.processing_ms_p95,
        r.server_rss_mb_start,
        r.server_rss_mb_streams_10s,
        r.server_rss_mb_after_streams,
        r.server_rss_mb_end
    );
    println!(
        "latency p95 over the first {w} s: {:.1} ms, over the last {w} s: {:.1} ms ({:+.0}%); \
         RSS peak {:.0} MB",
        r.latency_ms_p95_first_window,
        r.latency_ms_p95_last_window,
        100.0 * (r.latency_ms_p95_last_window / r.latency_ms_p95_first_window - 1.0),
        r.server_rss_mb_peak,
        w = r.window,
    );
    if !r.server_rss_mb_per_minute.is_empty() {
        let minutes: Vec<String> = r
            .server_rss_mb_per_minute
            .iter()
            .map(|mb| format!("{mb:.0}"))
            .collect();
        println!("RSS MB at the end of each minute: {}", minutes.join(", "));
    }
    if r.photo_requests > 0 {
        println!(
            "photos meanwhile: {} requests, all answered 200, latency p95 {:.1} ms",
            r.photo_requests, r.photo_latency_ms_p95
        );
    }
    if let (Some(served), Some(cli), Some(ratio)) = (
        r.analyze_requests_per_second,
        r.cli_images_per_second,
        r.http_vs_cli_ratio,
    ) {
        println!(
            "/v1/analyze: {served:.1} images/s; emotrack analyze: {cli:.1} images/s; ratio {ratio:.2}"
        );
    }
    Ok(())
}

/// The video's frames fitted into 640x480, as JPEG (shared buffers: sending one copies nothing).
fn jpeg_frames(video: &std::path::Path) -> Result<Vec<Bytes>> {
    let options = DecodeOptions {
        size: Some((640, 480)),
        ..DecodeOptions::default()
    };
    let input = VideoInput::open(Source::File(video.to_path_buf()), options)?;
    let decoder = input.decoder()?;
    let mut frame = image::RgbImage::new(1, 1);
    let mut frames = Vec::new();
    while decoder.read_into(&mut frame)? {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
            .encode_image(&frame)
            .context("cannot encode a frame")?;
        frames.push(Bytes::from(jpeg));
    }
    decoder.stop(StopCause::Requested);
    let _ = decoder.finish();
    if frames.is_empty() {
        bail!("{} has no frames", video.display());
    }
    Ok(frames)
}

/// The media photos (path and bytes).
fn photos() -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut photos = Vec::new();
    for input in expand(&[super::default_media().join("photos")]) {
        if let Input::File(p) = input {
            let bytes =
                std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
            photos.push((p, bytes));
        }
    }
    if photos.is_empty() {
        bail!(
            "no photos in {}",
            super::default_media().join("photos").display()
        );
    }
    Ok(photos)
}

/// Starts `emotrack serve` on a free port and waits until it is ready.
fn start_server(detector: &str) -> Result<Server> {
    let exe = std::env::current_exe().context("cannot find the emotrack binary")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("cannot find a free port")?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(exe)
        .args([
            "serve",
            "--bind",
            &addr,
            "--detector",
            detector,
            "--max-streams",
            "64",
        ])
        .env("EMOTRACK_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start emotrack serve")?;
    let server = Server { child, addr };
    let start = Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(&server.addr) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return Ok(server);
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("emotrack serve was not ready within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process's resident memory, sampled every second on a thread of its own until stopped.
struct MemorySampler {
    running: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<f64>>,
}

impl MemorySampler {
    fn start(pid: u32) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let thread = {
            let running = Arc::clone(&running);
            std::thread::spawn(move || {
                let mut samples = Vec::new();
                while running.load(Ordering::Relaxed) {
                    samples.push(rss_mb(pid));
                    std::thread::sleep(Duration::from_secs(1));
                }
                samples
            })
        };
        Self { running, thread }
    }

    /// The samples in MB, one a second from the start.
    fn stop(self) -> Vec<f64> {
        self.running.store(false, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The resident memory of a process, in MB (Linux; NaN elsewhere).
fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[derive(Default)]
struct StreamTotals {
    sent: u64,
    answered: u64,
    skipped: u64,
    /// (seconds since the streams started, latency in ms) per answered frame.
    latencies_ms: Vec<(f64, f64)>,
    processing_ms: Vec<f64>,
}

async fn run_streams(
    addr: &str,
    args: &ServeArgs,
    frames: Arc<Vec<Bytes>>,
    started: Instant,
) -> Result<StreamTotals> {
    let mut clients = Vec::new();
    for i in 0..args.streams {
        let url = format!("ws://{addr}/v1/stream?{}", args.stream_options);
        let frames = Arc::clone(&frames);
        let (fps, seconds) = (args.fps, args.seconds);
        // Cameras are not in step: each stream starts at its own phase of the frame interval.
        let phase = Duration::from_secs_f64(i as f64 / (args.streams as f64 * fps));
        clients.push(tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            one_stream(&url, frames, i, fps, seconds, started).await
        }));
    }
    let mut totals = StreamTotals::default();
    for c in clients {
        let t = c.await.context("a client failed")??;
        totals.sent += t.sent;
        totals.answered += t.answered;
        totals.skipped += t.skipped;
        totals.latencies_ms.extend(t.latencies_ms);
        totals.processing_ms.extend(t.processing_ms);
    }
    Ok(totals)
}

/// One camera-like client: a frame every 1/fps s, answers read as they come.
async fn one_stream(
    url: &str,
    frames: Arc<Vec<Bytes>>,
    offset: usize,
    fps: f64,
    seconds: f64,
    started: Instant,
) -> Result<StreamTotals> {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .context("cannot open a stream")?;
    let (mut tx, mut rx) = ws.split();
    let sent_at: Arc<std::sync::Mutex<HashMap<u64, Instant>>> = Arc::default();
    let sender = {
        let sent_at = Arc::clone(&sent_at);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / fps));
            let end = Instant::now() + Duration::from_secs_f64(seconds);
            let mut seq = 0u64;
            while Instant::now() < end {
                tick.tick().await;
                // Streams start at different places in the video.
                let frame = &frames[(offset * 7 + seq as usize) % frames.len()];
                if let Ok(mut m) = sent_at.lock() {
                    m.insert(seq, Instant::now());
                }
                if tx.send(Message::Binary(frame.clone())).await.is_err() {
                    break;
                }
                seq += 1;
            }
            // Let the last answers arrive, then close.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = tx.close().await;
            seq
        })
    };
    let mut totals = StreamTotals::default();
    while let Some(Ok(message)) = rx.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&text).context("a bad answer")?;
        if v["type"] != "frame" {
            bail!("the server answered an error: {v}");
        }
        let seq = v["seq"].as_u64().unwrap_or(u64::MAX);
        let sent = sent_at.lock().ok().and_then(|m| m.get(&seq).copied());
        if let Some(sent) = sent {
            totals.latencies_ms.push((
                started.elapsed().as_secs_f64(),
                sent.elapsed().as_secs_f64() * 1e3,
            ));
        }
        totals
            .processing_ms
            .push(v["processing_ms"].as_f64().unwrap_or(f64::NAN));
        totals.answered += 1;
        totals.skipped += v["skipped"].as_u64().unwrap_or(0);
    }
    totals.sent = sender.await.context("the sender failed")?;
    Ok(totals)
}

/// A photo request every `--photo-every` seconds while the streams run; each one's latency.
/// An answer other than 200 fails the benchmark.
async fn run_photo_requests(
    addr: &str,
    args: &ServeArgs,
    photos: &[(PathBuf, Vec<u8>)],
    started: Instant,
) -> Result<Vec<f64>> {
    if args.photo_every <= 0.0 || photos.is_empty() {
        return Ok(Vec::new());
    }
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/analyze");
    let mut tick = tokio::time::interval(Duration::from_secs_f64(args.photo_every));
    let mut latencies = Vec::new();
    while started.elapsed().as_secs_f64() < args.seconds {
        tick.tick().await;
        let photo = &photos[latencies.len() % photos.len()];
        let sent = Instant::now();
        let response = client
            .post(&url)
            .header("content-type", "image/jpeg")
            .body(photo.1.clone())
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "/v1/analyze answered {} for {} during the streams",
                response.status(),
                photo.0.display()
            );
        }
        response.bytes().await?;
        latencies.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    Ok(latencies)
}

/// `/v1/analyze` requests per second from `analyze_clients` concurrent clients.
async fn run_analyze(addr: &str, args: &ServeArgs, photos: &[(PathBuf, Vec<u8>)]) -> Result<f64> {
    let client = reqwest::Client::new();
    let end = Instant::now() + Duration::from_secs_f64(args.analyze_seconds);
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.analyze_clients {
        let client = client.clone();
        let url = format!("http://{addr}/v1/analyze");
        let photos: Vec<Vec<u8>> = photos.iter().map(|p| p.1.clone()).collect();
        workers.push(tokio::spawn(async move {
            let mut done = 0u64;
            let mut i = w;
            while Instant::now() < end {
                let response = client
                    .post(&url)
                    .header("content-type", "image/jpeg")
                    .body(photos[i % photos.len()].clone())
                    .send()
                    .await?;
                if !response.status().is_success() {
                    anyhow::bail!("/v1/analyze answered {}", response.status());
                }
                response.bytes().await?;
                done += 1;
                i += 1;
            }
            Ok(done)
        }));
    }
    let mut total = 0u64;
    for w in workers {
        total += w.await.context("a client failed")??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// `emotrack analyze`'s images per second on the same photos (each photo 4 times, one run,
/// model loading included as a user sees it).
fn cli_images_per_second(photos: &[(PathBuf, Vec<u8>)]) -> Result<f64> {
    let exe = std::env::current_exe().context("cannot find the emotrack binary")?;
    let args: Vec<&PathBuf> = (0..4).flat_map(|_| photos.iter().map(|p| &p.0)).collect();
    let start = Instant::now();
    let status = Command::new(exe)
        .arg("analyze")
        .args(&args)
        .args(["--format", "json"])
        .stdout(Stdio::null())
        .status()
        .context("cannot run emotrack analyze")?;
    if !status.success() {
        bail!("emotrack analyze failed ({status})");
    }
    Ok(args.len() as f64 / start.elapsed().as_secs_f64())
}
