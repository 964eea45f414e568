//! The Swin-style transformer's layout ([`super::Architecture::Swin`]): its stages, and the
//! window partition, cyclic shift and patch merging as index maps over the tokens, with the
//! relative-position index and the shifted windows' attention mask. Training (burn, in
//! `emotrack-train`) and the runtime build the network from these same maps, so the two cannot
//! disagree on where a token goes.
//!
//! Tokens are kept as `[L, C]` rows, `L = R * R` in row-major order for a stage of resolution
//! `R` (tokens per side). A block's windows are `W x W` squares (`W` divides `R`), listed
//! row-major, their tokens row-major inside each. On alternate blocks the picture is first
//! rolled up and left by `W / 2` (Swin's cyclic shift), and the attention of a window that then
//! holds tokens from opposite edges is masked between the two parts.
//!
//! Tensor names follow the Swin Transformer's reference code (Liu et al., 2021):
//! `patch_embed.proj.{weight,bias}` (a `P x P` convolution with stride `P` from the one gray
//! channel), `patch_embed.norm.*`, `layers.{s}.blocks.{b}.{norm1,norm2}.{weight,bias}`,
//! `...attn.qkv.{weight,bias}` `[3C, C]` (queries, keys, values, each head's channels
//! together), `...attn.relative_position_bias_table` `[(2W-1)^2, heads]`,
//! `...attn.proj.*`, `...mlp.fc1.*` `[rC, C]`, `...mlp.fc2.*`, then between stages
//! `layers.{s}.downsample.norm.*` `[4C]` and `layers.{s}.downsample.reduction.weight`
//! `[2C, 4C]` (no bias), and at the end `norm.*` and `head.*`.

pub(crate) mod net;

use super::Architecture;

/// The additive attention mask between tokens of a shifted window that came from different
/// regions (the reference code's value: far below any logit, yet finite).
pub const MASKED: f32 = -100.0;

/// One stage of a Swin network, as built for a given input size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Tokens per side.
    pub resolution: usize,
    /// Channels of each token.
    pub dim: usize,
    /// Attention heads (each of `dim / heads` channels).
    pub heads: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Window side: the architecture's, or the resolution when that is smaller.
    pub window: usize,
    /// The cyclic shift of odd blocks: half a window, or 0 when one window covers the stage.
    pub shift: usize,
    /// Whether patch merging follows (every stage but the last).
    pub merge: bool,
}

impl Stage {
    /// Tokens per window.
    pub fn window_tokens(&self) -> usize {
        self.window * self.window
    }

    /// Windows per picture.
    pub fn windows(&self) -> usize {
        (self.resolution / self.window).pow(2)
    }

    /// The shift of block `b` (0 on even blocks).
    pub fn shift_of(&self, b: usize) -> usize {
        if b % 2 == 1 { self.shift } else { 0 }
    }
}

/// The stages of `arch` (a `swin`) for square inputs of side `input_size`, or what makes the
/// layout impossible (a window that does not tile a stage, an odd resolution before merging,
/// heads that do not divide the channels).
pub fn stages(arch: &Architecture, input_size: usize) -> Result<Vec<Stage>, String> {
    let Architecture::Swin {
        patch_size,
        embed_dim,
        depths,
        heads,
        window,
        ..
    } = arch
    else {
        return Err("not a swin architecture".into());
    };
    if *patch_size == 0 || !input_size.is_multiple_of(*patch_size) {
        return Err(format!(
            "architecture.patch_size {patch_size} must divide the input size {input_size}"
        ));
    }
    if depths.is_empty() || depths.len() != heads.len() {
        return Err("architecture.depths and heads must be non-empty lists of equal length".into());
    }
    let mut resolution = input_size / patch_size;
    let mut dim = *embed_dim;
    let mut out = Vec::with_capacity(depths.len());
    for (s, (&depth, &h)) in depths.iter().zip(heads).enumerate() {
        let merge = s + 1 < depths.len();
        if h == 0 || !dim.is_multiple_of(h) {
            return Err(format!(
                "architecture.heads[{s}] is {h}; it must divide the stage's {dim} channels"
            ));
        }
        let w = (*window).min(resolution);
        if w == 0 || !resolution.is_multiple_of(w) {
            return Err(format!(
                "architecture.window {window} does not tile stage {s}'s {resolution}x{resolution} \
                 tokens; choose a window that divides it"
            ));
        }
        if merge && !resolution.is_multiple_of(2) {
            return Err(format!(
                "stage {s} has {resolution}x{resolution} tokens, which patch merging cannot \
                 halve; use fewer stages or another patch_size"
            ));
        }
        let shift = if resolution > w { w / 2 } else { 0 };
        out.push(Stage {
            resolution,
            dim,
            heads: h,
            depth,
            window: w,
            shift,
            merge,
        });
        if merge {
            resolution /= 2;
            dim *= 2;
        }
    }
    Ok(out)
}

