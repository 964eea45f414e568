//! MTCNN face detection (Zhang et al., 2016) with facenet-pytorch's weights: a faithful port of
//! facenet-pytorch 2.6.0's `MTCNN.detect` onto [`emotrack_nn`].
//!
//! Three cascaded nets, each refining the boxes of the one before:
//!
//! 1. **P-Net**, fully convolutional, runs on an image pyramid (scales `12/min_face · factorᵏ`
//!    while the short side stays ≥ 12 px) and proposes a box for every 12x12 window whose face
//!    probability is ≥ [`MtcnnSettings::pnet_threshold`]; NMS (IoU 0.5) per scale, then over all scales (0.7), box
//!    regression, boxes made square.
//! 2. **R-Net** rescores 24x24 crops of those boxes (keeps probability > [`MtcnnSettings::rnet_threshold`]), NMS
//!    0.7, regression, square.
//! 3. **O-Net** rescores 48x48 crops (keeps > [`MtcnnSettings::onet_threshold`]), adds five landmarks, regression,
//!    and a last NMS (0.7, overlap measured against the smaller box).
//!
//! Everything that decides which boxes survive follows facenet-pytorch operation by operation
//! (resampling by area averaging, `f32` box arithmetic, the crop rule that clips boxes to the
//! image and stretches the clipped region to the net's input), so detections match its own to a
//! fraction of a pixel; `crates/emotrack/tests/mtcnn.rs` checks that on real photos. Where
//! facenet-pytorch would crash (a box wholly outside the image leaves its batch misaligned) this
//! port drops the box.
//!
//! Speed: the frame is summed once into a summed-area table, from which every pyramid level and
//! crop is resampled at four look-ups per value; pyramid levels run in parallel (rayon), crops
//! are batched per net, and each worker reuses its buffers across calls ([`emotrack_nn`]
//! allocates nothing once warm). P-Net skips black borders (the video decoder's letterbox
//! bars): a window of black pixels scores far below the threshold, so only the band of each
//! level around the picture is computed, with the same proposals.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::pool::Pool;
use super::{FaceDetector, FaceSizes, near};
use crate::error::{Error, Result};
use crate::imgproc::area::{AreaSums, Region};
use crate::imgproc::{AsRgbView, RgbView};
use crate::types::{BBox, Detection, Landmarks};
use emotrack_nn::{
    Activation, Conv2d, ConvSpec, Linear, MaxPool2d, PRelu, Scratch, Tensor, Weights,
};

/// facenet-pytorch's P-, R- and O-Net weights (MIT), converted by `scripts/convert_mtcnn.py`;
/// see `models/NOTICE.md`.
const WEIGHTS: &[u8] = include_bytes!("../../../../models/mtcnn.safetensors");

/// Input normalisation shared by the three nets: `(pixel - 127.5) / 128`.
const PIXEL_OFFSET: f32 = 127.5;
const PIXEL_SCALE: f32 = 0.0078125;

/// P-Net's receptive field (the face size found at scale 1) and its output stride.
const PNET_CELL: f32 = 12.0;
const PNET_STRIDE: f32 = 2.0;
/// Side of the R-Net and O-Net input crops.
const RNET_SIZE: usize = 24;
const ONET_SIZE: usize = 48;

/// NMS overlaps (facenet-pytorch's fixed values): within one pyramid level, across levels,
/// after R-Net, after O-Net (the last one relative to the smaller box).
const NMS_PER_SCALE: f32 = 0.5;
const NMS_ACROSS_SCALES: f32 = 0.7;
const NMS_RNET: f32 = 0.7;
const NMS_ONET_MIN: f32 = 0.7;

/// Crops per parallel R-Net / O-Net task: big enough to amortise per-call overhead, small enough
/// to spread a few dozen boxes over the cores.
const CROPS_PER_TASK: usize = 16;

/// The MTCNN backend's settings in a [`DetectorConfig`](super::DetectorConfig); the defaults are
/// facenet-pytorch's (`thresholds=[0.6, 0.7, 0.7]`, `factor=0.709`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MtcnnSettings {
    /// Stage 1: the face probability P-Net needs to propose a window, in [0, 1]; default 0.6.
    /// Lower it to find harder faces (more proposals for the later stages to check, slower).
    pub pnet_threshold: f32,
    /// Stage 2: the probability R-Net needs to keep a proposal, in [0, 1]; default 0.7. Rarely
    /// worth changing; lower it with `pnet_threshold` to keep harder faces.
    pub rnet_threshold: f32,
    /// Stage 3, the final face probability: what O-Net needs to keep a face, in [0, 1]; default
    /// 0.7 (the CLI's `--threshold`). Raise it to reject more non-faces; tune this one first.
    pub onet_threshold: f32,
    /// The image pyramid's scale step, in (0.1, 1); default 0.709 (each level half the area of
    /// the one before). Larger finds more faces between sizes, more slowly.
    pub factor: f32,
}

