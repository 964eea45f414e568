//! Viola-Jones face detection with OpenCV's Haar cascades, reproducing
//! `cv::CascadeClassifier::detectMultiScale` (OpenCV 4) window for window.
//!
//! How OpenCV does it, and so how we do it:
//! 1. **Gray**: RGB → gray with OpenCV's fixed-point weights ([`crate::imgproc::gray`]).
//! 2. **Scales**: `1, f, f², …` (f = `scaleFactor`) while the scaled 24x24 window fits the image;
//!    scales whose window is below `minSize` are skipped, the first one above `maxSize` stops
//!    the list. Each scale `s` shrinks the *image* (not the features) to
//!    `round(width / s) × round(height / s)` with bit-exact bilinear resizing
//!    ([`crate::imgproc::resize`], OpenCV's `INTER_LINEAR_EXACT`), always from the full image.
//! 3. **Integral images** of the shrunk image and of its squares (32-bit, wrapping like OpenCV).
//! 4. **Scan**: the 24x24 window moves by 2 pixels at scales below 2 and by 1 above; along a
//!    row, a window rejected by the very first stage also skips the next position.
//!    Each window is normalised by the standard deviation of its inner 22x22 area
//!    (`1 / sqrt(area · Σx² − (Σx)²)`); windows too flat for that are rejected. Then the boosted
//!    stages run in order; a window passing all of them is a raw detection of size
//!    `round(24 · s)` at `round(x · s), round(y · s)`.
//! 5. **Grouping** (`group.rs`): OpenCV's `groupRectangles(minNeighbors, eps = 0.2)`; the
//!    [`Detection::score`] is the number of raw windows merged into the box.
//!
//! Pyramid levels (and row bands of the large ones) run in parallel with rayon; per-thread
//! buffers are pooled and reused between calls, and feature offsets are compiled once per
//! integral-image layout. On CPUs with AVX2, stump cascades scan eight windows at once
//! (`lanes.rs`), with the same results.

mod cascade;
mod group;
#[cfg(target_arch = "x86_64")]
mod lanes;

use std::sync::{Arc, Mutex};

use image::GrayImage;
use rayon::prelude::*;

pub use cascade::HaarCascade;
use group::{IRect, group_rectangles};

use serde::{Deserialize, Serialize};

use super::{FaceDetector, FaceSizes};
use crate::error::{Error, Result};
use crate::imgproc::RgbView;
use crate::imgproc::gray::gray_from_rgb_into;
use crate::imgproc::resize::{ResizeScratch, resize_bilinear_with};
use crate::types::{BBox, Detection};

/// OpenCV's `GROUP_EPS`: how far apart (relative to size) raw windows may be to merge.
pub const GROUP_EPS: f64 = 0.2;

/// Rows of scan positions per parallel task in one pyramid level. Small enough that the large
/// levels split across cores, large enough that task overhead stays negligible.
const ROWS_PER_TASK: usize = 8;

/// The Haar backend's settings in a [`DetectorConfig`](super::DetectorConfig); the defaults
/// are OpenCV's `detectMultiScale` defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HaarSettings {
    /// The scale step between pyramid levels (OpenCV `scaleFactor`), in (1, 2); default 1.1.
    /// Smaller finds more faces between sizes, more slowly; larger is faster.
    pub scale_factor: f32,
    /// How many overlapping raw windows a face needs (OpenCV `minNeighbors`); default 3.
    /// Raise it for fewer false faces, lower it to find more faces.
    pub min_neighbors: u32,
}

impl Default for HaarSettings {
    fn default() -> Self {
        Self {
            scale_factor: 1.1,
            min_neighbors: 3,
        }
    }
}

impl HaarSettings {
    /// Checks every field, saying which one to change.
    pub fn validate(&self) -> Result<()> {
        if !(self.scale_factor > 1.0 && self.scale_factor < 2.0) {
            return Err(Error::config(format!(
                "haar_scale_factor is {}, it must be in (1, 2); 1.1 is OpenCV's default",
                self.scale_factor
            )));
        }
        Ok(())
    }
}

/// Detection parameters, named as in OpenCV's `detectMultiScale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HaarParams {
    /// Scale step between pyramid levels (`scaleFactor`), > 1. Smaller finds more, slower.
    pub scale_factor: f64,
    /// Raw windows a face needs beyond itself to be kept (`minNeighbors`); 0 keeps every raw
    /// window ungrouped.
    pub min_neighbors: u32,
    /// Smallest face side searched, in pixels (`minSize`).
    pub min_size: u32,
    /// Largest face side searched, in pixels (`maxSize`; `None`: the image size).
    pub max_size: Option<u32>,
}

