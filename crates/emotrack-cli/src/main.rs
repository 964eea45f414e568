//! The `emotrack` binary: parses flags, dispatches to one subcommand module, maps errors to an
//! exit code. Everything else lives in the library crates.

mod analyze;
mod bench;
mod calibrate;
mod ensemble;
mod eval;
mod export;
mod inputs;
mod options;
mod outcome;
mod progress;
mod serve;
mod train;
mod video;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Real-time facial emotion recognition.
#[derive(Debug, Parser)]
#[command(name = "emotrack", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Find faces in photos and tell their emotions.
    Analyze(analyze::Args),
    /// Train the emotion classifier on FER-2013.
    Train(train::Args),
    /// Evaluate a classifier on a FER-2013 split.
    Eval(eval::Args),
    /// Fit a classifier's softmax temperature so its probabilities are calibrated.
    Calibrate(calibrate::Args),
    /// Write the emotion classifier as ONNX.
    Export(export::Args),
    /// Combine trained classifiers into one ensemble model.
    Ensemble(ensemble::Args),
    /// Measure speed on real media.
    Bench(bench::Args),
    /// Track faces and emotions in a video, webcam, stream or image sequence.
    Video(Box<video::Args>),
    /// Serve the HTTP and WebSocket API (images, live streams, video jobs).
    Serve(Box<serve::Args>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs a line per request by default; the other commands only warnings.
    let default_filter = match cli.command {
        Command::Serve(_) => "warn,emotrack_server=info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EMOTRACK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Export(args) => export::run(args),
        Command::Ensemble(args) => ensemble::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Video(args) => video::run(*args),
        Command::Serve(args) => serve::run(*args),
    };
    match result {
        Ok(outcome) => outcome.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
