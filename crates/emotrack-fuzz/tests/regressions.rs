//! Replays every fuzz target's seeds and every input saved under `fuzz/regressions/<target>/`
//! (each one a crash the fuzzer found, since fixed) through the same functions the fuzz
//! targets call. A panic anywhere, in a server task too, fails the test.

use std::path::Path;
use std::sync::Mutex;

/// Panics seen on any thread (the server's tasks catch theirs, so the hook records them),
/// but for tract's, which the library catches by design.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if emotrack_fuzz::is_caught_tract_panic(info) {
            return; // caught where the library reads an ONNX graph, and reported as an error
        }
        PANICS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(info.to_string());
        previous(info);
    }));
}

fn replay(target: &str, run: fn(&[u8]), inputs: Vec<(String, Vec<u8>)>) -> usize {
    for (name, bytes) in &inputs {
        run(bytes);
        let panics = std::mem::take(
            &mut *PANICS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        assert!(panics.is_empty(), "{target}/{name} panicked: {panics:?}");
    }
    inputs.len()
}

fn saved(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = emotrack_fuzz::seeds::workspace_root()
        .join("fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut inputs: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != Path::new("README.md")))
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a regression input reads");
            (p.display().to_string(), bytes)
        })
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn every_seed_and_saved_crash_runs_without_a_panic() {
    record_panics();
    for (target, run) in emotrack_fuzz::TARGETS {
        let seeds = replay(target, run, emotrack_fuzz::seeds::seeds(target));
        let crashes = replay(target, run, saved(target));
        assert!(seeds > 0, "{target} has no seeds");
        eprintln!("{target}: {seeds} seeds, {crashes} saved crashes replayed");
    }
}
