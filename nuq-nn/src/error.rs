//! Error type of the layer, model and training code.

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
    /// An invalid configuration value (layer, model, optimiser or schedule).
    #[error("invalid configuration: {0}")]
    Config(String),
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
    /// Checkpoint reading or writing failed.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
}
