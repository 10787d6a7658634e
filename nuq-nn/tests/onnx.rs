//! ONNX import against PyTorch: each fixture in `tests/fixtures/onnx` (written by
//! `make_fixtures.py` from random-weight PyTorch models) is imported and run on the input
//! saved beside it; the logits must match PyTorch's. Refusals name the node; broken files
//! give errors, never panics.

use std::path::{Path, PathBuf};

use nuq_kernels::KernelPath;
use nuq_nn::integer::{IntegerModel, IntegerRunner, Node};
use nuq_nn::onnx::{self, OnnxError};
use nuq_nn::quant::{Family, InputNorm, QuantConfig, QuantizedNetwork};
use nuq_nn::{Arch, BatchNorm2d, Conv2d, Graph, Layer, Mode, Op, Rng, Tensor};

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
            if let Some(b) = l.as_any_mut().downcast_mut::<Graph>() {
                blocks += 1;
                let names: Vec<&str> = b.nodes().iter().map(|n| n.name()).collect();
                let shortcut = names
                    .iter()
                    .filter(|n| n.starts_with("downsample."))
                    .count();
                projections += usize::from(shortcut > 0);
                assert_eq!(
                    names.len() - shortcut,
                    5,
                    "{name}: conv, BN(ReLU), conv, BN, join"
                );
                assert!(matches!(b.nodes().last().unwrap().op(), Op::Add(a) if a.relu()));
            }
        }
        assert_eq!((blocks, projections), (3, 1), "{name}");
        assert_eq!(m.network.config().input_size, (28, 28));
    }
}

/// One training-mode forward and backward pass of `m` on fixture `name`'s saved input (the
/// output as its own gradient): the parameters no gradient reached, and how many there are.
fn untrained_params(m: &mut onnx::ImportedNetwork, name: &str) -> (Vec<String>, usize) {
    let r = reference(name);
    let y = m.network.forward(&r.input, Mode::Train).unwrap().clone();
    m.network.backward(&r.input, &y).unwrap();
    let (mut zero, mut total) = (Vec::new(), 0);
    m.network.visit_params(&mut |name, p| {
        total += 1;
        if p.grad.iter().all(|g| *g == 0.0) {
            zero.push(name.to_string());
        }
    });
    (zero, total)
}

#[test]
fn imported_network_trains() {
    // One backward pass through the imported residual network reaches every parameter.
    let mut m = onnx::import(&fixture("resnet_tiny.onnx")).unwrap();
    let (zero, _) = untrained_params(&mut m, "resnet_tiny");
    assert!(zero.is_empty(), "no gradient reached {zero:?}");
}

/// `nn.ReLU6` exports as `Clip(0, 6)` (bounds as `Constant` inputs from opset 11): fused into
/// the batch-norm before it, or into the unit batch-norm after a convolution whose BN the
/// exporter folded.
#[test]
fn relu6_is_imported_as_a_fused_batch_norm_relu6() {
    for name in ["relu6_chain", "relu6_chain_folded"] {
        let m = check_against_pytorch(name);
        let bn = m.network.body.layers()[1]
            .1
            .as_any()
            .downcast_ref::<BatchNorm2d>()
            .unwrap_or_else(|| panic!("{name}: layer 1 is a batch-norm"));
        assert!(bn.fused_relu && bn.relu6, "{name}: {}", bn.describe());
        assert_eq!(m.origins.len(), m.network.body.len(), "{name}");
    }
}

/// Refused operators name the node: position, name and operator.
fn refused(file: &str) -> (onnx::NodeRef, String, String) {
    let e = match onnx::import(&fixture(file)) {
        Err(e) => e,
        Ok(_) => panic!("{file} imported"),
    };
    let OnnxError::UnsupportedOp { node, reason } = &e else {
        panic!("expected UnsupportedOp, got {e}");
    };
    assert!(node.index < node.count);
    let text = e.to_string();
    eprintln!("{text}");
    assert!(
        text.contains(&node.op)
            && text.contains(&node.name)
            && text.contains(&format!("graph.node[{}]", node.index)),
        "{text}"
    );
    (node.clone(), reason.clone(), text)
}

