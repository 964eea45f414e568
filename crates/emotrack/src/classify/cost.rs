//! What a network costs per face: multiply-adds of its convolutions, matrix products and linear
//! layers (normalisations, activations and softmaxes, a few percent at most, are not counted,
//! as is usual), from its layout alone.

use super::{Architecture, swin};

/// Multiply-adds per image of `arch` at `input_size` x `input_size` with `classes` outputs;
/// `None` for an ONNX graph (its layout is not ours to read) or an impossible layout.
pub fn multiply_adds(arch: &Architecture, input_size: usize, classes: usize) -> Option<u64> {
    let n = match arch {
        Architecture::Resnet {
            stem_channels,
            stem_stride,
            widths,
            blocks,
            strides,
            ..
        } => {
            // 3x3 convolutions padded by 1 (1x1 shortcuts unpadded): out = (in - 1) / s + 1.
            let out = |side: usize, stride: usize| (side - 1) / stride + 1;
            let mut side = out(input_size, *stem_stride);
            let mut total = side * side * stem_channels * 9;
            let mut in_ch = *stem_channels;
            for ((&width, &count), &stride) in widths.iter().zip(blocks).zip(strides) {
                for b in 0..count {
                    let s = if b == 0 { stride } else { 1 };
                    side = out(side, s);
                    let pixels = side * side;
                    total += pixels * width * in_ch * 9 + pixels * width * width * 9;
                    if s != 1 || in_ch != width {
                        total += pixels * width * in_ch;
                    }
                    in_ch = width;
                }
            }
            total + in_ch * classes
        }
        Architecture::Swin {
            patch_size,
            embed_dim,
            mlp_ratio,
            ..
        } => {
            let stages = swin::stages(arch, input_size).ok()?;
            let first = stages.first()?;
            let mut total = first.resolution.pow(2) * embed_dim * patch_size * patch_size;
            for stage in &stages {
                let (l, c) = (stage.resolution.pow(2), stage.dim);
                // qkv, q·kᵀ and attention·v over each window, the projection, the MLP.
                let block = l * c * 3 * c
                    + 2 * l * stage.window_tokens() * c
                    + l * c * c
                    + 2 * l * c * c * mlp_ratio;
                total += stage.depth * block;
                if stage.merge {
                    total += (l / 4) * 4 * c * 2 * c;
                }
            }
            total + stages.last()?.dim * classes
        }
        Architecture::Ensemble { members } => members
            .iter()
            .map(|m| multiply_adds(m, input_size, classes).map(|x| x as usize))
            .sum::<Option<usize>>()?,
        Architecture::Onnx { .. } => return None,
    };
    Some(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_resnet_costs_what_its_card_says() {
        let resnet = Architecture::Resnet {
            stem_channels: 32,
            stem_stride: 2,
            widths: vec![32, 64, 128, 256],
            blocks: vec![1, 1, 1, 1],
            strides: vec![1, 2, 2, 2],
            bn_eps: 1e-5,
        };
        // models/README.md: 35.6 M multiply-adds per face.
        let n = multiply_adds(&resnet, 48, 7).unwrap();
        assert!((35_500_000..35_700_000).contains(&n), "{n}");
        let pair = Architecture::Ensemble {
            members: vec![resnet.clone(), resnet],
        };
        assert_eq!(multiply_adds(&pair, 48, 7), Some(2 * n));
    }

    #[test]
    fn a_swin_block_counts_its_products() {
        // One stage of 2x2 tokens in one window, 4 channels, MLP ratio 1, patch 24 on 48 px.
        let swin = Architecture::Swin {
            patch_size: 24,
            embed_dim: 4,
            depths: vec![1],
            heads: vec![1],
            window: 2,
            mlp_ratio: 1,
            ln_eps: 1e-5,
        };
        let patch = 4 * 4 * 24 * 24;
        let block = 4 * 4 * 12 + 2 * 4 * 4 * 4 + 4 * 4 * 4 + 2 * 4 * 4 * 4;
        assert_eq!(
            multiply_adds(&swin, 48, 7),
            Some((patch + block + 4 * 7) as u64)
        );
        assert_eq!(
            multiply_adds(
                &Architecture::Onnx {
                    outputs: Default::default()
                },
                48,
                7
            ),
            None
        );
    }
}
