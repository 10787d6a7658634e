//! ONNX in and out: float CNNs as `torch.onnx.export` writes them imported as a nuq
//! [`Network`], and integer models exported ([`export`]) as ONNX graphs ONNX Runtime runs
//! exactly or as QONNX graphs with FINN's `MultiThreshold` (see [`Flavour`]).
//!
//! [`import`] reads a `.onnx` file (protobuf, decoded with `prost` against the subset of the
//! ONNX schema in `proto/onnx_subset.proto`), walks its graph from the image input to the
//! score output and builds nuq's layers, converting every convolution kernel once from
//! ONNX's `[c_out][c_in][kh][kw]` to nuq's OHWI layout. What nuq's layers express is
//! imported; anything else is refused with [`OnnxError`] naming the node (its position in
//! the file, its name and operator) — a node is never skipped.
//!
//! | ONNX | nuq |
//! |---|---|
//! | `Conv` (2-D, any `group` dividing both channel counts — grouped and depthwise —, any `dilations`, symmetric pads, optional bias) | [`Conv2d`](crate::Conv2d) with [`groups`](crate::Conv2dConfig::groups) and [`dilation`](crate::Conv2dConfig::dilation) |
//! | `BatchNormalization` (inference form) | [`BatchNorm2d`](crate::BatchNorm2d) |
//! | `Relu` | fused into the batch-norm before it, else [`Relu`](crate::Relu) |
//! | `Clip` with min 0 and max 6 (PyTorch's `ReLU6`; bounds as attributes before opset 11, as constant inputs from 11 on) | fused into the batch-norm before it ([`BatchNorm2d::relu6`](crate::BatchNorm2d::relu6)), else [`Relu6`](crate::Relu6) |
//! | `MaxPool` (square, equal pads, floor rounding) | [`MaxPool2d`](crate::MaxPool2d) |
//! | `GlobalAveragePool`, `AveragePool` whose window is the whole map | [`GlobalAvgPool`](crate::GlobalAvgPool) |
//! | `Flatten` (axis 1), `Reshape` to `[N, -1]` | [`Flatten`](crate::Flatten) |
//! | `Gemm`, `MatMul` (+ `Add` of a bias vector) | [`Linear`](crate::Linear) |
//! | a value read by two branches that meet in `Add`, then `Relu` | a residual [`Graph`](crate::Graph) ([`Graph::residual`](crate::Graph::residual): a main branch of any length — a bottleneck's three convolutions, a nested residual block — and the identity or a projection shortcut) |
//! | the same `Add` with no `Relu` after it (MobileNet-V2's inverted residual) | [`Graph::linear_residual`](crate::Graph::linear_residual): trains and evaluates in float; the fold into the integer model refuses it (the sum can be negative, activation codes are unsigned) |
//! | `Identity`, inference `Dropout`, `Constant` | nothing (pass-through or folded) |
//!
//! A `Reshape` target computed from the input's shape (`Shape`, `Gather`, `Unsqueeze`,
//! `Concat`, as `x.view(x.size(0), -1)` exports) is evaluated with the batch size symbolic.
//! Refused, among others: any other `Clip` (a clipped activation other than ReLU6), dilated
//! pooling, windowed average pools, `Concat` of activations, a value read by more than two
//! branches, and standard operator sets older than [`OPSET_MIN`] or newer than
//! [`OPSET_MAX`].
//!
//! **Batch-norm folded by the exporter.** `torch.onnx.export` in its default evaluation mode
//! folds each BN into the convolution before it (the convolution gains a bias). nuq's
//! quantizer folds every convolution together with the batch-norm after it, so the importer
//! follows such a convolution with a unit [`BatchNorm2d`](crate::BatchNorm2d) (γ = 1,
//! β = 0, running mean 0, variance 1 − ε): the identity in evaluation, reported in
//! [`ImportedNetwork::origins`]. Fine-tuning (`Mode::Train`) normalises with batch
//! statistics, so a unit batch-norm then starts to act; export with
//! `training=torch.onnx.TrainingMode.PRESERVE` to keep the real BN nodes.
//!
//! ```no_run
//! use nuq_nn::{onnx, Mode, Tensor};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut imported = onnx::import(std::path::Path::new("resnet18.onnx"))?;
//! let [h, w] = [imported.network.config().input_size.0, imported.network.config().input_size.1];
//! let x = Tensor::zeros([1, h, w, imported.network.config().in_channels]);
//! let logits = imported.network.forward(&x, Mode::Eval)?;
//! println!("{} classes", logits.shape()[3]);
//! # Ok(())
//! # }
//! ```