impl Default for MtcnnSettings {
    fn default() -> Self {
        Self {
            pnet_threshold: 0.6,
            rnet_threshold: 0.7,
            onet_threshold: 0.7,
            factor: 0.709,
        }
    }
}

impl MtcnnSettings {
    /// The three stage thresholds in order (P-Net, R-Net, O-Net), as facenet-pytorch's
    /// `thresholds`.
    pub fn thresholds(&self) -> [f32; 3] {
        [
            self.pnet_threshold,
            self.rnet_threshold,
            self.onet_threshold,
        ]
    }

    /// Checks every field, saying which one to change.
    pub fn validate(&self) -> Result<()> {
        for (i, t) in self.thresholds().iter().enumerate() {
            if !(0.0..=1.0).contains(t) {
                return Err(Error::config(format!(
                    "mtcnn threshold {} is {t}, it must be in [0, 1]",
                    i + 1
                )));
            }
        }
        if !(self.factor > 0.1 && self.factor < 1.0) {
            return Err(Error::config(format!(
                "mtcnn_factor is {}, it must be in (0.1, 1); 0.709 is the usual value",
                self.factor
            )));
        }
        Ok(())
    }
}

/// The MTCNN detector. Build it with [`Mtcnn::embedded`] or
/// [`DetectorConfig::build`](super::DetectorConfig::build).
#[derive(Debug)]
pub struct Mtcnn {
    pnet: PNet,
    rnet: RNet,
    onet: ONet,
    min_face: u32,
    max_face: Option<u32>,
    thresholds: [f32; 3],
    factor: f64,
    /// P-Net's score for a window of black pixels is below the first threshold, so P-Net may
    /// skip black borders (see [`band`]).
    skip_black: bool,
    workspaces: Pool<Workspace>,
    /// One summed-area table per concurrent call, the frame's or the crops' surroundings.
    tables: Pool<AreaSums>,
}

impl Mtcnn {
    /// The detector with the embedded facenet-pytorch weights, searching faces of `sizes` with
    /// `settings` (both validated here).
    pub fn embedded(sizes: FaceSizes, settings: &MtcnnSettings) -> Result<Self> {
        Self::from_safetensors(sizes, settings, WEIGHTS, "<embedded mtcnn.safetensors>")
    }

    /// The detector with weights from safetensors bytes laid out like
    /// `models/mtcnn.safetensors` (PyTorch names with a `pnet.` / `rnet.` / `onet.` prefix).
    pub fn from_safetensors(
        sizes: FaceSizes,
        settings: &MtcnnSettings,
        bytes: &[u8],
        origin: &str,
    ) -> Result<Self> {
        sizes.validate()?;
        settings.validate()?;
        let w = Weights::from_bytes(bytes, origin)?;
        let pnet = PNet::load(&w)?;
        let workspaces = Pool::default();
        // With a margin far above the rounding differences between convolution kernels.
        let black = workspaces.with(|ws| pnet.black_window_score(ws));
        let skip_black = black + 1e-3 < settings.pnet_threshold;
        Ok(Self {
            pnet,
            rnet: RNet::load(&w)?,
            onet: ONet::load(&w)?,
            min_face: sizes.min,
            max_face: sizes.max,
            thresholds: settings.thresholds(),
            factor: f64::from(settings.factor),
            skip_black,
            workspaces,
            tables: Pool::default(),
        })
    }

    /// The pyramid's scales for a `w x h` image: `12 / min_face · factorᵏ` while the short
    /// side, scaled, is at least 12 px (computed in `f64` like facenet-pytorch's Python).
    fn scales(&self, w: u32, h: u32, min_face: u32) -> Vec<f64> {
        let m = f64::from(PNET_CELL) / f64::from(min_face);
        let mut minl = f64::from(w.min(h)) * m;
        let mut scale = m;
        let mut scales = Vec::new();
        while minl >= f64::from(PNET_CELL) {
            scales.push(scale);
            scale *= self.factor;
            minl *= self.factor;
        }
        scales
    }

