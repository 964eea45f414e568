//! Plain data types shared by every stage: boxes, landmarks, detections and emotion scores.

use serde::{Deserialize, Serialize};

/// An axis-aligned box in pixel coordinates of the analysed image (top-left origin).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct BBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width (≥ 0).
    pub w: f32,
    /// Height (≥ 0).
    pub h: f32,
}

impl BBox {
    /// A box from its left, top, right and bottom edges.
    pub fn from_corners(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self {
            x: x1,
            y: y1,
            w: (x2 - x1).max(0.0),
            h: (y2 - y1).max(0.0),
        }
    }

    /// Right edge.
    pub fn right(&self) -> f32 {
        self.x + self.w
    }

    /// Bottom edge.
    pub fn bottom(&self) -> f32 {
        self.y + self.h
    }

    /// Area in square pixels.
    pub fn area(&self) -> f32 {
        self.w * self.h
    }

    /// Centre point `(x, y)`.
    pub fn center(&self) -> (f32, f32) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// Area shared with `other` (0 when they do not overlap).
    pub fn intersection(&self, other: &BBox) -> f32 {
        let ix = (self.right().min(other.right()) - self.x.max(other.x)).max(0.0);
        let iy = (self.bottom().min(other.bottom()) - self.y.max(other.y)).max(0.0);
        ix * iy
    }

    /// Intersection over union with another box, in `[0, 1]`; 0 when either box is empty.
    pub fn iou(&self, other: &BBox) -> f32 {
        let inter = self.intersection(other);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

/// Five facial landmarks, each `[x, y]` in image pixels, in MTCNN's order (YuNet's is the same):
/// left eye, right eye, nose, left mouth corner, right mouth corner ("left" as seen in the image).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Landmarks(pub [[f32; 2]; 5]);

impl Landmarks {
    /// The eye seen on the image's left.
    pub fn left_eye(&self) -> [f32; 2] {
        self.0[0]
    }
    /// The eye seen on the image's right.
    pub fn right_eye(&self) -> [f32; 2] {
        self.0[1]
    }
}

/// One face found by a detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The face box.
    pub bbox: BBox,
    /// Detector confidence: a probability in `[0, 1]` for MTCNN, a score in `[0, 1]` for YuNet
    /// (`sqrt(class · objectness)`); for Haar, the number of neighbouring windows merged into
    /// the box (OpenCV's "level weight" idea, unnormalised).
    pub score: f32,
    /// Five landmarks when the detector provides them (MTCNN, YuNet), otherwise `None`.
    pub landmarks: Option<Landmarks>,
}

/// The seven FER-2013 emotions, in the dataset's (alphabetical) class order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Emotion {
    /// Angry.
    Angry,
    /// Disgust.
    Disgust,
    /// Fear.
    Fear,
    /// Happy.
    Happy,
    /// Neutral.
    Neutral,
    /// Sad.
    Sad,
    /// Surprise.
    Surprise,
}

impl Emotion {
    /// All emotions in class-index order.
    pub const ALL: [Emotion; 7] = [
        Emotion::Angry,
        Emotion::Disgust,
        Emotion::Fear,
        Emotion::Happy,
        Emotion::Neutral,
        Emotion::Sad,
        Emotion::Surprise,
    ];

    /// Number of classes.
    pub const COUNT: usize = 7;

    /// Lower-case name, as in FER-2013's folder names.
    pub fn name(self) -> &'static str {
        match self {
            Emotion::Angry => "angry",
            Emotion::Disgust => "disgust",
            Emotion::Fear => "fear",
            Emotion::Happy => "happy",
            Emotion::Neutral => "neutral",
            Emotion::Sad => "sad",
            Emotion::Surprise => "surprise",
        }
    }

    /// Class index (position in [`Emotion::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a lower-case name (as in FER-2013's folder names).
    pub fn from_name(name: &str) -> Option<Emotion> {
        Emotion::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl std::fmt::Display for Emotion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Probabilities of the seven emotions, indexed like [`Emotion::ALL`]; they sum to 1.
///
/// In JSON (and any serde format) they are a map keyed by emotion name,
/// `{"angry": 0.01, "disgust": 0.0, "fear": 0.02, "happy": 0.9, "neutral": 0.05, "sad": 0.01,
/// "surprise": 0.01}`; reading requires all seven names and refuses others.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EmotionScores(pub [f32; 7]);

impl Serialize for EmotionScores {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(Emotion::COUNT))?;
        for e in Emotion::ALL {
            map.serialize_entry(e.name(), &self.get(e))?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for EmotionScores {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ScoresVisitor)
    }
}

