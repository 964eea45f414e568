//! ONNX classifiers: running any exported emotion classifier with tract (pure Rust), and
//! writing our own networks (ResNet, Swin, ensembles of them) as ONNX for other runtimes.
//!
//! An ONNX model is `<name>.onnx` plus the usual `<name>.json` config whose architecture is
//! `{"kind": "onnx"}` (see [`super::Architecture::Onnx`]): the config gives the class order,
//! the input size and the normalisation, which an ONNX file does not carry.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::{Member, OnnxOutputs};
use crate::error::{Error, Result};
use emotrack_nn::{Conv2d, LayerNorm, Linear, Tensor as NnTensor};

/// Where the single gray channel sits in the graph's 4-D input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `[N, 1, S, S]` (PyTorch, ours).
    Nchw,
    /// `[N, S, S, 1]` (Keras / TensorFlow exports).
    Nhwc,
}

impl Layout {
    /// The input shape of one `side` x `side` gray image.
    fn shape(self, side: usize) -> [usize; 4] {
        match self {
            Layout::Nchw => [1, 1, side, side],
            Layout::Nhwc => [1, side, side, 1],
        }
    }
}

/// A loaded, optimised ONNX graph that maps one normalised crop to one score per class.
pub(crate) struct OnnxNet {
    plan: Arc<TypedRunnableModel>,
    layout: Layout,
    side: usize,
    outputs: OnnxOutputs,
}

impl std::fmt::Debug for OnnxNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxNet")
            .field("layout", &self.layout)
            .field("side", &self.side)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl OnnxNet {
    /// Parses and optimises `bytes` (an ONNX `ModelProto`) for batch-1 `side` x `side` gray
    /// inputs, and checks with one run that it yields `classes` values.
    pub(crate) fn load(
        bytes: &[u8],
        side: usize,
        classes: usize,
        outputs: OnnxOutputs,
    ) -> std::result::Result<Self, String> {
        let mut proto =
            pb::ModelProto::decode(bytes).map_err(|e| format!("not an ONNX file: {e}"))?;
        let layout = input_layout(&proto)?;
        // The shapes an exporter records for intermediate values are hints, and those of a graph
        // with a symbolic batch (PyTorch's dynamo exporter) name the symbol, which tract will
        // not unify with the one-image batch it is loaded for; it infers every shape itself.
        if let Some(graph) = proto.graph.as_mut() {
            graph.value_info.clear();
        }
        // tract panics on some malformed graphs (an index out of bounds in its shape inference,
        // found by fuzzing: fuzz/regressions/onnx). A model file is user input, so a panic while
        // tract reads the graph or runs it once is caught here and becomes this error.
        let built = std::panic::catch_unwind(AssertUnwindSafe(|| {
            Self::plan(&proto, layout, side, outputs)
        }))
        .map_err(|_| {
            "tract failed on this graph (it panicked reading it): the file is malformed or uses \
             an operator tract does not support; export it again"
                .to_string()
        })?;
        let (net, trial) = built?;
        if trial.len() != classes {
            return Err(format!(
                "the graph gives {} outputs per image; the config lists {classes} classes",
                trial.len()
            ));
        }
        Ok(net)
    }

    /// The runnable plan for `proto`, and its outputs for one blank image (a trial run).
    fn plan(
        proto: &pb::ModelProto,
        layout: Layout,
        side: usize,
        outputs: OnnxOutputs,
    ) -> std::result::Result<(Self, Vec<f32>), String> {
        let plan = tract_onnx::onnx()
            .model_for_proto_model(proto)
            .and_then(|m| m.with_input_fact(0, f32::fact(layout.shape(side)).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| format!("tract cannot run this graph: {e:#}"))?;
        let net = Self {
            plan,
            layout,
            side,
            outputs,
        };
        let trial = net
            .run_one(&vec![0.0; side * side])
            .map_err(|e| format!("a trial run failed: {e}"))?;
        Ok((net, trial))
    }

    /// Logits (or log-probabilities, for graphs that end in a softmax) of each item of the
    /// normalised `[N, 1, S, S]` input, in the model's class order.
    ///
    /// # Panics
    /// If the input's side differs from the one the graph was loaded for, or if tract fails
    /// on an input of the shape that already ran at load time (neither can come from user
    /// input).
    pub(crate) fn forward(&self, x: &NnTensor) -> Vec<Vec<f32>> {
        assert_eq!(
            x.item_len(),
            self.side * self.side,
            "crop of the wrong size"
        );
        (0..x.n())
            .map(|i| {
                let scores = self
                    .run_one(x.item(i))
                    .expect("the graph ran on this input shape at load time");
                match self.outputs {
                    OnnxOutputs::Logits => scores,
                    OnnxOutputs::Probabilities => {
                        scores.into_iter().map(|p| p.max(1e-12).ln()).collect()
                    }
                }
            })
            .collect()
    }

    fn run_one(&self, pixels: &[f32]) -> std::result::Result<Vec<f32>, String> {
        let input = tract_onnx::prelude::Tensor::from_shape(&self.layout.shape(self.side), pixels)
            .map_err(|e| format!("{e:#}"))?;
        let out = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| format!("{e:#}"))?;
        let first = out.first().ok_or("the graph has no output")?;
        let values = first
            .to_plain_array_view::<f32>()
            .map_err(|e| format!("the output is not f32: {e:#}"))?;
        Ok(values.iter().copied().collect())
    }
}