/// For each token in window order (window by window, row-major inside each), the index of the
/// token it is read from, after rolling the picture up and left by `shift`.
///
/// Gathering rows with this map partitions (and shifts) the tokens; gathering the windows'
/// output with [`inverse`] of it puts every token back in place (and undoes the shift).
pub fn window_order(resolution: usize, window: usize, shift: usize) -> Vec<usize> {
    let per_side = resolution / window;
    let mut out = Vec::with_capacity(resolution * resolution);
    for wy in 0..per_side {
        for wx in 0..per_side {
            for iy in 0..window {
                for ix in 0..window {
                    let y = (wy * window + iy + shift) % resolution;
                    let x = (wx * window + ix + shift) % resolution;
                    out.push(y * resolution + x);
                }
            }
        }
    }
    out
}

/// The inverse of a permutation: `inverse(p)[p[i]] == i`.
pub fn inverse(permutation: &[usize]) -> Vec<usize> {
    let mut out = vec![0; permutation.len()];
    for (i, &p) in permutation.iter().enumerate() {
        out[p] = i;
    }
    out
}

/// For each pair `(i, j)` of a window's tokens (row-major, `i * N + j`, `N = W * W`), the row
/// of the relative-position bias table it reads: `(dy + W - 1) * (2W - 1) + dx + W - 1`, where
/// `(dy, dx)` is token `i`'s position minus token `j`'s.
pub fn relative_position_index(window: usize) -> Vec<usize> {
    let n = window * window;
    let side = 2 * window - 1;
    let mut out = Vec::with_capacity(n * n);
    for i in 0..n {
        let (yi, xi) = (i / window, i % window);
        for j in 0..n {
            let (yj, xj) = (j / window, j % window);
            out.push((yi + window - 1 - yj) * side + (xi + window - 1 - xj));
        }
    }
    out
}

/// The additive attention mask of a shifted block: `[windows, N, N]` flattened, 0 between
/// tokens that were neighbours before the roll and [`MASKED`] between tokens brought together
/// from opposite edges; `None` when `shift` is 0 (nothing to mask).
pub fn attention_mask(resolution: usize, window: usize, shift: usize) -> Option<Vec<f32>> {
    if shift == 0 {
        return None;
    }
    // Region of each position of the rolled picture along one axis: 0 for what stayed in
    // place, 1 for the last window's first part, 2 for the part that wrapped around.
    let region = |v: usize| {
        if v < resolution - window {
            0
        } else if v < resolution - shift {
            1
        } else {
            2
        }
    };
    let per_side = resolution / window;
    let n = window * window;
    let mut out = Vec::with_capacity(per_side * per_side * n * n);
    for wy in 0..per_side {
        for wx in 0..per_side {
            let label = |t: usize| {
                let (y, x) = (wy * window + t / window, wx * window + t % window);
                region(y) * 3 + region(x)
            };
            for i in 0..n {
                for j in 0..n {
                    out.push(if label(i) == label(j) { 0.0 } else { MASKED });
                }
            }
        }
    }
    Some(out)
}

