//! Classification metrics over any predictor: accuracy, macro-F1, per-class precision/recall/F1,
//! the confusion matrix and expected calibration error.
//!
//! [`evaluate`] takes anything implementing [`Predictor`] (batches of 48x48 gray crops in,
//! [`EmotionScores`] out), so the same numbers come out for the burn network during training
//! and for the library's inference classifier.

use emotrack::{Emotion, EmotionScores};
use serde::Serialize;

use crate::data::Dataset;

/// Number of confidence bins of the expected calibration error (the usual 15).
pub const ECE_BINS: usize = 15;

/// Something that classifies 48x48 gray crops.
pub trait Predictor {
    /// Scores for each crop of the batch (each `48 * 48` row-major gray pixels).
    fn predict(&mut self, crops: &[&[u8]]) -> Vec<EmotionScores>;
}

impl<F: FnMut(&[&[u8]]) -> Vec<EmotionScores>> Predictor for F {
    fn predict(&mut self, crops: &[&[u8]]) -> Vec<EmotionScores> {
        self(crops)
    }
}

/// Accumulates predictions and computes the metrics.
#[derive(Debug, Clone, Default)]
pub struct MetricsBuilder {
    /// `confusion[truth][predicted]`.
    confusion: [[u64; Emotion::COUNT]; Emotion::COUNT],
    /// Per confidence bin: count, sum of confidences, number correct.
    bins: [(u64, f64, u64); ECE_BINS],
    /// Sum of -ln p(truth).
    nll: f64,
}

impl MetricsBuilder {
    /// Adds one prediction.
    pub fn add(&mut self, truth: usize, scores: &EmotionScores) {
        let (top, conf) = scores.top();
        let pred = top.index();
        self.confusion[truth][pred] += 1;
        let bin = ((conf * ECE_BINS as f32) as usize).min(ECE_BINS - 1);
        let b = &mut self.bins[bin];
        b.0 += 1;
        b.1 += f64::from(conf);
        b.2 += u64::from(pred == truth);
        self.nll -= f64::from(scores.0[truth].max(1e-12)).ln();
    }

    /// The metrics of everything added so far.
    pub fn finish(&self) -> Metrics {
        let total: u64 = self.confusion.iter().flatten().sum();
        let correct: u64 = (0..Emotion::COUNT).map(|i| self.confusion[i][i]).sum();
        let mut per_class = Vec::with_capacity(Emotion::COUNT);
        for (c, e) in Emotion::ALL.iter().enumerate() {
            let tp = self.confusion[c][c] as f64;
            let support: u64 = self.confusion[c].iter().sum();
            let predicted: u64 = (0..Emotion::COUNT).map(|t| self.confusion[t][c]).sum();
            let precision = if predicted > 0 {
                tp / predicted as f64
            } else {
                0.0
            };
            let recall = if support > 0 {
                tp / support as f64
            } else {
                0.0
            };
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            per_class.push(ClassMetrics {
                class: *e,
                precision,
                recall,
                f1,
                support,
            });
        }
        let present: Vec<&ClassMetrics> = per_class.iter().filter(|m| m.support > 0).collect();
        let macro_f1 = if present.is_empty() {
            0.0
        } else {
            present.iter().map(|m| m.f1).sum::<f64>() / present.len() as f64
        };
        let ece = if total == 0 {
            0.0
        } else {
            self.bins
                .iter()
                .filter(|b| b.0 > 0)
                .map(|&(n, conf, ok)| (conf / n as f64 - ok as f64 / n as f64).abs() * n as f64)
                .sum::<f64>()
                / total as f64
        };
        let reliability = self
            .bins
            .iter()
            .enumerate()
            .map(|(i, &(n, conf, ok))| ReliabilityBin {
                lower: i as f64 / ECE_BINS as f64,
                upper: (i + 1) as f64 / ECE_BINS as f64,
                count: n,
                confidence: per(conf, n as f64),
                accuracy: per(ok as f64, n as f64),
            })
            .collect();
        let t = total.max(1) as f64;
        Metrics {
            count: total,
            accuracy: correct as f64 / t,
            macro_f1,
            nll: self.nll / t,
            ece,
            reliability,
            per_class,
            confusion: self.confusion.iter().map(|r| r.to_vec()).collect(),
        }
    }
}

