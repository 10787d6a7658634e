//! ONNX export of an [`IntegerModel`]: the integer network as a graph other tools run.
//!
//! Two flavours ([`Flavour`]):
//!
//! - **ONNX** (standard operators, opset [`EXPORT_OPSET`]): exact integer arithmetic, so
//!   ONNX Runtime computes the very logits nuq does. Input `image` is `uint8 [N, C, H, W]`
//!   (the raw bytes; the normalisation is folded into the first layer), output `logits` is
//!   `int32 [N, classes]`. A convolution is `ConvInteger` (weights offset by 128 to `uint8`
//!   with zero point 128) plus its bias; a requantizer counts reached thresholds —
//!   `Unsqueeze`, `GreaterOrEqual` against `int64 [C, 1, 1, K]`, `Cast`, `ReduceSum` — and
//!   decodes the code through its level table with `Gather`; a residual join aligns the
//!   shortcut with `int64` `Mul`, `Add` and a floor division (`Mod` with `fmod = 0`, `Sub`,
//!   `Div`); max-pooling is `MaxPool` on bytes; global average pooling is `ReduceSum`,
//!   `Add`, `Div` in `int32`; the classifier is `MatMulInteger` plus bias.
//! - **QONNX** (FINN's conventions): every tensor is a float container holding integers,
//!   with `finn_datatype` annotations (`UINT8` image and levels, `INT8` weights, `UINT<b>`
//!   codes). Convolutions are float `Conv` over the integer levels, the classifier a
//!   `double` `MatMul` (output `logits` in `double`); each requantizer is one `MultiThreshold` (domain
//!   `qonnx.custom_op.general`) on the accumulator in `double` (qonnx computes it in numpy,
//!   which returns `float64`), followed by the level table (`Gather`) where the codebook is
//!   not the identity. The batch size is fixed, as qonnx's executor needs every shape.
//!
//! Both flavours follow nuq's direction convention by negating the falling channels'
//! accumulators and thresholds, so every channel counts `x >= T`; the model input's padding
//! (each channel's zero point, where the ONNX convolution pads with zero) becomes a constant
//! added per output position. The float containers are exact while every accumulator stays
//! below 2^24 in magnitude (`f32`) and every aligned shortcut product and logit below 2^53 (`f64`):
//! [`ExportReport::layers`] gives the worst case per layer from the weights, biases and
//! level tables, and [`ExportReport::exact`] says whether the file is exact for every input.
//!
//! ```
//! use nuq_nn::integer::random::{random_model, RandomModelSpec};
//! use nuq_nn::models::Arch;
//! use nuq_nn::onnx::{export, ExportOptions, Flavour};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut spec = RandomModelSpec::cifar(Arch::ResNet20, 4);
//! spec.config.width = 0.25;
//! let model = random_model(&spec, 1)?;
//! let onnx = export(&model, &ExportOptions::default())?;
//! assert!(onnx.report.exact);
//! let qonnx = export(&model, &ExportOptions { flavour: Flavour::Qonnx, batch: Some(1) })?;
//! assert!(qonnx.bytes.len() > 1000);
//! # Ok(())
//! # }
//! ```

mod builder;
mod lower;

use prost::Message;

use super::proto::{ModelProto, OperatorSetIdProto, StringStringEntryProto};
use crate::integer::IntegerModel;
use crate::NnError;
use builder::value_info;
use lower::{Lower, QONNX_DOMAIN};

/// The standard operator set version the exporter writes.
pub const EXPORT_OPSET: i64 = 17;

/// The ONNX IR version written (the one of opset 17).
pub const EXPORT_IR_VERSION: i64 = 8;

/// Which operators the exported graph uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flavour {
    /// Standard ONNX integer operators, exact in ONNX Runtime.
    #[default]
    Onnx,
    /// QONNX: float containers, `MultiThreshold` requantizers, datatype annotations.
    Qonnx,
}

impl std::str::FromStr for Flavour {
    type Err = NnError;

    /// `"onnx"` or `"qonnx"`.
    fn from_str(s: &str) -> Result<Self, NnError> {
        match s {
            "onnx" => Ok(Flavour::Onnx),
            "qonnx" => Ok(Flavour::Qonnx),
            other => Err(NnError::InvalidParameter {
                what: "the export flavour".into(),
                allowed: "\"onnx\" or \"qonnx\"",
                found: format!("{other:?}"),
            }),
        }
    }
}

impl Flavour {
    /// `"onnx"` or `"qonnx"`.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Onnx => "onnx",
            Flavour::Qonnx => "qonnx",
        }
    }
}

/// How to export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// The operators to use.
    pub flavour: Flavour,
    /// A fixed batch size, or `None`: a symbolic one (`N`) for [`Flavour::Onnx`], 1 for
    /// [`Flavour::Qonnx`] (qonnx's executor needs every shape fixed).
    pub batch: Option<usize>,
}