/// Patch merging's four reads: for each token of the halved grid (row-major), the tokens of the
/// `resolution` grid whose channels are concatenated in this order: `(2y, 2x)`, `(2y + 1, 2x)`,
/// `(2y, 2x + 1)`, `(2y + 1, 2x + 1)` (the reference code's `x0, x1, x2, x3`).
pub fn merge_order(resolution: usize) -> [Vec<usize>; 4] {
    let half = resolution / 2;
    let read = |dy: usize, dx: usize| {
        (0..half * half)
            .map(|t| (2 * (t / half) + dy) * resolution + 2 * (t % half) + dx)
            .collect()
    };
    [read(0, 0), read(1, 0), read(0, 1), read(1, 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(patch: usize, window: usize, depths: Vec<usize>, heads: Vec<usize>) -> Architecture {
        Architecture::Swin {
            patch_size: patch,
            embed_dim: 32,
            depths,
            heads,
            window,
            mlp_ratio: 4,
            ln_eps: 1e-5,
        }
    }

    #[test]
    fn stages_halve_the_grid_and_double_the_channels() {
        let s = stages(&arch(4, 6, vec![2, 2, 2], vec![1, 2, 4]), 48).unwrap();
        let summary: Vec<_> = s
            .iter()
            .map(|s| (s.resolution, s.dim, s.window, s.shift, s.merge))
            .collect();
        assert_eq!(
            summary,
            [
                (12, 32, 6, 3, true),
                (6, 64, 6, 0, true),
                (3, 128, 3, 0, false)
            ]
        );
        assert_eq!(s[0].windows(), 4);
        assert_eq!(s[0].shift_of(0), 0);
        assert_eq!(s[0].shift_of(1), 3);
    }

    #[test]
    fn impossible_layouts_are_named() {
        let e = stages(&arch(5, 6, vec![2], vec![1]), 48).unwrap_err();
        assert!(e.contains("patch_size"), "{e}");
        let e = stages(&arch(4, 5, vec![2], vec![1]), 48).unwrap_err();
        assert!(e.contains("window 5"), "{e}");
        let e = stages(&arch(4, 6, vec![2, 2, 2, 2], vec![1, 1, 1, 1]), 48).unwrap_err();
        assert!(e.contains("cannot halve"), "{e}");
        let e = stages(&arch(4, 6, vec![2], vec![3]), 48).unwrap_err();
        assert!(e.contains("heads[0]"), "{e}");
    }

    #[test]
    fn windows_without_shift_are_squares_of_the_grid() {
        // A 4x4 grid in 2x2 windows: the first window holds tokens 0, 1, 4, 5.
        let order = window_order(4, 2, 0);
        assert_eq!(&order[..8], &[0, 1, 4, 5, 2, 3, 6, 7]);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..16).collect::<Vec<_>>());
    }

    #[test]
    fn the_shift_rolls_up_and_left_and_the_inverse_rolls_back() {
        // torch.roll(x, shifts=(-1, -1)) on a 4x4 grid: position (0, 0) holds token (1, 1).
        let order = window_order(4, 2, 1);
        assert_eq!(order[0], 5);
        // The last window's last token is (3, 3) rolled: token (0, 0).
        assert_eq!(order[15], 0);
        let back = inverse(&order);
        for (i, &p) in order.iter().enumerate() {
            assert_eq!(back[p], i);
        }
    }

    #[test]
    fn relative_positions_index_the_table_symmetrically() {
        let idx = relative_position_index(2);
        // Same token: the table's centre, (W-1) * (2W-1) + W-1 = 4.
        assert!((0..4).all(|i| idx[i * 4 + i] == 4));
        // Token 3 (1, 1) relative to token 0 (0, 0): dy = dx = 1 → 2 * 3 + 2 = 8.
        assert_eq!(idx[3 * 4], 8);
        assert_eq!(idx[3], 0);
        assert!(idx.iter().all(|&i| i < 9));
    }

    #[test]
    fn the_mask_separates_what_the_roll_brought_together() {
        assert!(attention_mask(4, 2, 0).is_none());
        let mask = attention_mask(4, 2, 1).unwrap();
        let n = 4;
        let at = |w: usize, i: usize, j: usize| mask[(w * n + i) * n + j];
        // The first window never wraps: nothing masked.
        assert!((0..n * n).all(|k| mask[k] == 0.0));
        // The last window (rolled bottom-right) mixes four regions: token 0 (3rd row/col of the
        // grid) and token 3 (wrapped from row 0, col 0) are masked; every token sees itself.
        assert_eq!(at(3, 0, 3), MASKED);
        assert!((0..n).all(|i| at(3, i, i) == 0.0));
        // A window of the top-right column mixes two columns' regions only.
        assert_eq!(at(1, 0, 2), 0.0);
        assert_eq!(at(1, 0, 1), MASKED);
    }

    #[test]
    fn merging_reads_the_four_corners_of_each_square() {
        let [a, b, c, d] = merge_order(4);
        assert_eq!(a, [0, 2, 8, 10]);
        assert_eq!(b, [4, 6, 12, 14]);
        assert_eq!(c, [1, 3, 9, 11]);
        assert_eq!(d, [5, 7, 13, 15]);
    }
}
