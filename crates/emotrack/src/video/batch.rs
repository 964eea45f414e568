//! Batch runs over a list of videos, split across workers: a [`VideoList`] read from a file
//! (one path or URL a line), a [`Shard`] `INDEX/COUNT` that picks a worker's share (a
//! Kubernetes Indexed Job gives each pod its index), and one output folder name per video.
//!
//! ```
//! use emotrack::video::{Shard, VideoList};
//! let list = VideoList::parse("# talks\nday1/keynote.mp4\n\nday2/keynote.mp4\nrtsp://cam/lobby\n");
//! let shard: Shard = "0/2".parse()?;
//! let mine: Vec<_> = list.shard(shard).map(|v| (v.source.as_str(), v.name.as_str())).collect();
//! assert_eq!(mine, [("day1/keynote.mp4", "keynote"), ("rtsp://cam/lobby", "lobby")]);
//! # Ok::<(), emotrack::Error>(())
//! ```

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Output folder name for a video whose name gives none (`.`, `/`, a bare URL).
const FALLBACK_NAME: &str = "video";

/// One worker's share of a list: the videos at positions `p` with `p % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// The whole list (`0/1`).
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count` (0-based: `index < count`).
    pub fn new(index: u32, count: u32) -> Result<Self> {
        if count == 0 {
            return Err(Error::config("COUNT must be at least 1"));
        }
        if index >= count {
            return Err(Error::config("INDEX must be below COUNT")
                .with_hint(format!("indices run from 0 to {}", count - 1)));
        }
        Ok(Self { index, count })
    }

    /// This shard's index (0-based).
    pub fn index(self) -> u32 {
        self.index
    }

    /// The number of shards.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether the video at `position` (0-based, among the list's videos) is this shard's.
    pub fn takes(self, position: usize) -> bool {
        position % self.count as usize == self.index as usize
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// Reads `INDEX/COUNT`, such as `0/4`.
    fn from_str(s: &str) -> Result<Self> {
        let expected = || Error::config("expected INDEX/COUNT, such as 0/4");
        let (index, count) = s.split_once('/').ok_or_else(expected)?;
        let number = |part: &str| part.trim().parse::<u32>().map_err(|_| expected());
        Shard::new(number(index)?, number(count)?)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One video of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVideo {
    /// Position among the list's videos (0-based; blank lines and comments do not count).
    pub position: usize,
    /// Line number in the list file (1-based), for messages.
    pub line: usize,
    /// The path or URL, as written (trimmed).
    pub source: String,
    /// Its output folder name: the file name without extension ([`output_name`]), with `-2`,
    /// `-3`, ... added when an earlier video of the list has the same name, so that every
    /// worker names every video alike.
    pub name: String,
}

/// A list of videos: one path or URL a line; blank lines and lines starting with `#` skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VideoList {
    videos: Vec<ListedVideo>,
}

impl VideoList {
    /// Reads a list file; a list without any video is an error.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let list = Self::parse(&text);
        if list.is_empty() {
            return Err(
                Error::video(path.display().to_string(), "the list names no video")
                    .with_hint("write one video path or URL a line (# starts a comment)"),
            );
        }
        Ok(list)
    }

    /// Parses a list's text.
    pub fn parse(text: &str) -> Self {
        let mut used = HashSet::new();
        let videos = text
            .lines()
            .enumerate()
            .map(|(i, line)| (i + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
            .enumerate()
            .map(|(position, (line, source))| ListedVideo {
                position,
                line,
                source: source.to_owned(),
                name: unique(output_name(source), &mut used),
            })
            .collect();
        Self { videos }
    }

    /// Every video, in list order.
    pub fn videos(&self) -> &[ListedVideo] {
        &self.videos
    }

    /// Number of videos.
    pub fn len(&self) -> usize {
        self.videos.len()
    }

    /// No video.
    pub fn is_empty(&self) -> bool {
        self.videos.is_empty()
    }

    /// The videos of one shard, in list order.
    pub fn shard(&self, shard: Shard) -> impl Iterator<Item = &ListedVideo> {
        self.videos.iter().filter(move |v| shard.takes(v.position))
    }
}

/// `name`, or `name-2`, `name-3`, ... if taken; marks the result taken.
fn unique(name: String, used: &mut HashSet<String>) -> String {
    let mut candidate = name.clone();
    let mut n = 1;
    while !used.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{name}-{n}");
    }
    candidate
}

/// The output folder name of a video: its file name without the extension (for URLs, the last
/// part of the path, without query), with characters other than letters, digits, `-`, `_` and
/// `.` replaced by `_`; `video` when nothing is left.
///
/// ```
/// use emotrack::video::output_name;
/// assert_eq!(output_name("talks/day 1.mp4"), "day_1");
/// assert_eq!(output_name("https://example.com/live/cam.m3u8?token=x"), "cam");
/// assert_eq!(output_name("/dev/video0"), "video0");
/// ```
pub fn output_name(source: &str) -> String {
    let path = match source.split_once("://") {
        Some((_, rest)) => rest.split(['?', '#']).next().unwrap_or(rest),
        None => source,
    };
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let stem = Path::new(last)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.');
    if clean.is_empty() {
        FALLBACK_NAME.to_owned()
    } else {
        clean.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_videos_by_position_and_cover_each_once() {
        let text = (0..7).map(|i| format!("v{i}.mp4\n")).collect::<String>();
        let list = VideoList::parse(&format!("# header\n\n{text}"));
        let mut seen = Vec::new();
        for i in 0..3 {
            let shard = Shard::new(i, 3).expect("valid");
            seen.extend(list.shard(shard).map(|v| v.position));
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
        let second: Vec<_> = list
            .shard(Shard::new(1, 3).expect("valid"))
            .map(|v| v.source.as_str())
            .collect();
        assert_eq!(second, ["v1.mp4", "v4.mp4"]);
    }

    #[test]
    fn a_shard_index_must_be_below_the_count() {
        let err = "3/2".parse::<Shard>().expect_err("3 is not below 2");
        assert_eq!(err.what(), "INDEX must be below COUNT");
        assert!("0/0".parse::<Shard>().is_err());
        assert!("1".parse::<Shard>().is_err());
        assert!("a/2".parse::<Shard>().is_err());
        assert!("-1/2".parse::<Shard>().is_err());
        assert_eq!("1/2".parse::<Shard>().expect("valid").to_string(), "1/2");
    }

    #[test]
    fn comments_and_blank_lines_are_skipped_and_line_numbers_kept() {
        let list = VideoList::parse("  # a\n\n  a.mp4  \n#b.mp4\nc.mp4\n");
        let v = list.videos();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].position, v[0].line, v[0].source.as_str()),
            (0, 3, "a.mp4")
        );
        assert_eq!(
            (v[1].position, v[1].line, v[1].source.as_str()),
            (1, 5, "c.mp4")
        );
    }

    #[test]
    fn videos_with_the_same_name_get_numbered_folders() {
        let list = VideoList::parse("a/clip.mp4\nb/clip.mp4\nclip-2.mkv\nc/clip.mov\n");
        let names: Vec<_> = list.videos().iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["clip", "clip-2", "clip-2-2", "clip-3"]);
    }

    #[test]
    fn odd_names_give_safe_folder_names() {
        assert_eq!(output_name("frames/%04d.png"), "_04d");
        assert_eq!(output_name("rtsp://camera.local/"), "camera");
        assert_eq!(output_name("rtsp://"), "video");
        assert_eq!(output_name(".hidden"), "hidden");
        assert_eq!(output_name(".."), "video");
    }
}