    /// Stage 1 on one pyramid level: P-Net's proposals, after NMS within the level. P-Net sees
    /// only the level's part around `picture` (the table's pixels that are not black), which
    /// gives the same proposals (see [`band`]).
    fn propose(
        &self,
        table: &AreaSums,
        picture: Region,
        scale: f64,
        ws: &mut Workspace,
    ) -> Vec<Candidate> {
        let full = table.region();
        let hs = (f64::from(full.h) * scale + 1.0) as usize;
        let wsz = (f64::from(full.w) * scale + 1.0) as usize;
        let (Some(rows), Some(cols)) = (
            band((picture.y, picture.h), full.h, hs),
            band((picture.x, picture.w), full.w, wsz),
        ) else {
            return Vec::new();
        };
        let window = Region {
            x: cols.0 as u32,
            y: rows.0 as u32,
            w: (cols.1 - cols.0) as u32,
            h: (rows.1 - rows.0) as u32,
        };
        ws.input.resize([1, 3, rows.1 - rows.0, cols.1 - cols.0]);
        table.resize_planar_window(
            full,
            (wsz, hs),
            window,
            (PIXEL_OFFSET, PIXEL_SCALE),
            ws.input.data_mut(),
        );
        // The band's first output cell is the level's cell `start / 2`.
        let (y0, x0) = (rows.0 / 2, cols.0 / 2);
        let out = self.pnet.forward(ws);
        let (oh, ow) = (out.h(), out.w());
        let plane = oh * ow;
        let d = out.data();
        // facenet-pytorch divides f32 coordinates by the scale rounded to f32.
        let scale = scale as f32;
        let mut candidates = Vec::new();
        for y in 0..oh {
            for x in 0..ow {
                let i = y * ow + x;
                let score = face_probability(d[i], d[plane + i]);
                if score >= self.thresholds[0] {
                    let (bx, by) = ((x0 + x) as f32, (y0 + y) as f32);
                    candidates.push(Candidate {
                        bbox: [
                            ((PNET_STRIDE * bx + 1.0) / scale).floor(),
                            ((PNET_STRIDE * by + 1.0) / scale).floor(),
                            ((PNET_STRIDE * bx + PNET_CELL) / scale).floor(),
                            ((PNET_STRIDE * by + PNET_CELL) / scale).floor(),
                        ],
                        score,
                        reg: [
                            d[2 * plane + i],
                            d[3 * plane + i],
                            d[4 * plane + i],
                            d[5 * plane + i],
                        ],
                        landmarks: [0.0; 10],
                    });
                }
            }
        }
        let keep = nms(&candidates, NMS_PER_SCALE, Overlap::Union);
        keep.into_iter().map(|k| candidates[k]).collect()
    }

