//! Writes every fuzz target's seeds to `DIR/<target>/` (the start of its corpus).
//!
//! `cargo run -p emotrack-fuzz --example write_seeds -- /var/tmp/emotrack-fuzz/corpus`

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: write_seeds DIR");
        std::process::exit(2);
    };
    for (target, _) in emotrack_fuzz::TARGETS {
        let folder = dir.join(target);
        std::fs::create_dir_all(&folder)?;
        let seeds = emotrack_fuzz::seeds::seeds(target);
        for (name, bytes) in &seeds {
            std::fs::write(folder.join(format!("seed-{name}")), bytes)?;
        }
        println!("{target:14} {:3} seeds", seeds.len());
    }
    Ok(())
}
