//! A network's float tensors by path (`stages.0.0.bn1.gamma`), in their saved layout, for the
//! weight EMA, the inference model file and loading its weights back.
//!
//! Burn's record types are opaque; these two small visitors give the same traversal with
//! access to the tensors themselves.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

/// One tensor flattened to rank 1, with its saved shape.
#[derive(Debug, Clone)]
pub struct FlatParam {
    /// Shape in the saved layout (PyTorch's: conv `[out, in, k, k]`, linear `[out, in]`).
    pub shape: Vec<usize>,
    /// The values, flattened and detached from any autodiff graph.
    pub tensor: Tensor<1>,
}

/// Float tensors by path.
pub type ParamMap = BTreeMap<String, FlatParam>;

/// Collects every float tensor of `module` (parameters and batch-norm running statistics) by
/// path, in the saved layout, without autodiff.
pub fn collect<M: Module>(module: &M) -> ParamMap {
    let mut v = Collector::default();
    module.visit(&mut v);
    v.out
}

/// Collects to host memory: `(shape, values)` by path.
pub fn collect_host<M: Module>(module: &M) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    collect(module)
        .into_iter()
        .map(|(k, p)| {
            let values = p
                .tensor
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            (k, (p.shape, values))
        })
        .collect()
}

/// Replaces tensors of `module`: for each path present in `map`, `f(old, new)` gives the value
/// to load (both flattened, saved layout). Returns the module and the paths of `module` that
/// `map` lacks.
pub fn apply<M: Module>(
    module: M,
    map: &ParamMap,
    f: impl FnMut(Tensor<1>, Tensor<1>) -> Tensor<1>,
) -> (M, Vec<String>) {
    let mut m = Applier {
        path: Vec::new(),
        map,
        f,
        missing: Vec::new(),
    };
    let module = module.map(&mut m);
    (module, m.missing)
}

/// Host values to a [`ParamMap`] on `device`.
pub fn from_host(
    host: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    device: &burn::tensor::Device,
) -> ParamMap {
    host.iter()
        .map(|(k, (shape, values))| {
            let tensor =
                Tensor::<1>::from_data(TensorData::new(values.clone(), [values.len()]), device);
            (
                k.clone(),
                FlatParam {
                    shape: shape.clone(),
                    tensor,
                },
            )
        })
        .collect()
}

#[derive(Default)]
struct Collector {
    path: Vec<String>,
    out: ParamMap,
}

/// Whether a module level adds to a tensor's path: an enum's variant (`Net::Swin`) does not,
/// so a network's paths are the same whether it is held alone or in [`crate::model::Net`].
fn named(container_type: &str) -> bool {
    !container_type.starts_with("Enum:")
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        if named(container_type) {
            self.path.push(name.to_string());
        }
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        if named(container_type) {
            self.path.pop();
        }
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.transform_for_save().val().without_autodiff().detach();
        let shape = t.dims().to_vec();
        let n: usize = shape.iter().product();
        self.out.insert(
            self.path.join("."),
            FlatParam {
                shape,
                tensor: t.reshape([n]),
            },
        );
    }
}

struct Applier<'a, F> {
    path: Vec<String>,
    map: &'a ParamMap,
    f: F,
    missing: Vec<String>,
}

impl<F: FnMut(Tensor<1>, Tensor<1>) -> Tensor<1>> ModuleMapper for Applier<'_, F> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        if named(container_type) {
            self.path.push(name.to_string());
        }
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        if named(container_type) {
            self.path.pop();
        }
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.join(".");
        let Some(new) = self.map.get(&path) else {
            self.missing.push(path);
            return param;
        };
        let saved = param.transform_for_save().val();
        let device = saved.device();
        let dims: [usize; D] = saved.dims();
        if new.shape != dims {
            self.missing
                .push(format!("{path} (shape {:?}, expected {dims:?})", new.shape));
            return param;
        }
        let n: usize = dims.iter().product();
        let old = saved.without_autodiff().detach().reshape([n]);
        let value = (self.f)(old, new.tensor.clone()).to_device(&device);
        let id = param.id;
        param.transform_for_load(value.reshape(dims), id)
    }
}