    /// Runs R-Net (`size` 24) or O-Net (48) on crops of `boxes` (clipped to the `w x h` image,
    /// resampled from `table`, which must cover them), in parallel batches. Returns the boxes
    /// whose crop is not empty, each with the net's raw output row.
    fn refine<const OUT: usize>(
        &self,
        table: &AreaSums,
        (w, h): (u32, u32),
        boxes: &[Candidate],
        size: usize,
        net: &(impl CropNet<OUT> + Sync),
    ) -> Vec<(Candidate, [f32; OUT])> {
        let crops: Vec<(Candidate, Region)> = boxes
            .iter()
            .filter_map(|c| crop_region(&c.bbox, w, h).map(|r| (*c, r)))
            .collect();
        crops
            .par_chunks(CROPS_PER_TASK)
            .flat_map_iter(|chunk| {
                self.workspaces.with(|ws| {
                    let n = chunk.len();
                    ws.input.resize([n, 3, size, size]);
                    let item = 3 * size * size;
                    for (k, (_, region)) in chunk.iter().enumerate() {
                        table.resize_planar(
                            *region,
                            size,
                            size,
                            PIXEL_OFFSET,
                            PIXEL_SCALE,
                            &mut ws.input.data_mut()[k * item..(k + 1) * item],
                        );
                    }
                    let out = net.forward(ws);
                    chunk
                        .iter()
                        .zip(out.data().chunks_exact(OUT))
                        .map(|((c, _), row)| {
                            let mut o = [0.0; OUT];
                            o.copy_from_slice(row);
                            (*c, o)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect()
    }

    /// The whole cascade; detections in facenet-pytorch's order (decreasing probability).
    fn run(&self, image: &RgbView<'_>, min_face: u32) -> Vec<Candidate> {
        let scales = self.scales(image.width(), image.height(), min_face);
        if scales.is_empty() {
            return Vec::new();
        }
        self.tables.with(|table| {
            table.fill(image, Region::full(image));
            self.cascade(table, &scales)
        })
    }

    /// [`Mtcnn::run`] on the table of a whole image.
    fn cascade(&self, table: &AreaSums, scales: &[f64]) -> Vec<Candidate> {
        let dims = (table.region().w, table.region().h);
        let picture = if self.skip_black {
            match table.not_black() {
                Some(p) => p,
                // A black frame: every window scores below the threshold.
                None => return Vec::new(),
            }
        } else {
            // The whole table, relative to itself.
            Region {
                x: 0,
                y: 0,
                ..table.region()
            }
        };
        // Stage 1: P-Net on every pyramid level, levels in parallel, results in level order.
        let per_scale: Vec<Vec<Candidate>> = scales
            .par_iter()
            .map(|&s| {
                self.workspaces
                    .with(|ws| self.propose(table, picture, s, ws))
            })
            .collect();
        let proposals: Vec<Candidate> = per_scale.into_iter().flatten().collect();
        let keep = nms(&proposals, NMS_ACROSS_SCALES, Overlap::Union);
        let boxes: Vec<Candidate> = keep
            .into_iter()
            .map(|k| {
                let c = proposals[k];
                let [x1, y1, x2, y2] = c.bbox;
                let (rw, rh) = (x2 - x1, y2 - y1);
                Candidate {
                    bbox: square([
                        x1 + c.reg[0] * rw,
                        y1 + c.reg[1] * rh,
                        x2 + c.reg[2] * rw,
                        y2 + c.reg[3] * rh,
                    ]),
                    ..c
                }
            })
            .collect();
        if boxes.is_empty() {
            return Vec::new();
        }

        // Stage 2: R-Net.
        let scored: Vec<Candidate> = self
            .refine(table, dims, &boxes, RNET_SIZE, &self.rnet)
            .into_iter()
            .filter_map(|(c, out)| {
                let score = face_probability(out[0], out[1]);
                (score > self.thresholds[1]).then_some(Candidate {
                    score,
                    reg: [out[2], out[3], out[4], out[5]],
                    ..c
                })
            })
            .collect();
        let boxes: Vec<Candidate> = nms(&scored, NMS_RNET, Overlap::Union)
            .into_iter()
            .map(|k| {
                let c = scored[k];
                Candidate {
                    bbox: square(regress(c.bbox, c.reg)),
                    ..c
                }
            })
            .collect();
        if boxes.is_empty() {
            return Vec::new();
        }

        // Stage 3: O-Net, landmarks.
        let scored = self.output_stage(table, dims, &boxes);
        nms(&scored, NMS_ONET_MIN, Overlap::Min)
            .into_iter()
            .map(|k| scored[k])
            .collect()
    }

    /// Stage 3, O-Net on `boxes`: the faces above the third threshold, regressed, with landmarks.
    fn output_stage(
        &self,
        table: &AreaSums,
        dims: (u32, u32),
        boxes: &[Candidate],
    ) -> Vec<Candidate> {
        self.refine(table, dims, boxes, ONET_SIZE, &self.onet)
            .into_iter()
            .filter_map(|(c, out)| {
                let score = face_probability(out[0], out[1]);
                if score <= self.thresholds[2] {
                    return None;
                }
                let [x1, y1, x2, y2] = c.bbox;
                let (bw, bh) = (x2 - x1 + 1.0, y2 - y1 + 1.0);
                let mut landmarks = [0.0; 10];
                for k in 0..5 {
                    landmarks[k] = bw * out[6 + k] + x1 - 1.0;
                    landmarks[5 + k] = bh * out[11 + k] + y1 - 1.0;
                }
                let reg = [out[2], out[3], out[4], out[5]];
                Some(Candidate {
                    bbox: regress(c.bbox, reg),
                    score,
                    reg,
                    landmarks,
                })
            })
            .collect()
    }
}

/// A candidate's box, probability and landmarks as a [`Detection`].
fn detection(c: &Candidate) -> Detection {
    let [x1, y1, x2, y2] = c.bbox;
    let l = c.landmarks;
    Detection {
        bbox: BBox::from_corners(x1, y1, x2, y2),
        score: c.score,
        landmarks: Some(Landmarks(std::array::from_fn(|k| [l[k], l[5 + k]]))),
    }
}

impl FaceDetector for Mtcnn {
    fn sizes(&self) -> FaceSizes {
        FaceSizes {
            min: self.min_face,
            max: self.max_face,
        }
    }

    fn detect_sized(&self, image: &RgbView<'_>, sizes: FaceSizes) -> Vec<Detection> {
        self.run(image, sizes.min.max(12))
            .iter()
            .map(detection)
            .filter(|d| match sizes.max {
                Some(max) => d.bbox.w.max(d.bbox.h) <= max as f32,
                None => true,
            })
            .collect()
    }

    /// O-Net alone on each known box, squared as R-Net's output is: a face that moved a little
    /// since is re-found (O-Net regresses the box onto it) at the cost of one 48x48 crop, a
    /// fraction of a pyramid search. Boxes it does not confirm are searched for around
    /// ([`near::search_regions`]).
    fn detect_near(&self, image: &dyn AsRgbView, boxes: &[BBox]) -> Vec<Detection> {
        let image = &image.as_rgb_view();
        let candidates: Vec<Candidate> = boxes
            .iter()
            .map(|b| Candidate {
                bbox: square([b.x, b.y, b.right(), b.bottom()]),
                score: 0.0,
                reg: [0.0; 4],
                landmarks: [0.0; 10],
            })
            .collect();
        let (w, h) = (image.width(), image.height());
        let around = candidates
            .iter()
            .filter_map(|c| crop_region(&c.bbox, w, h))
            .reduce(Region::union);
        let mut found: Vec<Detection> = match around {
            Some(region) => self.tables.with(|table| {
                table.fill(image, region);
                self.output_stage(table, (w, h), &candidates)
                    .iter()
                    .map(detection)
                    .collect()
            }),
            None => Vec::new(),
        };
        let missing: Vec<BBox> = boxes
            .iter()
            .filter(|b| found.iter().all(|d| d.bbox.iou(b) < near::SAME_FACE_IOU))
            .copied()
            .collect();
        found.extend(near::search_regions(self, image, &missing));
        near::distinct(found)
    }
}

/// A box in flight through the cascade: corners `[x1, y1, x2, y2]` in image pixels, the last
/// net's face probability and box regression, and (after O-Net) landmarks `[x0..x4, y0..y4]`.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    bbox: [f32; 4],
    score: f32,
    reg: [f32; 4],
    landmarks: [f32; 10],
}

/// `softmax([not_face, face])[1]`, computed like PyTorch's softmax.
fn face_probability(not_face: f32, face: f32) -> f32 {
    let max = not_face.max(face);
    let (e0, e1) = ((not_face - max).exp(), (face - max).exp());
    e1 / (e0 + e1)
}

/// The rows (or columns) `[start, end)` of a pyramid level that P-Net must see when only
/// `picture = (first, count)` of the image's `image` rows is not black and the level has
/// `level` rows; `None` when no P-Net window there touches the picture.
///
/// Level rows outside the range computed here average black pixels only (area resampling:
/// row `i` averages image rows `floor(i·image/level) .. ceil((i+1)·image/level)`), so every
/// P-Net window wholly outside scores the black window's score, which the caller has checked is
/// below the threshold. The band starts on an even row and, unless it ends with the level, has
/// an even length: P-Net's stride-2 pooling then pairs the same rows as on the whole level, and
/// every output cell of the band equals the level's cell `start / 2` further on.
fn band((first, count): (u32, u32), image: u32, level: usize) -> Option<(usize, usize)> {
    let reach = PNET_CELL as usize - 1;
    let (image, first, last) = (image as usize, first as usize, (first + count) as usize);
    let inside_start = first * level / image;
    let inside_end = (last * level).div_ceil(image).min(level);
    let start = inside_start.saturating_sub(reach) & !1;
    let mut end = (inside_end + reach).min(level);
    if end < level && (end - start) % 2 == 1 {
        end += 1;
    }
    (end >= start + PNET_CELL as usize && inside_start < inside_end).then_some((start, end))
}

/// facenet-pytorch's `bbreg`: moves each edge by its regression times the box's (+1) size.
fn regress(b: [f32; 4], reg: [f32; 4]) -> [f32; 4] {
    let w = b[2] - b[0] + 1.0;
    let h = b[3] - b[1] + 1.0;
    [
        b[0] + reg[0] * w,
        b[1] + reg[1] * h,
        b[2] + reg[2] * w,
        b[3] + reg[3] * h,
    ]
}

/// facenet-pytorch's `rerec`: the square with the box's centre and its longer side.
fn square(b: [f32; 4]) -> [f32; 4] {
    let h = b[3] - b[1];
    let w = b[2] - b[0];
    let l = w.max(h);
    let x1 = b[0] + w * 0.5 - l * 0.5;
    let y1 = b[1] + h * 0.5 - l * 0.5;
    [x1, y1, x1 + l, y1 + l]
}

/// facenet-pytorch's `pad` + crop: corners truncated to integers, clipped to `[1, w] x [1, h]`
/// (1-based), and the pixels `x1-1 .. x2`, `y1-1 .. y2`. `None` when that is empty.
fn crop_region(b: &[f32; 4], w: u32, h: u32) -> Option<Region> {
    let x = (b[0].trunc() as i64).max(1);
    let y = (b[1].trunc() as i64).max(1);
    let ex = (b[2].trunc() as i64).min(i64::from(w));
    let ey = (b[3].trunc() as i64).min(i64::from(h));
    if ey > y - 1 && ex > x - 1 {
        Some(Region {
            x: u32::try_from(x - 1).ok()?,
            y: u32::try_from(y - 1).ok()?,
            w: u32::try_from(ex - x + 1).ok()?,
            h: u32::try_from(ey - y + 1).ok()?,
        })
    } else {
        None
    }
}

/// How two boxes' overlap is measured in [`nms`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overlap {
    /// torchvision's `nms`: intersection over union, areas `(x2-x1)·(y2-y1)`.
    Union,
    /// facenet-pytorch's `nms_numpy(..., 'Min')`: intersection over the smaller box, areas and
    /// intersections with the +1 pixel convention.
    Min,
}

/// Greedy non-maximum suppression: indices of the kept candidates, highest score first
/// (a stable sort, like torchvision's). A box is dropped when its overlap with a kept one
/// exceeds `threshold` (for [`Overlap::Min`], when it is not ≤ `threshold`, as numpy's filter).
fn nms(boxes: &[Candidate], threshold: f32, overlap: Overlap) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    // Highest score first. Ties (common: O-Net's probabilities saturate at 1.0 in f32) are
    // broken as the reference does: torchvision's stable sort keeps the lower index first;
    // facenet-pytorch's numpy NMS takes the last of an ascending argsort, the higher index
    // (exactly so for numpy's insertion sort of small arrays, which is the usual case there).
    order.sort_by(|&a, &b| {
        let by_score = boxes[b].score.total_cmp(&boxes[a].score);
        match overlap {
            Overlap::Union => by_score,
            Overlap::Min => by_score.then(b.cmp(&a)),
        }
    });
    let one = match overlap {
        Overlap::Union => 0.0,
        Overlap::Min => 1.0,
    };
    let area = |b: &[f32; 4]| (b[2] - b[0] + one) * (b[3] - b[1] + one);
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let bi = &boxes[i].bbox;
        let ai = area(bi);
        for &j in &order[pos + 1..] {
            if suppressed[j] {
                continue;
            }
            let bj = &boxes[j].bbox;
            let iw = (bi[2].min(bj[2]) - bi[0].max(bj[0]) + one).max(0.0);
            let ih = (bi[3].min(bj[3]) - bi[1].max(bj[1]) + one).max(0.0);
            let inter = iw * ih;
            let aj = area(bj);
            suppressed[j] = match overlap {
                Overlap::Union => inter / (ai + aj - inter) > threshold,
                // numpy keeps `o <= threshold`; a NaN overlap is dropped too.
                Overlap::Min => !matches!(
                    (inter / ai.min(aj)).partial_cmp(&threshold),
                    Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
                ),
            };
        }
    }
    keep
}

/// Buffers one worker reuses across calls: the net input, two ping-pong activations and the
/// im2col scratch.
#[derive(Debug, Default)]
struct Workspace {
    input: Tensor,
    a: Tensor,
    b: Tensor,
    scratch: Scratch,
}

/// R-Net and O-Net: a batch of crops in `ws.input` to one output row of `OUT` values each.
trait CropNet<const OUT: usize> {
    fn forward<'w>(&self, ws: &'w mut Workspace) -> &'w Tensor;
}

/// The two heads of a net (`[2]` classification logits, then `[4]` regression, then for O-Net
/// `[10]` landmarks) fused into one layer, so one GEMM computes them all.
fn fused_conv_head(w: &Weights<'_>, inputs: usize, names: &[(&str, usize)]) -> Result<Conv2d> {
    let mut weight = Vec::new();
    let mut bias = Vec::new();
    for (name, out) in names {
        weight.extend(w.tensor(&format!("{name}.weight"), &[*out, inputs, 1, 1])?);
        bias.extend(w.tensor(&format!("{name}.bias"), &[*out])?);
    }
    let total = names.iter().map(|(_, o)| o).sum();
    Ok(Conv2d::new(
        ConvSpec::new(inputs, total, 1),
        weight,
        Some(bias),
    ))
}

fn fused_linear_head(w: &Weights<'_>, inputs: usize, names: &[(&str, usize)]) -> Result<Linear> {
    let mut weight = Vec::new();
    let mut bias = Vec::new();
    for (name, out) in names {
        weight.extend(w.tensor(&format!("{name}.weight"), &[*out, inputs])?);
        bias.extend(w.tensor(&format!("{name}.bias"), &[*out])?);
    }
    let total = names.iter().map(|(_, o)| o).sum();
    Ok(Linear::new(inputs, total, weight, Some(bias)))
}

/// A dense layer whose input PyTorch flattened as `x.permute(0, 3, 2, 1)` (N, W, H, C): the
/// permutation is baked into the weight so our NCHW activations feed it directly.
fn load_whc_linear(w: &Weights<'_>, name: &str, chw: [usize; 3], out: usize) -> Result<Linear> {
    let [c, h, wd] = chw;
    let mut layer = Linear::load(w, name, c * h * wd, out)?;
    let mut source = vec![0; c * h * wd];
    for ci in 0..c {
        for y in 0..h {
            for x in 0..wd {
                source[(ci * h + y) * wd + x] = (x * h + y) * c + ci;
            }
        }
    }
    layer.permute_inputs(&source);
    Ok(layer)
}

fn conv(w: &Weights<'_>, name: &str, i: usize, o: usize, k: usize) -> Result<Conv2d> {
    Ok(Conv2d::load(w, name, ConvSpec::new(i, o, k))?)
}

/// P-Net: 12x12 windows, stride 2, fully convolutional.
#[derive(Debug)]
struct PNet {
    conv1: Conv2d,
    prelu1: PRelu,
    conv2: Conv2d,
    prelu2: PRelu,
    conv3: Conv2d,
    prelu3: PRelu,
    /// `conv4_1` (2 logits) and `conv4_2` (4 regressions), fused.
    head: Conv2d,
}

impl PNet {
    fn load(w: &Weights<'_>) -> Result<Self> {
        Ok(Self {
            conv1: conv(w, "pnet.conv1", 3, 10, 3)?,
            prelu1: PRelu::load(w, "pnet.prelu1", 10)?,
            conv2: conv(w, "pnet.conv2", 10, 16, 3)?,
            prelu2: PRelu::load(w, "pnet.prelu2", 16)?,
            conv3: conv(w, "pnet.conv3", 16, 32, 3)?,
            prelu3: PRelu::load(w, "pnet.prelu3", 32)?,
            head: fused_conv_head(w, 32, &[("pnet.conv4_1", 2), ("pnet.conv4_2", 4)])?,
        })
    }

