//! The loader: a thread per epoch that prepares batches ahead of the model. Each batch is
//! the epoch's next images in a seeded shuffle, augmented ([`crate::augment`]), optionally
//! mixed (mixup or CutMix), with their targets (the label, smoothed, mixed with the offline
//! teachers' probabilities when distilling) and loss weights (per class, see
//! [`TrainConfig::class_weight_power`]).
//!
//! Everything random is seeded from `(seed, epoch, position)` ([`crate::seed`]), so the batches
//! depend neither on timing nor on where a resumed run picks up.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use emotrack::Emotion;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};

use crate::augment::augment_into;
use crate::config::TrainConfig;
use crate::data::{Dataset, IMAGE_PIXELS, IMAGE_SIDE};
use crate::distill::{TeacherTargets, Teachers};
use crate::schedule::batches_per_epoch;
use crate::seed::{STREAM_MIX, STREAM_SAMPLE, STREAM_SHUFFLE, mix};

/// One prepared batch.
pub(crate) struct Batch {
    /// Its place in the epoch.
    pub(crate) index: usize,
    /// The images, `[N, 1, 48, 48]` row-major, normalised.
    pub(crate) x: Vec<f32>,
    /// The targets, `[N, 7]`: probabilities.
    pub(crate) targets: Vec<f32>,
    /// Each image's share of the loss (they sum to 1).
    pub(crate) weights: Vec<f32>,
    /// Each image's label (for mixed images, the one that covers more of it).
    pub(crate) labels: Vec<i64>,
}

/// What every epoch's loader thread needs.
#[derive(Clone)]
pub(crate) struct Loader {
    data: Arc<Dataset>,
    cfg: Arc<TrainConfig>,
    class_weights: [f32; Emotion::COUNT],
    teachers: Option<Arc<Teachers>>,
}

impl Loader {
    /// A loader of `data` as `cfg` asks for it, distilling from `teachers` when given.
    pub(crate) fn new(
        data: Arc<Dataset>,
        cfg: Arc<TrainConfig>,
        teachers: Option<Arc<Teachers>>,
    ) -> Self {
        let class_weights = class_weights(data.class_counts(), cfg.class_weight_power);
        Self {
            data,
            cfg,
            class_weights,
            teachers,
        }
    }

    /// Images per batch: the configured batch size, or the whole dataset when smaller.
    pub(crate) fn batch_size(&self) -> usize {
        self.cfg.batch_size.min(self.data.len())
    }

    /// Batches per epoch (see [`batches_per_epoch`]).
    pub(crate) fn batches(&self) -> usize {
        batches_per_epoch(self.data.len(), self.batch_size())
    }

    /// Starts the loader thread for `epoch`: it prepares batches `from..` ahead of the model,
    /// [`TrainConfig::prefetch`] at most, and stops when the receiver is dropped.
    pub(crate) fn spawn(&self, epoch: usize, from: usize) -> Receiver<Batch> {
        let (tx, rx) = sync_channel(self.cfg.prefetch);
        let loader = self.clone();
        std::thread::spawn(move || loader.run(epoch, from, &tx));
        rx
    }

