//! The YuNet_s network on [`emotrack_nn`]: weights by name from `models/yunet.safetensors`, one
//! forward pass from a padded RGB picture to the three levels' head maps.

use emotrack_nn::{
    Activation, Conv2d, ConvSpec, DepthwiseConv3x3, MaxPool2d, Scratch, Tensor, Weights,
    add_upsampled_2x,
};

use crate::error::Result;

/// Channels of one level's fused head output, in this order: the face class logit, the
/// objectness logit, four box values, ten landmark values (five `(x, y)` pairs).
pub(super) const HEAD_CHANNELS: usize = 16;
/// The first box channel and the first landmark channel in a head map.
pub(super) const BOX: usize = 2;
pub(super) const LANDMARKS: usize = 6;
/// The heads of `models/yunet.safetensors` and their channel counts, fused in this order.
const HEADS: [(&str, usize); 4] = [("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)];

/// The output strides of the three head levels (P3, P4, P5).
pub(super) const STRIDES: [usize; 3] = [8, 16, 32];
/// The network's input sides must be multiples of this (its coarsest stride).
pub(super) const ALIGN: usize = 32;

/// One "ConvDPUnit": a 1x1 convolution (no activation after it) then a depthwise 3x3
/// convolution, with ReLU after it or not.
#[derive(Debug)]
struct Unit {
    pw: Conv2d,
    dw: DepthwiseConv3x3,
    relu: bool,
}

impl Unit {
    /// Loads `{name}.pw.*` (`[out, in, 1, 1]`) and `{name}.dw.*` (`[out, 1, 3, 3]`).
    fn load(w: &Weights<'_>, name: &str, (i, o): (usize, usize), relu: bool) -> Result<Self> {
        Ok(Self {
            pw: Conv2d::load(w, &format!("{name}.pw"), ConvSpec::new(i, o, 1))?,
            dw: DepthwiseConv3x3::load(w, &format!("{name}.dw"), o)?,
            relu,
        })
    }

    /// The four heads of level `level` as one unit: their 1x1 convolutions stacked into one
    /// of [`HEAD_CHANNELS`] outputs, their depthwise filters side by side (a depthwise layer
    /// works per channel, so the result is the four heads' outputs, concatenated).
    fn load_heads(w: &Weights<'_>, level: usize) -> Result<Self> {
        let units = HEADS
            .iter()
            .map(|(head, c)| Self::load(w, &format!("head.{head}.{level}"), (64, *c), false))
            .collect::<Result<Vec<_>>>()?;
        let weight = units
            .iter()
            .flat_map(|u| u.pw.weight().iter().copied())
            .collect();
        let bias = units
            .iter()
            .flat_map(|u| u.pw.bias().iter().copied())
            .collect();
        let dws: Vec<&DepthwiseConv3x3> = units.iter().map(|u| &u.dw).collect();
        Ok(Self {
            pw: Conv2d::new(ConvSpec::new(64, HEAD_CHANNELS, 1), weight, Some(bias)),
            dw: DepthwiseConv3x3::concat(&dws),
            relu: false,
        })
    }

    /// `y = unit(x)`, through `mid` (the 1x1 convolution's output), calling `lap("pw")` and
    /// `lap("dw")` after each half.
    fn forward(
        &self,
        (x, mid, y): (&Tensor, &mut Tensor, &mut Tensor),
        scratch: &mut Scratch,
        lap: &mut impl FnMut(&'static str),
    ) {
        self.pw.forward(x, mid, scratch);
        lap("pw");
        let act = if self.relu {
            Activation::Relu
        } else {
            Activation::Identity
        };
        self.dw.forward(mid, y, act);
        lap("dw");
    }
}

/// YuNet_s (libfacedetection.train `configs/yunet_s.py`), batch norms folded:
///
/// | stage | layers | output (stride) |
/// |---|---|---|
/// | stem | 3x3 conv 3→16 stride 2 + ReLU, unit 16→16, max pool 2 | 16 (4) |
/// | 1, 2 | units 16→16, 16→32; 32→32, 32→64; max pool 2 | 64 (8) |
/// | 3 | units 64→64 x2 | C3, 64 (8) |
/// | 4, 5 | max pool 2, units 64→64 x2 | C4 (16), C5 (32) |
/// | neck | P5 = unit(C5); P4 = unit(C4 + up2(P5)); P3 = unit(C3 + up2(P4)) | 64 each |
/// | heads | per level, units 64→{1, 1, 4, 10} without ReLU | 16 (8, 16, 32) |
///
/// A unit is a 1x1 convolution then a depthwise 3x3 one, ReLU after it except in the heads.
#[derive(Debug)]
pub(super) struct YunetNet {
    /// Reads RGB: the stored filters read BGR, their input channels are swapped at load time.
    stem: Conv2d,
    /// `backbone.0.dp`, `backbone.1.dp1` … `backbone.5.dp2`, in order.
    backbone: Vec<Unit>,
    /// `neck.0` (P3), `neck.1` (P4), `neck.2` (P5).
    neck: [Unit; 3],
    /// Per level (P3, P4, P5): the four heads fused.
    heads: [Unit; 3],
    pool: MaxPool2d,
}

/// The backbone's units after the stem: name and channels in and out.
const BACKBONE: [(&str, usize, usize); 11] = [
    ("backbone.0.dp", 16, 16),
    ("backbone.1.dp1", 16, 16),
    ("backbone.1.dp2", 16, 32),
    ("backbone.2.dp1", 32, 32),
    ("backbone.2.dp2", 32, 64),
    ("backbone.3.dp1", 64, 64),
    ("backbone.3.dp2", 64, 64),
    ("backbone.4.dp1", 64, 64),
    ("backbone.4.dp2", 64, 64),
    ("backbone.5.dp1", 64, 64),
    ("backbone.5.dp2", 64, 64),
];

/// Buffers one forward pass uses, kept between calls so a warm detector allocates nothing.
#[derive(Debug, Default)]
pub(super) struct Workspace {
    /// The network's input, `[1, 3, H, W]` with `H`, `W` multiples of [`ALIGN`].
    pub(super) input: Tensor,
    a: Tensor,
    b: Tensor,
    mid: Tensor,
    c3: Tensor,
    c4: Tensor,
    p: [Tensor; 3],
    /// The three levels' head maps, `[1, HEAD_CHANNELS, H / s, W / s]` for s = 8, 16, 32.
    pub(super) heads: [Tensor; 3],
    scratch: Scratch,
    /// The input stage's scratch (`input::fill_input`): one row's block sums.
    pub(super) sums: Vec<u32>,
}

impl YunetNet {
    /// Loads the network from safetensors laid out like `models/yunet.safetensors`.
    pub(super) fn load(w: &Weights<'_>) -> Result<Self> {
        let stem = Conv2d::load(
            w,
            "backbone.0.conv",
            ConvSpec::new(3, 16, 3).stride(2).padding(1),
        )?;
        // [16][3][3][3] with input channels B, G, R: reversed, the filters read R, G, B.
        let mut weight = stem.weight().to_vec();
        for filter in weight.chunks_exact_mut(27) {
            let (b, rest) = filter.split_at_mut(9);
            b.swap_with_slice(&mut rest[9..]);
        }
        let stem = Conv2d::new(*stem.spec(), weight, Some(stem.bias().to_vec()));
        let backbone = BACKBONE
            .iter()
            .map(|&(name, i, o)| Unit::load(w, name, (i, o), true))
            .collect::<Result<Vec<_>>>()?;
        let neck = |i: usize| Unit::load(w, &format!("neck.{i}"), (64, 64), true);
        Ok(Self {
            stem,
            backbone,
            neck: [neck(0)?, neck(1)?, neck(2)?],
            heads: [
                Unit::load_heads(w, 0)?,
                Unit::load_heads(w, 1)?,
                Unit::load_heads(w, 2)?,
            ],
            pool: MaxPool2d::new(2, 2),
        })
    }

    /// Runs the network on `ws.input` (`[1, 3, H, W]`, RGB values 0..255, `H` and `W`
    /// multiples of [`ALIGN`]) into `ws.heads`.
    pub(super) fn forward(&self, ws: &mut Workspace) {
        self.forward_laps(ws, |_, _| {});
    }

    /// Backbone unit `i` from `x` into `y` through `mid`.
    fn unit(
        &self,
        i: usize,
        (x, mid, y): (&Tensor, &mut Tensor, &mut Tensor),
        scratch: &mut Scratch,
        lap: &mut impl FnMut(&'static str, &'static str),
    ) {
        let name = BACKBONE[i].0;
        self.backbone[i].forward((x, mid, y), scratch, &mut |part| lap(name, part));
    }

    /// Max pooling from `x` into `y`.
    fn pool(&self, x: &Tensor, y: &mut Tensor, lap: &mut impl FnMut(&'static str, &'static str)) {
        self.pool.forward(x, y);
        lap("max pools", "");
    }

    /// [`YunetNet::forward`], calling `lap(layer, part)` after each step (for per-layer
    /// timing): `part` is `"pw"` or `"dw"` for a unit's halves, `""` for other steps.
    fn forward_laps(&self, ws: &mut Workspace, mut lap: impl FnMut(&'static str, &'static str)) {
        let Workspace {
            input,
            a,
            b,
            mid,
            c3,
            c4,
            p,
            heads,
            scratch,
            sums: _,
        } = ws;
        debug_assert!(input.h() % ALIGN == 0 && input.w() % ALIGN == 0);
        self.stem.forward_act(input, a, scratch, Activation::Relu);
        lap("stem", "");
        let lap = &mut lap;
        let mid = &mut *mid;
        self.unit(0, (a, mid, b), scratch, lap);
        self.pool(b, a, lap);
        self.unit(1, (a, mid, b), scratch, lap);
        self.unit(2, (b, mid, a), scratch, lap);
        self.unit(3, (a, mid, b), scratch, lap);
        self.unit(4, (b, mid, a), scratch, lap);
        self.pool(a, b, lap);
        self.unit(5, (b, mid, a), scratch, lap);
        self.unit(6, (a, mid, c3), scratch, lap);
        self.pool(c3, a, lap);
        self.unit(7, (a, mid, b), scratch, lap);
        self.unit(8, (b, mid, c4), scratch, lap);
        self.pool(c4, a, lap);
        self.unit(9, (a, mid, b), scratch, lap);
        // C5 goes to `a`; P5, P4, P3 to `p[2]`, `p[1]`, `p[0]`.
        self.unit(10, (b, mid, a), scratch, lap);
        let [p3, p4, p5] = p;
        self.neck[2].forward((a, mid, p5), scratch, &mut |part| lap("neck.2", part));
        add_upsampled_2x(c4, p5);
        lap("upsampled adds", "");
        self.neck[1].forward((c4, mid, p4), scratch, &mut |part| lap("neck.1", part));
        add_upsampled_2x(c3, p4);
        lap("upsampled adds", "");
        self.neck[0].forward((c3, mid, p3), scratch, &mut |part| lap("neck.0", part));
        for ((head, level), (out, name)) in self
            .heads
            .iter()
            .zip([&*p3, &*p4, &*p5])
            .zip(heads.iter_mut().zip(["heads 8", "heads 16", "heads 32"]))
        {
            head.forward((level, mid, out), scratch, &mut |part| lap(name, part));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Not a test: the time of each step of a forward pass at the default search size (a
    /// 640x480 frame shrunk to 320x240, padded to 320x256), on one thread, the best of 50
    /// passes per step. Run it in release mode:
    /// `cargo test --release -p emotrack --lib yunet::net::tests::layer_times -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, for release builds"]
    fn layer_times() {
        let w = Weights::from_bytes(super::super::WEIGHTS, "yunet").expect("weights");
        let net = YunetNet::load(&w).expect("loads");
        let mut ws = Workspace::default();
        let (h, wd) = (256, 320);
        ws.input = Tensor::from_vec(
            [1, 3, h, wd],
            (0..3 * h * wd).map(|i| ((i * 7919) % 256) as f32).collect(),
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a pool");
        // Best time of each step (by position), then summed by layer and by part.
        let mut best: Vec<(&str, &str, Duration)> = Vec::new();
        pool.install(|| {
            for run in 0..50 {
                let mut t = Instant::now();
                let mut i = 0;
                net.forward_laps(&mut ws, |layer, part| {
                    let d = t.elapsed();
                    if run == 0 {
                        best.push((layer, part, d));
                    } else {
                        best[i].2 = best[i].2.min(d);
                    }
                    i += 1;
                    t = Instant::now();
                });
            }
        });
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut layers: Vec<(&str, Duration, Duration)> = Vec::new();
        for &(layer, part, d) in &best {
            if layers.last().is_none_or(|l| l.0 != layer) && !layers.iter().any(|l| l.0 == layer) {
                layers.push((layer, Duration::ZERO, Duration::ZERO));
            }
            let entry = layers
                .iter_mut()
                .find(|l| l.0 == layer)
                .expect("added above");
            if part == "dw" {
                entry.2 += d;
            } else {
                entry.1 += d;
            }
        }
        eprintln!("{:16} {:>8} {:>8}", "step", "pw/all", "dw");
        for (layer, first, dw) in &layers {
            eprintln!("{layer:16} {:8.3} {:8.3}", ms(*first), ms(*dw));
        }
        let sum = |dw: bool| {
            best.iter()
                .filter(|b| (b.1 == "dw") == dw)
                .map(|b| b.2)
                .sum::<Duration>()
        };
        let (dw, rest) = (sum(true), sum(false));
        eprintln!(
            "sum of the best: {:.3} ms, of which depthwise {:.3} ms",
            ms(dw + rest),
            ms(dw)
        );
    }
}
