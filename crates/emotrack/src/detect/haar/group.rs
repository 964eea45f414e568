//! Merging overlapping raw windows into faces, as OpenCV's `groupRectangles` does.
//!
//! Windows are "similar" when each of their four edges differs by at most
//! `eps · (min width + min height) / 2`; similarity classes (connected components) are averaged
//! into one box whose neighbour count is the class size. Classes with `min_neighbors` or fewer
//! members are dropped, and so is a class lying inside a stronger one (grown by `eps`).

/// An integer rectangle (OpenCV's `cv::Rect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct IRect {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

/// OpenCV's `SimilarRects` predicate.
fn similar(a: &IRect, b: &IRect, eps: f64) -> bool {
    let delta = eps * f64::from(a.w.min(b.w) + a.h.min(b.h)) * 0.5;
    f64::from((a.x - b.x).abs()) <= delta
        && f64::from((a.y - b.y).abs()) <= delta
        && f64::from((a.x + a.w - b.x - b.w).abs()) <= delta
        && f64::from((a.y + a.h - b.y - b.h).abs()) <= delta
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Labels the similarity classes of `rects`: `(labels, class count)`, classes numbered in order
/// of first appearance. Same classes as OpenCV's `partition`, found faster: rectangles are
/// visited in order of `x`, and two can only be similar when their `x` differ by at most
/// `eps · (w + h) / 2` of either one, which bounds the scan.
fn partition(rects: &[IRect], eps: f64) -> (Vec<usize>, usize) {
    let n = rects.len();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by_key(|&i| rects[i].x);
    for (k, &i) in order.iter().enumerate() {
        let a = &rects[i];
        let reach = eps * f64::from(a.w + a.h) * 0.5;
        for &j in &order[k + 1..] {
            let b = &rects[j];
            if f64::from(b.x - a.x) > reach {
                break;
            }
            if similar(a, b, eps) {
                let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                if ri != rj {
                    parent[ri.max(rj)] = ri.min(rj);
                }
            }
        }
    }
    let mut class_of_root = vec![usize::MAX; n];
    let mut labels = vec![0; n];
    let mut classes = 0;
    for (i, label) in labels.iter_mut().enumerate() {
        let r = find(&mut parent, i);
        if class_of_root[r] == usize::MAX {
            class_of_root[r] = classes;
            classes += 1;
        }
        *label = class_of_root[r];
    }
    (labels, classes)
}

/// OpenCV's `cvRound` for `f32`/`f64` results: round half to even.
fn round_i32(v: f64) -> i32 {
    v.round_ties_even() as i32
}

/// Groups raw detection windows; returns each kept box with its neighbour count.
/// With `min_neighbors == 0` the windows come back unchanged, each with count 1.
pub(crate) fn group_rectangles(rects: &[IRect], min_neighbors: u32, eps: f64) -> Vec<(IRect, u32)> {
    if min_neighbors == 0 || rects.is_empty() {
        return rects.iter().map(|&r| (r, 1)).collect();
    }
    let (labels, classes) = partition(rects, eps);
    // Sums in i64: OpenCV sums in int, which cannot overflow for real window counts either.
    let mut sums = vec![[0i64; 4]; classes];
    let mut counts = vec![0u32; classes];
    for (r, &c) in rects.iter().zip(&labels) {
        let s = &mut sums[c];
        s[0] += i64::from(r.x);
        s[1] += i64::from(r.y);
        s[2] += i64::from(r.w);
        s[3] += i64::from(r.h);
        counts[c] += 1;
    }
    let averaged: Vec<IRect> = sums
        .iter()
        .zip(&counts)
        .map(|(s, &n)| {
            // OpenCV: `saturate_cast<int>(sum * (1.f / n))`, in single precision.
            let inv = 1.0f32 / n as f32;
            let avg = |v: i64| round_i32(f64::from(v as f32 * inv));
            IRect {
                x: avg(s[0]),
                y: avg(s[1]),
                w: avg(s[2]),
                h: avg(s[3]),
            }
        })
        .collect();

    let mut out = Vec::new();
    for (i, (r1, &n1)) in averaged.iter().zip(&counts).enumerate() {
        if n1 <= min_neighbors {
            continue;
        }
        // Drop a box lying inside a stronger one (grown by eps).
        let swallowed = averaged
            .iter()
            .zip(&counts)
            .enumerate()
            .any(|(j, (r2, &n2))| {
                if j == i || n2 <= min_neighbors {
                    return false;
                }
                let dx = round_i32(f64::from(r2.w) * eps);
                let dy = round_i32(f64::from(r2.h) * eps);
                r1.x >= r2.x - dx
                    && r1.y >= r2.y - dy
                    && r1.x + r1.w <= r2.x + r2.w + dx
                    && r1.y + r1.h <= r2.y + r2.h + dy
                    && (n2 > n1.max(3) || n1 < 3)
            });
        if !swallowed {
            out.push((*r1, n1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: i32, y: i32, w: i32, h: i32) -> IRect {
        IRect { x, y, w, h }
    }

    #[test]
    fn overlapping_windows_merge_into_their_average() {
        let rects = [
            r(10, 10, 24, 24),
            r(12, 10, 24, 24),
            r(10, 12, 24, 24),
            r(12, 12, 26, 26),
        ];
        let g = group_rectangles(&rects, 3, 0.2);
        // Average of x: 44/4 = 11, w: 98/4 = 24.5 -> 24 (round half to even).
        assert_eq!(g, vec![(r(11, 11, 24, 24), 4)]);
    }

    #[test]
    fn classes_with_too_few_neighbours_are_dropped() {
        let rects = [r(10, 10, 24, 24), r(11, 10, 24, 24), r(200, 200, 24, 24)];
        assert!(group_rectangles(&rects, 2, 0.2).is_empty());
        assert_eq!(
            group_rectangles(&rects, 1, 0.2),
            vec![(r(10, 10, 24, 24), 2)]
        );
    }

    #[test]
    fn zero_threshold_returns_windows_unchanged() {
        let rects = [r(1, 2, 3, 4), r(1, 2, 3, 4)];
        assert_eq!(
            group_rectangles(&rects, 0, 0.2),
            vec![(rects[0], 1), (rects[1], 1)]
        );
    }

    #[test]
    fn weak_box_inside_a_stronger_one_is_dropped() {
        let mut rects = vec![r(100, 100, 100, 100); 6];
        rects.extend([r(130, 130, 30, 30); 4]);
        let g = group_rectangles(&rects, 3, 0.2);
        assert_eq!(g, vec![(r(100, 100, 100, 100), 6)]);
    }

    #[test]
    fn similarity_is_transitive_through_chains() {
        // a~b and b~c but not a~c: one class, as with OpenCV's partition.
        let rects = [r(0, 0, 20, 20), r(4, 0, 20, 20), r(8, 0, 20, 20)];
        let (labels, n) = partition(&rects, 0.2);
        assert_eq!(n, 1);
        assert_eq!(labels, vec![0, 0, 0]);
    }
}