    /// The face probability of a 12x12 window of black pixels.
    fn black_window_score(&self, ws: &mut Workspace) -> f32 {
        let side = PNET_CELL as usize;
        ws.input.resize([1, 3, side, side]);
        ws.input.data_mut().fill((0.0 - PIXEL_OFFSET) * PIXEL_SCALE);
        let out = self.forward(ws).data();
        face_probability(out[0], out[1])
    }

    /// `ws.input` `[1, 3, H, W]` → `[1, 6, (H-10)/2, (W-10)/2]`-ish maps: 2 logits, 4 regressions.
    fn forward<'w>(&self, ws: &'w mut Workspace) -> &'w Tensor {
        let Workspace {
            input,
            a,
            b,
            scratch,
            ..
        } = ws;
        self.conv1
            .forward_act(input, a, scratch, Activation::PRelu(&self.prelu1));
        MaxPool2d::new(2, 2).ceil().forward(a, b);
        self.conv2
            .forward_act(b, a, scratch, Activation::PRelu(&self.prelu2));
        self.conv3
            .forward_act(a, b, scratch, Activation::PRelu(&self.prelu3));
        self.head.forward(b, a, scratch);
        a
    }
}

/// R-Net: 24x24 crops.
#[derive(Debug)]
struct RNet {
    conv1: Conv2d,
    prelu1: PRelu,
    conv2: Conv2d,
    prelu2: PRelu,
    conv3: Conv2d,
    prelu3: PRelu,
    dense4: Linear,
    prelu4: PRelu,
    /// `dense5_1` (2 logits) and `dense5_2` (4 regressions), fused.
    head: Linear,
}

