//! Error type of the layer, model and training code.

use std::path::PathBuf;

use thiserror::Error;

/// Errors from layers, models, optimisers and checkpoints.
#[derive(Debug, Error)]
pub enum NnError {
    /// A layer received an input whose shape it cannot process.
    #[error("{layer}: input shape {found:?} does not fit: {reason}")]
    InputShape {
        /// Layer kind and name.
        layer: String,
        /// The NHWC shape received.
        found: [usize; 4],
        /// What was expected.
        reason: String,
    },
    /// A gradient tensor does not match the layer's output shape.
    #[error("{layer}: gradient shape {found:?}, expected the output shape {expected:?}")]
    GradShape {
        /// Layer kind and name.
        layer: String,
        /// Expected shape.
        expected: [usize; 4],
        /// Shape received.
        found: [usize; 4],
    },
    /// `backward` was called before a `forward` in training mode, or after a shape change.
    #[error("{layer}: backward called without a matching forward pass")]
    NoForward {
        /// Layer kind and name.
        layer: String,
    },
    /// A tensor was built from data of the wrong length.
    #[error("tensor of shape {shape:?} needs {expected} values, found {found}")]
    DataLength {
        /// Requested shape.
        shape: [usize; 4],
        /// Number of values the shape needs.
        expected: usize,
        /// Number of values given.
        found: usize,
    },
    /// A label is not below the number of classes.
    #[error("label {label} at batch position {index} is not below the class count {classes}")]
    Label {
        /// The offending label.
        label: u32,
        /// Its position in the batch.
        index: usize,
        /// Number of classes of the logits.
        classes: usize,
    },
    /// An integer model whose graph is inconsistent, found before anything runs.
    #[error("integer model {}: {problem}", node.map_or_else(|| "input".to_string(), |n| format!("node {n}")))]
    InvalidModel {
        /// The node (`None`: the model input).
        node: Option<usize>,
        /// What is wrong there.
        problem: ModelProblem,
    },
    /// An integer sum that leaves the `i32` range at run time (a model whose bias pushes an
    /// accumulator or a logit past it).
    #[error("integer model node {node}: {what} overflows int32")]
    Overflow {
        /// The node.
        node: usize,
        /// The sum (e.g. `accumulator + bias`).
        what: &'static str,
    },
    /// A `.nuq` layer that lacks a table or reference the integer model needs.
    #[error("{layer}: no {what}")]
    MissingTable {
        /// Layer index and name, e.g. `layer 3 (conv3)`.
        layer: String,
        /// The table or reference (e.g. `weights`, `bias`, `thresholds`).
        what: &'static str,
    },
    /// A valid `.nuq` file uses a feature nuq's integer executor does not implement; it is
    /// refused before anything runs (see FORMAT.md, "Executor notes").
    #[error("{layer}: {field} = {value} is not supported by nuq's integer executor")]
    Unsupported {
        /// Layer index and name, e.g. `layer 3 (conv3)`.
        layer: String,
        /// The format field (as named in FORMAT.md).
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// A size computed from a model or data header does not fit the arithmetic or exceeds a
    /// documented cap.
    #[error("{what}: size too large ({detail})")]
    TooLarge {
        /// What was being sized.
        what: String,
        /// The sizes involved.
        detail: String,
    },
    /// Running the model would need more working memory than the limit allows.
    #[error(
        "the model needs about {needed} bytes of working memory for a batch of {batch}, above the limit of {limit} bytes; raise the limit if the machine has the memory"
    )]
    MemoryLimit {
        /// Bytes needed (saturating at `u64::MAX`).
        needed: u64,
        /// The limit in force.
        limit: u64,
        /// The batch size asked for.
        batch: usize,
    },
    /// A parameter outside the values allowed for it.
    #[error("{what} must be {allowed}, got {found}")]
    InvalidParameter {
        /// The parameter.
        what: String,
        /// What is allowed.
        allowed: &'static str,
        /// The value given.
        found: String,
    },
    /// Two sizes that must agree do not.
    #[error("{what}: expected {expected}, found {found}")]
    SizeMismatch {
        /// What was counted.
        what: String,
        /// The size the rest of the input implies.
        expected: usize,
        /// The size given.
        found: usize,
    },
    /// A value that must be finite is not.
    #[error("{what} {index} is not finite ({value})")]
    NonFinite {
        /// Which values.
        what: String,
        /// Position of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// Calibration saw no data.
    #[error("{0} saw no samples")]
    NoSamples(&'static str),
    /// Fitting a codebook or a scale failed in `nuq-core`.
    #[error("{what}: {source}")]
    Core {
        /// What was being fitted.
        what: String,
        /// The core error.
        source: nuq_core::Error,
    },
    /// A kernel refused its input.
    #[error("{what}: {source}")]
    Kernel {
        /// What the kernel was doing.
        what: String,
        /// The kernel error.
        source: nuq_kernels::KernelError,
    },
    /// A layer is not of the kind its position in the network requires.
    #[error("layer {layer}: expected {expected}, found {found}")]
    UnexpectedLayer {
        /// The layer's name.
        layer: String,
        /// The kind expected there.
        expected: &'static str,
        /// What is there.
        found: String,
    },
    /// No layer of that name.
    #[error("no layer named {0:?}")]
    NoSuchLayer(String),
    /// A network or layer the integer model cannot express.
    #[error("layer {layer}: {why}")]
    NoIntegerForm {
        /// The layer's name.
        layer: String,
        /// What the integer model cannot express.
        why: &'static str,
    },
    /// A quantizer used before it was calibrated.
    #[error("activation quantizer {0} is not calibrated (run calibrate first)")]
    NotCalibrated(String),
    /// A value that does not fit the integer type it is stored in.
    #[error("{what} does not fit {ty}: {value}")]
    Unrepresentable {
        /// The value's role.
        what: String,
        /// The integer type.
        ty: &'static str,
        /// The value.
        value: f64,
    },
    /// Restored optimiser state that does not fit the parameters.
    #[error("optimiser state {name:?}: {why}")]
    OptimizerState {
        /// The parameter (or state tensor) concerned.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A codebook family the quantizers cannot fit (not one of [`crate::quant::TRAINABLE`]).
    #[error("{what}: the {family} codebook family cannot be fitted (use kquantile, lloyd, apot or uniform)")]
    UntrainableFamily {
        /// What was being fitted.
        what: String,
        /// The family asked for.
        family: nuq_core::Family,
    },
    /// A name (of a schedule, a codebook family, ...) that is not one of the known ones.
    #[error("unknown {what} {found:?} ({expected})")]
    UnknownName {
        /// What was named.
        what: &'static str,
        /// The name given.
        found: String,
        /// The names accepted.
        expected: &'static str,
    },
    /// A learning rate that is not a positive finite number.
    #[error("learning rate must be positive and finite, got {0}")]
    LearningRate(f32),
    /// A pipeline step that needs training images got an empty training set.
    #[error("{0} needs training images; the training set is empty")]
    NoTrainingImages(&'static str),
    /// The training set holds fewer images than one batch.
    #[error("{images} training images are fewer than one batch of {batch}")]
    FewerThanOneBatch {
        /// Training images.
        images: usize,
        /// Images per batch.
        batch: usize,
    },
    /// Progressive bit-width stages that do not fall.
    #[error("progressive stages must be descending, got {before} before {after}")]
    StagesNotDescending {
        /// The earlier stage's bits.
        before: u8,
        /// The later stage's bits.
        after: u8,
    },
    /// A progressive stage no wider than the final bit width.
    #[error("progressive stage {stage} is not wider than the final {last} bits")]
    StageNotWider {
        /// The last stage's bits.
        stage: u8,
        /// The final bit width (the smaller of weight and activation bits).
        last: u8,
    },
    /// Progressive stages asked for without fine-tuning images to spend in them.
    #[error("progressive stages need fine-tuning images")]
    StagesWithoutFineTuning,
    /// A gradual schedule asked for without fine-tuning images to spend in its stages.
    #[error("a gradual schedule needs fine-tuning images")]
    GradualWithoutFineTuning,
    /// An integer model asked for while a gradual schedule keeps a layer in full precision
    /// (finish it with `QuantizedNetwork::finish_gradual`).
    #[error("layer {0} is still in full precision: finish the gradual schedule first")]
    GradualUnfinished(String),
    /// A gradual schedule combined with progressive bit-width stages (one or the other).
    #[error("a gradual schedule cannot be combined with progressive bit-width stages")]
    GradualWithProgressive,
    /// Images of another shape than the model takes.
    #[error("the model takes {}x{}x{} images but the dataset has {}x{}x{}", model[0], model[1], model[2], data[0], data[1], data[2])]
    ImageShape {
        /// The model's input: height, width, channels.
        model: [usize; 3],
        /// The dataset's images: height, width, channels.
        data: [usize; 3],
    },
    /// A model with fewer classes than the dataset's labels need.
    #[error("the model has {model} classes but the dataset has {data}")]
    ClassCount {
        /// Classes of the model.
        model: usize,
        /// Classes of the dataset.
        data: usize,
    },
    /// Writing a `.nuq` file failed.
    #[error(transparent)]
    Write(#[from] nuq_fpga_fmt::WriteError),
    /// A file-system operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Checkpoint reading or writing failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Importing an ONNX model failed (boxed: the error names nodes at length).
    #[error(transparent)]
    Onnx(Box<crate::onnx::OnnxError>),
}

impl From<crate::onnx::OnnxError> for NnError {
    fn from(e: crate::onnx::OnnxError) -> Self {
        NnError::Onnx(Box::new(e))
    }
}

/// Errors from reading or writing checkpoints.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// File system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid safetensors.
    #[error("{}: not a valid safetensors file: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The file's tensor names and the model's differ (after the forgiving rules of
    /// [`crate::checkpoint`]): the display lists the first [`NAMES_SHOWN`] of each kind with
    /// the counts. Either list may be empty, not both.
    #[error("{}: the tensors do not match the model: {}", path.display(), name_mismatch(missing, unexpected))]
    Names {
        /// The file.
        path: PathBuf,
        /// Names the model needs that the file lacks, sorted.
        missing: Vec<String>,
        /// Names in the file that the model does not have (as written in the file), sorted.
        unexpected: Vec<String>,
    },
    /// Two tensors of the file stand for the same model tensor once their wrapper prefixes
    /// (`module.`, `_orig_mod.`) are stripped.
    #[error("{}: tensors {first:?} and {second:?} both stand for {name:?} once the `module.`/`_orig_mod.` prefixes are stripped", path.display())]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The model's tensor name.
        name: String,
        /// The first file name.
        first: String,
        /// The second file name.
        second: String,
    },
    /// Tensors whose shape differs from the model's: the display lists the first
    /// [`NAMES_SHOWN`] with the expected and found shapes, and the count.
    #[error("{}: {}", path.display(), shape_mismatch(mismatches))]
    Shape {
        /// The file.
        path: PathBuf,
        /// Every mismatch, in the model's tensor order.
        mismatches: Vec<ShapeMismatch>,
    },
    /// A tensor has an element type that cannot be converted to what the model holds.
    #[error("{}: tensor {name:?} has dtype {found}, expected {expected}", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// Expected type(s).
        expected: String,
        /// Type in the file.
        found: String,
    },
    /// A value of a wider float type (`F64`) that does not fit `f32`.
    #[error("{}: tensor {name:?} value {value:e} at index {index} does not fit f32", path.display())]
    Range {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// Position of the value in the tensor.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A batch count (`num_batches_tracked`) that is not a whole number in the `i64` range.
    #[error("{}: tensor {name:?} holds {value}, expected a whole number of batches (an i64)", path.display())]
    Count {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// The value as stored.
        value: String,
    },
    /// A metadata entry is missing or malformed.
    #[error("{}: metadata {key:?}: {message}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// Metadata key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// How many names (or shape mismatches) a checkpoint error shows of each kind; the rest are
/// counted.
pub const NAMES_SHOWN: usize = 5;

/// A tensor whose shape in the file differs from the model's ([`CheckpointError::Shape`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// Tensor name (the model's).
    pub name: String,
    /// Shape the model needs (PyTorch layout).
    pub expected: Vec<usize>,
    /// Shape in the file.
    pub found: Vec<usize>,
}

/// The first [`NAMES_SHOWN`] of `items` joined by `, `, then `and k more` for the rest.
fn first_few(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(NAMES_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > NAMES_SHOWN {
        s.push_str(&format!(", and {} more", items.len() - NAMES_SHOWN));
    }
    s
}

fn name_mismatch(missing: &[String], unexpected: &[String]) -> String {
    let quoted = |v: &[String]| v.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "{} missing ({})",
            missing.len(),
            first_few(&quoted(missing))
        ));
    }
    if !unexpected.is_empty() {
        parts.push(format!(
            "{} unexpected ({})",
            unexpected.len(),
            first_few(&quoted(unexpected))
        ));
    }
    parts.join("; ")
}