#[test]
fn unsupported_operator_is_refused_naming_the_node() {
    let (node, reason, _) = refused("unsupported_leaky_relu.onnx");
    assert_eq!(node.op, "LeakyRelu");
    assert_eq!(node.name, "/act/LeakyRelu");
    assert!(reason.contains("no nuq layer"), "{reason}");
}

#[test]
fn clip_other_than_relu6_is_refused_naming_the_node() {
    let (node, reason, _) = refused("unsupported_hardtanh.onnx");
    assert_eq!(node.op, "Clip");
    assert_eq!(node.name, "/act/Clip");
    assert!(
        reason.contains("min -1") && reason.contains("max 1") && reason.contains("ReLU6"),
        "{reason}"
    );
}

/// The convolutions of an imported network with their groups, in order.
fn conv_groups(s: &nuq_nn::Sequential, out: &mut Vec<(usize, usize, usize)>) {
    nuq_nn::visit_leaves(s, "", &mut |_, l| {
        if let Some(c) = l.as_any().downcast_ref::<Conv2d>() {
            let c = c.config();
            out.push((c.c_in, c.c_out, c.groups));
        }
    });
}

#[test]
fn mobilenet_style_depthwise_separable_network_matches_pytorch() {
    for name in ["mobilenet_tiny", "mobilenet_tiny_folded"] {
        let m = check_against_pytorch(name);
        let mut convs = Vec::new();
        conv_groups(&m.network.body, &mut convs);
        assert_eq!(
            convs,
            [(3, 8, 1), (8, 8, 8), (8, 12, 1), (12, 24, 12), (24, 16, 1)],
            "{name}"
        );
        let relu6 = m
            .network
            .body
            .layers()
            .iter()
            .filter_map(|(_, l)| l.as_any().downcast_ref::<BatchNorm2d>())
            .filter(|bn| bn.relu6)
            .count();
        assert_eq!(relu6, 5, "{name}");
    }
}

#[test]
fn grouped_convolution_network_matches_pytorch() {
    let m = check_against_pytorch("grouped_tiny");
    let mut convs = Vec::new();
    conv_groups(&m.network.body, &mut convs);
    assert_eq!(convs, [(3, 8, 1), (8, 8, 4), (8, 12, 2), (12, 8, 4)]);
}

/// A network of dilated convolutions (plain, grouped with stride 2, depthwise) imports with
/// its dilations and matches PyTorch.
#[test]
fn dilated_convolution_network_matches_pytorch() {
    let m = check_against_pytorch("dilated_tiny");
    let dilations: Vec<((usize, usize), usize)> = m
        .network
        .body
        .layers()
        .iter()
        .filter_map(|(_, l)| l.as_any().downcast_ref::<Conv2d>())
        .map(|c| (c.config().dilation, c.config().groups))
        .collect();
    assert_eq!(
        dilations,
        [((1, 1), 1), ((2, 2), 1), ((3, 3), 2), ((2, 2), 12)]
    );
}

#[test]
fn residual_blocks_with_depthwise_separable_branches_match_pytorch() {
    let m = check_against_pytorch("separable_resnet");
    let mut convs = Vec::new();
    conv_groups(&m.network.body, &mut convs);
    // stem; block 1: dw, pw; block 2: dw (stride 2), pw, 1×1 projection.
    assert_eq!(
        convs,
        [
            (3, 8, 1),
            (8, 8, 8),
            (8, 8, 1),
            (8, 8, 8),
            (8, 12, 1),
            (8, 12, 1)
        ]
    );
    for (_, l) in m.network.body.layers() {
        if let Some(b) = l.as_any().downcast_ref::<Graph>() {
            let Op::Layer(bn) = b.nodes()[1].op() else {
                panic!("a join second")
            };
            let bn = bn.as_any().downcast_ref::<BatchNorm2d>();
            assert!(bn.is_some_and(|bn| bn.relu6), "dw–BN–ReLU6 first");
        }
    }
}

#[test]
fn imported_depthwise_network_trains() {
    let mut m = onnx::import(&fixture("separable_resnet.onnx")).unwrap();
    let (zero, _) = untrained_params(&mut m, "separable_resnet");
    assert!(zero.is_empty(), "no gradient reached {zero:?}");
}

