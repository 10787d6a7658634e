//! The append-only enumerations of the format: section kinds, layer operations, element types
//! and weight tile orders; codebook kinds and threshold directions are `nuq-core`'s
//! ([`CodebookKind`] is [`nuq_core::Family`]), encoded as their `u8` code.
//!
//! Numeric values are frozen: a later minor version may only add new values.

use core::fmt;

macro_rules! wire_enum {
    (
        $(#[$doc:meta])* $name:ident : $repr:ty {
            $( $(#[$vdoc:meta])* $variant:ident = $value:literal => $text:literal, )+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr($repr)]
        pub enum $name {
            $( $(#[$vdoc])* $variant = $value, )+
        }

        impl $name {
            /// Every value this version of the format defines, in numeric order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The value for a raw on-disk code, or `None` when this version does not define it.
            pub const fn from_raw(raw: $repr) -> Option<Self> {
                match raw {
                    $( $value => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// The raw on-disk code.
            pub const fn raw(self) -> $repr {
                self as $repr
            }

            /// The spec's name of this value (as printed in reports).
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum! {
    /// The kind of a section (field `kind` of a section-table entry, `u32`).
    SectionKind: u32 {
        /// The layer graph.
        Graph = 1 => "GRAPH",
        /// Codebooks: integer levels on a fixed grid.
        Codebooks = 2 => "CODEBOOKS",
        /// Packed weight indices in hardware words.
        Weights = 3 => "WEIGHTS",
        /// Bias vectors (`i32`).
        Biases = 4 => "BIASES",
        /// MAC-threshold tables (`i32` per channel).
        Thresholds = 5 => "THRESHOLDS",
        /// Scales (`f32`) with their hardware forms.
        Scales = 6 => "SCALES",
        /// Producer, producer version and free key/value pairs.
        Metadata = 7 => "METADATA",
        /// Per-channel fixed-point factors of aligned residual joins (format 1.1).
        Aligns = 8 => "ALIGNS",
        /// Per-channel input zero points (format 1.1).
        ZeroPoints = 9 => "ZERO_POINTS",
    }
}

impl SectionKind {
    /// The minor version of format 1.x that introduced this kind. A file declaring an older
    /// minor version treats a section of this kind as unknown (skipped).
    pub const fn since_minor(self) -> u16 {
        match self {
            SectionKind::Aligns | SectionKind::ZeroPoints => 1,
            _ => 0,
        }
    }

    /// The kind for a raw code in a file declaring minor version `minor`, or `None` when that
    /// version does not define it.
    pub const fn from_raw_in(raw: u32, minor: u16) -> Option<Self> {
        match SectionKind::from_raw(raw) {
            Some(k) if k.since_minor() <= minor => Some(k),
            _ => None,
        }
    }
}

wire_enum! {
    /// The operation of a layer (field `op` of a layer record, `u16`).
    LayerOp: u16 {
        /// A model input: no inputs, its output shape is the input's shape.
        Input = 1 => "input",
        /// 2-D convolution with packed weights.
        Conv2d = 2 => "conv2d",
        /// Fully connected layer with packed weights.
        Linear = 3 => "linear",
        /// 2-D max pooling.
        MaxPool2d = 4 => "maxpool2d",
        /// 2-D average pooling.
        AvgPool2d = 5 => "avgpool2d",
        /// Global average pooling to `[c, 1, 1]`.
        GlobalAvgPool = 6 => "global_avgpool",
        /// Element-wise sum of two inputs of equal shape (residual connection).
        Add = 7 => "add",
        /// Reshape `[c, h, w]` to `[c*h*w, 1, 1]`.
        Flatten = 8 => "flatten",
        /// Rectified linear unit.
        Relu = 9 => "relu",
        /// Residual join of an accumulator and a shortcut brought to its units by per-channel
        /// fixed-point factors, then requantized by thresholds (format 1.1).
        AlignedAdd = 10 => "aligned_add",
        /// A model input whose codes have per-channel zero points (format 1.1).
        InputZp = 11 => "input_zp",
    }
}

impl LayerOp {
    /// The minor version of format 1.x that introduced this op. A file declaring an older minor
    /// version cannot use it (an older reader would refuse it).
    pub const fn since_minor(self) -> u16 {
        match self {
            LayerOp::AlignedAdd | LayerOp::InputZp => 1,
            _ => 0,
        }
    }

    /// The op for a raw code in a file declaring minor version `minor`, or `None` when that
    /// version does not define it.
    pub const fn from_raw_in(raw: u16, minor: u16) -> Option<Self> {
        match LayerOp::from_raw(raw) {
            Some(op) if op.since_minor() <= minor => Some(op),
            _ => None,
        }
    }

    /// Whether the op is a model input (`input` or `input_zp`).
    pub const fn is_input(self) -> bool {
        matches!(self, LayerOp::Input | LayerOp::InputZp)
    }
}

/// How a codebook's levels were designed (field `kind` of a codebook record, `u8`;
/// informational: the levels themselves are stored explicitly) — `nuq-core`'s
/// [`Family`](nuq_core::Family), whose one-byte codes are the format's: 0 custom, 1 uniform,
/// 2 power_of_two, 3 apot, 4 mu_law, 5 k_quantile, 6 lloyd_max, 7 nf4, 8 iq4_nl.
pub use nuq_core::Family as CodebookKind;

wire_enum! {
    /// The element type of a codebook's level list (field `elem_type`, `u8`).
    ElementType: u8 {
        /// Little-endian `i16`.
        I16 = 1 => "i16",
        /// Little-endian `i32`.
        I32 = 2 => "i32",
    }
}

impl ElementType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            ElementType::I16 => 2,
            ElementType::I32 => 4,
        }
    }
}

wire_enum! {
    /// The order in which a weight tensor's elements are packed into words (field `order`, `u8`).
    TileOrder: u8 {
        /// Elements in row-major order of the tensor's dimensions, packed as one continuous
        /// stream of words.
        Flat = 0 => "flat",
        /// Elements in row-major order, but each output channel (index of dimension 0) starts
        /// a new word: channel `o` occupies words `o*R .. (o+1)*R`, `R = ceil(row_len / lanes)`.
        RowPerOutput = 1 => "row_per_output",
    }
}

/// How a channel's accumulator maps to an output code through its thresholds (one byte per
/// channel, `u8`: 0 rising, 1 falling) — `nuq-core`'s [`Direction`],
/// the one convention every nuq crate uses.
pub use nuq_core::Direction;
