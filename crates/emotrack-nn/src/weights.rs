//! Named tensors from safetensors bytes, with shape checks that name the offending tensor.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{Result, WeightsError};

/// A read-only view of the tensors in a safetensors file (borrowed bytes, e.g. from
/// `include_bytes!` or a file read into memory).
///
/// Every getter checks the stored shape against the one the architecture expects, so a file for
/// another architecture fails at load time with a message naming the tensor.
pub struct Weights<'a> {
    tensors: SafeTensors<'a>,
    origin: PathBuf,
}

impl std::fmt::Debug for Weights<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights")
            .field("origin", &self.origin)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl<'a> Weights<'a> {
    /// Parses safetensors `bytes`; `origin` names the file in error messages (`"<embedded>"` for
    /// built-in models).
    pub fn from_bytes(bytes: &'a [u8], origin: impl AsRef<Path>) -> Result<Self> {
        let origin = origin.as_ref().to_path_buf();
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| WeightsError {
            path: origin.clone(),
            message: format!("not a valid safetensors file ({e})"),
        })?;
        Ok(Self { tensors, origin })
    }

    /// The file these weights came from (as given to [`Weights::from_bytes`]).
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Names of all stored tensors, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names = self.tensors.names();
        names.sort_unstable();
        names
    }

    /// Whether a tensor of this name is stored.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.tensor(name).is_ok()
    }

    /// The stored shape of a tensor.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        let view = self.tensors.tensor(name).map_err(|_| self.missing(name))?;
        Ok(view.shape().to_vec())
    }

    /// The values of a float32 or float16 tensor whose shape must equal `expected` (row-major,
    /// as stored), as float32.
    pub fn tensor(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let view = self.tensors.tensor(name).map_err(|_| self.missing(name))?;
        if view.shape() != expected {
            return Err(self.error(format!(
                "tensor `{name}` has shape {:?}, this architecture expects {expected:?}; \
                 the file was made for a different model configuration",
                view.shape()
            )));
        }
        let data = view.data();
        match view.dtype() {
            Dtype::F32 => Ok(data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()),
            Dtype::F16 => Ok(data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect()),
            other => Err(self.error(format!(
                "tensor `{name}` is stored as {other:?}; store it as float32 or float16"
            ))),
        }
    }

    /// An error about this file.
    pub fn error(&self, message: String) -> WeightsError {
        WeightsError {
            path: self.origin.clone(),
            message,
        }
    }

    fn missing(&self, name: &str) -> WeightsError {
        self.error(format!(
            "tensor `{name}` is missing; the file was made for a different model"
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Serialises named float32 tensors to safetensors bytes (for tests of loaders).
    pub(crate) fn safetensors_bytes(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(n, s, v)| {
                (
                    n.to_string(),
                    s.clone(),
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
            .iter()
            .map(|(n, s, b)| {
                let view = safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                    .expect("valid test tensor");
                (n.clone(), view)
            })
            .collect();
        safetensors::serialize(views, None).expect("serialisable test tensors")
    }

    #[test]
    fn reads_tensors_by_name_and_checks_shapes() {
        let bytes = safetensors_bytes(&[("a.weight", vec![2, 3], vec![1., 2., 3., 4., 5., 6.])]);
        let w = Weights::from_bytes(&bytes, "test.safetensors").expect("valid");
        assert_eq!(w.names(), vec!["a.weight"]);
        assert_eq!(
            w.tensor("a.weight", &[2, 3]).expect("right shape"),
            vec![1., 2., 3., 4., 5., 6.]
        );
        let err = w.tensor("a.weight", &[3, 2]).expect_err("wrong shape");
        let msg = err.to_string();
        assert!(msg.contains("a.weight") && msg.contains("[2, 3]"), "{msg}");
        let err = w.tensor("b.weight", &[1]).expect_err("missing");
        assert!(matches!(err, WeightsError { .. }));
        assert!(err.to_string().contains("b.weight"));
    }

    #[test]
    fn half_precision_tensors_read_as_float32_and_integers_are_refused() {
        let halves: Vec<u8> = [0.5f32, -2.0, 1.0e-3]
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect();
        let ints: Vec<u8> = [1i32, 2].iter().flat_map(|x| x.to_le_bytes()).collect();
        let views = [
            (
                "h",
                safetensors::tensor::TensorView::new(Dtype::F16, vec![3], &halves).expect("f16"),
            ),
            (
                "i",
                safetensors::tensor::TensorView::new(Dtype::I32, vec![2], &ints).expect("i32"),
            ),
        ];
        let bytes = safetensors::serialize(views, None).expect("serialisable");
        let w = Weights::from_bytes(&bytes, "half.safetensors").expect("valid");
        let h = w.tensor("h", &[3]).expect("f16 is read");
        assert_eq!(h[..2], [0.5, -2.0]);
        assert!((h[2] - 1.0e-3).abs() < 1e-6, "{}", h[2]);
        let msg = w.tensor("i", &[2]).expect_err("i32").to_string();
        assert!(msg.contains("float32 or float16"), "{msg}");
    }

    #[test]
    fn garbage_bytes_are_a_model_error() {
        let err = Weights::from_bytes(b"not safetensors", "x.safetensors").expect_err("garbage");
        assert!(matches!(err, WeightsError { .. }));
    }
}
