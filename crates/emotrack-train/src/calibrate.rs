//! Temperature scaling (Guo et al., "On calibration of modern neural networks", ICML 2017):
//! one scalar `T` divides a model's logits before the softmax. It leaves every prediction's
//! ranking, so the accuracy, unchanged, and is fitted to minimise the negative log-likelihood
//! on held-out images, which makes the probabilities match how often the model is right.
//!
//! `emotrack calibrate` fits `T` on each half of a split and reports it on the other half, then
//! fits it on the whole split and stores it in the model's config
//! ([`emotrack::classify::ModelConfig::temperature`]).
//! [`ece_curve`] measures the ECE across temperatures from the same logits: how close one
//! temperature can come to [`TARGET_ECE`] (drawn by `emotrack calibrate --plot`).

use emotrack::EmotionScores;
use emotrack::classify::{Classifier, TEMPERATURES};

use crate::data::{Dataset, IMAGE_SIDE};
use crate::metrics::{Metrics, MetricsBuilder};

/// The ECE that issue 35 aims for on images the temperature was not fitted on.
pub const TARGET_ECE: f64 = 0.03;

/// The logits of every image of `data` (the classifier's current temperature applied), in
/// dataset order, `batch` crops at a time.
pub fn logits_of(classifier: &Classifier, data: &Dataset, batch: usize) -> Vec<[f32; 7]> {
    let side = IMAGE_SIDE as u32;
    let mut out = Vec::with_capacity(data.len());
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let crops: Vec<image::GrayImage> = chunk
            .iter()
            .filter_map(|&i| image::GrayImage::from_raw(side, side, data.image(i).to_vec()))
            .collect();
        out.extend(classifier.logits(&crops));
    }
    out
}

/// Two halves of a split by index, each holding every other image of each class (so both
/// have the split's class balance).
pub fn halves(labels: &[usize]) -> [Vec<usize>; 2] {
    let mut seen = [0usize; emotrack::Emotion::COUNT];
    let mut halves = [Vec::new(), Vec::new()];
    for (i, &label) in labels.iter().enumerate() {
        let n = &mut seen[label.min(emotrack::Emotion::COUNT - 1)];
        halves[*n % 2].push(i);
        *n += 1;
    }
    halves
}

/// Mean negative log-likelihood of the true classes of `items` with the logits divided by `t`.
pub fn nll(logits: &[[f32; 7]], labels: &[usize], items: &[usize], t: f32) -> f64 {
    // -ln softmax(z / t)[y] = logsumexp(z / t) - z[y] / t, in f64 without clamping (a clamped
    // probability would make the NLL flat for small t and mislead the search).
    let t = f64::from(t);
    let sum: f64 = items
        .iter()
        .map(|&i| {
            let z = logits[i].map(|v| f64::from(v) / t);
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            lse - z[labels[i]]
        })
        .sum();
    sum / items.len().max(1) as f64
}

/// The temperature in [`TEMPERATURES`] that minimises the NLL on `items`. The NLL is convex
/// in `1 / T` (a log-sum-exp of linear functions of it, minus a linear one), so a
/// golden-section search on `1 / T` finds the minimum.
pub fn fit_temperature(logits: &[[f32; 7]], labels: &[usize], items: &[usize]) -> f32 {
    let f = |beta: f64| nll(logits, labels, items, (1.0 / beta) as f32);
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut lo, mut hi) = (
        1.0 / f64::from(*TEMPERATURES.end()),
        1.0 / f64::from(*TEMPERATURES.start()),
    );
    let mut c = hi - ratio * (hi - lo);
    let mut d = lo + ratio * (hi - lo);
    let (mut fc, mut fd) = (f(c), f(d));
    while hi - lo > 1e-5 {
        if fc < fd {
            hi = d;
            d = c;
            fd = fc;
            c = hi - ratio * (hi - lo);
            fc = f(c);
        } else {
            lo = c;
            c = d;
            fc = fd;
            d = lo + ratio * (hi - lo);
            fd = f(d);
        }
    }
    (2.0 / (lo + hi)) as f32
}

/// The metrics of `items` with the logits divided by `t`.
pub fn metrics_at(logits: &[[f32; 7]], labels: &[usize], items: &[usize], t: f32) -> Metrics {
    let mut m = MetricsBuilder::default();
    for &i in items {
        m.add(labels[i], &scores(&logits[i], t));
    }
    m.finish()
}