impl RNet {
    fn load(w: &Weights<'_>) -> Result<Self> {
        Ok(Self {
            conv1: conv(w, "rnet.conv1", 3, 28, 3)?,
            prelu1: PRelu::load(w, "rnet.prelu1", 28)?,
            conv2: conv(w, "rnet.conv2", 28, 48, 3)?,
            prelu2: PRelu::load(w, "rnet.prelu2", 48)?,
            conv3: conv(w, "rnet.conv3", 48, 64, 2)?,
            prelu3: PRelu::load(w, "rnet.prelu3", 64)?,
            dense4: load_whc_linear(w, "rnet.dense4", [64, 3, 3], 128)?,
            prelu4: PRelu::load(w, "rnet.prelu4", 128)?,
            head: fused_linear_head(w, 128, &[("rnet.dense5_1", 2), ("rnet.dense5_2", 4)])?,
        })
    }
}

impl CropNet<6> for RNet {
    /// `[N, 3, 24, 24]` → `[N, 6]`: 2 logits, 4 regressions.
    fn forward<'w>(&self, ws: &'w mut Workspace) -> &'w Tensor {
        let Workspace {
            input,
            a,
            b,
            scratch,
            ..
        } = ws;
        let pool = MaxPool2d::new(3, 2).ceil();
        self.conv1
            .forward_act(input, a, scratch, Activation::PRelu(&self.prelu1));
        pool.forward(a, b);
        self.conv2
            .forward_act(b, a, scratch, Activation::PRelu(&self.prelu2));
        pool.forward(a, b);
        self.conv3
            .forward_act(b, a, scratch, Activation::PRelu(&self.prelu3));
        self.dense4.forward(a, b);
        self.prelu4.forward_inplace(b);
        self.head.forward(b, a);
        a
    }
}

