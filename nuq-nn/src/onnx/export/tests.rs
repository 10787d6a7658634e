use std::collections::HashSet;

use proptest::prelude::*;
use prost::Message;

use super::lower::padding_correction;
use super::*;
use crate::integer::random::{random_model, RandomModelSpec};
use crate::integer::{ConvNode, ConvOutput, Node, TensorInfo, WeightTable};
use crate::models::{Arch, ModelConfig};
use crate::onnx::proto::{type_proto, ModelProto};
use nuq_core::Scale;

fn small(arch: Arch, bits: u8, seed: u64) -> IntegerModel {
    let mut spec = RandomModelSpec::cifar(arch, bits);
    spec.config = ModelConfig {
        width: 0.125,
        ..ModelConfig::cifar10(arch)
    };
    random_model(&spec, seed).expect("random model")
}

fn decode(e: &Exported) -> ModelProto {
    ModelProto::decode(e.bytes.as_slice()).expect("the export decodes")
}

/// Every node reads only the image, constants or outputs of earlier nodes; every value the
/// graph names has a declared type (qonnx's executor needs them all).
fn check_well_formed(m: &ModelProto) {
    let g = m.graph.as_ref().expect("graph");
    let mut defined: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    defined.insert(g.input[0].name.as_str());
    let mut typed: HashSet<&str> = g.value_info.iter().map(|v| v.name.as_str()).collect();
    typed.insert(g.input[0].name.as_str());
    typed.insert(g.output[0].name.as_str());
    for n in &g.node {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            assert!(
                defined.contains(i.as_str()),
                "{} reads {i} before it exists",
                n.name
            );
            assert!(typed.contains(i.as_str()), "{i} has no type");
        }
        for o in &n.output {
            assert!(defined.insert(o.as_str()), "{o} is written twice");
            assert!(typed.contains(o.as_str()), "{o} has no type");
        }
    }
    assert!(defined.contains(g.output[0].name.as_str()));
    let names: HashSet<&str> = g.value_info.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names.len(), g.value_info.len(), "a value is declared twice");
    assert!(!names.contains(g.input[0].name.as_str()));
    assert!(!names.contains(g.output[0].name.as_str()));
}

fn ops(m: &ModelProto) -> Vec<String> {
    let g = m.graph.as_ref().expect("graph");
    g.node.iter().map(|n| n.op_type.clone()).collect()
}

fn elem_type(v: &crate::onnx::proto::ValueInfoProto) -> i32 {
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t.elem_type,
        None => 0,
    }
}

#[test]
fn onnx_flavour_uses_integer_operators_and_declares_bytes_in_int32_out() {
    for arch in [Arch::ResNet20, Arch::VggSmall, Arch::ResNet18ImageNet] {
        let model = small(arch, 4, 3);
        let e = export(&model, &ExportOptions::default()).expect("export");
        let m = decode(&e);
        check_well_formed(&m);
        assert_eq!(m.ir_version, EXPORT_IR_VERSION);
        assert_eq!(m.opset_import.len(), 1);
        assert_eq!(m.opset_import[0].version, EXPORT_OPSET);
        let g = m.graph.as_ref().expect("graph");
        assert_eq!(elem_type(&g.input[0]), 2, "uint8 image");
        assert_eq!(elem_type(&g.output[0]), 6, "int32 logits");
        let ops = ops(&m);
        let convs = model
            .nodes
            .iter()
            .filter(|n| matches!(n, Node::Conv(_)))
            .count();
        assert_eq!(ops.iter().filter(|o| *o == "ConvInteger").count(), convs);
        assert_eq!(ops.iter().filter(|o| *o == "MatMulInteger").count(), 1);
        assert!(!ops.iter().any(|o| o == "Conv" || o == "MultiThreshold"));
        let adds = model
            .nodes
            .iter()
            .filter(|n| matches!(n, Node::Add(_)))
            .count();
        assert_eq!(ops.iter().filter(|o| *o == "Mod").count(), adds);
        assert!(e.report.exact);
        assert_eq!(e.report.nodes, g.node.len());
        assert!(e.report.layers.iter().any(|l| l.op == "linear"));
    }
}