/// The lowest ECE any temperature in 0.5-2 (a grid of 0.01) gives on `items`, and that
/// temperature: what one scalar could do at best if it were fitted on the very images it is
/// measured on.
pub fn best_ece(logits: &[[f32; 7]], labels: &[usize], items: &[usize]) -> (f32, f64) {
    (50..=200)
        .map(|i| {
            let t = i as f32 / 100.0;
            (t, metrics_at(logits, labels, items, t).ece)
        })
        .fold(
            (1.0, f64::INFINITY),
            |best, c| if c.1 < best.1 { c } else { best },
        )
}

/// The ECE a perfectly calibrated model would still show on `items` at temperature `t`, from
/// sampling alone: the mean over `draws` simulations in which each image's top class is right
/// with exactly its confidence (seeded, so repeatable). On a couple of thousand images it is
/// about 0.025: a measured ECE near it cannot be told apart from perfect calibration.
pub fn ece_noise_floor(logits: &[[f32; 7]], items: &[usize], t: f32, draws: usize) -> f64 {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2017);
    let scored: Vec<EmotionScores> = items.iter().map(|&i| scores(&logits[i], t)).collect();
    let mut total = 0.0;
    for _ in 0..draws {
        let mut m = MetricsBuilder::default();
        for s in &scored {
            let (top, conf) = s.top();
            let right = rng.random::<f32>() < conf;
            let truth = if right {
                top.index()
            } else {
                (top.index() + 1) % emotrack::Emotion::COUNT
            };
            m.add(truth, s);
        }
        total += m.finish().ece;
    }
    total / draws.max(1) as f64
}

/// One temperature of an [`ece_curve`]: the ECE there, and what sampling alone would give.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CurvePoint {
    /// The temperature dividing the logits.
    pub temperature: f32,
    /// The ECE of the images at that temperature ([`metrics_at`]).
    pub ece: f64,
    /// The ECE a perfectly calibrated model would show on them there ([`ece_noise_floor`]).
    pub noise_floor: f64,
}

/// `n` temperatures from `range.start()` to `range.end()` (both included), evenly spaced in
/// log: temperature acts by division, so T and 1 / T sit symmetrically around 1. Empty for
/// `n == 0`; `n == 1` gives the start.
pub fn log_spaced(range: std::ops::RangeInclusive<f32>, n: usize) -> Vec<f32> {
    let (lo, hi) = (f64::from(*range.start()).ln(), f64::from(*range.end()).ln());
    let steps = n.saturating_sub(1).max(1) as f64;
    (0..n)
        .map(|i| (lo + (hi - lo) * i as f64 / steps).exp() as f32)
        .collect()
}

/// The ECE of `items` at each of `temperatures` (dividing the logits as given), with the
/// noise floor of each over `draws` simulations: how much of the calibration error a
/// temperature can remove, from the one pass of logits (the network is not run again).
pub fn ece_curve(
    logits: &[[f32; 7]],
    labels: &[usize],
    items: &[usize],
    temperatures: &[f32],
    draws: usize,
) -> Vec<CurvePoint> {
    temperatures
        .iter()
        .map(|&t| CurvePoint {
            temperature: t,
            ece: metrics_at(logits, labels, items, t).ece,
            noise_floor: ece_noise_floor(logits, items, t, draws),
        })
        .collect()
}

