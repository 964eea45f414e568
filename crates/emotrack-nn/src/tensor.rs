//! The runtime's one data type: a dense NCHW `f32` tensor, and the scratch space layers share.

/// A dense `f32` tensor in NCHW layout (batch, channels, height, width), row-major.
///
/// Vectors (a [`super::Linear`] layer's input or output) are `[N, F, 1, 1]`. The storage is
/// reused: [`Tensor::resize`] keeps the allocation, so a net that writes into the same output
/// tensors on every call allocates only on its first call (or when the input grows).
#[derive(Debug, Clone, Default)]
pub struct Tensor {
    shape: [usize; 4],
    /// At least the shape's element count: a tensor that shrinks keeps its longer storage, so
    /// growing back (MTCNN's workers alternate between pyramid levels of every size) neither
    /// reallocates nor zero-fills. Elements past the count are stale and never read.
    data: Vec<f32>,
}

impl PartialEq for Tensor {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.data() == other.data()
    }
}

impl Tensor {
    /// An empty tensor (shape `[0, 0, 0, 0]`), to be filled by a layer's `forward`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tensor of zeros.
    pub fn zeros(shape: [usize; 4]) -> Self {
        Self {
            shape,
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// Wraps `data` (NCHW order) as a tensor of `shape`.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `shape` (a programming error, not a data error).
    pub fn from_vec(shape: [usize; 4], data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            shape.iter().product::<usize>(),
            "tensor data length does not match shape {shape:?}"
        );
        Self { shape, data }
    }

    /// `[N, C, H, W]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// Batch size.
    pub fn n(&self) -> usize {
        self.shape[0]
    }

    /// Channels.
    pub fn c(&self) -> usize {
        self.shape[1]
    }

    /// Height.
    pub fn h(&self) -> usize {
        self.shape[2]
    }

    /// Width.
    pub fn w(&self) -> usize {
        self.shape[3]
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements of one batch item: `C * H * W` values.
    pub fn item_len(&self) -> usize {
        self.shape[1] * self.shape[2] * self.shape[3]
    }

    /// All elements, NCHW order.
    pub fn data(&self) -> &[f32] {
        &self.data[..self.len()]
    }

    /// All elements, NCHW order, writable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        let len = self.len();
        &mut self.data[..len]
    }

    /// The elements of batch item `n` (`C * H * W` values, CHW order).
    pub fn item(&self, n: usize) -> &[f32] {
        let len = self.item_len();
        &self.data()[n * len..(n + 1) * len]
    }

    /// The elements of batch item `n`, writable.
    pub fn item_mut(&mut self, n: usize) -> &mut [f32] {
        let len = self.item_len();
        &mut self.data_mut()[n * len..(n + 1) * len]
    }

    /// One `H * W` plane: channel `c` of batch item `n`.
    pub fn plane(&self, n: usize, c: usize) -> &[f32] {
        let hw = self.shape[2] * self.shape[3];
        let start = (n * self.shape[1] + c) * hw;
        &self.data()[start..start + hw]
    }

    /// Gives the tensor a new shape, keeping its allocation. The contents are unspecified
    /// afterwards (layers overwrite every element); use [`Tensor::fill`] if you need zeros.
    pub fn resize(&mut self, shape: [usize; 4]) {
        self.shape = shape;
        let len = self.len();
        if self.data.len() < len {
            self.data.resize(len, 0.0);
        }
    }

    /// Sets every element to `value`.
    pub fn fill(&mut self, value: f32) {
        self.data_mut().fill(value);
    }

    /// The storage, NCHW order.
    pub fn into_vec(mut self) -> Vec<f32> {
        self.data.truncate(self.len());
        self.data
    }
}

/// Scratch memory that layers borrow during `forward` (a convolution's im2col matrix and, when it
/// batches items, its GEMM output).
///
/// Keep one per thread and pass it to every call: it grows to the largest layer's need once and
/// is reused afterwards.
#[derive(Debug, Default)]
pub struct Scratch {
    col: Vec<f32>,
    out: Vec<f32>,
    /// The zero-padded input of a direct convolution.
    pub(crate) pad: Vec<f32>,
}

impl Scratch {
    /// Empty scratch space; it grows on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// A buffer of at least `len` floats (contents unspecified).
    pub(crate) fn col(&mut self, len: usize) -> &mut [f32] {
        if self.col.len() < len {
            self.col.resize(len, 0.0);
        }
        &mut self.col[..len]
    }

    /// The im2col buffer (`col_len` floats) and a GEMM output buffer (`out_len` floats).
    pub(crate) fn col_and_out(
        &mut self,
        col_len: usize,
        out_len: usize,
    ) -> (&mut [f32], &mut [f32]) {
        if self.col.len() < col_len {
            self.col.resize(col_len, 0.0);
        }
        if self.out.len() < out_len {
            self.out.resize(out_len, 0.0);
        }
        (&mut self.col[..col_len], &mut self.out[..out_len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tensor_that_shrinks_and_grows_shows_only_its_shape() {
        let mut t = Tensor::new();
        t.resize([1, 2, 3, 4]);
        t.fill(7.0);
        t.resize([1, 1, 2, 2]);
        assert_eq!((t.len(), t.data().len(), t.item(0).len()), (4, 4, 4));
        t.data_mut().copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        // Equal to a fresh tensor of the same shape and values, whatever is stored past them.
        assert_eq!(t, Tensor::from_vec([1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(t.clone().into_vec(), vec![1.0, 2.0, 3.0, 4.0]);
        t.resize([2, 1, 2, 2]);
        assert_eq!(t.data().len(), 8);
        assert_eq!(t.plane(1, 0).len(), 4);
    }
}