#[test]
fn qonnx_flavour_has_one_multithreshold_per_requantizer_and_fixed_shapes() {
    let model = small(Arch::ResNet20, 3, 5);
    let e = export(
        &model,
        &ExportOptions {
            flavour: Flavour::Qonnx,
            batch: Some(7),
        },
    )
    .expect("export");
    let m = decode(&e);
    check_well_formed(&m);
    assert!(m
        .opset_import
        .iter()
        .any(|o| o.domain == "qonnx.custom_op.general"));
    let g = m.graph.as_ref().expect("graph");
    let requants = model
        .nodes
        .iter()
        .filter(|n| match n {
            Node::Conv(c) => matches!(c.output, ConvOutput::Codes(_)),
            Node::Add(_) => true,
            _ => false,
        })
        .count();
    let mt: Vec<_> = g
        .node
        .iter()
        .filter(|n| n.op_type == "MultiThreshold")
        .collect();
    assert_eq!(mt.len(), requants);
    assert!(mt.iter().all(|n| n.domain == "qonnx.custom_op.general"));
    assert!(!ops(&m).iter().any(|o| o.ends_with("Integer")));
    // Every declared shape is fixed: batch 7 everywhere.
    for v in g.value_info.iter().chain(&g.input).chain(&g.output) {
        if let Some(type_proto::Value::TensorType(t)) =
            v.r#type.as_ref().and_then(|t| t.value.as_ref())
        {
            for d in &t.shape.as_ref().expect("shape").dim {
                assert!(
                    matches!(
                        d.value,
                        Some(crate::onnx::proto::tensor_shape_proto::dimension::Value::DimValue(_))
                    ),
                    "{} has a symbolic dimension",
                    v.name
                );
            }
        }
    }
    let annotated: HashSet<&str> = g
        .quantization_annotation
        .iter()
        .map(|a| a.tensor_name.as_str())
        .collect();
    assert!(annotated.contains("image"));
    assert!(mt.iter().all(|n| annotated.contains(n.output[0].as_str())));
}