fn scores(logits: &[f32; 7], t: f32) -> EmotionScores {
    EmotionScores::from_logits(&logits.map(|v| v / t))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits of an over-confident model: the right class in `right` of every 10 items, each
    /// scored 4 above the others (softmax 0.90 on the top class).
    fn overconfident(n: usize, right: usize) -> (Vec<[f32; 7]>, Vec<usize>) {
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let mut l = [0.0; 7];
            l[0] = 4.0;
            logits.push(l);
            labels.push(if i % 10 < right { 0 } else { 1 + i % 6 });
        }
        (logits, labels)
    }

    #[test]
    fn the_fitted_temperature_makes_confidence_match_accuracy_and_keeps_accuracy() {
        let (logits, labels) = overconfident(1000, 6);
        let all: Vec<usize> = (0..labels.len()).collect();
        let t = fit_temperature(&logits, &labels, &all);
        let before = metrics_at(&logits, &labels, &all, 1.0);
        let after = metrics_at(&logits, &labels, &all, t);
        assert!(t > 1.0, "an over-confident model is cooled: {t}");
        assert!(before.ece > 0.25, "{}", before.ece);
        assert!(after.ece < 0.01, "{}", after.ece);
        assert!(after.nll < before.nll);
        assert_eq!(after.accuracy, before.accuracy);
        // exp(4 / T) / (exp(4 / T) + 6) = 0.6 exactly at the optimum.
        let p = (4.0 / t).exp() / ((4.0 / t).exp() + 6.0);
        assert!((p - 0.6).abs() < 1e-3, "{p}");
    }

    #[test]
    fn the_noise_floor_is_the_ece_of_sampling_alone() {
        let (logits, _) = overconfident(2000, 6);
        let all: Vec<usize> = (0..logits.len()).collect();
        // Every confidence is 0.90: the floor is the mean |fraction right - 0.9| over 2,000
        // coin flips, about 0.8 * sqrt(0.09 / 2000) = 0.0054.
        let floor = ece_noise_floor(&logits, &all, 1.0, 100);
        assert!((0.003..0.008).contains(&floor), "{floor}");
    }

    #[test]
    fn the_best_ece_is_found_near_the_temperature_that_calibrates_exactly() {
        // Every confidence is one number here, so the NLL's temperature calibrates exactly
        // (ECE 0) and the grid's best lies within a grid step of it.
        let (logits, labels) = overconfident(1000, 6);
        let all: Vec<usize> = (0..labels.len()).collect();
        let t = fit_temperature(&logits, &labels, &all);
        let (best_t, best) = best_ece(&logits, &labels, &all);
        assert!(best < 0.005, "{best}");
        assert!((best_t - t).abs() <= 0.011, "{best_t} vs {t}");
        // And below the untempered ECE of the over-confident model.
        assert!(best < metrics_at(&logits, &labels, &all, 1.0).ece);
    }

    #[test]
    fn log_spaced_temperatures_keep_one_ratio_and_both_ends() {
        let ts = log_spaced(0.5..=2.0, 5);
        assert_eq!(ts.len(), 5);
        assert!(
            (ts[0] - 0.5).abs() < 1e-6 && (ts[4] - 2.0).abs() < 1e-6,
            "{ts:?}"
        );
        // 0.5 to 2 in four equal ratios: sqrt(2) each, with 1 in the middle.
        assert!((ts[2] - 1.0).abs() < 1e-6, "{ts:?}");
        for w in ts.windows(2) {
            assert!((w[1] / w[0] - 2f32.sqrt()).abs() < 1e-5, "{ts:?}");
        }
        assert!(log_spaced(0.5..=2.0, 0).is_empty());
        assert_eq!(log_spaced(0.5..=2.0, 1), vec![0.5]);
    }

    /// Logits of a model that is over-confident in a different way on each of 3 groups of
    /// items (top logits 2, 4 and 6 with 50%, 60% and 70% right), so no temperature
    /// calibrates them all and the ECE curve has a minimum above zero.
    fn mixed(n: usize) -> (Vec<[f32; 7]>, Vec<usize>) {
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let group = i % 3;
            let mut l = [0.0; 7];
            l[0] = 2.0 + 2.0 * group as f32;
            logits.push(l);
            let right = (i / 3) % 10 < 5 + group;
            labels.push(if right { 0 } else { 1 + i % 6 });
        }
        (logits, labels)
    }

    #[test]
    fn the_ece_curve_measures_what_metrics_at_measures_and_its_minimum_is_the_best_ece() {
        let (logits, labels) = mixed(1500);
        let all: Vec<usize> = (0..labels.len()).collect();
        // best_ece's own grid: 0.50, 0.51, ..., 2.00.
        let grid: Vec<f32> = (50..=200).map(|i| i as f32 / 100.0).collect();
        let curve = ece_curve(&logits, &labels, &all, &grid, 5);
        assert_eq!(curve.len(), grid.len());
        let lowest = curve
            .iter()
            .min_by(|a, b| a.ece.total_cmp(&b.ece))
            .expect("points");
        let (best_t, best) = best_ece(&logits, &labels, &all);
        assert_eq!((lowest.temperature, lowest.ece), (best_t, best));
        assert!(
            best > 0.01,
            "no temperature calibrates all three groups: {best}"
        );
        // At the NLL's temperature (off the grid), the point is metrics_at's ECE.
        let t = fit_temperature(&logits, &labels, &all);
        let at_fit = ece_curve(&logits, &labels, &all, &[t], 20)[0];
        assert_eq!(at_fit.ece, metrics_at(&logits, &labels, &all, t).ece);
        assert_eq!(at_fit.noise_floor, ece_noise_floor(&logits, &all, t, 20));
        // Far from the best temperature the ECE climbs well above the floor on both sides.
        let ends = ece_curve(&logits, &labels, &all, &[0.3, 5.0], 20);
        for p in ends {
            assert!(p.ece > best + 0.05, "{p:?} vs best {best}");
            assert!(p.ece > 2.0 * p.noise_floor, "{p:?}");
        }
    }

    #[test]
    fn halves_split_every_class_in_two() {
        let labels = [0, 0, 1, 0, 1, 2, 0];
        let [a, b] = halves(&labels);
        assert_eq!(a, vec![0, 2, 3, 5]);
        assert_eq!(b, vec![1, 4, 6]);
    }
}