fn shape_mismatch(mismatches: &[ShapeMismatch]) -> String {
    let items: Vec<String> = mismatches
        .iter()
        .map(|m| format!("{:?} is {:?}, expected {:?}", m.name, m.found, m.expected))
        .collect();
    format!(
        "{} tensor{} with the wrong shape: {}",
        items.len(),
        if items.len() == 1 { "" } else { "s" },
        first_few(&items)
    )
}

/// What is inconsistent in an integer model ([`NnError::InvalidModel`] names the node).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelProblem {
    /// A tensor with no element (a zero dimension).
    #[error("tensor {0} is empty")]
    EmptyTensor(String),
    /// A count that does not match the shape it belongs to.
    #[error("{found} {what}, expected {expected}")]
    Count {
        /// What was counted (e.g. `biases`, `zero points`).
        what: &'static str,
        /// The count the shape implies.
        expected: usize,
        /// The count found.
        found: usize,
    },
    /// A node reads a tensor that a later node computes.
    #[error("reads tensor {0}, which is not computed yet")]
    ForwardReference(usize),
    /// A node's input is not the kind or shape it takes.
    #[error("{op} takes {expected}, found {found}")]
    Input {
        /// The operation.
        op: &'static str,
        /// What it takes.
        expected: String,
        /// The input tensor.
        found: String,
    },
    /// A size that must be positive is zero.
    #[error("{0} must be positive")]
    NotPositive(&'static str),
    /// A convolution's channel group count that is zero or does not divide both its input
    /// and its output channels.
    #[error("{groups} channel groups do not divide {c_in} input and {c_out} output channels")]
    Groups {
        /// The group count.
        groups: usize,
        /// Input channels.
        c_in: usize,
        /// Output channels.
        c_out: usize,
    },
    /// A window larger than its padded input.
    #[error("{op} window {kernel} does not fit {positions} positions padded by {padding}")]
    Window {
        /// The operation.
        op: &'static str,
        /// Window side (for a dilated convolution the positions its kernel spans,
        /// `dilation·(kernel − 1) + 1`).
        kernel: usize,
        /// Input positions along the axis.
        positions: usize,
        /// Padding on each side.
        padding: usize,
    },
    /// A max-pool padded by more than half its window (a window could then cover padding
    /// only).
    #[error("max-pool padding {padding} exceeds half the {kernel}-wide window")]
    PoolPadding {
        /// Window side.
        kernel: usize,
        /// Padding on each side.
        padding: usize,
    },
    /// A residual join's main-branch shift above 30.
    #[error("add shift {0} exceeds 30")]
    ShiftTooLarge(u8),
    /// A weight codebook whose grid is not a signed grid of at most 8 bits (the integer
    /// kernels multiply `i8` levels).
    #[error("weight levels on a {bits}-bit {} grid; the integer model needs a signed grid of at most 8 bits", if *signed { "signed" } else { "unsigned" })]
    WeightGrid {
        /// Grid width.
        bits: u8,
        /// Whether the grid is signed.
        signed: bool,
    },
    /// A weight index past its codebook.
    #[error("weight index {index} at {position} is out of range")]
    WeightIndex {
        /// The index.
        index: u8,
        /// Its position in the weight table.
        position: usize,
    },
    /// An output codebook without one level per code (`2^bits`) on an unsigned grid of at
    /// most 8 bits.
    #[error("output codebook needs {expected} levels on an unsigned grid of at most 8 bits, found {found:?}")]
    OutputLevels {
        /// `2^bits`.
        expected: usize,
        /// The levels.
        found: Vec<i32>,
    },
    /// The last node does not produce logits.
    #[error("must end with a linear classifier")]
    NoClassifier,
}
