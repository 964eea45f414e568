//! The `emotrack` binary: parses flags, dispatches to one subcommand module, maps errors to an
//! exit code. Everything else lives in the library crates.

mod analyze;
mod bench;
mod ensemble;
mod eval;
mod export;
mod inputs;
mod options;
mod outcome;
mod progress;
mod train;
mod video;

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
    /// Write the emotion classifier as ONNX.
    Export(export::Args),
    /// Combine trained classifiers into one ensemble model.
    Ensemble(ensemble::Args),
    /// Measure speed on real media.
    Bench(bench::Args),
    /// Track faces and emotions in a video, webcam, stream or image sequence.
    Video(Box<video::Args>),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EMOTRACK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Export(args) => export::run(args),
        Command::Ensemble(args) => ensemble::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Video(args) => video::run(*args),
    };
    match result {
        Ok(outcome) => outcome.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