/// Reads the layout from the graph's declared input shape: rank 4 with one channel first
/// (NCHW) or last (NHWC); a shape that says neither is taken as NCHW.
fn input_layout(proto: &pb::ModelProto) -> std::result::Result<Layout, String> {
    let graph = proto.graph.as_ref().ok_or("the file holds no graph")?;
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let input = graph
        .input
        .iter()
        .find(|i| !initializers.contains(&i.name.as_str()))
        .ok_or("the graph has no input")?;
    let dims: Vec<Option<i64>> = match &input.r#type {
        Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(t)),
            ..
        }) => t
            .shape
            .iter()
            .flat_map(|s| &s.dim)
            .map(|d| match d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    match dims.as_slice() {
        [] => Ok(Layout::Nchw),
        [_, c, _, _] if *c == Some(1) => Ok(Layout::Nchw),
        [_, _, _, c] if *c == Some(1) => Ok(Layout::Nhwc),
        [_, _, _, _] => Ok(Layout::Nchw),
        other => Err(format!(
            "input {:?} has rank {}; a 4-D gray image input ([N,1,S,S] or [N,S,S,1]) is expected",
            input.name,
            other.len()
        )),
    }
}

/// ONNX `TensorProto.DataType.FLOAT`.
const FLOAT: i32 = 1;
/// ONNX `TensorProto.DataType.INT64` (indices and shapes).
const INT64: i32 = 7;
/// The opset a graph is written against when it needs nothing newer: a ResNet's ops are all
/// unchanged since 13.
const BASE_OPSET: i64 = 13;
/// The opset of `LayerNormalization` (a Swin's), which 17 introduced; every other op the
/// exports use reads the same in 13 and 17.
const LAYER_NORM_OPSET: i64 = 17;

/// The IR version matching an opset (ONNX 1.8 for 13, 1.12 for 17).
fn ir_version(opset: i64) -> i64 {
    if opset >= LAYER_NORM_OPSET { 8 } else { 7 }
}

/// Builds an ONNX graph node by node; each layer method returns its output's name.
#[derive(Debug)]
pub(crate) struct GraphBuilder {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    /// The oldest opset that has every op written so far.
    opset: i64,
}

impl Default for GraphBuilder {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            initializers: Vec::new(),
            opset: BASE_OPSET,
        }
    }
}

impl GraphBuilder {
    fn node(
        &mut self,
        op: &str,
        inputs: Vec<String>,
        attributes: Vec<pb::AttributeProto>,
    ) -> String {
        let name = format!("{}_{}", op.to_lowercase(), self.nodes.len());
        self.nodes.push(pb::NodeProto {
            input: inputs,
            output: vec![name.clone()],
            name: name.clone(),
            op_type: op.into(),
            attribute: attributes,
            ..Default::default()
        });
        name
    }

