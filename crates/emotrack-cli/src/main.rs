//! The `emotrack` binary: parses flags, dispatches to a subcommand, maps errors to exit codes.

fn main() {
    println!("emotrack");
}