mod error;
mod export;
mod graph;
mod import;
mod proto;
mod walk;

use std::path::Path;

use prost::Message;

pub use error::{NodeRef, OnnxError};
pub use export::{
    export, export_file, AccumulatorBound, ExportOptions, ExportReport, Exported, Flavour,
    EXPORT_IR_VERSION, EXPORT_OPSET,
};
pub use graph::{OPSET_MAX, OPSET_MIN};

use crate::models::{Arch, ModelConfig, Network, MAX_CLASSES, MAX_INPUT_SIDE, MAX_IN_CHANNELS};
use graph::{Dim, Graph};
use walk::{Act, Walker};

/// Where a layer of an imported network came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerOrigin {
    /// The layer's name in the network (its parameters are `<layer>.weight`, …).
    pub layer: String,
    /// The ONNX node's name.
    pub node: String,
    /// The ONNX operator.
    pub op: String,
    /// Set when the layer was added rather than read (the unit batch-norm after a
    /// convolution whose BN the exporter folded).
    pub note: Option<&'static str>,
}

/// A float network read from an ONNX file.
pub struct ImportedNetwork {
    /// The network; its [`ModelConfig`] has [`Arch::Onnx`], width 1, and the input shape and
    /// class count of the file.
    pub network: Network,
    /// Every layer with the node it came from, in network order.
    pub origins: Vec<LayerOrigin>,
    /// The standard operator set version of the file.
    pub opset: i64,
    /// The program that wrote the file (`producer_name producer_version`).
    pub producer: String,
}

/// Reads the ONNX file at `path` as a float network.
///
/// # Errors
/// [`OnnxError::Io`] when the file cannot be read; otherwise as [`import_bytes`].
pub fn import(path: &Path) -> Result<ImportedNetwork, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.display().to_string(),
        source,
    })?;
    import_bytes(&bytes)
}

/// Whether `bytes` (the start of a file) look like an ONNX model rather than a safetensors
/// checkpoint: a protobuf message starting with field 1 (`ir_version`), as every ONNX writer
/// puts it first. A hint for choosing a reader, not a validation.
pub fn looks_like_onnx(bytes: &[u8]) -> bool {
    let safetensors = bytes.len() > 8 && bytes[8] == b'{';
    bytes.first() == Some(&0x08) && !safetensors
}

fn fixed(d: &Dim) -> Option<usize> {
    match d {
        Dim::Fixed(v) if *v > 0 => usize::try_from(*v).ok(),
        _ => None,
    }
}

