//! Vibe check: a short, friendly message for the dominant emotion and its strength.
//!
//! Messages come from a JSON file (`models/vibes.json` is embedded by default; `--vibes FILE`
//! replaces it). The choice is deterministic for a given score vector, so repeated runs on the
//! same photo print the same message.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::types::{Emotion, EmotionScores};

const EMBEDDED: &str = include_str!("../../../models/vibes.json");

#[derive(Debug, Clone, Deserialize)]
struct Messages {
    strong: Vec<String>,
    mild: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct VibesFile {
    strong_threshold: f32,
    mixed_below: f32,
    mixed: Vec<String>,
    emotions: HashMap<String, Messages>,
}

/// The message set. Build with [`Vibes::embedded`] or [`Vibes::from_file`].
#[derive(Debug, Clone)]
pub struct Vibes {
    strong_threshold: f32,
    mixed_below: f32,
    mixed: Vec<String>,
    /// Indexed like [`Emotion::ALL`].
    per_emotion: Vec<Messages>,
}

impl Vibes {
    /// The built-in messages.
    pub fn embedded() -> Self {
        // The embedded file is checked by a unit test, so parsing it cannot fail at run time.
        Self::from_json(EMBEDDED, Path::new("<embedded vibes.json>")).unwrap_or_else(|_| Self {
            strong_threshold: 0.6,
            mixed_below: 0.0,
            mixed: vec![String::new()],
            per_emotion: Emotion::ALL
                .iter()
                .map(|e| Messages {
                    strong: vec![e.name().into()],
                    mild: vec![e.name().into()],
                })
                .collect(),
        })
    }

    /// Messages from a JSON file laid out like `models/vibes.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Messages from the text of a vibes file; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let bad =
            |message: String| Error::config(format!("vibes file {}: {message}", path.display()));
        let file: VibesFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut per_emotion = Vec::with_capacity(Emotion::COUNT);
        for e in Emotion::ALL {
            let m = file
                .emotions
                .get(e.name())
                .ok_or_else(|| bad(format!("no messages for \"{e}\" under \"emotions\"")))?;
            if m.strong.is_empty() || m.mild.is_empty() {
                return Err(bad(format!(
                    "\"{e}\" needs at least one \"strong\" and one \"mild\" message"
                )));
            }
            per_emotion.push(m.clone());
        }
        if let Some(unknown) = file
            .emotions
            .keys()
            .find(|k| Emotion::from_name(k).is_none())
        {
            return Err(bad(format!("unknown emotion \"{unknown}\"")));
        }
        if file.mixed.is_empty() {
            return Err(bad("\"mixed\" needs at least one message".into()));
        }
        Ok(Self {
            strong_threshold: file.strong_threshold,
            mixed_below: file.mixed_below,
            mixed: file.mixed,
            per_emotion,
        })
    }

    /// The message for a face's scores.
    pub fn message(&self, scores: &EmotionScores) -> &str {
        let (emotion, p) = scores.top();
        // A stable pseudo-random pick: the same scores give the same message.
        let pick = |list: &[String]| -> usize {
            let key = scores.0.iter().fold(0u32, |h, v| {
                h.wrapping_mul(31).wrapping_add((v * 1000.0) as u32)
            });
            key as usize % list.len()
        };
        if p < self.mixed_below {
            return &self.mixed[pick(&self.mixed)];
        }
        let m = &self.per_emotion[emotion.index()];
        let list = if p >= self.strong_threshold {
            &m.strong
        } else {
            &m.mild
        };
        &list[pick(list)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_file_parses_and_covers_every_emotion() {
        let v = Vibes::from_json(EMBEDDED, Path::new("embedded")).expect("embedded vibes parse");
        for e in Emotion::ALL {
            let mut logits = [0.0; 7];
            logits[e.index()] = 6.0;
            assert!(!v.message(&EmotionScores::from_logits(&logits)).is_empty());
        }
    }

    #[test]
    fn strength_picks_strong_mild_or_mixed() {
        let v = Vibes::embedded();
        let strong = EmotionScores([0.0, 0.0, 0.0, 0.9, 0.1, 0.0, 0.0]);
        let mild = EmotionScores([0.0, 0.0, 0.0, 0.5, 0.3, 0.2, 0.0]);
        let mixed = EmotionScores([0.2, 0.1, 0.1, 0.2, 0.2, 0.1, 0.1]);
        assert!(
            v.per_emotion[3]
                .strong
                .iter()
                .any(|m| m == v.message(&strong))
        );
        assert!(v.per_emotion[3].mild.iter().any(|m| m == v.message(&mild)));
        assert!(v.mixed.iter().any(|m| m == v.message(&mixed)));
    }

    #[test]
    fn a_file_missing_an_emotion_is_refused_with_its_name() {
        let text = r#"{"strong_threshold":0.6,"mixed_below":0.3,"mixed":["m"],"emotions":{"happy":{"strong":["a"],"mild":["b"]}}}"#;
        let err = Vibes::from_json(text, Path::new("my.json"))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("my.json") && err.contains("angry"), "{err}");
    }
}