    fn run(&self, epoch: usize, from: usize, tx: &SyncSender<Batch>) {
        let mut order: Vec<usize> = (0..self.data.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(&[
            self.cfg.seed,
            STREAM_SHUFFLE,
            epoch as u64,
        ])));
        // Online teachers run on the training thread instead (see `crate::train`).
        let offline = match self.teachers.as_deref() {
            Some(Teachers::Offline { targets, weight }) => Some((targets, *weight)),
            _ => None,
        };
        let target = Targets {
            smoothing: self.cfg.label_smoothing,
            teachers: offline,
        };
        let bs = self.batch_size();
        for b in from..self.batches() {
            let batch = self.batch(epoch, b, &order[b * bs..(b + 1) * bs], &target);
            if tx.send(batch).is_err() {
                return; // the trainer stopped
            }
        }
    }

    /// Batch `b` of `epoch`, of the images `idx`.
    fn batch(&self, epoch: usize, b: usize, idx: &[usize], target: &Targets<'_>) -> Batch {
        let cfg = &self.cfg;
        let bs = idx.len();
        let mut x = self.augmented(epoch, b, idx);
        let labels: Vec<usize> = idx.iter().map(|&i| self.data.label(i)).collect();
        let mut rng =
            ChaCha8Rng::seed_from_u64(mix(&[cfg.seed, STREAM_MIX, epoch as u64, b as u64]));
        let mixing = mix_batch(cfg, &mut x, bs, &mut rng);
        let k = Emotion::COUNT;
        let mut targets = vec![0f32; bs * k];
        let mut weights = vec![0f32; bs];
        let mut hard = labels.clone();
        for (j, t) in targets.chunks_exact_mut(k).enumerate() {
            match &mixing {
                Some((lam, perm)) => {
                    let (a, o) = (labels[j], labels[perm[j]]);
                    target.add(idx[j], a, t, *lam);
                    target.add(idx[perm[j]], o, t, 1.0 - *lam);
                    weights[j] = lam * self.class_weights[a] + (1.0 - lam) * self.class_weights[o];
                    if *lam < 0.5 {
                        hard[j] = o;
                    }
                }
                None => {
                    target.add(idx[j], labels[j], t, 1.0);
                    weights[j] = self.class_weights[labels[j]];
                }
            }
        }
        let wsum: f32 = weights.iter().sum();
        for w in &mut weights {
            *w /= wsum;
        }
        Batch {
            index: b,
            x,
            targets,
            weights,
            labels: hard.into_iter().map(|l| l as i64).collect(),
        }
    }

    /// The images `idx` (batch `b` of `epoch`), each augmented with its own seeded generator.
    fn augmented(&self, epoch: usize, b: usize, idx: &[usize]) -> Vec<f32> {
        let cfg = &self.cfg;
        let bs = idx.len();
        let mut x = vec![0f32; bs * IMAGE_PIXELS];
        for (j, (&i, out)) in idx.iter().zip(x.chunks_exact_mut(IMAGE_PIXELS)).enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(&[
                cfg.seed,
                STREAM_SAMPLE,
                epoch as u64,
                (b * bs + j) as u64,
            ]));
            augment_into(
                self.data.image(i),
                out,
                &cfg.augment,
                &cfg.normalization,
                &mut rng,
            );
        }
        x
    }
}

/// How a training image's target is made: its label, smoothed, mixed with the teachers'
/// probabilities when distilling.
#[derive(Debug, Clone, Copy)]
struct Targets<'a> {
    smoothing: f32,
    /// The teachers' probabilities and their share of each target, when distilling.
    teachers: Option<(&'a TeacherTargets, f32)>,
}

impl Targets<'_> {
    /// Adds `w` times the target of image `i` (labelled `label`) to `t`.
    fn add(&self, i: usize, label: usize, t: &mut [f32], w: f32) {
        let k = t.len() as f32;
        // Teachers classified every training image, so `i` always has its row.
        let soft = self.teachers.map(|(p, weight)| (&p[i], weight));
        for (m, v) in t.iter_mut().enumerate() {
            let hard = if m == label {
                1.0 - self.smoothing
            } else {
                0.0
            } + self.smoothing / k;
            let mixed = match soft {
                Some((p, weight)) => (1.0 - weight) * hard + weight * p[m],
                None => hard,
            };
            *v += w * mixed;
        }
    }
}

