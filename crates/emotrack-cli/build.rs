//! Records the commit the binary is built from as `EMOTRACK_BUILD_COMMIT`: `git rev-parse HEAD`
//! of the source tree, or "unknown" when git or the repository is missing (a source tarball).
//! Training runs and combined models record it as their provenance.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = git(&dir, &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=EMOTRACK_BUILD_COMMIT={commit}");
    println!("cargo:rerun-if-changed=build.rs");
    watch_head(&dir);
}

/// Asks cargo to run this script again when HEAD moves: when it is switched (`HEAD`), or when
/// the branch it names gets a commit (its ref file, or `packed-refs` for packed refs). Only
/// files that exist are named, as cargo reruns the script on every build for a missing one;
/// without git, nothing is named and the script runs again only when it changes itself.
fn watch_head(dir: &Path) {
    // In a worktree HEAD lives in its own git dir, branches in the common one.
    let (Some(git_dir), Some(common)) = (
        git(dir, &["rev-parse", "--git-dir"]),
        git(dir, &["rev-parse", "--git-common-dir"]),
    ) else {
        return;
    };
    // Both may be relative to `dir`; joining an absolute path replaces `dir`.
    let (git_dir, common) = (dir.join(git_dir), dir.join(common));
    watch(&git_dir.join("HEAD"));
    watch(&common.join("packed-refs"));
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        let loose = common.join(&branch);
        if !watch(&loose) {
            // The branch is packed: its first commit from now on writes the loose file, which
            // only a watch on its folder sees.
            if let Some(folder) = loose.parent() {
                watch(folder);
            }
        }
    }
}

/// Names `path` for `cargo:rerun-if-changed` if it exists; returns whether it does.
fn watch(path: &Path) -> bool {
    let exists = path.exists();
    if exists {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    exists
}

/// The trimmed output of `git args` run in `dir`, if it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!text.is_empty()).then_some(text)
}
