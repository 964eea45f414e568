//! emotrack's small CPU inference runtime for the nets emotrack runs (MTCNN's three nets, YuNet,
//! the emotion CNN and the Swin-style transformer): NCHW `f32` tensors, the handful of layers
//! those nets use, and weights by name from safetensors.
//!
//! # Why hand-written
//! General frameworks were measured first: burn and candle need 9–17 ms for one batch-1 forward
//! pass of a 235-MFLOP ResNet on this project's 2-core CPU, where the per-face budget is about
//! 1 ms. Their per-op overhead (dispatch, allocation of every intermediate, layout shuffles)
//! dominates at these small sizes. MTCNN makes it worse: its fully-convolutional P-Net runs on a
//! dozen pyramid sizes per frame, each a different shape. This runtime keeps only what
//! inference needs:
//!
//! * 3x3 convolutions (stride 1 or 2) run a direct kernel on weights packed at load time,
//!   with AVX2+FMA picked at run time (`direct`, through `pulp`); the rest, and CPUs without
//!   AVX2, use im2col + one sgemm (matrixmultiply, reached through ndarray's safe views
//!   because `matrixmultiply::sgemm` is an `unsafe fn` and the workspace forbids `unsafe`);
//!   1x1 convolutions skip im2col (a kernel of our own for them lost to matrixmultiply's
//!   packed GEMM on YuNet's 16-64-channel layers, 2.6-2.9 ms against 2.3 ms a pass);
//! * depthwise 3x3 convolutions ([`DepthwiseConv3x3`], YuNet's) run a stencil over each plane,
//!   eight pixels per AVX2 vector, bias and activation fused; nearest upsampling is fused into
//!   the addition that consumes it ([`add_upsampled_2x`]);
//! * batch norms are folded into the preceding convolution at load time, and the activation
//!   after it can be fused into its output pass ([`Conv2d::forward_act`]);
//! * small images in a batch share one GEMM (their im2col matrices side by side);
//! * every layer writes into a caller-owned [`Tensor`] and borrows a caller-owned [`Scratch`], so
//!   a net reusing its buffers allocates nothing after its first call;
//! * a transformer's token rows (`[tokens, C]` row-major in a plain slice) have their own
//!   layers: [`LayerNorm`], exact [`gelu_inplace`] (a vectorised rational erf), [`softmax_rows_inplace`],
//!   [`gather_rows`] (window partitions and shifts given as index maps),
//!   [`Linear::forward_rows`], and [`batched_matmul`], which multiplies matrices lying in
//!   strided bands of a buffer (one attention head's columns) through the same sgemm;
//! * no graph, no autograd, no threads of its own: callers parallelise over images, pyramid
//!   levels or faces (rayon); within a large direct convolution the blocks of output channels
//!   are spread over the same rayon pool, so one face alone also uses every core.
//!
//! # Example
//! ```
//! use emotrack_nn::{Conv2d, ConvSpec, MaxPool2d, Scratch, Tensor, relu_inplace};
//!
//! // nn.Conv2d(1, 2, 3, padding=1) with all-ones weights, then ReLU and MaxPool2d(2, 2).
//! let conv = Conv2d::new(ConvSpec::new(1, 2, 3).padding(1), vec![1.0; 18], Some(vec![0.0, -1.0]));
//! let x = Tensor::from_vec([1, 1, 4, 4], vec![1.0; 16]);
//! let (mut y, mut z, mut scratch) = (Tensor::new(), Tensor::new(), Scratch::new());
//! conv.forward(&x, &mut y, &mut scratch);
//! relu_inplace(&mut y);
//! MaxPool2d::new(2, 2).forward(&y, &mut z);
//! assert_eq!(z.shape(), [1, 2, 2, 2]);
//! assert_eq!(z.data()[0], 9.0); // a full 3x3 window of ones
//! ```
//!
//! Loading by name, PyTorch names kept (`{prefix}.weight`, `{prefix}.bias`, batch-norm
//! `{bn}.running_mean` …): [`Weights::from_bytes`], then [`Conv2d::load`],
//! [`Conv2d::load_with_batchnorm`], [`DepthwiseConv3x3::load`], [`PRelu::load`],
//! [`Linear::load`]; a missing tensor or a
//! shape that differs from the architecture's is a [`WeightsError`] naming the tensor.
//!
//! # Who uses it
//! The `emotrack` library builds its nets (MTCNN, YuNet, the emotion ResNet) on it, and
//! `emotrack-train` runs its training convolutions on these kernels. It is a crate of its own
//! so that the library's public API is what a user needs, while the layers stay reachable to
//! the trainer: nothing here is specific to faces.

#![warn(missing_docs)]

mod conv;
mod depthwise;
mod direct;
mod error;
mod matmul;
mod ops;
mod rows;
mod tensor;
mod weights;

pub use conv::{Activation, BatchNorm, COL_BUDGET, Conv2d, ConvSpec, im2col};
pub use depthwise::DepthwiseConv3x3;
pub use error::{Result, WeightsError};
pub use matmul::{MatLayout, batched_matmul};
pub use ops::{
    Linear, MaxPool2d, PRelu, add_inplace, add_upsampled_2x, global_avg_pool, relu_inplace,
    softmax_channels_inplace,
};
pub use rows::{
    LayerNorm, add_assign, channels_last, gather_rows, gelu_inplace, mean_of_rows,
    softmax_rows_inplace,
};
pub use tensor::{Scratch, Tensor};
pub use weights::Weights;