/// Reads [`EmotionScores`] from a map keyed by emotion name.
struct ScoresVisitor;

impl<'de> serde::de::Visitor<'de> for ScoresVisitor {
    type Value = EmotionScores;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map from the seven emotion names (angry ... surprise) to probabilities")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        let mut values = [None; Emotion::COUNT];
        // Unknown names fail in `Emotion`'s own Deserialize, which lists the valid ones.
        while let Some(emotion) = map.next_key::<Emotion>()? {
            let slot = &mut values[emotion.index()];
            if slot.is_some() {
                return Err(A::Error::custom(format!("duplicate emotion `{emotion}`")));
            }
            *slot = Some(map.next_value::<f32>()?);
        }
        let mut scores = [0.0; Emotion::COUNT];
        for e in Emotion::ALL {
            scores[e.index()] =
                values[e.index()].ok_or_else(|| A::Error::missing_field(e.name()))?;
        }
        Ok(EmotionScores(scores))
    }
}

impl EmotionScores {
    /// Probability of one emotion.
    pub fn get(&self, emotion: Emotion) -> f32 {
        self.0[emotion.index()]
    }

    /// The most probable emotion and its probability.
    pub fn top(&self) -> (Emotion, f32) {
        let mut best = 0;
        for i in 1..Emotion::COUNT {
            if self.0[i] > self.0[best] {
                best = i;
            }
        }
        (Emotion::ALL[best], self.0[best])
    }

    /// Emotions sorted by probability, highest first.
    pub fn ranked(&self) -> [(Emotion, f32); 7] {
        let mut out = Emotion::ALL.map(|e| (e, self.get(e)));
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }

    /// Softmax of raw logits.
    pub fn from_logits(logits: &[f32; 7]) -> Self {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut p = logits.map(|l| (l - max).exp());
        let sum: f32 = p.iter().sum();
        for v in &mut p {
            *v /= sum;
        }
        EmotionScores(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_boxes_is_one_and_disjoint_is_zero() {
        let a = BBox {
            x: 10.0,
            y: 10.0,
            w: 20.0,
            h: 20.0,
        };
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        let b = BBox {
            x: 100.0,
            y: 10.0,
            w: 20.0,
            h: 20.0,
        };
        assert_eq!(a.iou(&b), 0.0);
        let c = BBox {
            x: 20.0,
            y: 10.0,
            w: 20.0,
            h: 20.0,
        };
        assert!((a.iou(&c) - 200.0 / 600.0).abs() < 1e-6);
    }

    #[test]
    fn emotion_names_round_trip_in_class_order() {
        for (i, e) in Emotion::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(Emotion::from_name(e.name()), Some(*e));
        }
        assert_eq!(Emotion::from_name("bored"), None);
    }

    #[test]
    fn softmax_sums_to_one_and_ranks() {
        let s = EmotionScores::from_logits(&[0.0, 0.0, 0.0, 5.0, 1.0, 0.0, 0.0]);
        assert!((s.0.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(s.top().0, Emotion::Happy);
        assert_eq!(s.ranked()[1].0, Emotion::Neutral);
    }

    #[test]
    fn scores_serialise_as_a_map_keyed_by_emotion_name_and_read_back() {
        let s = EmotionScores([0.5, 0.0, 0.0, 0.25, 0.25, 0.0, 0.0]);
        let json = serde_json::to_string(&s).expect("serialises");
        assert_eq!(
            json,
            r#"{"angry":0.5,"disgust":0.0,"fear":0.0,"happy":0.25,"neutral":0.25,"sad":0.0,"surprise":0.0}"#
        );
        let back: EmotionScores = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, s);
    }

    #[test]
    fn reading_scores_names_a_missing_or_unknown_emotion() {
        let missing = r#"{"angry":0.5,"disgust":0,"fear":0,"happy":0.5,"neutral":0,"sad":0}"#;
        let err = serde_json::from_str::<EmotionScores>(missing).expect_err("surprise is missing");
        assert!(err.to_string().contains("surprise"), "{err}");
        let unknown = r#"{"bored":1.0}"#;
        let err = serde_json::from_str::<EmotionScores>(unknown).expect_err("not an emotion");
        assert!(err.to_string().contains("bored"), "{err}");
    }
}