/// `n` random images of the imported network's input shape, as bytes.
fn byte_images(m: &onnx::ImportedNetwork, n: usize, seed: u64) -> (Vec<u8>, usize, usize) {
    let cfg = m.network.config();
    let (h, w) = cfg.input_size;
    let mut rng = Rng::new(seed);
    let bytes = (0..n * h * w * cfg.in_channels)
        .map(|_| rng.below(256) as u8)
        .collect();
    (bytes, h, w)
}

/// Post-training quantization of an imported network, calibrated on random images.
fn quantize(name: &str) -> (QuantizedNetwork, Vec<u8>, usize, usize) {
    let m = onnx::import(&fixture(&format!("{name}.onnx"))).unwrap();
    let c = m.network.config().in_channels;
    let (calib, h, w) = byte_images(&m, 32, 1);
    let norm = InputNorm::from_mean_std(&vec![0.5; c], &vec![0.25; c]).unwrap();
    let mut qn = QuantizedNetwork::prepare(m.network, QuantConfig::new(4, Family::KQuantile), norm)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let x = qn.input_norm.normalise(&calib, 32, h, w).unwrap();
    qn.calibrate(&x).unwrap_or_else(|e| panic!("{name}: {e}"));
    (qn, calib, h, w)
}

/// Top-1 agreement of the integer model with the float twin on `n` random images.
fn twin_agreement(qn: &mut QuantizedNetwork, model: &IntegerModel, n: usize) -> f64 {
    let cfg = *qn.net.config();
    let (h, w) = cfg.input_size;
    let mut rng = Rng::new(7);
    let images: Vec<u8> = (0..n * h * w * cfg.in_channels)
        .map(|_| rng.below(256) as u8)
        .collect();
    let mut runner = IntegerRunner::new(model, KernelPath::best_available()).unwrap();
    let int = runner.predict(&images, n).unwrap();
    let x = qn.input_norm.normalise(&images, n, h, w).unwrap();
    let logits = qn.net.forward(&x, Mode::Eval).unwrap();
    let k = logits.data().len() / n;
    let same = logits
        .data()
        .chunks_exact(k)
        .zip(&int)
        .filter(|(row, &i)| (0..k).fold(0, |b, j| if row[j] > row[b] { j } else { b }) == i)
        .count();
    same as f64 / n as f64
}

/// ReLU6 networks (one group) quantize, fold and run: the integer model agrees with the
/// fake-quantized twin.
#[test]
fn relu6_networks_fold_and_agree_with_the_twin() {
    for name in ["relu6_chain", "relu6_chain_folded"] {
        let (mut qn, ..) = quantize(name);
        let model = qn.to_integer().unwrap_or_else(|e| panic!("{name}: {e}"));
        let agree = twin_agreement(&mut qn, &model, 1000);
        assert!(agree >= 0.999, "{name}: top-1 agreement {agree}");
    }
}

/// The grouped and depthwise fixtures quantize (PTQ), calibrate and fold into an integer
/// model that keeps their channel groups.
#[test]
fn grouped_and_depthwise_networks_quantize_and_fold() {
    for name in [
        "mobilenet_tiny",
        "mobilenet_tiny_folded",
        "grouped_tiny",
        "separable_resnet",
    ] {
        let (qn, ..) = quantize(name);
        let model = qn.to_integer().unwrap_or_else(|e| panic!("{name}: {e}"));
        let groups: Vec<usize> = model
            .nodes
            .iter()
            .filter_map(|n| match n {
                Node::Conv(c) => Some(c.groups),
                _ => None,
            })
            .collect();
        assert!(groups.iter().any(|&g| g > 1), "{name}: {groups:?}");
    }
}

/// The folded grouped, depthwise and dilated networks run in the integer model and agree
/// with their float twins.
#[test]
fn grouped_and_depthwise_integer_models_agree_with_the_twin() {
    for name in [
        "mobilenet_tiny",
        "mobilenet_tiny_folded",
        "grouped_tiny",
        "separable_resnet",
        "dilated_tiny",
    ] {
        let (mut qn, ..) = quantize(name);
        let model = qn.to_integer().unwrap_or_else(|e| panic!("{name}: {e}"));
        let agree = twin_agreement(&mut qn, &model, 1000);
        assert!(agree >= 0.999, "{name}: top-1 agreement {agree}");
    }
}