/// Applies mixup or CutMix to the batch in place; returns `(λ, partner of each image)`.
fn mix_batch(
    cfg: &TrainConfig,
    x: &mut [f32],
    bs: usize,
    rng: &mut ChaCha8Rng,
) -> Option<(f32, Vec<usize>)> {
    let mixup = cfg.mixup_alpha > 0.0;
    let cutmix = cfg.cutmix_alpha > 0.0;
    if !(mixup || cutmix) || rng.random::<f32>() >= cfg.mix_prob || bs < 2 {
        return None;
    }
    let use_cutmix = cutmix && (!mixup || rng.random::<bool>());
    let alpha = if use_cutmix {
        cfg.cutmix_alpha
    } else {
        cfg.mixup_alpha
    };
    let lam: f32 = Beta::new(alpha, alpha).ok()?.sample(rng);
    let mut perm: Vec<usize> = (0..bs).collect();
    perm.shuffle(rng);
    let src = x.to_vec();
    if use_cutmix {
        let n = IMAGE_SIDE as f32;
        let cut = (1.0 - lam).sqrt();
        let (w, h) = ((n * cut) as usize, (n * cut) as usize);
        let cx = rng.random_range(0..IMAGE_SIDE);
        let cy = rng.random_range(0..IMAGE_SIDE);
        let x0 = cx.saturating_sub(w / 2);
        let x1 = (cx + w / 2).min(IMAGE_SIDE);
        let y0 = cy.saturating_sub(h / 2);
        let y1 = (cy + h / 2).min(IMAGE_SIDE);
        for (j, &p) in perm.iter().enumerate() {
            for y in y0..y1 {
                let row = y * IMAGE_SIDE;
                let d = j * IMAGE_PIXELS + row;
                let s = p * IMAGE_PIXELS + row;
                x[d + x0..d + x1].copy_from_slice(&src[s + x0..s + x1]);
            }
        }
        // λ is the fraction of the image that stayed.
        let area = ((x1 - x0) * (y1 - y0)) as f32 / (n * n);
        Some((1.0 - area, perm))
    } else {
        for (j, &p) in perm.iter().enumerate() {
            let (d, s) = (j * IMAGE_PIXELS, p * IMAGE_PIXELS);
            for i in 0..IMAGE_PIXELS {
                x[d + i] = lam * src[d + i] + (1.0 - lam) * src[s + i];
            }
        }
        Some((lam, perm))
    }
}

/// Per-class loss weights `(N / (7 n_c))^power`.
fn class_weights(counts: [usize; Emotion::COUNT], power: f32) -> [f32; Emotion::COUNT] {
    let n: usize = counts.iter().sum();
    counts.map(|c| {
        if power == 0.0 || c == 0 {
            1.0
        } else {
            (n as f32 / (Emotion::COUNT as f32 * c as f32)).powf(power)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(t: &Targets<'_>, i: usize, label: usize) -> [f32; Emotion::COUNT] {
        let mut out = [0.0; Emotion::COUNT];
        t.add(i, label, &mut out, 1.0);
        out
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    #[test]
    fn targets_mix_the_smoothed_label_with_the_teachers() {
        let teachers: TeacherTargets = vec![
            [0.7, 0.0, 0.1, 0.0, 0.2, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        ];
        let labels_only = Targets {
            smoothing: 0.07,
            teachers: None,
        };
        // 0.07 spread over seven classes: 0.01 each, and the label keeps 0.93 + 0.01.
        let hard = [0.01, 0.01, 0.01, 0.01, 0.01, 0.94, 0.01];
        assert!(close(&target(&labels_only, 0, 5), &hard));

        let half = Targets {
            teachers: Some((&teachers, 0.5)),
            ..labels_only
        };
        let t = target(&half, 0, 5);
        let expected: Vec<f32> = hard
            .iter()
            .zip(teachers[0])
            .map(|(h, p)| 0.5 * h + 0.5 * p)
            .collect();
        assert!(close(&t, &expected), "{t:?}");
        assert!((t.iter().sum::<f32>() - 1.0).abs() < 1e-6);

        let all = Targets {
            teachers: Some((&teachers, 1.0)),
            ..half
        };
        assert!(close(&target(&all, 1, 5), &teachers[1]));
    }

    #[test]
    fn mixed_images_mix_their_targets() {
        let teachers: TeacherTargets = vec![[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]; 2];
        let t = Targets {
            smoothing: 0.0,
            teachers: Some((&teachers, 0.5)),
        };
        let mut out = [0.0; Emotion::COUNT];
        t.add(0, 3, &mut out, 0.25);
        t.add(1, 6, &mut out, 0.75);
        // Teachers: all angry (0.5 of the target); labels: happy 0.25, surprise 0.75 (0.5 of it).
        let expected = [0.5, 0.0, 0.0, 0.125, 0.0, 0.0, 0.375];
        assert!(close(&out, &expected), "{out:?}");
    }
}