/// Reads an ONNX model from memory as a float network.
///
/// # Errors
/// [`OnnxError::Decode`] or [`OnnxError::NoGraph`] for bytes that are not an ONNX model;
/// [`OnnxError::Opset`], [`OnnxError::UnsupportedOp`], [`OnnxError::Structure`] and
/// [`OnnxError::Unreached`] for a graph nuq's layers cannot express;
/// [`OnnxError::Interface`], [`OnnxError::BadValue`], [`OnnxError::Input`] and
/// [`OnnxError::Tensor`] for malformed inputs, attributes or constants.
pub fn import_bytes(bytes: &[u8]) -> Result<ImportedNetwork, OnnxError> {
    let model = proto::ModelProto::decode(bytes)?;
    let g = Graph::read(model)?;
    let dims = &g.input_dims;
    let shown = || {
        dims.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (c, h, w) = match dims.as_slice() {
        [_, c, h, w] => match (fixed(c), fixed(h), fixed(w)) {
            (Some(c), Some(h), Some(w)) => (c, h, w),
            _ => {
                return Err(OnnxError::Interface {
                    what: "input",
                    problem: format!(
                        "{:?} has shape [{}]; nuq needs fixed channels, height and width (export without dynamic spatial axes)",
                        g.input,
                        shown()
                    ),
                })
            }
        },
        _ => {
            return Err(OnnxError::Interface {
                what: "input",
                problem: format!(
                    "{:?} has shape [{}]; nuq reads an image batch [N, C, H, W]",
                    g.input,
                    shown()
                ),
            })
        }
    };
    if c > MAX_IN_CHANNELS || h > MAX_INPUT_SIDE || w > MAX_INPUT_SIDE {
        return Err(OnnxError::Interface {
            what: "input",
            problem: format!("[N, {c}, {h}, {w}] exceeds nuq's limits ({MAX_IN_CHANNELS} channels, {MAX_INPUT_SIDE} pixels a side)"),
        });
    }
    let batch = fixed(&dims[0]).map(|b| b as i64);
    let mut walker = Walker::new(&g, Act::Map { c, h, w }, batch);
    let (ops, end, _) = walker.chain(&g.input, false)?;
    if let Some(i) = (0..g.nodes.len()).find(|&i| !walker.used[i] && !g.folded[i]) {
        return Err(OnnxError::Unreached {
            node: walk::node_ref(&g, i),
        });
    }
    if ops.is_empty() {
        return Err(OnnxError::Interface {
            what: "output",
            problem: "the graph has no layers".into(),
        });
    }
    let classes = match walker.act(&end) {
        Act::Flat(k) | Act::Map { c: k, h: 1, w: 1 } => k,
        other => {
            return Err(OnnxError::Interface {
                what: "output",
                problem: format!(
                    "{:?} has shape {other}; nuq's networks end in class scores [N, classes]",
                    g.output
                ),
            })
        }
    };
    if classes > MAX_CLASSES {
        return Err(OnnxError::Interface {
            what: "output",
            problem: format!("{classes} classes exceed nuq's limit of {MAX_CLASSES}"),
        });
    }
    if let Some(k) = g.output_dims.get(1).and_then(fixed) {
        if k != classes || g.output_dims.len() != 2 {
            return Err(OnnxError::Interface {
                what: "output",
                problem: format!(
                    "declared with {} axes and {k} classes, but the layers compute [N, {classes}]",
                    g.output_dims.len()
                ),
            });
        }
    }
    let mut lower = import::Lower::new(&g);
    let body = lower.seq("", ops)?;
    let config = ModelConfig {
        arch: Arch::Onnx,
        width: 1.0,
        in_channels: c,
        classes,
        input_size: (h, w),
    };
    let network = Network::from_body(config, body)?;
    Ok(ImportedNetwork {
        network,
        origins: lower.origins,
        opset: g.opset,
        producer: g.producer.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::proto::{
        attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
        ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
        ValueInfoProto,
    };
    use super::*;
    use crate::{Mode, Tensor};

    fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
        let dim = dims
            .iter()
            .map(|&d| tensor_shape_proto::Dimension {
                value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
            })
            .collect();
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: 1,
                    shape: Some(TensorShapeProto { dim }),
                })),
            }),
        }
    }

    fn floats(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: 1,
            float_data: v.to_vec(),
            ..Default::default()
        }
    }

    fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            ints: v.to_vec(),
            r#type: AttributeType::Ints as i32,
            ..Default::default()
        }
    }

    fn node(name: &str, op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            name: name.into(),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    /// input [1, 1, 4, 4] → `nodes` → `output`, with a 2×1×3×3 conv weight `w`, a 2-vector
    /// `b` and a classifier `fc` [3, 2] available as initializers.
    fn model(nodes: Vec<NodeProto>, extra: Vec<TensorProto>, opset: i64) -> Vec<u8> {
        let mut initializer = vec![
            floats(
                "w",
                &[2, 1, 3, 3],
                &[
                    0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, 0.9, -0.1, 0.2, 0.3, -0.4, 0.5, 0.6,
                    0.7, -0.8, 0.9,
                ],
            ),
            floats("b", &[2], &[0.05, -0.05]),
            floats("fc", &[3, 2], &[1.0, -1.0, 0.5, 0.25, -0.5, 2.0]),
        ];
        initializer.extend(extra);
        let out = nodes.last().unwrap().output[0].clone();
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            graph: Some(GraphProto {
                node: nodes,
                initializer,
                input: vec![value("x", &[1, 1, 4, 4])],
                output: vec![value(&out, &[])],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// Conv (bias, BN folded) → Relu → GlobalAveragePool → Flatten → Gemm (transB 1).
    fn good_nodes() -> Vec<NodeProto> {
        vec![
            node("c", "Conv", &["x", "w", "b"], "c1"),
            node("r", "Relu", &["c1"], "r1"),
            node("p", "GlobalAveragePool", &["r1"], "p1"),
            node("f", "Flatten", &["p1"], "f1"),
            NodeProto {
                attribute: vec![AttributeProto {
                    name: "transB".into(),
                    i: 1,
                    r#type: AttributeType::Int as i32,
                    ..Default::default()
                }],
                ..node("g", "Gemm", &["f1", "fc"], "y")
            },
        ]
    }

    fn import_err(bytes: &[u8]) -> OnnxError {
        match import_bytes(bytes) {
            Ok(_) => panic!("imported"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_hand_built_chain_imports_and_runs() {
        let mut m = import_bytes(&model(good_nodes(), vec![], 13)).unwrap();
        assert_eq!(m.network.config().classes, 3);
        let y = m
            .network
            .forward(&Tensor::zeros([1, 4, 4, 1]), Mode::Eval)
            .unwrap();
        // Zero input: conv output = bias, ReLU, mean = relu(bias) = [0.05, 0]; logits = fc·that.
        let f = [1.0, -1.0, 0.5, 0.25, -0.5, 2.0];
        for (o, &v) in y.data().iter().enumerate() {
            assert!((v - 0.05 * f[o * 2]).abs() < 1e-6, "{o}: {v}");
        }
        // Without transB the [3, 2] weight is [in, out]: 3 inputs do not fit 2 features.
        let mut nodes = good_nodes();
        nodes[4].attribute.clear();
        assert!(matches!(
            import_err(&model(nodes, vec![], 13)),
            OnnxError::BadValue { .. }
        ));
    }

    /// A `group` that does not divide the channels (here 2 groups of a 1-channel input) is a
    /// bad value naming the node; grouped convolutions themselves are imported (fixtures).
    #[test]
    fn conv_group_that_does_not_divide_the_channels_is_refused_naming_the_node() {
        for group in [2, 0, -1] {
            let mut nodes = good_nodes();
            nodes[0].attribute.push(AttributeProto {
                name: "group".into(),
                i: group,
                r#type: AttributeType::Int as i32,
                ..Default::default()
            });
            let e = import_err(&model(nodes, vec![], 17));
            let OnnxError::BadValue { node, what, .. } = &e else {
                panic!("{e}")
            };
            assert_eq!(
                (node.index, node.count, node.name.as_str(), node.op.as_str()),
                (0, 5, "c", "Conv")
            );
            assert_eq!(what, "attribute group");
            assert!(
                e.to_string().starts_with("graph.node[0] of 5 (Conv \"c\")"),
                "{e}"
            );
        }
    }

    #[test]
    fn asymmetric_padding_is_refused() {
        let mut nodes = good_nodes();
        nodes[0].attribute.push(ints_attr("pads", &[1, 1, 0, 0]));
        assert!(matches!(
            import_err(&model(nodes, vec![], 17)),
            OnnxError::UnsupportedOp { .. }
        ));
    }

    #[test]
    fn dilations_are_imported_and_checked() {
        // Dilation 2 with padding 2: the 3×3 kernel spans 5×5 of the padded 8×8 input.
        let mut nodes = good_nodes();
        nodes[0].attribute.push(ints_attr("dilations", &[2, 2]));
        nodes[0].attribute.push(ints_attr("pads", &[2, 2, 2, 2]));
        let mut m = import_bytes(&model(nodes, vec![], 17)).unwrap();
        let y = m
            .network
            .forward(&Tensor::zeros([1, 4, 4, 1]), Mode::Eval)
            .unwrap();
        assert_eq!(y.shape(), [1, 1, 1, 3]);
        // Unpadded, the dilated window (5×5) does not fit the 4×4 input; a zero dilation is
        // a bad value.
        for (d, what) in [([2, 2], "W"), ([0, 1], "attribute dilations")] {
            let mut nodes = good_nodes();
            nodes[0].attribute.push(ints_attr("dilations", &d));
            let e = import_err(&model(nodes, vec![], 17));
            let OnnxError::BadValue { what: w, .. } = &e else {
                panic!("{e}")
            };
            assert_eq!(w, what, "{e}");
        }
    }

    #[test]
    fn a_node_off_the_path_is_refused_not_dropped() {
        // A Relu of a constant: read by nothing on the path, so it would silently vanish.
        let mut nodes = good_nodes();
        nodes.insert(1, node("stray", "Relu", &["b"], "unused"));
        let e = import_err(&model(nodes, vec![], 17));
        let OnnxError::Unreached { node: at } = &e else {
            panic!("{e}")
        };
        assert_eq!((at.index, at.name.as_str()), (1, "stray"));
        // A side branch that ends nowhere.
        let mut nodes = good_nodes();
        nodes.insert(2, node("side", "Relu", &["r1"], "dead"));
        assert!(matches!(
            import_err(&model(nodes, vec![], 17)),
            OnnxError::Structure { .. }
        ));
    }

    #[test]
    fn an_operator_without_a_layer_is_refused() {
        let mut nodes = good_nodes();
        nodes[1].op_type = "Sigmoid".into();
        let e = import_err(&model(nodes, vec![], 17));
        let OnnxError::UnsupportedOp { node, reason } = &e else {
            panic!("{e}")
        };
        assert_eq!((node.index, node.op.as_str()), (1, "Sigmoid"));
        assert!(reason.contains("no nuq layer"), "{reason}");
    }

    #[test]
    fn old_opsets_and_external_data_are_refused() {
        assert!(matches!(
            import_err(&model(good_nodes(), vec![], 9)),
            OnnxError::Opset { found: 9, .. }
        ));
        let mut ext = floats("w", &[2, 1, 3, 3], &[]);
        ext.data_location = 1;
        let mut bytes = model(good_nodes(), vec![], 13);
        // The conv weight stored in an external file.
        let mut m = ModelProto::decode(bytes.as_slice()).unwrap();
        m.graph.as_mut().unwrap().initializer[0] = ext;
        bytes = m.encode_to_vec();
        assert!(matches!(import_err(&bytes), OnnxError::Tensor { .. }));
    }

    #[test]
    fn half_precision_weights_read_as_their_f32_values() {
        let w: Vec<f32> = (0..18).map(|i| (i as f32 - 9.0) / 8.0).collect();
        let raw: Vec<u8> = w
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        let t = TensorProto {
            name: "w16".into(),
            dims: vec![2, 1, 3, 3],
            data_type: 10,
            raw_data: raw,
            ..Default::default()
        };
        let c = graph::decode_tensor("w16", &t).unwrap();
        assert_eq!(c.floats().unwrap(), w.as_slice());
        let mut short = t.clone();
        short.raw_data.pop();
        assert!(matches!(
            graph::decode_tensor("w16", &short),
            Err(OnnxError::Tensor { .. })
        ));
    }

    #[test]
    fn reshape_other_than_flatten_is_refused() {
        let shape = TensorProto {
            name: "shape".into(),
            dims: vec![3],
            data_type: 7,
            int64_data: vec![1, 2, -1],
            ..Default::default()
        };
        let mut nodes = good_nodes();
        nodes[3] = node("rs", "Reshape", &["p1", "shape"], "f1");
        let e = import_err(&model(nodes, vec![shape], 17));
        let OnnxError::UnsupportedOp { node, reason } = &e else {
            panic!("{e}")
        };
        assert_eq!(node.op, "Reshape");
        assert!(reason.contains("[1, 2, -1]"), "{reason}");
    }
}