/// Per-class figures.
#[derive(Debug, Clone, Serialize)]
pub struct ClassMetrics {
    /// The class.
    pub class: Emotion,
    /// Of the crops predicted as this class, the fraction that are.
    pub precision: f64,
    /// Of the crops of this class, the fraction predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Crops of this class.
    pub support: u64,
}

/// One confidence bin of a reliability diagram: the predictions whose top probability lies in
/// `[lower, upper)`, their mean confidence and the fraction of them that are right (equal
/// for a calibrated model).
#[derive(Debug, Clone, Serialize)]
pub struct ReliabilityBin {
    /// Lower bound of the confidences in the bin.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// Predictions in the bin.
    pub count: u64,
    /// Their mean confidence (0 when empty).
    pub confidence: f64,
    /// The fraction of them that are right (0 when empty).
    pub accuracy: f64,
}

fn per(a: f64, n: f64) -> f64 {
    if n > 0.0 { a / n } else { 0.0 }
}

/// The metrics of one evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    /// Crops evaluated.
    pub count: u64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Mean F1 over the classes present.
    pub macro_f1: f64,
    /// Mean negative log-likelihood of the true class (cross-entropy).
    pub nll: f64,
    /// Expected calibration error over [`ECE_BINS`] confidence bins.
    pub ece: f64,
    /// The confidence bins behind the ECE (a reliability diagram), lowest first.
    pub reliability: Vec<ReliabilityBin>,
    /// Per-class precision, recall, F1 and support, in [`Emotion::ALL`] order.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[truth][predicted]` counts, [`Emotion::ALL`] order.
    pub confusion: Vec<Vec<u64>>,
}

/// Runs `predictor` over the dataset in batches of `batch` crops.
pub fn evaluate(predictor: &mut impl Predictor, data: &Dataset, batch: usize) -> Metrics {
    evaluate_each(predictor, data, batch).metrics
}

/// The metrics of an evaluation and the probabilities of each image.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The metrics over all images.
    pub metrics: Metrics,
    /// The probabilities of each image, in dataset order.
    pub scores: Vec<EmotionScores>,
}

impl Evaluation {
    /// The predicted class index ([`Emotion::ALL`] order) of each image, in dataset order.
    pub fn predicted(&self) -> Vec<usize> {
        self.scores.iter().map(|s| s.top().0.index()).collect()
    }
}

/// [`evaluate`], keeping each image's probabilities (for paired comparisons, see
/// [`crate::compare`], and per-image output).
pub fn evaluate_each(predictor: &mut impl Predictor, data: &Dataset, batch: usize) -> Evaluation {
    let mut m = MetricsBuilder::default();
    let mut all_scores = Vec::with_capacity(data.len());
    let batch = batch.max(1);
    let mut start = 0;
    while start < data.len() {
        let end = (start + batch).min(data.len());
        let crops: Vec<&[u8]> = (start..end).map(|i| data.image(i)).collect();
        let scores = predictor.predict(&crops);
        for (i, s) in (start..end).zip(&scores) {
            m.add(data.label(i), s);
        }
        all_scores.extend(scores);
        start = end;
    }
    Evaluation {
        metrics: m.finish(),
        scores: all_scores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(c: usize, p: f32) -> EmotionScores {
        let mut s = [(1.0 - p) / 6.0; 7];
        s[c] = p;
        EmotionScores(s)
    }

    #[test]
    fn perfect_predictions_give_accuracy_and_f1_one() {
        let mut m = MetricsBuilder::default();
        for c in 0..7 {
            m.add(c, &one_hot(c, 0.9));
        }
        let r = m.finish();
        assert_eq!(r.accuracy, 1.0);
        assert!((r.macro_f1 - 1.0).abs() < 1e-12);
        // Confidence 0.9 but always right: ECE 0.1.
        assert!((r.ece - 0.1).abs() < 1e-6);
    }

    #[test]
    fn confusion_counts_truth_by_prediction() {
        let mut m = MetricsBuilder::default();
        m.add(0, &one_hot(3, 0.8));
        m.add(0, &one_hot(0, 0.8));
        let r = m.finish();
        assert_eq!(r.confusion[0][3], 1);
        assert_eq!(r.confusion[0][0], 1);
        assert_eq!(r.accuracy, 0.5);
        assert_eq!(r.per_class[0].recall, 0.5);
        assert_eq!(r.per_class[3].precision, 0.0);
    }
}
