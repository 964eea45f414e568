//! On-the-fly augmentation of 48x48 gray faces, written straight into a normalised batch buffer.
//!
//! Geometric jitter (flip, rotation, scale, shift) is one inverse affine warp with bilinear
//! sampling and edge replication; then brightness/contrast jitter, normalisation and random
//! erasing. Hand-written because the few crates that do affine warps work on whole `image`
//! buffers with allocation per call, and this runs ~30,000 times an epoch on a busy 2-core box.

use emotrack::classify::Normalization;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::data::{IMAGE_PIXELS, IMAGE_SIDE};
use crate::error::TrainError;

/// Augmentation settings. Every field documents its default; set a probability or range to 0
/// to switch that step off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Probability of a horizontal flip (default 0.5; faces are near-symmetric).
    pub flip_prob: f32,
    /// Maximum rotation in degrees, uniform in ±this (default 10).
    pub rotate_deg: f32,
    /// Scale range, uniform in `[1 - s, 1 + s]` (default 0.1).
    pub scale: f32,
    /// Maximum shift in pixels along each axis, uniform in ±this (default 4).
    pub shift_px: f32,
    /// Brightness jitter: pixels are multiplied by a factor uniform in `[1 - b, 1 + b]` (default 0.2).
    pub brightness: f32,
    /// Contrast jitter: deviations from the image mean are scaled by `[1 - c, 1 + c]` (default 0.2).
    pub contrast: f32,
    /// Probability of random erasing (default 0.5).
    pub erase_prob: f32,
    /// Erased area as a fraction of the image, uniform in `[min, max]` (default 0.02–0.25).
    pub erase_area: [f32; 2],
    /// Aspect ratio range of the erased rectangle (log-uniform, default 0.3–3.3).
    pub erase_ratio: [f32; 2],
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            flip_prob: 0.5,
            rotate_deg: 10.0,
            scale: 0.1,
            shift_px: 4.0,
            brightness: 0.2,
            contrast: 0.2,
            erase_prob: 0.5,
            erase_area: [0.02, 0.25],
            erase_ratio: [0.3, 3.3],
        }
    }
}

impl AugmentConfig {
    /// No augmentation at all (evaluation).
    pub fn none() -> Self {
        Self {
            flip_prob: 0.0,
            rotate_deg: 0.0,
            scale: 0.0,
            shift_px: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            erase_prob: 0.0,
            ..Self::default()
        }
    }

    /// Checks the ranges, saying what to change.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(format!("augment: {m}")));
        let prob = |p: f32| (0.0..=1.0).contains(&p);
        if !prob(self.flip_prob) || !prob(self.erase_prob) {
            return bad("flip_prob and erase_prob must be in [0, 1]");
        }
        if !(0.0..1.0).contains(&self.scale)
            || !(0.0..1.0).contains(&self.brightness)
            || !(0.0..1.0).contains(&self.contrast)
        {
            return bad("scale, brightness and contrast must be in [0, 1)");
        }
        if !(0.0..=180.0).contains(&self.rotate_deg) || !(0.0..24.0).contains(&self.shift_px) {
            return bad("rotate_deg must be in [0, 180] and shift_px in [0, 24)");
        }
        let [a0, a1] = self.erase_area;
        let [r0, r1] = self.erase_ratio;
        if !(0.0 < a0 && a0 <= a1 && a1 < 1.0) || !(0.0 < r0 && r0 <= r1) {
            return bad(
                "erase_area must satisfy 0 < min <= max < 1 and erase_ratio 0 < min <= max",
            );
        }
        Ok(())
    }

    fn is_geometric(&self) -> bool {
        self.rotate_deg > 0.0 || self.scale > 0.0 || self.shift_px > 0.0
    }
}

