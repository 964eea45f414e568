//! ONNX export and import: the built-in model written as ONNX and run by tract gives the same
//! outputs as the native runtime, on real images.
#![cfg(feature = "onnx")]

mod common;

use std::path::{Path, PathBuf};

use emotrack::classify::{Classifier, ModelConfig, OnnxOutputs};
use prost::Message;
use tract_onnx::pb;

/// Largest allowed difference between the two runtimes' logits (issue 5: 1e-4).
const TOLERANCE: f32 = 1e-4;

fn write_model(dir: &Path, name: &str, bytes: &[u8], config: &ModelConfig) -> PathBuf {
    let onnx = dir.join(format!("{name}.onnx"));
    std::fs::write(&onnx, bytes).expect("write onnx");
    std::fs::write(
        onnx.with_extension("json"),
        serde_json::to_string(config).expect("config serialises"),
    )
    .expect("write config");
    onnx
}

#[test]
fn exported_model_gives_the_native_outputs_through_tract() {
    let native = Classifier::embedded().expect("built-in model");
    let (bytes, config) = native.to_onnx().expect("export");
    assert!(
        bytes.len() < 5_000_000,
        "ONNX file is {} bytes",
        bytes.len()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_model(dir.path(), "emotion", &bytes, &config);
    let onnx = Classifier::from_file(&path).expect("the exported model loads");

    let crops = common::real_crops();
    let (a, b) = (native.logits(&crops), onnx.logits(&crops));
    let diff = common::max_abs_diff(&a, &b);
    eprintln!(
        "max |native - onnx| logit difference over {} crops: {diff:e}",
        crops.len()
    );
    assert!(
        diff <= TOLERANCE,
        "logits differ by {diff} over {} crops",
        crops.len()
    );
    // Not a constant function: different faces get different scores.
    assert!(a.iter().any(|l| common::max_abs_diff(&[*l], &a[..1]) > 0.1));
    for (x, y) in native.classify(&crops).iter().zip(onnx.classify(&crops)) {
        assert_eq!(x.top().0, y.top().0);
    }
}

/// A model's temperature divides its logits in the runtime, and the export divides by it in
/// the graph (its config then says 1), so an ONNX runtime gets the calibrated outputs too.
#[test]
fn the_temperature_divides_the_logits_and_travels_into_the_export() {
    let (bytes, config) = emotrack::classify::embedded_model().expect("built-in model");
    let at = |temperature: f32| {
        let config = ModelConfig {
            temperature,
            ..config.clone()
        };
        Classifier::from_bytes(bytes, config, Path::new("built-in")).expect("loads")
    };
    let (plain, cooled) = (at(1.0), at(2.0));
    let crops = common::real_crops();
    let (a, b) = (plain.logits(&crops), cooled.logits(&crops));
    let halved: Vec<[f32; 7]> = a.iter().map(|l| l.map(|v| v / 2.0)).collect();
    assert!(common::max_abs_diff(&halved, &b) < 1e-5);
    let (top, p) = cooled.classify(&crops[..1])[0].top();
    let (top1, p1) = plain.classify(&crops[..1])[0].top();
    assert_eq!(top, top1, "a temperature never changes the top emotion");
    assert!(
        p < p1,
        "a temperature above 1 makes the model less sure: {p} vs {p1}"
    );

    let (onnx_bytes, onnx_config) = cooled.to_onnx().expect("export");
    assert_eq!(onnx_config.temperature, 1.0, "the graph already divides");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_model(dir.path(), "cooled", &onnx_bytes, &onnx_config);
    let onnx = Classifier::from_file(&path).expect("the exported model loads");
    let diff = common::max_abs_diff(&b, &onnx.logits(&crops));
    assert!(diff <= TOLERANCE, "logits differ by {diff}");
}

/// The exported graph rewritten as a Keras-style model would be: NHWC input and a softmax at
/// the end; the sidecar config says `"outputs": "probabilities"`.
#[test]
fn nhwc_graphs_that_end_in_a_softmax_are_run_too() {
    let native = Classifier::embedded().expect("built-in model");
    let (bytes, mut config) = native.to_onnx().expect("export");
    let mut model = pb::ModelProto::decode(bytes.as_slice()).expect("our own export decodes");
    let graph = model.graph.as_mut().expect("graph");
    let node =
        |op: &str, input: &str, output: &str, attribute: Vec<pb::AttributeProto>| pb::NodeProto {
            input: vec![input.into()],
            output: vec![output.into()],
            name: output.into(),
            op_type: op.into(),
            attribute,
            ..Default::default()
        };
    let perm = pb::AttributeProto {
        name: "perm".into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: vec![0, 3, 1, 2],
        ..Default::default()
    };
    graph
        .node
        .insert(0, node("Transpose", "image", "input", vec![perm]));
    graph
        .node
        .push(node("Softmax", "logits", "probs", Vec::new()));
    let mut input = graph.input[0].clone();
    input.name = "image".into();
    if let Some(pb::type_proto::Value::TensorType(t)) =
        input.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        // [N, 1, S, S] -> [N, S, S, 1]
        t.shape.as_mut().expect("shape").dim[1..].rotate_left(1);
    }
    graph.input = vec![input];
    graph.output[0].name = "probs".into();
    config.architecture = emotrack::classify::Architecture::Onnx {
        outputs: OnnxOutputs::Probabilities,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_model(dir.path(), "keras_like", &model.encode_to_vec(), &config);
    let keras_like = Classifier::from_file(&path).expect("the NHWC softmax model loads");

    let crops = common::real_crops();
    for (x, y) in native
        .classify(&crops)
        .iter()
        .zip(keras_like.classify(&crops))
    {
        for (p, q) in x.0.iter().zip(y.0) {
            assert!((p - q).abs() < 1e-5, "{x:?} vs {y:?}");
        }
    }
}

#[test]
fn bad_onnx_files_get_clear_errors() {
    let (_, config) = Classifier::embedded()
        .expect("built-in model")
        .to_onnx()
        .expect("export");
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = write_model(dir.path(), "garbage", b"this is not a protobuf", &config);
    let err = Classifier::from_file(&garbage).expect_err("garbage must not load");
    assert!(err.to_string().contains("not an ONNX file"), "{err}");

    let lonely = dir.path().join("lonely.onnx");
    std::fs::write(&lonely, b"").expect("write");
    let err = Classifier::from_file(&lonely).expect_err("no config beside it");
    assert!(err.to_string().contains("lonely.json"), "{err}");
}

#[test]
fn a_graph_that_makes_tract_panic_is_an_error() {
    // Found by fuzzing (fuzz/regressions/onnx): a mutated tiny ResNet whose convolution makes
    // tract's shape inference index out of bounds.
    let bytes = std::fs::read(
        common::workspace_root().join("fuzz/regressions/onnx/tract-padding-index-out-of-bounds"),
    )
    .expect("the regression input reads");
    let (_, config) = Classifier::embedded()
        .expect("built-in model")
        .to_onnx()
        .expect("export");
    let err = Classifier::from_bytes(&bytes, config, Path::new("fuzzed.onnx"))
        .expect_err("the graph must not load");
    assert!(
        err.to_string().contains("tract failed on this graph"),
        "{err}"
    );
}