    fn constant(&mut self, name: String, dims: &[usize], values: &[f32]) -> String {
        self.initializers.push(pb::TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// An int64 initializer (indices, shapes), named after what it is for.
    fn constant_i64(&mut self, what: &str, dims: &[usize], values: &[i64]) -> String {
        let name = format!("{what}_{}", self.initializers.len());
        self.initializers.push(pb::TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: INT64,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// A float initializer with a name of its own.
    fn constant_f32(&mut self, what: &str, dims: &[usize], values: &[f32]) -> String {
        let name = format!("{what}_{}", self.initializers.len());
        self.constant(name, dims, values)
    }

    /// `x` with the shape `shape` (`-1`: whatever is left, here the batch).
    pub(crate) fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let s = self.constant_i64("shape", &[shape.len()], shape);
        self.node("Reshape", vec![x.into(), s], Vec::new())
    }

    /// `x`'s axes reordered: axis `i` of the output is axis `perm[i]` of `x`.
    pub(crate) fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.node(
            "Transpose",
            vec![x.into()],
            vec![ints("perm", perm.to_vec())],
        )
    }

    /// The entries `map[i]` of `x` along `axis` (an index map as an int64 initializer).
    pub(crate) fn gather(&mut self, x: &str, map: &[usize], axis: i64) -> String {
        let indices: Vec<i64> = map.iter().map(|&i| i as i64).collect();
        let i = self.constant_i64("indices", &[indices.len()], &indices);
        self.node("Gather", vec![x.into(), i], vec![int("axis", axis)])
    }

    /// Layer normalisation over the last axis (`LayerNormalization`, opset 17).
    pub(crate) fn layer_norm(&mut self, x: &str, ln: &LayerNorm) -> String {
        self.opset = self.opset.max(LAYER_NORM_OPSET);
        let dim = [ln.dim()];
        let scale = self.constant_f32("ln_scale", &dim, ln.weight());
        let bias = self.constant_f32("ln_bias", &dim, ln.bias());
        self.node(
            "LayerNormalization",
            vec![x.into(), scale, bias],
            vec![int("axis", -1), float("epsilon", ln.eps())],
        )
    }

    /// Numpy-style (batched, broadcasting) matrix product.
    pub(crate) fn matmul(&mut self, a: &str, b: &str) -> String {
        self.node("MatMul", vec![a.into(), b.into()], Vec::new())
    }

    /// `x * value`.
    pub(crate) fn mul_constant(&mut self, x: &str, value: f32) -> String {
        let v = self.constant_f32("scale", &[1], &[value]);
        self.node("Mul", vec![x.into(), v], Vec::new())
    }

    /// `x + values` (a constant of shape `dims`, broadcast from the last axes).
    pub(crate) fn add_constant(&mut self, x: &str, dims: &[usize], values: &[f32]) -> String {
        let v = self.constant_f32("bias", dims, values);
        self.add(x, &v)
    }

    /// Softmax along `axis`.
    pub(crate) fn softmax(&mut self, x: &str, axis: i64) -> String {
        self.node("Softmax", vec![x.into()], vec![int("axis", axis)])
    }

    /// Exact GELU, `x * (1 + erf(x / √2)) / 2`, as the runtime computes it.
    pub(crate) fn gelu(&mut self, x: &str) -> String {
        let root2 = self.constant_f32("sqrt2", &[1], &[std::f32::consts::SQRT_2]);
        let scaled = self.node("Div", vec![x.into(), root2], Vec::new());
        let erf = self.node("Erf", vec![scaled], Vec::new());
        let one = self.constant_f32("one", &[1], &[1.0]);
        let cdf = self.node("Add", vec![erf, one], Vec::new());
        let half = self.mul_constant(x, 0.5);
        self.node("Mul", vec![half, cdf], Vec::new())
    }

    /// The mean along `axis`, which is dropped.
    pub(crate) fn reduce_mean(&mut self, x: &str, axis: i64) -> String {
        self.node(
            "ReduceMean",
            vec![x.into()],
            vec![ints("axes", vec![axis]), int("keepdims", 0)],
        )
    }

    /// A fully-connected layer on the last axis of `x` (token rows `[.., in]`): `MatMul` by
    /// `Wᵀ`, then the bias (left out when it is all zeros, as for a layer without one).
    pub(crate) fn linear_rows(&mut self, x: &str, linear: &Linear) -> String {
        self.linear_part(x, linear, 0..linear.out_features())
    }

    /// Outputs `outputs` of a fully-connected layer on the last axis of `x` (e.g. the queries
    /// of a joint query-key-value projection).
    pub(crate) fn linear_part(
        &mut self,
        x: &str,
        linear: &Linear,
        outputs: std::ops::Range<usize>,
    ) -> String {
        let (n_in, n_out) = (linear.in_features(), linear.out_features());
        // Wᵀ's columns `outputs`: [in, outputs].
        let width = outputs.len();
        let wt: Vec<f32> = linear
            .weight_t()
            .chunks_exact(n_out)
            .flat_map(|row| &row[outputs.clone()])
            .copied()
            .collect();
        let w = self.constant_f32("weight", &[n_in, width], &wt);
        let y = self.matmul(x, &w);
        let bias = &linear.bias()[outputs];
        if bias.iter().all(|&b| b == 0.0) {
            y
        } else {
            self.add_constant(&y, &[width], bias)
        }
    }

    /// A convolution with its (batch-norm-folded) weights and bias.
    pub(crate) fn conv(&mut self, x: &str, conv: &Conv2d) -> String {
        let spec = conv.spec();
        let id = self.nodes.len();
        let w = self.constant(
            format!("conv_{id}.weight"),
            &[
                spec.out_channels,
                spec.in_channels,
                spec.kernel[0],
                spec.kernel[1],
            ],
            conv.weight(),
        );
        let b = self.constant(format!("conv_{id}.bias"), &[spec.out_channels], conv.bias());
        let [ph, pw] = spec.padding.map(|p| p as i64);
        self.node(
            "Conv",
            vec![x.into(), w, b],
            vec![
                ints("kernel_shape", spec.kernel.map(|k| k as i64).to_vec()),
                ints("strides", spec.stride.map(|s| s as i64).to_vec()),
                ints("pads", vec![ph, pw, ph, pw]),
            ],
        )
    }

    /// ReLU.
    pub(crate) fn relu(&mut self, x: &str) -> String {
        self.node("Relu", vec![x.into()], Vec::new())
    }

    /// Elementwise sum (a residual connection).
    pub(crate) fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", vec![a.into(), b.into()], Vec::new())
    }

    /// Global average pooling then flattening to `[N, C]`.
    pub(crate) fn global_avg_pool(&mut self, x: &str) -> String {
        let pooled = self.node("GlobalAveragePool", vec![x.into()], Vec::new());
        self.node("Flatten", vec![pooled], vec![int("axis", 1)])
    }

    /// A fully-connected layer (`y = x·Wᵀ + b`).
    pub(crate) fn linear(&mut self, x: &str, linear: &Linear) -> String {
        let id = self.nodes.len();
        let w = self.constant(
            format!("linear_{id}.weight"),
            &[linear.in_features(), linear.out_features()],
            linear.weight_t(),
        );
        let b = self.constant(
            format!("linear_{id}.bias"),
            &[linear.out_features()],
            linear.bias(),
        );
        // The runtime keeps Wᵀ ([in, out]), which Gemm takes as it is.
        self.node("Gemm", vec![x.into(), w, b], Vec::new())
    }
}

fn int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        f: value,
        ..Default::default()
    }
}

