//! Running the `ffmpeg` and `ffprobe` programs as child processes.
//!
//! Children get their own process group, so a Ctrl-C in the terminal reaches only emotrack,
//! which then closes the encoder's input and waits for it: the output file stays playable.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Lines of a child's stderr kept for error messages.
const STDERR_LINES: usize = 12;

/// How often a waiting loop checks a child's state.
pub(crate) const POLL: Duration = Duration::from_millis(10);

/// One of the two FFmpeg programs emotrack runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Program {
    /// `ffmpeg`: decoding and encoding.
    Ffmpeg,
    /// `ffprobe`: metadata.
    Ffprobe,
}

impl Program {
    fn default_name(self) -> &'static str {
        match self {
            Program::Ffmpeg => "ffmpeg",
            Program::Ffprobe => "ffprobe",
        }
    }

    /// The environment variable that overrides the program's path.
    pub(crate) fn env_var(self) -> &'static str {
        match self {
            Program::Ffmpeg => "EMOTRACK_FFMPEG",
            Program::Ffprobe => "EMOTRACK_FFPROBE",
        }
    }

    /// The program to run: `$EMOTRACK_FFMPEG` / `$EMOTRACK_FFPROBE`, or the name on `PATH`.
    pub(crate) fn path(self) -> String {
        std::env::var(self.env_var()).unwrap_or_else(|_| self.default_name().to_owned())
    }

    /// A command for this program: quiet (errors only), no banner, stdin closed, in its own
    /// process group.
    pub(crate) fn command(self) -> Command {
        let mut cmd = Command::new(self.path());
        cmd.args(["-hide_banner", "-loglevel", "error"]);
        cmd.stdin(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        cmd
    }

    /// Starts `cmd`, turning "not found" into advice on installing FFmpeg.
    pub(crate) fn spawn(self, cmd: &mut Command, input: &str) -> Result<Child> {
        tracing::debug!(command = ?cmd, "starting {}", self.path());
        cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::video(
                    input,
                    format!(
                        "cannot run `{}`: FFmpeg is not installed or not on PATH",
                        self.path()
                    ),
                )
                .with_hint(format!(
                    "install it (Debian/Ubuntu: `apt-get install ffmpeg`) or set {} to the program",
                    self.env_var()
                ))
            } else {
                Error::video(input, format!("cannot run `{}`: {e}", self.path()))
            }
        })
    }
}

/// The last lines a child wrote to stderr, collected by a thread so the child never blocks on
/// a full pipe.
#[derive(Debug)]
pub(crate) struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl StderrTail {
    /// Starts collecting `stderr` (`None`: nothing to collect).
    pub(crate) fn collect(stderr: Option<ChildStderr>) -> Self {
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let thread = stderr.map(|stderr| {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let line = tidy(&line);
                    if line.is_empty() {
                        continue;
                    }
                    if let Ok(mut l) = lines.lock() {
                        if l.len() == STDERR_LINES {
                            l.pop_front();
                        }
                        l.push_back(line);
                    }
                }
            })
        });
        Self { lines, thread }
    }

    /// Waits for the child's stderr to close (call after the child exited) and returns the
    /// collected lines joined with "; ".
    pub(crate) fn finish(&mut self) -> String {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.text()
    }

    /// The lines collected so far, joined with "; ".
    pub(crate) fn text(&self) -> String {
        self.lines
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("; "))
            .unwrap_or_default()
    }
}

/// Drops FFmpeg's `[demuxer @ 0x55d1...] ` prefix, which means nothing to a user.
fn tidy(line: &str) -> String {
    let line = line.trim();
    if line.starts_with('[')
        && let Some(end) = line.find("] ")
        && line[..end].contains(" @ 0x")
    {
        return line[end + 2..].trim().to_owned();
    }
    line.to_owned()
}

/// What a finished child printed.
#[derive(Debug)]
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs `cmd` to completion, killing it after `timeout`.
pub(crate) fn run_with_timeout(
    program: Program,
    mut cmd: Command,
    input: &str,
    timeout: Duration,
) -> Result<Finished> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = program.spawn(&mut cmd, input)?;
    let mut stderr = StderrTail::collect(child.stderr.take());
    let stdout_thread = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        })
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::video(
                    input.to_owned(),
                    format!(
                        "`{}` got no answer within {:.0} s; check that the source is reachable \
                         and sending video",
                        program.path(),
                        timeout.as_secs_f64()
                    ),
                ));
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => {
                return Err(Error::video(
                    input.to_owned(),
                    format!("cannot wait for `{}`: {e}", program.path()),
                ));
            }
        }
    };
    let stdout = stdout_thread
        .and_then(|t| t.join().ok())
        .unwrap_or_default();
    Ok(Finished {
        status,
        stdout,
        stderr: stderr.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffmpeg_prefixes_are_dropped_from_messages() {
        assert_eq!(
            tidy("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x561634624180] moov atom not found"),
            "moov atom not found"
        );
        assert_eq!(
            tidy("text.mp4: Invalid data found when processing input"),
            "text.mp4: Invalid data found when processing input"
        );
        assert_eq!(tidy("[x] not an address"), "[x] not an address");
    }
}
