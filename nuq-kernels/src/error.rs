//! The error type shared by every kernel.

use thiserror::Error;

/// Why a kernel refused its input. Kernels never panic on bad input and never return
/// numbers they cannot vouch for: a shape mismatch or an accumulator that could overflow
/// `i32` is reported here instead (threshold tables arrive checked, as `nuq-core`'s
/// `MacThresholds`).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// A slice is shorter than the shape it is used with requires.
    #[error("{what}: slice holds {found} elements, the shape needs at least {expected}")]
    SliceTooShort {
        /// Which argument.
        what: &'static str,
        /// Elements the shape needs.
        expected: usize,
        /// Elements the slice holds.
        found: usize,
    },
    /// Two arguments disagree about a dimension.
    #[error("{what}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// Which dimension.
        what: &'static str,
        /// Value implied by the other arguments.
        expected: usize,
        /// Value given.
        found: usize,
    },
    /// A parameter lies outside the range a kernel supports.
    #[error("{what} = {value} is not supported: {allowed}")]
    Unsupported {
        /// Which parameter.
        what: &'static str,
        /// The offending value.
        value: i64,
        /// What is allowed.
        allowed: &'static str,
    },
    /// `K × max|w| × max|a|` exceeds `i32::MAX`, so an `i32` accumulator could overflow.
    #[error(
        "accumulator could overflow i32: k = {k} × max|w| = {max_w} × max|a| = {max_a} = {bound} > {}",
        i32::MAX
    )]
    AccumulatorOverflow {
        /// Reduction length.
        k: usize,
        /// Largest weight magnitude.
        max_w: u32,
        /// Largest activation magnitude (as fed to the multiplier).
        max_a: u32,
        /// Their product.
        bound: u128,
    },
    /// An index in a packed codebook tensor does not address an entry of its codebook.
    #[error("index {index} at output channel {channel}, k = {k} exceeds the {bits}-bit range")]
    IndexOutOfRange {
        /// Output channel.
        channel: usize,
        /// Reduction position.
        k: usize,
        /// The index found.
        index: u8,
        /// Index width in bits.
        bits: u8,
    },
    /// A convolution's `accumulator + bias` leaves the `i32` range.
    #[error("accumulator + bias overflows int32")]
    BiasOverflow,
    /// A convolution was handed an output buffer of the other kind than it was compiled
    /// for (levels or `i32`).
    #[error("convolution output: expected a buffer of {expected}")]
    OutputKind {
        /// The kind the convolution writes.
        expected: &'static str,
    },
    /// The kernel path asked for cannot run on this CPU.
    #[error("kernel path {path} is not available on this CPU")]
    PathUnavailable {
        /// The path's name.
        path: &'static str,
    },
    /// `NUQ_KERNEL` or a path name could not be parsed.
    #[error("unknown kernel path {name:?}: expected scalar, portable, avx2, avxvnni or avx512")]
    UnknownPath {
        /// The text given.
        name: String,
    },
    /// An entry of a [`crate::Tuning`] text could not be parsed or is out of range.
    #[error("tuning entry {entry:?}: expected {expected}")]
    BadTuning {
        /// The entry as given.
        entry: String,
        /// What it may be.
        expected: &'static str,
    },
    /// [`crate::Tuning::install`] after the kernels already run with another tuning.
    #[error(
        "the kernels already run with tuning {current}: install a tuning before they first run"
    )]
    TuningInUse {
        /// The tuning in use.
        current: String,
    },
}

/// [`KernelError::SliceTooShort`] unless a slice of `found` elements holds `expected`.
pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    found: usize,
) -> Result<(), KernelError> {
    match found < expected {
        true => Err(KernelError::SliceTooShort {
            what,
            expected,
            found,
        }),
        false => Ok(()),
    }
}

/// [`KernelError::ShapeMismatch`] unless `found == expected`.
pub(crate) fn check_eq(
    what: &'static str,
    expected: usize,
    found: usize,
) -> Result<(), KernelError> {
    match found == expected {
        true => Ok(()),
        false => Err(KernelError::ShapeMismatch {
            what,
            expected,
            found,
        }),
    }
}

/// [`KernelError::ShapeMismatch`] unless `found ≥ expected`.
pub(crate) fn check_min(
    what: &'static str,
    expected: usize,
    found: usize,
) -> Result<(), KernelError> {
    check_eq(what, expected, found.min(expected))
}