/// Writes an augmented, normalised copy of `src` (48x48 gray) into `out` (48x48 f32).
pub fn augment_into(
    src: &[u8],
    out: &mut [f32],
    cfg: &AugmentConfig,
    norm: &Normalization,
    rng: &mut impl Rng,
) {
    debug_assert_eq!(src.len(), IMAGE_PIXELS);
    debug_assert_eq!(out.len(), IMAGE_PIXELS);
    let n = IMAGE_SIDE;
    let flip = cfg.flip_prob > 0.0 && rng.random::<f32>() < cfg.flip_prob;
    // Pixel values in [0, 255] as f32.
    let mut px = [0f32; IMAGE_PIXELS];
    if cfg.is_geometric() {
        let angle = uniform(rng, cfg.rotate_deg).to_radians();
        let scale = 1.0 + uniform(rng, cfg.scale);
        let (tx, ty) = (uniform(rng, cfg.shift_px), uniform(rng, cfg.shift_px));
        // Output pixel (x, y) samples the source at R(-angle)/scale applied around the centre,
        // minus the shift: the inverse of "rotate, scale, then shift".
        let c = (n as f32 - 1.0) / 2.0;
        let (sin, cos) = angle.sin_cos();
        let (a, b) = (cos / scale, sin / scale);
        for y in 0..n {
            for x in 0..n {
                let xo = if flip { (n - 1 - x) as f32 } else { x as f32 };
                let dx = xo - c - tx;
                let dy = y as f32 - c - ty;
                let sx = a * dx + b * dy + c;
                let sy = -b * dx + a * dy + c;
                px[y * n + x] = bilinear(src, sx, sy);
            }
        }
    } else {
        for y in 0..n {
            for x in 0..n {
                let xs = if flip { n - 1 - x } else { x };
                px[y * n + x] = f32::from(src[y * n + xs]);
            }
        }
    }
    if cfg.brightness > 0.0 || cfg.contrast > 0.0 {
        let bright = 1.0 + uniform(rng, cfg.brightness);
        let contrast = 1.0 + uniform(rng, cfg.contrast);
        let mean = px.iter().sum::<f32>() / IMAGE_PIXELS as f32 * bright;
        for p in &mut px {
            *p = ((*p * bright - mean) * contrast + mean).clamp(0.0, 255.0);
        }
    }
    let scale = 1.0 / (255.0 * norm.std);
    let shift = norm.mean / norm.std;
    for (o, p) in out.iter_mut().zip(px) {
        *o = p * scale - shift;
    }
    if cfg.erase_prob > 0.0 && rng.random::<f32>() < cfg.erase_prob {
        erase(out, cfg, rng);
    }
}

/// Uniform in `[-r, r]` (0 when `r` is 0, without drawing).
fn uniform(rng: &mut impl Rng, r: f32) -> f32 {
    if r > 0.0 {
        rng.random_range(-r..=r)
    } else {
        0.0
    }
}

/// Bilinear sample with edge replication.
fn bilinear(src: &[u8], x: f32, y: f32) -> f32 {
    let max = (IMAGE_SIDE - 1) as f32;
    let x = x.clamp(0.0, max);
    let y = y.clamp(0.0, max);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(IMAGE_SIDE - 1), (y0 + 1).min(IMAGE_SIDE - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |xx: usize, yy: usize| f32::from(src[yy * IMAGE_SIDE + xx]);
    let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
    let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Random erasing (Zhong et al. 2017): a rectangle set to 0, the dataset mean after
/// normalisation. Tries a few times to fit a rectangle, like torchvision.
fn erase(out: &mut [f32], cfg: &AugmentConfig, rng: &mut impl Rng) {
    let n = IMAGE_SIDE as f32;
    for _ in 0..10 {
        let area = rng.random_range(cfg.erase_area[0]..=cfg.erase_area[1]) * n * n;
        let log_ratio = rng.random_range(cfg.erase_ratio[0].ln()..=cfg.erase_ratio[1].ln());
        let ratio = log_ratio.exp();
        let h = (area * ratio).sqrt().round() as usize;
        let w = (area / ratio).sqrt().round() as usize;
        if h == 0 || w == 0 || h >= IMAGE_SIDE || w >= IMAGE_SIDE {
            continue;
        }
        let y0 = rng.random_range(0..=IMAGE_SIDE - h);
        let x0 = rng.random_range(0..=IMAGE_SIDE - w);
        for y in y0..y0 + h {
            out[y * IMAGE_SIDE + x0..y * IMAGE_SIDE + x0 + w].fill(0.0);
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp() -> Vec<u8> {
        (0..IMAGE_PIXELS)
            .map(|i| (i % IMAGE_SIDE * 5) as u8)
            .collect()
    }

    #[test]
    fn no_augmentation_equals_plain_normalisation() {
        let src = ramp();
        let norm = Normalization::default();
        let mut a = vec![0.0; IMAGE_PIXELS];
        let mut b = vec![0.0; IMAGE_PIXELS];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        augment_into(&src, &mut a, &AugmentConfig::none(), &norm, &mut rng);
        norm.apply(&src, &mut b);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5);
        }
    }

    #[test]
    fn flip_only_mirrors_rows() {
        let src = ramp();
        let norm = Normalization::default();
        let cfg = AugmentConfig {
            flip_prob: 1.0,
            ..AugmentConfig::none()
        };
        let mut a = vec![0.0; IMAGE_PIXELS];
        let mut b = vec![0.0; IMAGE_PIXELS];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        augment_into(&src, &mut a, &cfg, &norm, &mut rng);
        norm.apply(&crate::tta::mirror(&src), &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn same_seed_gives_same_augmentation() {
        let src = ramp();
        let norm = Normalization::default();
        let cfg = AugmentConfig::default();
        let run = |seed| {
            let mut out = vec![0.0; IMAGE_PIXELS];
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            augment_into(&src, &mut out, &cfg, &norm, &mut rng);
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