/// O-Net: 48x48 crops, landmarks.
#[derive(Debug)]
struct ONet {
    conv1: Conv2d,
    prelu1: PRelu,
    conv2: Conv2d,
    prelu2: PRelu,
    conv3: Conv2d,
    prelu3: PRelu,
    conv4: Conv2d,
    prelu4: PRelu,
    dense5: Linear,
    prelu5: PRelu,
    /// `dense6_1` (2 logits), `dense6_2` (4 regressions), `dense6_3` (10 landmarks), fused.
    head: Linear,
}

impl ONet {
    fn load(w: &Weights<'_>) -> Result<Self> {
        Ok(Self {
            conv1: conv(w, "onet.conv1", 3, 32, 3)?,
            prelu1: PRelu::load(w, "onet.prelu1", 32)?,
            conv2: conv(w, "onet.conv2", 32, 64, 3)?,
            prelu2: PRelu::load(w, "onet.prelu2", 64)?,
            conv3: conv(w, "onet.conv3", 64, 64, 3)?,
            prelu3: PRelu::load(w, "onet.prelu3", 64)?,
            conv4: conv(w, "onet.conv4", 64, 128, 2)?,
            prelu4: PRelu::load(w, "onet.prelu4", 128)?,
            dense5: load_whc_linear(w, "onet.dense5", [128, 3, 3], 256)?,
            prelu5: PRelu::load(w, "onet.prelu5", 256)?,
            head: fused_linear_head(
                w,
                256,
                &[
                    ("onet.dense6_1", 2),
                    ("onet.dense6_2", 4),
                    ("onet.dense6_3", 10),
                ],
            )?,
        })
    }
}

