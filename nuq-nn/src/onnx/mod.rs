//! ONNX import: float CNNs as `torch.onnx.export` writes them, as a nuq [`Network`].
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
//! | `Conv` (2-D, group 1, no dilation, symmetric pads, optional bias) | [`Conv2d`](crate::Conv2d) |
//! | `BatchNormalization` (inference form) | [`BatchNorm2d`](crate::BatchNorm2d) |
//! | `Relu` | fused into the batch-norm before it, else [`Relu`](crate::Relu) |
//! | `MaxPool` (square, equal pads, floor rounding) | [`MaxPool2d`](crate::MaxPool2d) |
//! | `GlobalAveragePool`, `AveragePool` whose window is the whole map | [`GlobalAvgPool`](crate::GlobalAvgPool) |
//! | `Flatten` (axis 1), `Reshape` to `[N, -1]` | [`Flatten`](crate::Flatten) |
//! | `Gemm`, `MatMul` (+ `Add` of a bias vector) | [`Linear`](crate::Linear) |
//! | a value read by two branches that meet in `Add`, then `Relu` | [`BasicBlock`](crate::BasicBlock) (main branch and identity or projection shortcut) |
//! | `Identity`, inference `Dropout`, `Constant` | nothing (pass-through or folded) |
//!
//! A `Reshape` target computed from the input's shape (`Shape`, `Gather`, `Unsqueeze`,
//! `Concat`, as `x.view(x.size(0), -1)` exports) is evaluated with the batch size symbolic.
//! Refused, among others: `Clip` (ReLU6: nuq has no clipped ReLU), grouped and depthwise
//! convolutions, windowed average pools, `Concat` of activations, and standard operator
//! sets older than [`OPSET_MIN`] or newer than [`OPSET_MAX`].
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
mod graph;
mod import;
mod proto;
mod walk;

use std::path::Path;

use prost::Message;

pub use error::{NodeRef, OnnxError};
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