fn ints(name: &str, values: Vec<i64>) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[pb::tensor_shape_proto::dimension::Value]) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|v| pb::tensor_shape_proto::Dimension {
                            value: Some(v.clone()),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ONNX bytes of `nets` (one, or an ensemble's members, whose outputs are summed): input
/// `input` `[N, 1, side, side]` (normalised pixels), output `logits` `[N, classes]` divided by
/// `temperature` (so their softmax is the calibrated probabilities), batch norms folded into
/// the convolutions. The opset is 13, or 17 when a Swin needs `LayerNormalization`.
pub(crate) fn export(
    nets: &[Member],
    side: usize,
    classes: usize,
    temperature: f32,
    doc: &str,
) -> Result<Vec<u8>> {
    use pb::tensor_shape_proto::dimension::Value::{DimParam, DimValue};
    let mut g = GraphBuilder::default();
    let mut out: Option<String> = None;
    for net in nets {
        let logits = net.write_onnx(&mut g, "input");
        out = Some(match out {
            Some(sum) => g.add(&sum, &logits),
            None => logits,
        });
    }
    let mut out = out.ok_or_else(|| Error::config("there is no network to export"))?;
    if temperature != 1.0 {
        let scale = g.constant("inverse_temperature".into(), &[1], &[1.0 / temperature]);
        out = g.node("Mul", vec![out, scale], Vec::new());
    }
    let last = g
        .nodes
        .iter_mut()
        .find(|n| n.output.first() == Some(&out))
        .ok_or_else(|| Error::config("the network wrote no layers"))?;
    last.output = vec!["logits".into()];
    let batch = DimParam("N".into());
    let side = side as i64;
    let graph = pb::GraphProto {
        node: g.nodes,
        name: "emotrack_emotion".into(),
        initializer: g.initializers,
        input: vec![value_info(
            "input",
            &[batch.clone(), DimValue(1), DimValue(side), DimValue(side)],
        )],
        output: vec![value_info("logits", &[batch, DimValue(classes as i64)])],
        doc_string: doc.into(),
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: ir_version(g.opset),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: g.opset,
        }],
        producer_name: "emotrack".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..Default::default()
    };
    Ok(model.encode_to_vec())
}
