//! The learning-rate schedule: a warm-up (linear, or one-cycle's half cosine from
//! `lr / ONE_CYCLE_DIV`), then a cosine down to `min_lr`; and the number of steps in an epoch.

use crate::config::{ONE_CYCLE_DIV, Schedule, TrainConfig};

/// Learning rate at `step` of `total`: the warm-up of `cfg.schedule`, then cosine to `min_lr`.
pub fn learning_rate(cfg: &TrainConfig, step: u64, total: u64) -> f64 {
    let warm = ((cfg.warmup_frac * total as f64).round() as u64).min(total.saturating_sub(1));
    let half_cosine = |from: f64, to: f64, t: f64| {
        to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    };
    if step < warm {
        return match cfg.schedule {
            Schedule::Cosine => cfg.lr * (step + 1) as f64 / warm as f64,
            Schedule::OneCycle => {
                half_cosine(cfg.lr / ONE_CYCLE_DIV, cfg.lr, step as f64 / warm as f64)
            }
        };
    }
    let span = (total - warm).max(1) as f64;
    let t = ((step - warm) as f64 / span).min(1.0);
    half_cosine(cfg.lr, cfg.min_lr, t)
}

/// Batches per epoch: the last incomplete batch is dropped (BatchNorm dislikes tiny batches),
/// unless the dataset is smaller than one batch.
pub fn batches_per_epoch(n: usize, batch: usize) -> usize {
    (n / batch).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_rise_to_lr_then_fall_to_min_lr() {
        let total = 1000;
        for schedule in [Schedule::Cosine, Schedule::OneCycle] {
            let cfg = TrainConfig {
                schedule,
                lr: 0.1,
                min_lr: 0.001,
                warmup_frac: 0.3,
                ..TrainConfig::default()
            };
            let lr: Vec<f64> = (0..total).map(|s| learning_rate(&cfg, s, total)).collect();
            let peak = lr.iter().cloned().fold(0.0, f64::max);
            assert!((peak - 0.1).abs() < 1e-9, "{schedule:?} peaks at {peak}");
            assert!(
                lr[..300].windows(2).all(|w| w[0] <= w[1]),
                "{schedule:?} rises"
            );
            assert!(
                lr[300..].windows(2).all(|w| w[0] >= w[1]),
                "{schedule:?} falls"
            );
            assert!(
                (lr[total as usize - 1] - 0.001).abs() < 1e-5,
                "{schedule:?} ends"
            );
        }
        // One-cycle starts at lr / 25 and is halfway up at half the climb; the linear warm-up
        // starts near 0.
        let one_cycle = TrainConfig {
            schedule: Schedule::OneCycle,
            warmup_frac: 0.3,
            ..TrainConfig::default()
        };
        assert!((learning_rate(&one_cycle, 0, total) - 0.1 / 25.0).abs() < 1e-12);
        let mid = learning_rate(&one_cycle, 150, total);
        assert!((mid - (0.004 + 0.096 / 2.0)).abs() < 1e-9, "{mid}");
        let cosine = TrainConfig {
            warmup_frac: 0.3,
            ..TrainConfig::default()
        };
        assert!(learning_rate(&cosine, 0, total) < 0.001);
    }
}
