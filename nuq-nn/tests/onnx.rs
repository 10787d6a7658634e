//! ONNX import against PyTorch: each fixture in `tests/fixtures/onnx` (written by
//! `make_fixtures.py` from random-weight PyTorch models) is imported and run on the input
//! saved beside it; the logits must match PyTorch's. Refusals name the node; broken files
//! give errors, never panics.

use std::path::{Path, PathBuf};

use nuq_nn::onnx::{self, OnnxError};
use nuq_nn::{Arch, BasicBlock, Mode, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

struct Reference {
    input: Tensor,
    output: Vec<f32>,
    classes: usize,
}

/// The saved input (NCHW, converted to nuq's NHWC) and PyTorch's output.
fn reference(name: &str) -> Reference {
    let text = std::fs::read_to_string(fixture(&format!("{name}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let floats = |k: &str| -> Vec<f32> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let dims = |k: &str| -> Vec<usize> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect()
    };
    let [n, c, h, w] = dims("input_shape")[..] else {
        panic!("4-D input")
    };
    let nchw = floats("input");
    let mut nhwc = vec![0.0; nchw.len()];
    for i in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    nhwc[((i * h + y) * w + x) * c + ch] = nchw[((i * c + ch) * h + y) * w + x];
                }
            }
        }
    }
    Reference {
        input: Tensor::from_vec([n, h, w, c], nhwc).unwrap(),
        output: floats("output"),
        classes: dims("output_shape")[1],
    }
}

/// Imports `name`.onnx, runs it on the saved input and compares with PyTorch.
fn check_against_pytorch(name: &str) -> onnx::ImportedNetwork {
    let mut imported =
        onnx::import(&fixture(&format!("{name}.onnx"))).unwrap_or_else(|e| panic!("{name}: {e}"));
    let r = reference(name);
    let cfg = *imported.network.config();
    assert_eq!(cfg.arch, Arch::Onnx);
    assert_eq!(cfg.classes, r.classes, "{name}");
    let y = imported.network.forward(&r.input, Mode::Eval).unwrap();
    assert_eq!(y.shape(), [r.input.n(), 1, 1, r.classes], "{name}");
    let scale = r.output.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in y.data().iter().zip(&r.output).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * scale,
            "{name}: logit {i}: nuq {a}, PyTorch {b}"
        );
    }
    imported
}

#[test]
fn chain_with_batch_norm_identity_and_dropout_matches_pytorch() {
    let m = check_against_pytorch("chain_bn");
    assert_eq!(m.opset, 13);
    assert!(m.producer.starts_with("pytorch"), "{}", m.producer);
    // conv, BN(+ReLU), maxpool, conv, BN(+ReLU), pool, flatten, linear: Identity and Dropout
    // leave nothing, the ReLUs fuse into the batch-norms.
    assert_eq!(m.network.body.len(), 8);
    assert!(m.origins.iter().all(|o| o.note.is_none()));
}

#[test]
fn chain_with_batch_norm_folded_by_the_exporter_matches_pytorch() {
    let m = check_against_pytorch("chain_folded");
    let units: Vec<_> = m.origins.iter().filter(|o| o.note.is_some()).collect();
    assert_eq!(units.len(), 2, "{:?}", m.origins);
    assert!(units.iter().all(|o| o.op == "Conv"));
}

#[test]
fn vgg_with_reshape_average_pool_and_matmul_add_matches_pytorch() {
    let m = check_against_pytorch("vgg_reshape");
    let last = m.origins.last().unwrap();
    assert_eq!(last.op, "MatMul");
}

#[test]
fn torchvision_style_resnet_matches_pytorch() {
    for name in ["resnet_tiny", "resnet_tiny_folded"] {
        let mut m = check_against_pytorch(name);
        let mut blocks = 0;
        let mut projections = 0;
        for (_, l) in m.network.body.layers_mut() {
            if let Some(b) = l.as_any_mut().downcast_mut::<BasicBlock>() {
                blocks += 1;
                projections += usize::from(b.downsample.is_some());
                assert_eq!(b.main.len(), 4, "{name}: conv, BN(ReLU), conv, BN");
            }
        }
        assert_eq!((blocks, projections), (3, 1), "{name}");
        assert_eq!(m.network.config().input_size, (28, 28));
    }
}

#[test]
fn imported_network_trains() {
    // One backward pass through the imported residual network reaches every parameter.
    let mut m = onnx::import(&fixture("resnet_tiny.onnx")).unwrap();
    let r = reference("resnet_tiny");
    let y = m.network.forward(&r.input, Mode::Train).unwrap().clone();
    m.network.backward(&r.input, &y).unwrap();
    let mut zero = Vec::new();
    m.network.visit_params(&mut |name, p| {
        if p.grad.iter().all(|g| *g == 0.0) {
            zero.push(name.to_string());
        }
    });
    assert!(zero.is_empty(), "no gradient reached {zero:?}");
}

#[test]
fn relu6_is_refused_naming_the_node() {
    let e = match onnx::import(&fixture("unsupported_relu6.onnx")) {
        Err(e) => e,
        Ok(_) => panic!("a Clip imported"),
    };
    let OnnxError::UnsupportedOp { node, reason } = &e else {
        panic!("expected UnsupportedOp, got {e}");
    };
    assert_eq!(node.op, "Clip");
    assert_eq!(node.name, "/act/Clip");
    assert!(node.index < node.count);
    assert!(reason.contains("ReLU6"), "{reason}");
    let text = e.to_string();
    assert!(
        text.contains("Clip")
            && text.contains("/act/Clip")
            && text.contains(&format!("graph.node[{}]", node.index)),
        "{text}"
    );
}

#[test]
fn truncated_and_corrupt_files_give_errors_not_panics() {
    let bytes = std::fs::read(fixture("chain_bn.onnx")).unwrap();
    let mut refused = 0;
    for len in (0..bytes.len()).step_by(37) {
        if onnx::import_bytes(&bytes[..len]).is_err() {
            refused += 1;
        }
    }
    // Every strict prefix either fails to decode or lacks something the graph needs.
    assert_eq!(refused, bytes.len().div_ceil(37));
    assert!(matches!(
        onnx::import_bytes(&[]),
        Err(OnnxError::NoGraph { .. })
    ));
    assert!(matches!(
        onnx::import_bytes(b"\xff\xff\xff\xff not protobuf"),
        Err(OnnxError::Decode(_))
    ));
    // Flipped bytes: any outcome but a panic.
    for i in (0..bytes.len()).step_by(11) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        let _ = onnx::import_bytes(&b);
    }
    let e = onnx::import(&fixture("missing.onnx")).err().unwrap();
    assert!(matches!(e, OnnxError::Io { .. }), "{e}");
}

#[test]
fn onnx_and_safetensors_are_told_apart() {
    let bytes = std::fs::read(fixture("chain_bn.onnx")).unwrap();
    assert!(onnx::looks_like_onnx(&bytes));
    let mut st = 8u64.to_le_bytes().to_vec();
    st.extend_from_slice(b"{\"a\":1} ");
    assert!(!onnx::looks_like_onnx(&st));
}