/// The dilated network quantizes and folds with its dilations, and its integer model goes
/// through the `.nuq` file (which stores them) and back unchanged.
#[test]
fn dilated_network_folds_with_its_dilations_and_round_trips_the_file() {
    let (qn, ..) = quantize("dilated_tiny");
    let model = qn.to_integer().unwrap();
    let dilations: Vec<usize> = model
        .nodes
        .iter()
        .filter_map(|n| match n {
            Node::Conv(c) => Some(c.dilation),
            _ => None,
        })
        .collect();
    assert_eq!(dilations, [1, 2, 3, 2]);
    let fm = nuq_nn::integer::to_file_model(
        &model,
        nuq_fpga_fmt::CodebookKind::KQuantile,
        Default::default(),
    )
    .unwrap();
    let bytes = nuq_fpga_fmt::encode(&fm, &nuq_fpga_fmt::WriteOptions::default()).unwrap();
    let file = nuq_fpga_fmt::NuqFile::parse(&bytes).unwrap();
    let back = nuq_nn::integer::from_file_model(&nuq_fpga_fmt::Model::from_file(&file)).unwrap();
    assert_eq!(back, model);
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

/// The leaf layer names of an imported network's residual blocks: (main branch, shortcut)
/// per block, the join's ReLU.
fn blocks(m: &onnx::ImportedNetwork) -> Vec<(usize, usize, bool)> {
    m.network
        .body
        .layers()
        .iter()
        .filter_map(|(_, l)| l.as_any().downcast_ref::<Graph>())
        .map(|g| {
            let short = g
                .nodes()
                .iter()
                .filter(|n| n.name().starts_with("downsample."))
                .count();
            let Op::Add(join) = g.nodes().last().unwrap().op() else {
                panic!("a block ends in its join")
            };
            (g.len() - 1 - short, short, join.relu())
        })
        .collect()
}

/// ResNet-50-style bottleneck blocks (three convolutions on the main branch) import as
/// residual graphs, match PyTorch, quantize, and their integer model agrees with the twin.
#[test]
fn bottleneck_residual_blocks_import_quantize_and_agree_with_the_twin() {
    let m = check_against_pytorch("bottleneck_resnet");
    // conv, BN(ReLU), conv, BN(ReLU), conv, BN against the identity, then a projection.
    assert_eq!(blocks(&m), vec![(6, 0, true), (6, 2, true)]);
    let (mut qn, ..) = quantize("bottleneck_resnet");
    let model = qn.to_integer().unwrap();
    let convs = model
        .nodes
        .iter()
        .filter(|n| matches!(n, Node::Conv(_)))
        .count();
    let joins = model
        .nodes
        .iter()
        .filter(|n| matches!(n, Node::Add(_)))
        .count();
    assert_eq!((convs, joins), (1 + 3 + 4, 2));
    let agree = twin_agreement(&mut qn, &model, 1000);
    assert!(agree >= 0.999, "top-1 agreement {agree}");
}

/// MobileNet-V2's inverted residuals (a sum with no ReLU after it) import as linear
/// residual graphs that match PyTorch and train; the fold refuses them by name, since the
/// sum can be negative and activation codes are unsigned.
#[test]
fn linear_bottlenecks_import_and_train_and_the_fold_refuses_them_by_name() {
    let mut m = check_against_pytorch("mobilenet_v2_tiny");
    assert_eq!(
        blocks(&m).iter().map(|b| b.2).collect::<Vec<_>>(),
        [false, false]
    );
    let (zero, total) = untrained_params(&mut m, "mobilenet_v2_tiny");
    let moved = total - zero.len();
    assert!(moved > 20, "{moved} parameters with a gradient");
    let (qn, ..) = quantize("mobilenet_v2_tiny");
    let e = qn.to_integer().unwrap_err().to_string();
    assert!(
        e.starts_with("layer 2: a residual join without a ReLU") && e.contains("unsigned"),
        "{e}"
    );
}
