//! Written results: one JSON line per frame per face, and a per-track summary (CSV).

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::pipeline::FrameReport;
use crate::report::FaceRecord;
use crate::track::TrackId;
use crate::types::Emotion;

/// Writes one JSON object per frame per shown face, a [`FaceRecord`]:
/// `{"time","frame","id","box","detected_box","detector_score","probabilities":{…7},
/// "smoothed":{…7},"label","confidence","vibe"}` (`time` in seconds, boxes in pixels; `box` is
/// the smoothed box that is drawn; the face's fields are [`crate::report::FaceJson`]'s).
pub fn write_jsonl(out: &mut impl Write, report: &FrameReport) -> std::io::Result<()> {
    for record in FaceRecord::from_report(report) {
        serde_json::to_writer(&mut *out, &record)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// What one track did over the whole video.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackSummary {
    /// Track id.
    pub id: TrackId,
    /// First frame shown.
    pub first_frame: u64,
    /// Last frame shown.
    pub last_frame: u64,
    /// Time of the first frame shown (seconds).
    pub first_seen: f64,
    /// Time of the last frame shown (seconds).
    pub last_seen: f64,
    /// Frames the track was shown in.
    pub frames: u64,
    /// Frames shown with each label, indexed like [`Emotion::ALL`].
    pub label_frames: [u64; 7],
}

impl TrackSummary {
    /// The label shown most often.
    pub fn dominant(&self) -> Emotion {
        let mut best = 0;
        for i in 1..Emotion::COUNT {
            if self.label_frames[i] > self.label_frames[best] {
                best = i;
            }
        }
        Emotion::ALL[best]
    }

    /// Share of the track's frames shown with `emotion` (0-1).
    pub fn share(&self, emotion: Emotion) -> f64 {
        if self.frames == 0 {
            return 0.0;
        }
        self.label_frames[emotion.index()] as f64 / self.frames as f64
    }
}

/// Per-track summaries, accumulated frame by frame.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    tracks: BTreeMap<TrackId, TrackSummary>,
}

impl Summary {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a frame's faces.
    pub fn push(&mut self, report: &FrameReport) {
        for f in &report.faces {
            let t = self.tracks.entry(f.id).or_insert(TrackSummary {
                id: f.id,
                first_frame: report.index,
                last_frame: report.index,
                first_seen: report.time,
                last_seen: report.time,
                frames: 0,
                label_frames: [0; 7],
            });
            t.last_frame = report.index;
            t.last_seen = report.time;
            t.frames += 1;
            t.label_frames[f.label.index()] += 1;
        }
    }

    /// The tracks, by id.
    pub fn tracks(&self) -> impl Iterator<Item = &TrackSummary> {
        self.tracks.values()
    }

    /// Number of tracks seen.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// No track was seen.
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Writes the CSV: `id,first_frame,last_frame,first_seen_s,last_seen_s,frames,dominant`,
    /// then the share of the track's frames shown with each emotion (`angry`…`surprise`, 0-1).
    pub fn write_csv(&self, out: &mut impl Write) -> std::io::Result<()> {
        write!(
            out,
            "id,first_frame,last_frame,first_seen_s,last_seen_s,frames,dominant"
        )?;
        for e in Emotion::ALL {
            write!(out, ",{}", e.name())?;
        }
        writeln!(out)?;
        for t in self.tracks() {
            write!(
                out,
                "{},{},{},{:.3},{:.3},{},{}",
                t.id,
                t.first_frame,
                t.last_frame,
                t.first_seen,
                t.last_seen,
                t.frames,
                t.dominant()
            )?;
            for e in Emotion::ALL {
                write!(out, ",{:.4}", t.share(e))?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{BBox, EmotionScores};
    use crate::video::TrackedFace;

    fn face(id: TrackId, label: Emotion) -> TrackedFace {
        let b = BBox {
            x: 1.0,
            y: 2.0,
            w: 30.0,
            h: 30.0,
        };
        let mut s = [0.0; 7];
        s[label.index()] = 1.0;
        TrackedFace {
            id,
            bbox: b,
            detected_bbox: b,
            landmarks: None,
            detector_score: 1.0,
            raw: EmotionScores(s),
            smoothed: EmotionScores(s),
            label,
            vibe: "hi".into(),
        }
    }

    fn report(index: u64, faces: Vec<TrackedFace>) -> FrameReport {
        FrameReport {
            index,
            time: index as f64 / 10.0,
            detected: true,
            faces,
        }
    }

    #[test]
    fn the_summary_counts_first_and_last_sightings_and_label_shares() {
        let mut s = Summary::new();
        s.push(&report(0, vec![face(1, Emotion::Happy)]));
        s.push(&report(
            1,
            vec![face(1, Emotion::Happy), face(2, Emotion::Sad)],
        ));
        s.push(&report(2, vec![face(1, Emotion::Neutral)]));
        let t: Vec<_> = s.tracks().collect();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].first_frame, t[0].last_frame, t[0].frames), (0, 2, 3));
        assert_eq!(t[0].dominant(), Emotion::Happy);
        assert!((t[0].share(Emotion::Happy) - 2.0 / 3.0).abs() < 1e-12);
        let mut csv = Vec::new();
        s.write_csv(&mut csv).expect("in memory");
        let csv = String::from_utf8(csv).expect("utf-8");
        let lines: Vec<_> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with(",sad,surprise"));
        assert!(
            lines[2].starts_with("2,1,1,0.100,0.100,1,sad,"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn jsonl_has_one_parsable_line_per_face_with_named_probabilities() {
        let mut out = Vec::new();
        write_jsonl(
            &mut out,
            &report(4, vec![face(1, Emotion::Happy), face(3, Emotion::Fear)]),
        )
        .expect("in memory");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["id"], 3);
        assert_eq!(lines[1]["frame"], 4);
        assert_eq!(lines[1]["label"], "fear");
        assert_eq!(lines[1]["probabilities"]["fear"], 1.0);
        assert_eq!(lines[1]["smoothed"]["fear"], 1.0);
        assert_eq!(lines[0]["box"]["w"], 30.0);
    }
}