impl CropNet<16> for ONet {
    /// `[N, 3, 48, 48]` → `[N, 16]`: 2 logits, 4 regressions, 10 landmarks (5 x, then 5 y).
    fn forward<'w>(&self, ws: &'w mut Workspace) -> &'w Tensor {
        let Workspace {
            input,
            a,
            b,
            scratch,
            ..
        } = ws;
        let pool = MaxPool2d::new(3, 2).ceil();
        self.conv1
            .forward_act(input, a, scratch, Activation::PRelu(&self.prelu1));
        pool.forward(a, b);
        self.conv2
            .forward_act(b, a, scratch, Activation::PRelu(&self.prelu2));
        pool.forward(a, b);
        self.conv3
            .forward_act(b, a, scratch, Activation::PRelu(&self.prelu3));
        MaxPool2d::new(2, 2).ceil().forward(a, b);
        self.conv4
            .forward_act(b, a, scratch, Activation::PRelu(&self.prelu4));
        self.dense5.forward(a, b);
        self.prelu5.forward_inplace(b);
        self.head.forward(b, a);
        a
    }
}

#[cfg(test)]
mod tests {
    use image::RgbImage;

    use super::*;

    fn cand(bbox: [f32; 4], score: f32) -> Candidate {
        Candidate {
            bbox,
            score,
            reg: [0.0; 4],
            landmarks: [0.0; 10],
        }
    }

    #[test]
    fn skipping_black_bars_changes_no_detection() {
        let mut det = Mtcnn::embedded(FaceSizes::default(), &MtcnnSettings::default())
            .expect("embedded weights load");
        assert!(
            det.skip_black,
            "a black window scores below the first threshold"
        );
        // Bars above and below (a 16:9 picture in 4:3), and on all four sides at odd offsets.
        for (frame, _, _) in [
            crate::detect::letterboxed_fixture("linzaer_imgs_2.jpg", (640, 480), (640, 360)),
            crate::detect::letterboxed_fixture("linzaer_imgs_2.jpg", (501, 397), (377, 301)),
        ] {
            let skipping = det.detect(&frame);
            det.skip_black = false;
            let whole = det.detect(&frame);
            det.skip_black = true;
            assert!(whole.len() >= 2, "the photo has faces: {whole:?}");
            assert_eq!(skipping, whole);
        }
        let black = RgbImage::new(200, 100);
        assert!(det.detect(&black).is_empty());
    }

    #[test]
    fn pyramid_matches_facenet_pytorch() {
        // m = 12/20; minl = 480*m; s = m; scales = []
        // while minl >= 12: scales.append(s); s *= 0.709; minl *= 0.709
        // print(len(scales), [int(480*s+1) for s in scales])
        // -> 10 [289, 205, 145, 103, 73, 52, 37, 26, 19, 14]
        let det = Mtcnn::embedded(FaceSizes::default(), &MtcnnSettings::default())
            .expect("embedded weights load");
        let scales = det.scales(640, 480, det.min_face);
        let heights: Vec<usize> = scales.iter().map(|s| (480.0 * s + 1.0) as usize).collect();
        assert_eq!(heights, [289, 205, 145, 103, 73, 52, 37, 26, 19, 14]);
        assert!(det.scales(11, 11, det.min_face).is_empty());
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let boxes = [
            cand([0.0, 0.0, 10.0, 10.0], 0.8),
            cand([1.0, 1.0, 11.0, 11.0], 0.9),
            cand([20.0, 20.0, 30.0, 30.0], 0.7),
        ];
        assert_eq!(nms(&boxes, 0.5, Overlap::Union), vec![1, 2]);
        // IoU of the first two is 81/119 = 0.68: kept at threshold 0.7.
        assert_eq!(nms(&boxes, 0.7, Overlap::Union), vec![1, 0, 2]);
        // A small box inside a big one: IoU small, overlap-over-min 1.
        let nested = [
            cand([0.0, 0.0, 40.0, 40.0], 0.9),
            cand([5.0, 5.0, 15.0, 15.0], 0.8),
        ];
        assert_eq!(nms(&nested, 0.7, Overlap::Union), vec![0, 1]);
        assert_eq!(nms(&nested, 0.7, Overlap::Min), vec![0]);
    }

    #[test]
    fn crops_are_clipped_to_the_image_like_facenet_pytorch() {
        // pad() truncates, clips to [1, w] x [1, h]; the crop is [y-1, ey) x [x-1, ex).
        assert_eq!(
            crop_region(&[-5.7, 3.2, 20.9, 40.0], 30, 30),
            Some(Region {
                x: 0,
                y: 2,
                w: 20,
                h: 28
            })
        );
        assert_eq!(crop_region(&[40.0, 3.0, 60.0, 20.0], 30, 30), None);
        assert_eq!(crop_region(&[-20.0, 3.0, -0.5, 20.0], 30, 30), None);
    }

    #[test]
    fn square_and_regress_follow_rerec_and_bbreg() {
        assert_eq!(square([10.0, 20.0, 30.0, 60.0]), [0.0, 20.0, 40.0, 60.0]);
        assert_eq!(
            regress([10.0, 20.0, 29.0, 39.0], [0.1, -0.1, 0.0, 0.5]),
            [12.0, 18.0, 29.0, 49.0]
        );
    }
}
