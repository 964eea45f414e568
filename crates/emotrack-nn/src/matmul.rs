//! Matrix products over strided views of plain slices, one GEMM per problem of a batch
//! (matrixmultiply's sgemm through ndarray, as the convolutions use).
//!
//! A transformer's attention multiplies many small matrices that sit inside larger buffers:
//! each head's queries are a column band of the `[tokens, 3C]` projection. Describing them by
//! strides ([`MatLayout`]) lets the GEMM read them in place, with no copy into contiguous
//! blocks first.

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder, linalg::general_mat_mul};

/// Where a matrix (or a batch of equally shaped matrices) sits in a slice: element `(i, j)`
/// of problem `b` is at `offset + b * batch_stride + i * row_stride + j * col_stride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatLayout {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Distance between two rows.
    pub row_stride: usize,
    /// Distance between two columns.
    pub col_stride: usize,
    /// Distance between two problems of a batch.
    pub batch_stride: usize,
    /// Index of element `(0, 0)` of the first problem.
    pub offset: usize,
}

impl MatLayout {
    /// A contiguous row-major `rows x cols` matrix at the start of the slice; problems of a
    /// batch follow each other.
    pub fn row_major(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
            batch_stride: rows * cols,
            offset: 0,
        }
    }

    /// The transpose (the same elements read column by column).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// The same with rows `row_stride` apart (a band of columns of a wider matrix).
    pub fn with_row_stride(self, row_stride: usize) -> Self {
        Self { row_stride, ..self }
    }

    /// The same with problems `batch_stride` apart.
    pub fn with_batch_stride(self, batch_stride: usize) -> Self {
        Self {
            batch_stride,
            ..self
        }
    }

    /// The same starting at `offset`.
    pub fn at(self, offset: usize) -> Self {
        Self { offset, ..self }
    }

    /// The start of problem `b` and one past its last element.
    fn span(&self, b: usize) -> (usize, usize) {
        let start = self.offset + b * self.batch_stride;
        let last = if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
        };
        (start, start + last)
    }

    fn view<'a>(&self, data: &'a [f32], b: usize) -> ArrayView2<'a, f32> {
        let (start, end) = self.span(b);
        assert!(
            end <= data.len(),
            "matrix {self:?} (problem {b}) overruns its slice"
        );
        ArrayView2::from_shape(
            (self.rows, self.cols).strides((self.row_stride, self.col_stride)),
            &data[start..end],
        )
        .expect("strides checked against the slice")
    }

    fn view_mut<'a>(&self, data: &'a mut [f32], b: usize) -> ArrayViewMut2<'a, f32> {
        let (start, end) = self.span(b);
        assert!(
            end <= data.len(),
            "matrix {self:?} (problem {b}) overruns its slice"
        );
        ArrayViewMut2::from_shape(
            (self.rows, self.cols).strides((self.row_stride, self.col_stride)),
            &mut data[start..end],
        )
        .expect("an output matrix whose elements do not overlap")
    }
}

/// `c_b = alpha * a_b · b_b + beta * c_b` for each problem `b` of `batch`, every matrix read
/// from (or written into) its slice as its layout says. With `beta = 0`, `c` is overwritten
/// (its old contents, even NaN, are not read).
///
/// # Panics
/// If the shapes do not chain (`a` is `m x k`, `b` `k x n`, `c` `m x n`), a matrix overruns
/// its slice, or `c`'s elements overlap (programming errors).
#[allow(clippy::too_many_arguments)] // the BLAS signature: three matrices and two scalars
pub fn batched_matmul(
    batch: usize,
    alpha: f32,
    a: &[f32],
    la: MatLayout,
    b: &[f32],
    lb: MatLayout,
    beta: f32,
    c: &mut [f32],
    lc: MatLayout,
) {
    assert!(
        la.cols == lb.rows && la.rows == lc.rows && lb.cols == lc.cols,
        "matmul of {}x{} by {}x{} into {}x{}",
        la.rows,
        la.cols,
        lb.rows,
        lb.cols,
        lc.rows,
        lc.cols
    );
    for p in 0..batch {
        let mut out = lc.view_mut(c, p);
        if beta == 0.0 {
            // sgemm scales `c` by beta, and 0 * NaN is NaN: stale buffers must not leak in.
            out.fill(0.0);
        }
        general_mat_mul(alpha, &la.view(a, p), &lb.view(b, p), beta, &mut out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a · b` by the definition, row-major.
    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum();
            }
        }
        c
    }

    fn ramp(len: usize, step: f32, start: f32) -> Vec<f32> {
        (0..len).map(|i| start + step * i as f32).collect()
    }

    #[test]
    fn a_row_major_product_matches_the_definition() {
        let (a, b) = (ramp(6, 0.5, -1.0), ramp(12, -0.25, 2.0));
        let mut c = vec![f32::NAN; 8];
        batched_matmul(
            1,
            1.0,
            &a,
            MatLayout::row_major(2, 3),
            &b,
            MatLayout::row_major(3, 4),
            0.0,
            &mut c,
            MatLayout::row_major(2, 4),
        );
        assert_eq!(c, naive(&a, &b, 2, 3, 4));
    }

    #[test]
    fn heads_in_column_bands_multiply_in_place() {
        // Two heads of 2 channels in rows of 3 tokens x [q | k] (4 + 4 columns): per head,
        // scores = 0.5 * q · kᵀ, into a contiguous [heads, 3, 3].
        let (tokens, heads, hd) = (3, 2, 2);
        let c = heads * hd;
        let qk = ramp(tokens * 2 * c, 0.1, -1.0);
        let q = MatLayout::row_major(tokens, hd)
            .with_row_stride(2 * c)
            .with_batch_stride(hd);
        let k_t = q.at(c).t();
        let mut scores = vec![0.0; heads * tokens * tokens];
        let ls = MatLayout::row_major(tokens, tokens);
        batched_matmul(heads, 0.5, &qk, q, &qk, k_t, 0.0, &mut scores, ls);
        for h in 0..heads {
            let pick = |base: usize| -> Vec<f32> {
                (0..tokens)
                    .flat_map(|t| (0..hd).map(move |d| (t, d)))
                    .map(|(t, d)| qk[t * 2 * c + base + h * hd + d])
                    .collect()
            };
            let (qh, kh) = (pick(0), pick(c));
            let k_t: Vec<f32> = (0..hd)
                .flat_map(|d| (0..tokens).map(move |t| (d, t)))
                .map(|(d, t)| kh[t * hd + d])
                .collect();
            let expected: Vec<f32> = naive(&qh, &k_t, tokens, hd, tokens)
                .iter()
                .map(|v| v * 0.5)
                .collect();
            let got = &scores[h * tokens * tokens..(h + 1) * tokens * tokens];
            for (g, e) in got.iter().zip(&expected) {
                assert!((g - e).abs() < 1e-6, "head {h}: {got:?} vs {expected:?}");
            }
        }
    }

    #[test]
    fn a_product_adds_into_a_column_band_of_its_output() {
        // c[:, 1..3] += a · b, the other column untouched.
        let (a, b) = (vec![1.0, 2.0], vec![3.0, 4.0]);
        let mut c = vec![1.0; 6];
        let band = MatLayout::row_major(2, 2).with_row_stride(3).at(1);
        batched_matmul(
            1,
            1.0,
            &a,
            MatLayout::row_major(2, 1),
            &b,
            MatLayout::row_major(1, 2),
            1.0,
            &mut c,
            band,
        );
        assert_eq!(c, [1.0, 4.0, 5.0, 1.0, 7.0, 9.0]);
    }
}
