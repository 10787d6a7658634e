//! The crate's error type.

/// Everything that can go wrong in `nuq-core`.
///
/// Every variant names the offending parameter, position or value, so a message alone is enough
/// to find the problem.
///
/// ```
/// use nuq_core::{Error, Grid};
/// let err = Grid::new(1, true).unwrap_err();
/// assert_eq!(err, Error::InvalidGridBits { bits: 1 });
/// assert_eq!(err.to_string(), "grid width must be 2..=16 bits, found 1");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A grid width outside `2..=16`.
    #[error("grid width must be 2..=16 bits, found {bits}")]
    InvalidGridBits {
        /// The rejected width.
        bits: u8,
    },
    /// An index width outside `1..=8`.
    #[error("index width must be 1..=8 bits, found {bits}")]
    InvalidIndexBits {
        /// The rejected width.
        bits: u8,
    },
    /// A codebook family does not exist at this index width.
    #[error("{family} codebooks support {supported} bits, found {bits}")]
    UnsupportedBits {
        /// The codebook family.
        family: &'static str,
        /// The rejected index width.
        bits: u8,
        /// The widths the family supports, in words.
        supported: &'static str,
    },
    /// A codebook family does not exist with this polarity.
    #[error("{family} codebooks do not support {polarity} levels")]
    UnsupportedPolarity {
        /// The codebook family.
        family: &'static str,
        /// The rejected polarity, in words.
        polarity: &'static str,
    },
    /// A codebook was given no levels.
    #[error("a codebook needs at least one level")]
    NoLevels,
    /// More levels than `2^bits` indices can address.
    #[error("{levels} levels do not fit {bits}-bit indices (at most {max})")]
    TooManyLevels {
        /// Number of levels given.
        levels: usize,
        /// Index width.
        bits: u8,
        /// `2^bits`.
        max: usize,
    },
    /// Levels must be strictly increasing.
    #[error("level {index} is {found}, not greater than the previous level {previous}")]
    LevelsNotIncreasing {
        /// Position of the offending level.
        index: usize,
        /// The level before it.
        previous: i32,
        /// The offending level.
        found: i32,
    },
    /// The levels of a stored table ([`Codebook::table`](crate::Codebook::table)) must not
    /// decrease.
    #[error("level {index} is {found}, below the previous level {previous}")]
    LevelsDecreasing {
        /// Position of the offending level.
        index: usize,
        /// The level before it.
        previous: i32,
        /// The offending level.
        found: i32,
    },
    /// A level lies outside the grid.
    #[error("level {index} is {level}, outside the grid range {min}..={max}")]
    LevelOffGrid {
        /// Position of the offending level.
        index: usize,
        /// The offending level.
        level: i32,
        /// Smallest grid value.
        min: i32,
        /// Largest grid value.
        max: i32,
    },
    /// The grid is too coarse to hold the family's levels distinctly (or exactly).
    #[error("{family} codebook at {bits} bits does not fit distinctly on the {grid} grid")]
    GridTooCoarse {
        /// The codebook family.
        family: &'static str,
        /// The index width.
        bits: u8,
        /// The grid.
        grid: crate::Grid,
    },
    /// Signed levels were asked for on an unsigned grid.
    #[error("{family} codebook with signed levels needs a signed grid, found {grid}")]
    SignedLevelsOnUnsignedGrid {
        /// The codebook family.
        family: &'static str,
        /// The grid.
        grid: crate::Grid,
    },
    /// A numeric parameter outside its valid range.
    #[error("parameter `{name}` is {value}, expected {expected}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// A NaN or infinite input value.
    #[error("value at index {index} is {value}, expected a finite number")]
    NonFinite {
        /// Position of the first non-finite value.
        index: usize,
        /// The value (NaN, inf or -inf).
        value: f32,
    },
    /// A sample weight that is negative or not finite.
    #[error("weight at index {index} is {weight}, expected a finite number >= 0")]
    InvalidWeight {
        /// Position of the offending weight.
        index: usize,
        /// The weight.
        weight: f32,
    },
    /// Values and weights differ in length.
    #[error("{values} values but {weights} weights")]
    WeightCountMismatch {
        /// Number of values.
        values: usize,
        /// Number of weights.
        weights: usize,
    },
    /// A data-fitted codebook or calibration was given no data (or only zero weights).
    #[error("no data with positive weight to fit")]
    EmptyData,
    /// A scale that is not a positive, finite, normal `f32`.
    #[error("scale is {value}, expected a positive finite normal number")]
    InvalidScale {
        /// The rejected scale.
        value: f64,
    },
    /// A real multiplier outside what a fixed-point multiplier can represent.
    #[error("multiplier {value} is outside the fixed-point range ({min}, {max})")]
    MultiplierOutOfRange {
        /// The rejected value.
        value: f64,
        /// Bound below the representable values.
        min: f64,
        /// Bound above the representable values.
        max: f64,
    },
    /// A fixed-point right shift above [`FixedPointMultiplier::MAX_SHIFT`](crate::FixedPointMultiplier::MAX_SHIFT).
    #[error("fixed-point shift {shift} is outside 0..={max}")]
    ShiftOutOfRange {
        /// The rejected shift.
        shift: u8,
        /// The largest shift.
        max: u8,
    },
    /// The number of elements does not match the shape.
    #[error("shape {shape:?} holds {expected} elements, found {found}")]
    ShapeMismatch {
        /// The shape.
        shape: alloc::vec::Vec<usize>,
        /// Its element count.
        expected: usize,
        /// Elements supplied.
        found: usize,
    },
    /// The shape's element count overflows `usize`.
    #[error("shape {shape:?} has more elements than usize can count")]
    ShapeOverflow {
        /// The shape.
        shape: alloc::vec::Vec<usize>,
    },
    /// Per-channel scales do not match the number of channels (the first dimension).
    #[error("{channels} channels (first dimension) but {scales} scales")]
    ChannelCountMismatch {
        /// Channels in the tensor.
        channels: usize,
        /// Scales supplied.
        scales: usize,
    },
    /// An index that addresses no level of the codebook.
    #[error("index {index} at position {position} addresses no level (codebook has {levels})")]
    IndexOutOfRange {
        /// Position of the offending index.
        position: usize,
        /// The index.
        index: u8,
        /// Number of levels.
        levels: usize,
    },
    /// A packed buffer of the wrong size.
    #[error("{count} indices of {bits} bits pack into {expected} bytes, found {found}")]
    PackedLengthMismatch {
        /// Number of indices.
        count: usize,
        /// Index width.
        bits: u8,
        /// Bytes needed.
        expected: usize,
        /// Bytes supplied.
        found: usize,
    },
    /// Padding bits after the last index are not zero.
    #[error("padding bits of the last packed byte are not zero (byte {byte:#04x})")]
    NonZeroPadding {
        /// The last byte.
        byte: u8,
    },
    /// Two slices that must be equally long are not (input vs output, original vs
    /// reconstruction).
    #[error("expected {expected} elements, found {found}")]
    LengthMismatch {
        /// Elements needed.
        expected: usize,
        /// Elements supplied.
        found: usize,
    },
    /// Index widths of two objects that must agree differ.
    #[error("indices are {found} bits wide, the codebook uses {expected}")]
    IndexBitsMismatch {
        /// The codebook's index width.
        expected: u8,
        /// The indices' width.
        found: u8,
    },
    /// A threshold table without channels.
    #[error("a threshold table needs at least one channel")]
    NoChannels,
    /// A threshold table of the wrong length for its channels and bits.
    #[error("{channels} channels of {bits}-bit codes need {expected} thresholds, found {found}")]
    ThresholdCount {
        /// Channels (directions given).
        channels: usize,
        /// Code bits.
        bits: u8,
        /// `channels × (2^bits − 1)`.
        expected: usize,
        /// Thresholds given.
        found: usize,
    },
    /// A channel's thresholds are not stored ascending.
    #[error("threshold {index} of channel {channel} is {value}, below the previous {previous}")]
    ThresholdsNotAscending {
        /// Channel.
        channel: usize,
        /// Position within the channel.
        index: usize,
        /// The out-of-order value.
        value: i32,
        /// The value before it.
        previous: i32,
    },
}

/// `Result` with this crate's [`Error`].
///
/// ```
/// fn half(x: f32) -> nuq_core::Result<nuq_core::Scale> {
///     nuq_core::Scale::new(x / 2.0)
/// }
/// assert!(half(1.0).is_ok());
/// ```
pub type Result<T> = core::result::Result<T, Error>;