impl HaarParams {
    /// The parameters for faces of `sizes` found with `settings`.
    pub fn new(sizes: FaceSizes, settings: &HaarSettings) -> Self {
        Self {
            scale_factor: f32_as_decimal_f64(settings.scale_factor),
            min_neighbors: settings.min_neighbors,
            min_size: sizes.min,
            max_size: sizes.max,
        }
    }
}

/// The `f64` nearest to the decimal an `f32` was written as (1.1f32 → 1.1, not
/// 1.100000023841858). OpenCV's Python and C++ callers pass `scaleFactor` as a double, and the
/// pyramid multiplies it up to 40 times, so the difference would move scale boundaries.
fn f32_as_decimal_f64(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// OpenCV's `cvRound`: round half to even.
fn round_f32(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// Viola-Jones face detector on an OpenCV Haar cascade.
#[derive(Debug)]
pub struct HaarDetector {
    cascade: HaarCascade,
    params: HaarParams,
    /// Feature offsets compiled for the layouts of the last integral-image stride used.
    compiled: Mutex<Vec<Arc<Compiled>>>,
    /// Per-thread buffers, reused between levels and calls.
    pool: Mutex<Vec<Workspace>>,
    /// Gray frames for [`FaceDetector::detect`], reused between calls.
    frames: Mutex<Vec<Vec<u8>>>,
}

impl HaarDetector {
    /// OpenCV's `haarcascade_frontalface_default.xml` (embedded), searching faces of `sizes`
    /// with `settings` (both validated here).
    pub fn frontal_face(sizes: FaceSizes, settings: &HaarSettings) -> Result<Self> {
        sizes.validate()?;
        settings.validate()?;
        Self::new(
            HaarCascade::frontal_face_default()?,
            HaarParams::new(sizes, settings),
        )
    }

    /// A detector on any supported cascade (see [`HaarCascade::from_path`]).
    pub fn new(cascade: HaarCascade, params: HaarParams) -> Result<Self> {
        if !(params.scale_factor > 1.0 && params.scale_factor.is_finite()) {
            return Err(Error::config(format!(
                "haar scale factor is {}, it must be greater than 1; 1.1 is OpenCV's default",
                params.scale_factor
            )));
        }
        if let Some(max) = params.max_size
            && max < params.min_size
        {
            return Err(Error::config(format!(
                "max face size ({max}) is smaller than the min face size ({})",
                params.min_size
            )));
        }
        Ok(Self {
            cascade,
            params,
            compiled: Mutex::new(Vec::new()),
            pool: Mutex::new(Vec::new()),
            frames: Mutex::new(Vec::new()),
        })
    }

    /// The cascade in use.
    pub fn cascade(&self) -> &HaarCascade {
        &self.cascade
    }

    /// The detection parameters in use.
    pub fn params(&self) -> &HaarParams {
        &self.params
    }

    /// Finds faces in a gray image (the detector's own input; [`FaceDetector::detect`] converts
    /// RGB to gray first). Boxes are clipped to the image.
    pub fn detect_gray(&self, gray: &GrayImage) -> Vec<Detection> {
        self.detect_gray_sized(gray, self.sizes())
    }

    /// [`HaarDetector::detect_gray`] for faces whose side lies in `sizes`.
    pub fn detect_gray_sized(&self, gray: &GrayImage, sizes: FaceSizes) -> Vec<Detection> {
        let (w, h) = (gray.width() as usize, gray.height() as usize);
        let raw = self.raw_windows(gray.as_raw(), w, h, sizes);
        group_rectangles(&raw, self.params.min_neighbors, GROUP_EPS)
            .into_iter()
            .filter_map(|(r, n)| clip(r, w, h).map(|r| (r, n)))
            .map(|(r, n)| Detection {
                bbox: BBox {
                    x: r.x as f32,
                    y: r.y as f32,
                    w: r.w as f32,
                    h: r.h as f32,
                },
                score: n as f32,
                landmarks: None,
            })
            .collect()
    }

    /// The pyramid levels OpenCV would scan for an image of this size.
    fn pyramid(&self, img_w: usize, img_h: usize, sizes: FaceSizes) -> Vec<Level> {
        let (ww, wh) = (
            self.cascade.window_w as usize,
            self.cascade.window_h as usize,
        );
        if img_w < ww || img_h < wh {
            return Vec::new();
        }
        let (max_w, max_h) = match sizes.max {
            Some(m) if m > 0 => (m as usize, m as usize),
            _ => (img_w, img_h),
        };
        let min = sizes.min as usize;
        // Every scale whose window fits the image (the factor accumulates in f64; each scale is
        // then stored as f32, as OpenCV does).
        let mut all = Vec::new();
        let mut factor = 1.0f64;
        loop {
            let win_w = (ww as f64 * factor).round_ties_even() as usize;
            let win_h = (wh as f64 * factor).round_ties_even() as usize;
            if win_w > img_w || win_h > img_h {
                break;
            }
            all.push(factor as f32);
            factor *= self.params.scale_factor;
        }
        let window_at = |s: f32| {
            (
                round_f32(ww as f32 * s) as usize,
                round_f32(wh as f32 * s) as usize,
            )
        };
        let mut scales = Vec::new();
        for &s in &all {
            let (win_w, win_h) = window_at(s);
            if win_w > max_w || win_h > max_h {
                break;
            }
            if win_w < min || win_h < min {
                continue;
            }
            scales.push(s);
        }
        // No scale in [min, max] (say min = max between two scales): OpenCV falls back to the
        // scale whose window is closest to min_size.
        if scales.is_empty()
            && let Some(&best) = all.iter().min_by(|&&a, &&b| {
                let d = |s: f32| {
                    let (w, h) = window_at(s);
                    let (dw, dh) = (min as f64 - w as f64, min as f64 - h as f64);
                    dw * dw + dh * dh
                };
                d(a).total_cmp(&d(b))
            })
        {
            scales.push(best);
        }
        scales
            .into_iter()
            .map(|s| {
                let (win_w, win_h) = window_at(s);
                Level {
                    scale: s,
                    w: round_f32(img_w as f32 / s).max(0) as usize,
                    h: round_f32(img_h as f32 / s).max(0) as usize,
                    step: if s >= 2.0 { 1 } else { 2 },
                    win_w: win_w as i32,
                    win_h: win_h as i32,
                }
            })
            .collect()
    }

    /// The raw windows (before grouping) of a gray image, like OpenCV's
    /// `detectMultiScaleNoGrouping`.
    fn raw_windows(&self, gray: &[u8], w: usize, h: usize, sizes: FaceSizes) -> Vec<IRect> {
        let levels = self.pyramid(w, h, sizes);
        let Some(first) = levels.first() else {
            return Vec::new();
        };
        // One stride for every level (the widest level's), so feature offsets are shared.
        let stride = first.w.max(w) + 1;
        let lanes = lane_unit();
        let per_level: Vec<Vec<IRect>> = levels
            .par_iter()
            .map(|level| self.scan_level(gray, (w, h), level, stride, lanes))
            .collect();
        per_level.concat()
    }

    /// The cascade compiled for `layout` (cached: a call uses at most two layouts).
    fn compiled_for(&self, layout: Layout) -> Arc<Compiled> {
        let mut cache = lock(&self.compiled);
        if let Some(c) = cache.iter().find(|c| c.layout == layout) {
            return Arc::clone(c);
        }
        cache.retain(|c| c.layout.stride == layout.stride);
        let c = Arc::new(Compiled::new(&self.cascade, layout));
        cache.push(Arc::clone(&c));
        c
    }

    fn take_workspace(&self) -> Workspace {
        lock(&self.pool).pop().unwrap_or_default()
    }

    fn return_workspace(&self, ws: Workspace) {
        lock(&self.pool).push(ws);
    }

    /// Shrinks the image to one level, integrates it and scans every window position, with
    /// OpenCV's skip after a first-stage rejection: eight windows at a time with `lanes` (stump
    /// cascades), else one by one.
    ///
    /// At step 2 the eight lanes hold every other window: the integral images are laid out
    /// with each row's even columns first and its odd columns after them ([`Layout::paired`]),
    /// so windows `x, x + 2, …` read consecutive entries at every corner.
    fn scan_level(
        &self,
        gray: &[u8],
        (w, h): (usize, usize),
        level: &Level,
        stride: usize,
        lanes: Lanes,
    ) -> Vec<IRect> {
        let (ww, wh) = (
            self.cascade.window_w as usize,
            self.cascade.window_h as usize,
        );
        // OpenCV's working size: positions x with x + window < width + 1.
        let cols = (level.w + 1).saturating_sub(ww);
        let rows = (level.h + 1).saturating_sub(wh);
        if cols == 0 || rows == 0 || level.w == 0 || level.h == 0 {
            return Vec::new();
        }
        let lanes = lanes.filter(|_| self.cascade.is_stump_based());
        let layout = if lanes.is_some() && level.step == 2 {
            Layout::paired(stride)
        } else {
            Layout::plain(stride)
        };
        let c = self.compiled_for(layout);
        // Room after the last row for the fixed-size views and the lanes' reads past it.
        let padding = VIEW_LEN.max(c.span + LANE_OVERREAD);
        let mut ws = self.take_workspace();
        let Workspace {
            img,
            sum,
            sqsum,
            resize,
        } = &mut ws;
        let pixels: &[u8] = if level.w == w && level.h == h {
            gray
        } else {
            img.clear();
            img.resize(level.w * level.h, 0);
            resize_bilinear_with(gray, w, h, img, level.w, level.h, resize);
            img
        };
        integral(pixels, (level.w, level.h), layout, padding, sum, sqsum);

        let ys: Vec<usize> = (0..rows).step_by(level.step).collect();
        let integrals = (&sum[..], &sqsum[..]);
        let row_len = layout.row_len();
        let found: Vec<Vec<IRect>> = ys
            .par_chunks(ROWS_PER_TASK)
            .map(|band| {
                let mut out = Vec::new();
                for &y in band {
                    let mut hit = |x: usize| {
                        out.push(IRect {
                            x: round_f32(x as f32 * level.scale),
                            y: round_f32(y as f32 * level.scale),
                            w: level.win_w,
                            h: level.win_h,
                        })
                    };
                    let row = y * row_len;
                    #[cfg(target_arch = "x86_64")]
                    if let Some(simd) = lanes {
                        // Window k is x = k · step: at step 2 the paired layout puts every
                        // other window side by side, so OpenCV's step is a step of 1 over k.
                        let positions = cols.div_ceil(level.step);
                        lanes::scan_row(simd, &c, &self.cascade, integrals, row, positions, |k| {
                            hit(k * level.step)
                        });
                        continue;
                    }
                    self.scan_row_scalar(&c, integrals, row, cols, level.step, &mut hit);
                }
                out
            })
            .collect();
        self.return_workspace(ws);
        found.concat()
    }

    /// Scans one row of window positions one at a time, with OpenCV's skip after a
    /// first-stage rejection.
    fn scan_row_scalar(
        &self,
        c: &Compiled,
        (sum, sqsum): (&[i32], &[u32]),
        row: usize,
        cols: usize,
        step: usize,
        mut hit: impl FnMut(usize),
    ) {
        let mut x = 0;
        while x < cols {
            let result = c.eval_at(&self.cascade, sum, sqsum, row + x);
            if result > 0 {
                hit(x);
            } else if result == 0 {
                x += step;
            }
            x += step;
        }
    }
}

impl FaceDetector for HaarDetector {
    fn sizes(&self) -> FaceSizes {
        FaceSizes {
            min: self.params.min_size,
            max: self.params.max_size,
        }
    }

    fn detect_sized(&self, image: &RgbView<'_>, sizes: FaceSizes) -> Vec<Detection> {
        // Reuse a pooled buffer for the gray frame (video calls this once per frame).
        let mut buf = lock(&self.frames).pop().unwrap_or_default();
        gray_from_rgb_into(image, &mut buf);
        match GrayImage::from_raw(image.width(), image.height(), buf) {
            Some(gray) => {
                let faces = self.detect_gray_sized(&gray, sizes);
                lock(&self.frames).push(gray.into_raw());
                faces
            }
            None => Vec::new(),
        }
    }
}

/// Locks a buffer pool. A panic elsewhere cannot leave a pool inconsistent (it only holds
/// spare buffers), so a poisoned lock is used as is.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Intersects a box with the image; `None` when nothing is left (OpenCV's `clipObjects`).
fn clip(r: IRect, w: usize, h: usize) -> Option<IRect> {
    let x0 = r.x.max(0);
    let y0 = r.y.max(0);
    let x1 = (r.x + r.w).min(w as i32);
    let y1 = (r.y + r.h).min(h as i32);
    (x1 > x0 && y1 > y0).then_some(IRect {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
    })
}

/// The vector unit [`lanes`] runs on, when this CPU has one.
#[cfg(target_arch = "x86_64")]
type Lanes = Option<pulp::x86::V3>;
#[cfg(not(target_arch = "x86_64"))]
type Lanes = Option<std::convert::Infallible>;

/// Integral-image entries past a row's last window that the lanes read.
#[cfg(target_arch = "x86_64")]
const LANE_OVERREAD: usize = lanes::OVERREAD;
#[cfg(not(target_arch = "x86_64"))]
const LANE_OVERREAD: usize = 0;

/// AVX2 (and FMA) when the CPU has them.
fn lane_unit() -> Lanes {
    #[cfg(target_arch = "x86_64")]
    return pulp::x86::V3::try_new();
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Where integral-image entry `(x, y)` lives: `y · row_len + col(x)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// Entries per row (at least the widest level's width + 1).
    stride: usize,
    /// Each row's even columns first, then its odd ones, so that every other entry of a row
    /// is contiguous.
    paired: bool,
}

impl Layout {
    fn plain(stride: usize) -> Self {
        Self {
            stride,
            paired: false,
        }
    }

    fn paired(stride: usize) -> Self {
        Self {
            stride,
            paired: true,
        }
    }

    /// Entries per row in memory.
    fn row_len(self) -> usize {
        if self.paired {
            self.stride.div_ceil(2) * 2
        } else {
            self.stride
        }
    }

    /// Where column `x` lives within its row.
    #[inline(always)]
    fn col(self, x: usize) -> usize {
        if self.paired {
            (x & 1) * self.stride.div_ceil(2) + x / 2
        } else {
            x
        }
    }

    /// The offset of entry `(x, y)` from entry `(0, 0)`. In the paired layout this holds from
    /// any even column, where that layout's windows are placed.
    fn offset(self, x: u32, y: u32) -> u32 {
        // Offsets stay within one window (< 2^32 for any image `image` can hold in memory).
        y * self.row_len() as u32 + self.col(x as usize) as u32
    }
}

/// One pyramid level.
#[derive(Debug, Clone, Copy)]
struct Level {
    /// The scale (image shrink factor), as f32 like OpenCV stores it.
    scale: f32,
    /// Size of the shrunk image.
    w: usize,
    h: usize,
    /// Window step in shrunk pixels (2 below scale 2, else 1).
    step: usize,
    /// Window size in original pixels.
    win_w: i32,
    win_h: i32,
}

/// Buffers one thread needs for one level; pooled so repeated calls do not allocate.
#[derive(Debug, Default)]
struct Workspace {
    /// The shrunk image of one level.
    img: Vec<u8>,
    sum: Vec<i32>,
    sqsum: Vec<u32>,
    resize: ResizeScratch,
}

/// Integral images of `img` and of its squares, `(h + 1)` rows laid out by `layout` (stride
/// `≥ w + 1`) with a zero first row and column, followed by `padding` spare entries (so that
/// fixed-size window views never run off the end). Both wrap at 32 bits like OpenCV's `CV_32S`
/// integrals; a window's sum is still exact because it is far below 2³¹. Entries right of
/// column `w` are left as they were: no window reads them.
fn integral(
    img: &[u8],
    (w, h): (usize, usize),
    layout: Layout,
    padding: usize,
    sum: &mut Vec<i32>,
    sq: &mut Vec<u32>,
) {
    let row_len = layout.row_len();
    let len = (h + 1) * row_len + padding;
    // Grow without clearing what is overwritten anyway; only the first row and column must be 0.
    if sum.len() < len {
        sum.resize(len, 0);
    }
    if sq.len() < len {
        sq.resize(len, 0);
    }
    sum[..row_len].fill(0);
    sq[..row_len].fill(0);
    for (y, src) in img.chunks_exact(w).take(h).enumerate() {
        let (prev_s, cur_s) = sum[y * row_len..(y + 2) * row_len].split_at_mut(row_len);
        let (prev_q, cur_q) = sq[y * row_len..(y + 2) * row_len].split_at_mut(row_len);
        cur_s[0] = 0;
        cur_q[0] = 0;
        let mut run_s = 0i32;
        let mut run_q = 0u32;
        for (x, &v) in src.iter().enumerate() {
            let i = layout.col(x + 1);
            let v = u32::from(v);
            run_s = run_s.wrapping_add(v as i32);
            run_q = run_q.wrapping_add(v * v);
            cur_s[i] = prev_s[i].wrapping_add(run_s);
            cur_q[i] = prev_q[i].wrapping_add(run_q);
        }
    }
}

/// Entries in a fixed-size window view of an integral image: a power of two, so that masking an
/// offset proves it in bounds and the compiler drops the bounds check on every read (the inner
/// loop reads ~10 entries per weak classifier). Offsets fit it while
/// `window height · stride + window width < 2^16`, i.e. images up to ~2700 pixels wide for the
/// 24x24 cascade; wider ones use plain (checked) slices.
const VIEW_LEN: usize = 1 << 16;

/// Read access to an integral image from a window's top-left entry.
trait IntegralView: Copy {
    fn at(self, offset: u32) -> i32;
}

impl IntegralView for &[i32; VIEW_LEN] {
    #[inline(always)]
    fn at(self, offset: u32) -> i32 {
        // Offsets are < VIEW_LEN when this view is used, so the mask never changes them.
        self[offset as usize & (VIEW_LEN - 1)]
    }
}

impl IntegralView for &[i32] {
    #[inline(always)]
    fn at(self, offset: u32) -> i32 {
        self[offset as usize]
    }
}

/// Offsets of a rectangle's four integral-image corners, relative to the window's top-left.
type Corners = [u32; 4];

/// A rectangle sum from its corners (OpenCV's `CALC_SUM_OFS`), wrapping like OpenCV.
#[inline(always)]
fn rect_sum<V: IntegralView>(win: V, o: &Corners) -> i32 {
    win.at(o[0])
        .wrapping_sub(win.at(o[1]))
        .wrapping_sub(win.at(o[2]))
        .wrapping_add(win.at(o[3]))
}

/// A Haar feature with its corner offsets for one layout.
#[derive(Debug, Clone, Copy)]
struct CompiledFeature {
    corners: [Corners; 3],
    weights: [f32; 3],
}

impl CompiledFeature {
    /// The raw feature value (before variance normalisation), in OpenCV's order of operations.
    #[inline(always)]
    fn value<V: IntegralView>(&self, win: V) -> f32 {
        let mut v = self.weights[0] * rect_sum(win, &self.corners[0]) as f32
            + self.weights[1] * rect_sum(win, &self.corners[1]) as f32;
        if self.weights[2] != 0.0 {
            v += self.weights[2] * rect_sum(win, &self.corners[2]) as f32;
        }
        v
    }
}

/// A stump (one-split weak classifier) with its feature inlined, for the fast path.
#[derive(Debug, Clone, Copy)]
struct CompiledStump {
    feature: CompiledFeature,
    threshold: f32,
    /// The two leaf values, widened once here (exactly) instead of per window: OpenCV adds the
    /// `f32` leaves into an `f64` stage sum.
    leaves: [f64; 2],
}

/// The cascade's features turned into integral-image offsets for one layout.
#[derive(Debug)]
struct Compiled {
    layout: Layout,
    /// Corners of the inner (variance) rectangle and its area.
    norm: Corners,
    norm_area: f64,
    /// Offsets span `0..span` from the window's top-left.
    span: usize,
    /// Stump cascades: every weak classifier in evaluation order.
    stumps: Vec<CompiledStump>,
    /// Tree cascades: features by index.
    features: Vec<CompiledFeature>,
}

/// The corner offsets of the rectangle `(x, y, w, h)` of a window.
fn corners(x: u32, y: u32, w: u32, h: u32, layout: Layout) -> Corners {
    [
        layout.offset(x, y),
        layout.offset(x + w, y),
        layout.offset(x, y + h),
        layout.offset(x + w, y + h),
    ]
}

impl Compiled {
    fn new(cascade: &HaarCascade, layout: Layout) -> Self {
        let (ww, wh) = (cascade.window_w, cascade.window_h);
        let features: Vec<CompiledFeature> = cascade
            .features
            .iter()
            .map(|f| CompiledFeature {
                corners: f.rects.map(|r| corners(r.x, r.y, r.w, r.h, layout)),
                weights: f.rects.map(|r| r.weight),
            })
            .collect();
        let stumps = if cascade.is_stump_based() {
            cascade
                .trees
                .iter()
                .map(|t| {
                    let node = cascade.nodes[t.first_node];
                    CompiledStump {
                        feature: features[node.feature],
                        threshold: node.threshold,
                        leaves: [
                            f64::from(cascade.leaves[t.first_leaf]),
                            f64::from(cascade.leaves[t.first_leaf + 1]),
                        ],
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        // The farthest entry a window reads is in its last row, at most `ww` columns right.
        let span = (0..=ww).map(|x| layout.offset(x, wh)).max().unwrap_or(0) as usize + 1;
        Self {
            layout,
            norm: corners(1, 1, ww.saturating_sub(2), wh.saturating_sub(2), layout),
            norm_area: f64::from(ww.saturating_sub(2) * wh.saturating_sub(2)),
            span,
            stumps,
            features,
        }
    }

    /// The weak classifiers of one stage of a stump cascade.
    fn stage_stumps(&self, stage: &cascade::Stage) -> &[CompiledStump] {
        &self.stumps[stage.first_tree..stage.first_tree + stage.tree_count]
    }

    /// Whether the bounds-check-free [`VIEW_LEN`] view covers every offset.
    fn fits_view(&self) -> bool {
        self.span <= VIEW_LEN
    }

    /// Runs the cascade on the window whose top-left integral entry is `base`. Returns 1 when
    /// every stage passes, `-k` when stage `k` rejects (so 0 for the first stage), and -1 when
    /// the window is too flat to normalise — OpenCV's `runAt` codes.
    #[inline(always)]
    fn eval<V: IntegralView>(&self, cascade: &HaarCascade, win: V, sq: &[u32]) -> i32 {
        match self.inv_norm(win, sq) {
            Some(inv_norm) => self.stages(cascade, win, inv_norm),
            None => -1,
        }
    }

    /// 1 / the window's standard deviation (times the inner area), or `None` when the window is
    /// too flat to normalise.
    #[inline(always)]
    fn inv_norm<V: IntegralView>(&self, win: V, sq: &[u32]) -> Option<f32> {
        let n = &self.norm;
        let valsum = rect_sum(win, n);
        let valsq = sq[n[0] as usize]
            .wrapping_sub(sq[n[1] as usize])
            .wrapping_sub(sq[n[2] as usize])
            .wrapping_add(sq[n[3] as usize]);
        let nf = self.norm_area * f64::from(valsq) - f64::from(valsum) * f64::from(valsum);
        // (Neither value can be NaN: the sums are finite integers.)
        if nf <= 0.0 {
            return None;
        }
        let inv_norm = (1.0 / nf.sqrt()) as f32;
        (self.norm_area * f64::from(inv_norm) < 0.1).then_some(inv_norm)
    }

    /// Runs the stages on a normalised window: [`Compiled::eval`]'s codes.
    #[inline(always)]
    fn stages<V: IntegralView>(&self, cascade: &HaarCascade, win: V, inv_norm: f32) -> i32 {
        let stages = cascade.stages.iter().enumerate();
        if !self.stumps.is_empty() {
            for (si, stage) in stages {
                let mut total = 0.0f64;
                for s in self.stage_stumps(stage) {
                    let v = s.feature.value(win) * inv_norm;
                    // OpenCV: `v < threshold ? left : right` (v is never NaN: finite sums
                    // times a finite factor).
                    total += s.leaves[usize::from(v >= s.threshold)];
                }
                if total < f64::from(stage.threshold) {
                    return -(si as i32);
                }
            }
        } else {
            for (si, stage) in stages {
                let mut total = 0.0f64;
                for t in &cascade.trees[stage.first_tree..stage.first_tree + stage.tree_count] {
                    let nodes = &cascade.nodes[t.first_node..t.first_node + t.node_count];
                    let mut idx = 0i32;
                    loop {
                        let node = &nodes[idx as usize];
                        let v = self.features[node.feature].value(win) * inv_norm;
                        idx = if v < node.threshold {
                            node.left
                        } else {
                            node.right
                        };
                        if idx <= 0 {
                            break;
                        }
                    }
                    total += f64::from(cascade.leaves[t.first_leaf + (-idx) as usize]);
                }
                if total < f64::from(stage.threshold) {
                    return -(si as i32);
                }
            }
        }
        1
    }

    /// [`Compiled::eval`] at integral entry `base`, through the fastest view that fits.
    #[inline(always)]
    fn eval_at(&self, cascade: &HaarCascade, sum: &[i32], sqsum: &[u32], base: usize) -> i32 {
        let sq = &sqsum[base..base + self.span];
        match self.view_at(sum, base) {
            Some(view) => self.eval(cascade, view, sq),
            None => self.eval(cascade, &sum[base..base + self.span], sq),
        }
    }

    /// The bounds-check-free view from `base`, when it covers the window and fits the image.
    #[inline(always)]
    fn view_at<'a>(&self, sum: &'a [i32], base: usize) -> Option<&'a [i32; VIEW_LEN]> {
        if !self.fits_view() {
            return None;
        }
        sum.get(base..base + VIEW_LEN)
            .and_then(|s| <&[i32; VIEW_LEN]>::try_from(s).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imgproc::resize::resize_gray;

    fn detector(min_neighbors: u32) -> HaarDetector {
        let settings = HaarSettings {
            min_neighbors,
            ..HaarSettings::default()
        };
        match HaarDetector::frontal_face(FaceSizes::default(), &settings) {
            Ok(d) => d,
            Err(e) => panic!("embedded cascade must load: {e}"),
        }
    }

    #[test]
    fn integral_of_a_small_image() {
        let img = [1u8, 2, 3, 4, 5, 6];
        let (mut s, mut q) = (Vec::new(), Vec::new());
        integral(&img, (3, 2), Layout::plain(5), 0, &mut s, &mut q);
        assert_eq!(&s[..14], &[0, 0, 0, 0, 0, 0, 1, 3, 6, 0, 0, 5, 12, 21]);
        assert_eq!(q[13], 1 + 4 + 9 + 16 + 25 + 36);
        // Paired: each row's even columns (0, 2, 4), then its odd ones (1, 3, 5).
        let paired = Layout::paired(5);
        let (mut s, mut q) = (Vec::new(), Vec::new());
        integral(&img, (3, 2), paired, 0, &mut s, &mut q);
        assert_eq!(&s[6..12], &[0, 3, 0, 1, 6, 0]);
        assert_eq!(&s[12..17], &[0, 12, 0, 5, 21]);
        assert_eq!(paired.offset(3, 2) as usize, 12 + 3 + 1);
    }

    #[test]
    fn pyramid_follows_opencv_scale_rules() {
        let d = detector(3);
        let levels = d.pyramid(100, 80, d.sizes());
        // 24 · 1.1^k ≤ 80: k = 0..=12 (24 · 1.1^12 = 75.3); min size 20 keeps all.
        assert_eq!(levels.len(), 13);
        assert_eq!((levels[0].w, levels[0].h, levels[0].step), (100, 80, 2));
        let last = levels[levels.len() - 1];
        assert_eq!((last.win_w, last.w, last.h, last.step), (75, 32, 25, 1));
        assert!(d.pyramid(23, 100, d.sizes()).is_empty());
    }

    #[test]
    fn min_size_above_every_window_falls_back_to_the_closest_scale() {
        let sizes = FaceSizes {
            min: 90,
            max: Some(90),
        };
        let d =
            HaarDetector::frontal_face(sizes, &HaarSettings::default()).map_err(|e| e.to_string());
        let levels = d.map(|d| d.pyramid(100, 80, d.sizes())).unwrap_or_default();
        assert_eq!(levels.len(), 1);
        assert_eq!(levels[0].win_w, 75);
    }

    #[test]
    fn decimal_scale_factor_is_recovered() {
        assert_eq!(f32_as_decimal_f64(1.1), 1.1f64);
        assert_eq!(f32_as_decimal_f64(1.05), 1.05f64);
    }

    /// The AVX2 unit and a repository photo in gray at `w x h`; `None` (the test is skipped)
    /// on a CPU without AVX2, where only the scalar scan runs.
    fn lanes_and_photo(name: &str, (w, h): (u32, u32)) -> Option<(Lanes, GrayImage)> {
        let Some(lanes) = lane_unit() else {
            eprintln!("SKIPPED: this CPU has no AVX2, so only the scalar scan runs");
            return None;
        };
        let photo = crate::detect::fixture_photo(name).to_luma8();
        Some((Some(lanes), resize_gray(&photo, w, h)))
    }

    /// Scans `levels` of `gray` with `lanes` and one window at a time, asserts that they find
    /// the same raw windows, and returns how many there are.
    fn assert_scans_agree(
        d: &HaarDetector,
        gray: &GrayImage,
        levels: &[Level],
        lanes: Lanes,
    ) -> usize {
        let (w, h) = (gray.width() as usize, gray.height() as usize);
        let mut windows = 0;
        for level in levels {
            let vector = d.scan_level(gray.as_raw(), (w, h), level, w + 1, lanes);
            let scalar = d.scan_level(gray.as_raw(), (w, h), level, w + 1, None);
            assert_eq!(vector, scalar, "level {level:?}");
            windows += vector.len();
        }
        windows
    }

    /// Every raw window of every level of a real photo, eight lanes at a time (plain layout at
    /// step 1, paired at step 2) and one by one.
    #[test]
    fn lane_scan_equals_the_scalar_scan() {
        let Some((lanes, gray)) = lanes_and_photo("linzaer_imgs_2.jpg", (480, 360)) else {
            return;
        };
        let d = detector(0);
        let levels = d.pyramid(480, 360, d.sizes());
        let windows = assert_scans_agree(&d, &gray, &levels, lanes);
        // The photo has faces, so the comparison covered windows passing the whole cascade,
        // on levels of both steps.
        assert!(windows > 20, "{windows} raw windows");
        assert!(levels.iter().any(|l| l.step == 1) && levels.iter().any(|l| l.step == 2));
    }

    /// A photo with black bars above and below, as the video decoder pads 16:9 frames into
    /// 4:3: whole groups of flat windows skip the stages, and the scans still agree.
    #[test]
    fn letterboxed_photo_scans_the_same_both_ways() {
        let Some((lanes, photo)) = lanes_and_photo("linzaer_imgs_2.jpg", (480, 270)) else {
            return;
        };
        let mut gray = GrayImage::new(480, 360);
        image::imageops::replace(&mut gray, &photo, 0, 45);
        let d = detector(0);
        let levels = d.pyramid(480, 360, d.sizes());
        let windows = assert_scans_agree(&d, &gray, &levels, lanes);
        assert!(windows > 20, "{windows} raw windows");
    }

    /// A frame so wide that a window's offsets outgrow the fixed-size view: both scans fall
    /// back to checked slices and still agree.
    #[test]
    fn wide_frame_beyond_the_fixed_view_scans_the_same_both_ways() {
        let Some((lanes, gray)) = lanes_and_photo("ageitgey_kit_with_rose.jpg", (3000, 80)) else {
            return;
        };
        let d = detector(0);
        assert!(!d.compiled_for(Layout::plain(3001)).fits_view());
        let levels = d.pyramid(3000, 80, d.sizes());
        assert_scans_agree(&d, &gray, &levels[..2], lanes);
    }

    #[test]
    fn flat_image_has_no_faces() {
        let d = detector(3);
        let gray = GrayImage::from_pixel(64, 48, image::Luma([128]));
        assert!(d.detect_gray(&gray).is_empty());
    }
}