#[test]
fn bad_requests_name_the_problem() {
    let model = small(Arch::VggSmall, 2, 1);
    let e = export(
        &model,
        &ExportOptions {
            flavour: Flavour::Onnx,
            batch: Some(0),
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("batch size"), "{e}");
    let mut cut = model.clone();
    cut.nodes.pop();
    let e = export(&cut, &ExportOptions::default()).unwrap_err();
    assert!(e.to_string().contains("classifier"), "{e}");
}

#[test]
fn bounds_flag_a_qonnx_file_that_float32_cannot_hold_exactly() {
    let mut model = small(Arch::VggSmall, 4, 2);
    let exact = export(
        &model,
        &ExportOptions {
            flavour: Flavour::Qonnx,
            batch: Some(1),
        },
    )
    .expect("export");
    assert!(exact.report.exact, "{:?}", exact.report.layers);
    // A bias near the int32 limit leaves float32's exact integers.
    if let Some(Node::Conv(c)) = model.nodes.get_mut(1) {
        c.bias[0] = 1 << 25;
    }
    let r = export(
        &model,
        &ExportOptions {
            flavour: Flavour::Qonnx,
            batch: Some(1),
        },
    )
    .expect("export")
    .report;
    assert!(!r.exact);
    assert!(r.layers.iter().any(|l| l.node == 1 && l.bound > 1 << 25));
    // The integer flavour stays exact.
    assert!(
        export(&model, &ExportOptions::default())
            .expect("export")
            .report
            .exact
    );
}

/// A direct (grouped, dilated) convolution of one image padded with each channel's zero point.
fn conv_zp(
    c: &ConvNode,
    ohwi: &[i8],
    x: &[u8],
    xi: TensorInfo,
    zp: &[u8],
    oi: TensorInfo,
) -> Vec<i32> {
    let (k, cg) = (c.kernel, c.c_in / c.groups);
    let mut out = vec![0; c.c_out * oi.h * oi.w];
    for o in 0..c.c_out {
        let first = o / (c.c_out / c.groups) * cg;
        for oy in 0..oi.h {
            for ox in 0..oi.w {
                let mut s = 0i32;
                for ky in 0..k {
                    for kx in 0..k {
                        for gi in 0..cg {
                            let ci = first + gi;
                            let iy =
                                (oy * c.stride + ky * c.dilation) as isize - c.padding as isize;
                            let ix =
                                (ox * c.stride + kx * c.dilation) as isize - c.padding as isize;
                            let inside =
                                iy >= 0 && ix >= 0 && (iy as usize) < xi.h && (ix as usize) < xi.w;
                            let v = if inside {
                                x[((iy as usize) * xi.w + ix as usize) * c.c_in + ci]
                            } else {
                                zp[ci]
                            };
                            s += i32::from(ohwi[((o * k + ky) * k + kx) * cg + gi]) * i32::from(v);
                        }
                    }
                }
                out[(o * oi.h + oy) * oi.w + ox] = s;
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn zero_padding_plus_the_correction_is_zero_point_padding(
        seed in any::<u64>(), k in 1usize..=4, stride in 1usize..=2, side in 3usize..=7,
        per_group in 1usize..=3, groups in 1usize..=3, mult in 1usize..=2, dilation in 1usize..=2,
    ) {
        let span = dilation * (k - 1) + 1;
        let padding = span / 2;
        let mut rng = crate::Rng::new(seed);
        let (cin, cout) = (per_group * groups, mult * groups);
        let levels: Vec<i8> = (0..cout * k * k * per_group).map(|_| (rng.next_u64() % 255) as i8).collect();
        let x: Vec<u8> = (0..side * side * cin).map(|_| rng.next_u64() as u8).collect();
        let zp: Vec<u8> = (0..cin).map(|_| rng.next_u64() as u8).collect();
        let lut: Vec<i32> = (-127..=127).collect();
        let c = ConvNode {
            input: 0, c_in: cin, c_out: cout, kernel: k, stride, padding, dilation, groups,
            weights: WeightTable::new(8, &lut, vec![0; levels.len()]).expect("table"),
            bias: vec![0; cout], weight_scale: Scale::ONE, output: ConvOutput::Accumulator,
        };
        let oside = (side + 2 * padding - span) / stride + 1;
        let xi = TensorInfo { kind: crate::integer::TensorKind::Levels, h: side, w: side, c: cin };
        let oi = TensorInfo { kind: crate::integer::TensorKind::Accumulator, h: oside, w: oside, c: cout };
        let want = conv_zp(&c, &levels, &x, xi, &zp, oi);
        let zero = conv_zp(&c, &levels, &x, xi, &vec![0; cin], oi);
        let corr = padding_correction(&c, &levels, &zp, xi, oi);
        let got: Vec<i32> = zero.iter().zip(&corr).map(|(a, b)| a + b).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn flavours_parse_by_name_and_qonnx_defaults_to_batch_one() {
    for f in [Flavour::Onnx, Flavour::Qonnx] {
        assert_eq!(f.name().parse::<Flavour>().expect("name"), f);
    }
    let e = "tflite".parse::<Flavour>().unwrap_err();
    assert!(e.to_string().contains("flavour"), "{e}");
    let model = small(Arch::VggSmall, 2, 4);
    let q = ExportOptions {
        flavour: Flavour::Qonnx,
        batch: None,
    };
    assert_eq!(export(&model, &q).expect("export").report.batch, Some(1));
    let o = export(&model, &ExportOptions::default()).expect("export");
    assert_eq!(o.report.batch, None);
}

/// A grouped convolution exports with its `group` attribute and weights of
/// `c_in / groups` input channels, in both flavours, and stays exact.
#[test]
fn grouped_convolutions_export_their_groups() {
    let mut model = small(Arch::VggSmall, 4, 6);
    let (at, groups, dims) = model
        .nodes
        .iter_mut()
        .enumerate()
        .skip(1)
        .find_map(|(i, n)| match n {
            Node::Conv(c) => {
                let g = (1..=c.c_in)
                    .rev()
                    .find(|g| c.c_in % g == 0 && c.c_out % g == 0)
                    .unwrap_or(1);
                c.groups = g;
                let k = c.kernel;
                c.weights.indices.truncate(c.c_out * k * k * c.c_in / g);
                Some((
                    i,
                    g,
                    vec![c.c_out as i64, (c.c_in / g) as i64, k as i64, k as i64],
                ))
            }
            _ => None,
        })
        .expect("a second convolution");
    assert!(groups > 1);
    model.tensor_infos().expect("a valid grouped model");
    for flavour in [Flavour::Onnx, Flavour::Qonnx] {
        let opts = ExportOptions {
            flavour,
            batch: None,
        };
        let e = export(&model, &opts).expect("export");
        let m = decode(&e);
        check_well_formed(&m);
        let g = m.graph.as_ref().expect("graph");
        let conv = g
            .node
            .iter()
            .find(|n| n.output[0] == format!("n{at}_conv_acc"))
            .expect("the grouped convolution");
        let group = conv.attribute.iter().find(|a| a.name == "group");
        assert_eq!(group.map(|a| a.i), Some(groups as i64), "{flavour:?}");
        let w = g
            .initializer
            .iter()
            .find(|t| t.name == format!("n{at}_conv_w"))
            .expect("weights");
        assert_eq!(w.dims, dims, "{flavour:?}");
    }
}

/// A dilated convolution exports with its `dilations` attribute in both flavours; the
/// others keep `[1, 1]`.
#[test]
fn dilated_convolutions_export_their_dilations() {
    let mut model = small(Arch::VggSmall, 4, 6);
    let at = model
        .nodes
        .iter_mut()
        .enumerate()
        .skip(1)
        .find_map(|(i, n)| match n {
            // Dilation 2 with the padding doubled keeps an odd kernel's output size.
            Node::Conv(c) if c.kernel % 2 == 1 => {
                c.dilation = 2;
                c.padding = c.kernel - 1;
                Some(i)
            }
            _ => None,
        })
        .expect("a second convolution");
    model.tensor_infos().expect("a valid dilated model");
    for flavour in [Flavour::Onnx, Flavour::Qonnx] {
        let opts = ExportOptions {
            flavour,
            batch: None,
        };
        let e = export(&model, &opts).expect("export");
        let m = decode(&e);
        check_well_formed(&m);
        let g = m.graph.as_ref().expect("graph");
        for (i, node) in model.nodes.iter().enumerate() {
            if !matches!(node, Node::Conv(_)) {
                continue;
            }
            let conv = g
                .node
                .iter()
                .find(|n| n.output[0] == format!("n{i}_conv_acc"))
                .expect("the convolution");
            let d = conv.attribute.iter().find(|a| a.name == "dilations");
            let want = if i == at { vec![2, 2] } else { vec![1, 1] };
            assert_eq!(
                d.map(|a| a.ints.clone()),
                Some(want),
                "{flavour:?} node {i}"
            );
        }
    }
}
