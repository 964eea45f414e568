//! From YuNet's head maps to faces: the grid decoding and non-maximum suppression.

use emotrack_nn::Tensor;

use super::net::{BOX, LANDMARKS, STRIDES};
use crate::types::{BBox, Detection, Landmarks};

/// The faces scoring at least `threshold` in the three levels' head maps, in network pixels, in
/// the order NMS breaks ties by: level (stride 8, 16, 32), then cell, row by row.
///
/// Per cell `(r, c)` of the level with stride `s` (the prior is the cell's top-left corner,
/// `(c·s, r·s)`, not its centre):
/// * score `sqrt(sigmoid(cls) · sigmoid(obj))`;
/// * box centre `((c + box₀)·s, (r + box₁)·s)`, size `(exp(box₂)·s, exp(box₃)·s)`;
/// * landmark `n`: `((kps₂ₙ + c)·s, (kps₂ₙ₊₁ + r)·s)`, not scaled by the box.
pub(super) fn decode(heads: &[Tensor; 3], threshold: f32) -> Vec<Detection> {
    let mut faces = Vec::new();
    for (map, s) in heads.iter().zip(STRIDES) {
        let (cols, s) = (map.w(), s as f32);
        let channel = |ch: usize| map.plane(0, ch);
        let (cls, obj) = (channel(0), channel(1));
        for (i, (&cls, &obj)) in cls.iter().zip(obj).enumerate() {
            let score = (sigmoid(cls) * sigmoid(obj)).sqrt();
            if !(score >= threshold) {
                continue;
            }
            let (r, c) = ((i / cols) as f32, (i % cols) as f32);
            let at = |ch: usize| channel(ch)[i];
            let (cx, cy) = ((c + at(BOX)) * s, (r + at(BOX + 1)) * s);
            let (w, h) = (at(BOX + 2).exp() * s, at(BOX + 3).exp() * s);
            let landmarks = std::array::from_fn(|n| {
                [
                    (at(LANDMARKS + 2 * n) + c) * s,
                    (at(LANDMARKS + 2 * n + 1) + r) * s,
                ]
            });
            faces.push(Detection {
                bbox: BBox {
                    x: cx - w / 2.0,
                    y: cy - h / 2.0,
                    w,
                    h,
                },
                score,
                landmarks: Some(Landmarks(landmarks)),
            });
        }
    }
    faces
}

/// The logistic function, as the exported network's `Sigmoid`.
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Greedy non-maximum suppression: the `top_k` best faces (a stable sort, highest score first)
/// are visited in order, and each is kept unless it overlaps one already kept by more than
/// `iou` (intersection over union of the float boxes, as libfacedetection and OpenCV's
/// `NMSBoxes` measure it).
pub(super) fn nms(mut faces: Vec<Detection>, iou: f32, top_k: usize) -> Vec<Detection> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    faces.truncate(top_k);
    let mut kept: Vec<Detection> = Vec::with_capacity(faces.len().min(64));
    for face in faces {
        if kept.iter().all(|k| k.bbox.iou(&face.bbox) <= iou) {
            kept.push(face);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::yunet::net::HEAD_CHANNELS;

    fn face(x: f32, score: f32) -> Detection {
        Detection {
            bbox: BBox {
                x,
                y: 0.0,
                w: 10.0,
                h: 10.0,
            },
            score,
            landmarks: None,
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_faces_and_the_first_of_ties() {
        // The face at 5 overlaps the best one (at 0) with IoU 1/3 > 0.3: dropped. The two at
        // 20 are one face (IoU 1): the first is kept.
        let faces = vec![
            face(5.0, 0.8),
            face(0.0, 0.9),
            face(20.0, 0.7),
            face(20.0, 0.7),
        ];
        let kept = nms(faces, 0.3, 100);
        let xs: Vec<f32> = kept.iter().map(|d| d.bbox.x).collect();
        assert_eq!(xs, [0.0, 20.0]);
        // With a looser overlap both near faces stay; top_k cuts before NMS.
        let faces = vec![face(5.0, 0.8), face(0.0, 0.9), face(20.0, 0.7)];
        assert_eq!(nms(faces.clone(), 0.5, 100).len(), 3);
        assert_eq!(nms(faces, 0.5, 2).len(), 2);
    }

    #[test]
    fn a_cell_decodes_from_its_top_left_corner() {
        // Level 1 (stride 16), 2 x 3 cells; cell (1, 2) is a sure face.
        let mut heads: [Tensor; 3] = Default::default();
        for (map, side) in heads.iter_mut().zip([(4, 6), (2, 3), (1, 2)]) {
            *map = Tensor::zeros([1, HEAD_CHANNELS, side.0, side.1]);
            // Logits of -20: no face anywhere else.
            map.data_mut()[..2 * side.0 * side.1].fill(-20.0);
        }
        let map = &mut heads[1];
        let cell = 3 + 2;
        let hw = 6;
        let mut set = |ch: usize, v: f32| map.data_mut()[ch * hw + cell] = v;
        set(0, 20.0);
        set(1, 20.0);
        set(BOX, 0.5);
        set(BOX + 1, 0.25);
        set(BOX + 2, 0.0);
        set(BOX + 3, 2f32.ln());
        for n in 0..5 {
            set(LANDMARKS + 2 * n, n as f32 * 0.1);
            set(LANDMARKS + 2 * n + 1, -0.5);
        }
        let faces = decode(&heads, 0.5);
        assert_eq!(faces.len(), 1);
        let f = &faces[0];
        assert!((f.score - 1.0).abs() < 1e-6);
        // Centre ((2 + 0.5)·16, (1 + 0.25)·16) = (40, 20), size 16 x 32.
        let b = f.bbox;
        assert!(
            (b.x - 32.0).abs() < 1e-4 && (b.y - 4.0).abs() < 1e-4,
            "{b:?}"
        );
        assert!(
            (b.w - 16.0).abs() < 1e-4 && (b.h - 32.0).abs() < 1e-3,
            "{b:?}"
        );
        let l = f.landmarks.expect("landmarks").0;
        assert!((l[3][0] - (0.3 + 2.0) * 16.0).abs() < 1e-4 && (l[3][1] - 8.0).abs() < 1e-4);
    }
}