/// The largest accumulator magnitude a layer can reach on any input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccumulatorBound {
    /// The integer model's node.
    pub node: usize,
    /// `"conv"`, `"add"` (the aligned shortcut product `|b| · M`) or `"linear"`.
    pub op: &'static str,
    /// The bound, from the weights, biases and level tables.
    pub bound: u64,
    /// The largest magnitude the flavour's arithmetic holds exactly there: 2^31 for the
    /// integer operators (nuq's own `int32`), 2^24 for a QONNX `f32` convolution, 2^53 for
    /// QONNX's `f64` classifier and joins.
    pub limit: u64,
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportReport {
    /// The flavour.
    pub flavour: Flavour,
    /// The batch dimension written (`None`: symbolic).
    pub batch: Option<usize>,
    /// ONNX nodes in the graph.
    pub nodes: usize,
    /// Bytes of constants (weights, thresholds, tables).
    pub constant_bytes: u64,
    /// The worst-case accumulator of every convolution, residual join and classifier.
    pub layers: Vec<AccumulatorBound>,
    /// Whether the file computes nuq's logits exactly for every input: every bound below
    /// its limit. The integer flavour always is for a model nuq runs; a QONNX file whose
    /// convolutions could pass 2^24 is exact only where the actual accumulators stay below.
    pub exact: bool,
}

/// An exported model.
#[derive(Clone, Debug)]
pub struct Exported {
    /// The serialized `ModelProto`.
    pub bytes: Vec<u8>,
    /// What it holds.
    pub report: ExportReport,
}

/// Exports `model` as an ONNX (or QONNX) model.
///
/// # Errors
/// [`NnError::InvalidModel`] or [`NnError::TooLarge`] from [`IntegerModel::tensor_infos`]
/// for a model that is not a valid integer graph; [`NnError::InvalidParameter`] for a batch
/// size of 0.
pub fn export(model: &IntegerModel, options: &ExportOptions) -> Result<Exported, NnError> {
    let infos = model.tensor_infos()?;
    if options.batch == Some(0) {
        return Err(NnError::InvalidParameter {
            what: "the export's batch size".into(),
            allowed: "at least 1 (or symbolic)",
            found: "0".into(),
        });
    }
    let batch = options
        .batch
        .or((options.flavour == Flavour::Qonnx).then_some(1));
    let mut l = Lower::new(model, infos, options.flavour, batch.map(|b| b as i64));
    let input = l.input();
    for i in 0..model.nodes.len() {
        l.node(i);
    }
    let output = l
        .values
        .last()
        .cloned()
        .expect("the model has a classifier");
    let Lower { b, bounds, .. } = l;
    let exact = bounds.iter().all(|b| b.bound < b.limit);
    let nodes = b.nodes.len();
    let constant_bytes = b.constant_bytes;
    // The graph's input and output are declared there, not among the value infos.
    let declared = b
        .value_info
        .into_iter()
        .filter(|v| v.name != input.name && v.name != output.name)
        .collect();
    let graph = super::proto::GraphProto {
        node: b.nodes,
        name: "nuq_integer_model".into(),
        initializer: b.initializers,
        input: vec![value_info(&input)],
        output: vec![value_info(&output)],
        value_info: declared,
        quantization_annotation: b.annotations,
    };
    let mut opset_import = vec![OperatorSetIdProto {
        domain: String::new(),
        version: EXPORT_OPSET,
    }];
    if options.flavour == Flavour::Qonnx {
        opset_import.push(OperatorSetIdProto {
            domain: QONNX_DOMAIN.into(),
            version: 1,
        });
    }
    let meta = |k: &str, v: String| StringStringEntryProto {
        key: k.into(),
        value: v,
    };
    let proto = ModelProto {
        ir_version: EXPORT_IR_VERSION,
        producer_name: "nuq".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: "org.nuq".into(),
        model_version: 1,
        doc_string: format!(
            "nuq integer model ({} flavour): input 'image' holds raw image bytes [N, C, H, W]; \
             output 'logits' is the integer logits (real logit = {} x logits)",
            options.flavour.name(),
            model.logit_scale.get()
        ),
        graph: Some(graph),
        opset_import,
        metadata_props: vec![
            meta("nuq.flavour", options.flavour.name().into()),
            meta("nuq.logit_scale", model.logit_scale.get().to_string()),
        ],
    };
    Ok(Exported {
        bytes: proto.encode_to_vec(),
        report: ExportReport {
            flavour: options.flavour,
            batch,
            nodes,
            constant_bytes,
            layers: bounds,
            exact,
        },
    })
}

/// Exports `model` ([`export`]) and writes the file to `path` atomically (a temporary file
/// renamed into place: a failed run leaves no partial file).
///
/// # Errors
/// Those of [`export`]; [`NnError::Io`] when the file cannot be written.
pub fn export_file(
    path: &std::path::Path,
    model: &IntegerModel,
    options: &ExportOptions,
) -> Result<ExportReport, NnError> {
    let e = export(model, options)?;
    nuq_fpga_fmt::write_atomic(path, &e.bytes).map_err(|source| NnError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(e.report)
}

#[cfg(test)]
mod tests;
