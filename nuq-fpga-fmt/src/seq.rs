//! Memory images for a layer **sequencer**: one descriptor per layer plus every table of the
//! model concatenated per kind, so a hardware state machine walks the whole network from
//! read-only memories (the reference datapath in the repository's `rtl/` directory does).
//!
//! | image | one line holds | contents |
//! |---|---|---|
//! | `seq_layers` | a 32-bit word | a 32-word header, then 32 words per layer ([`Field`]) |
//! | `seq_weights` | a `W`-bit word | every `weights<i>` image, one after another (lane 0 low) |
//! | `seq_levels` | an 8-bit level | every codebook's levels, two's complement |
//! | `seq_thresholds` | a 32-bit threshold | every threshold table, channel-major |
//! | `seq_dirs` | a direction bit | every threshold table's directions (1 = falling) |
//! | `seq_bias` | a 32-bit bias | every bias vector |
//! | `seq_align_mul` / `seq_align_shift` | a 32-bit multiplier / a 6-bit shift | every ALIGNS table |
//! | `seq_zp` | an 8-bit code | every ZERO_POINTS table |
//!
//! Tensors live in two on-chip buffers the descriptors address by element: `u8` values
//! (activation levels, with a twin buffer of codes at the same addresses) and `i32` values
//! (accumulators before a residual join, logits). Every layer gets its own region (a
//! `flatten` aliases its input), all NHWC. The header ([`Header`]) gives the sizes a
//! sequencer must provide.

use crate::enums::{Direction, LayerOp};
use crate::memory::{memories, MemoryError, MemoryImage};
use crate::reader::NuqFile;
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

/// Words per descriptor (the header has as many).
pub const DESCRIPTOR_WORDS: usize = 32;
/// `seq_layers` header word 0.
pub const MAGIC: u32 = 0x4E55_5153;
/// Descriptor layout version (header word 1).
pub const VERSION: u32 = 1;
/// "No reference" in a descriptor field.
pub const NONE: u32 = u32::MAX;

/// Header words of `seq_layers` (word index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Header {
    /// [`MAGIC`].
    Magic = 0,
    /// [`VERSION`].
    Version = 1,
    /// Number of layer descriptors.
    Layers = 2,
    /// Elements of the `u8` activation buffer (and of its code twin).
    ActBytes = 3,
    /// Elements of the `i32` buffer.
    AccWords = 4,
    /// Words of `seq_weights`.
    WeightWords = 5,
    /// Lines of `seq_levels`.
    Levels = 6,
    /// Lines of `seq_thresholds`.
    Thresholds = 7,
    /// Lines of `seq_dirs`.
    Dirs = 8,
    /// Lines of `seq_bias`.
    Biases = 9,
    /// Lines of `seq_align_mul` and `seq_align_shift`.
    Aligns = 10,
    /// Lines of `seq_zp`.
    ZeroPoints = 11,
    /// Bits per `seq_weights` word.
    WordBits = 12,
    /// `u8` address of the input image.
    InputBase = 13,
    /// Bytes of one input image.
    InputLen = 14,
    /// `i32` address of the logits.
    LogitsBase = 15,
    /// Number of logits.
    LogitsLen = 16,
    /// CRC-32C of the `.nuq` file the images come from.
    ModelCrc = 17,
}

/// Descriptor words of one layer (word index within its 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Field {
    /// Layer op (format §5 values).
    Op = 0,
    /// Weight index bits.
    WeightBits = 1,
    /// Output code bits (0: not requantized).
    ActBits = 2,
    /// Address of input 0 (element, in the buffer [`Field::In0I32`] names).
    In0Base = 3,
    /// 1 when input 0 is in the `i32` buffer.
    In0I32 = 4,
    /// Address of input 1 or [`NONE`].
    In1Base = 5,
    /// 1 when input 1 is in the `i32` buffer.
    In1I32 = 6,
    /// Address of the output.
    OutBase = 7,
    /// 1 when the output is in the `i32` buffer.
    OutI32 = 8,
    /// Input channels.
    InC = 9,
    /// Input height.
    InH = 10,
    /// Input width.
    InW = 11,
    /// Output channels.
    OutC = 12,
    /// Output height.
    OutH = 13,
    /// Output width.
    OutW = 14,
    /// Kernel height (a `linear` layer: the input height).
    Kh = 15,
    /// Kernel width (a `linear` layer: the input width).
    Kw = 16,
    /// Vertical stride.
    Sh = 17,
    /// Horizontal stride.
    Sw = 18,
    /// Top padding.
    PadTop = 19,
    /// Left padding.
    PadLeft = 20,
    /// First word of the layer's weights in `seq_weights`.
    WeightBase = 21,
    /// Words per output channel (each output channel starts a new word).
    WordsPerRow = 22,
    /// First line of the weight codebook in `seq_levels`.
    WeightCodebook = 23,
    /// First line of the bias in `seq_bias`, or [`NONE`].
    Bias = 24,
    /// First line of the thresholds in `seq_thresholds`, or [`NONE`].
    Thresholds = 25,
    /// First line of the directions in `seq_dirs`.
    Dirs = 26,
    /// First line of the output codebook in `seq_levels`, or [`NONE`] (code = level).
    ActCodebook = 27,
    /// First line of the alignment factors, or [`NONE`].
    Align = 28,
    /// Left shift of the main accumulator of an `aligned_add`.
    MainShift = 29,
    /// First line of the input's zero points in `seq_zp` (padding codes), or [`NONE`] (pad 0).
    PadZeroPoint = 30,
    /// First line of the input layer's codebook (decodes the padding code), or [`NONE`].
    InCodebook = 31,
}

/// Why the sequencer images could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeqError {
    /// A per-table image failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// A layer the sequencer does not execute.
    #[error("layer {layer} ({name}): {what}")]
    Unsupported {
        /// Layer index.
        layer: u32,
        /// Layer name.
        name: String,
        /// What is not supported.
        what: String,
    },
}

/// The sequencer images of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqImages {
    /// The images, `seq_layers` first.
    pub images: Vec<MemoryImage>,
    /// Per layer: the index of its tensor in `nuq vectors` (input 0, then one per executed
    /// layer; `None` for a `flatten`, which aliases its input).
    pub vector_index: Vec<Option<usize>>,
}

fn words(name: &str, bits: u32, values: impl IntoIterator<Item = u64>) -> MemoryImage {
    let nbytes = bits.div_ceil(8) as usize;
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    MemoryImage {
        name: name.into(),
        word_bits: bits,
        lane_bits: bits,
        words: values
            .into_iter()
            .map(|v| (v & mask).to_le_bytes()[..nbytes].to_vec())
            .collect(),
    }
}

fn twos(v: i32) -> u64 {
    u64::from(v as u32)
}

/// Builds the sequencer images of `file` with `word_bits`-bit weight words.
///
/// # Errors
/// [`SeqError::Unsupported`] for a layer op, window or codebook the sequencer does not
/// execute (dilation, groups, ops without an integer form, levels wider than 8 bits);
/// [`SeqError::Memory`] when a weight lane does not fit the word.
pub fn seq_images(file: &NuqFile<'_>, word_bits: u32) -> Result<SeqImages, SeqError> {
    let per_table = memories(file, word_bits)?;
    // Weights: concatenate the per-tensor images (same packing, same words).
    let mut weight_base = Vec::new();
    let mut weight_words: Vec<Vec<u8>> = Vec::new();
    for i in 0..file.weights().len() {
        let name = format!("weights{i}");
        weight_base.push(weight_words.len() as u32);
        if let Some(m) = per_table.iter().find(|m| m.name == name) {
            weight_words.extend(m.words.iter().cloned());
        }
    }
    let mut levels = Vec::new();
    let mut cb_base = Vec::new();
    for c in file.codebooks().iter() {
        cb_base.push(levels.len() as u32);
        levels.extend(c.levels());
    }
    let mut thr = Vec::new();
    let mut dirs = Vec::new();
    let mut thr_base = Vec::new();
    let mut dir_base = Vec::new();
    for t in file.thresholds().iter() {
        thr_base.push(thr.len() as u32);
        dir_base.push(dirs.len() as u32);
        thr.extend(t.values().iter().map(|v| v.get()));
        dirs.extend(
            (0..t.channels()).map(|c| u64::from(t.direction(c) == Some(Direction::Falling))),
        );
    }
    let mut bias = Vec::new();
    let mut bias_base = Vec::new();
    for b in file.biases().iter() {
        bias_base.push(bias.len() as u32);
        bias.extend(b.iter().map(|v| v.get()));
    }
    let mut mul = Vec::new();
    let mut shift = Vec::new();
    let mut align_base = Vec::new();
    let mut main_shift = Vec::new();
    for a in file.aligns().iter() {
        align_base.push(mul.len() as u32);
        main_shift.push(u32::from(a.main_shift()));
        mul.extend(a.multipliers().iter().map(|v| v.get()));
        shift.extend(a.shifts().iter().map(|&s| u64::from(s)));
    }
    let mut zp = Vec::new();
    let mut zp_base = Vec::new();
    for z in file.zero_points().iter() {
        zp_base.push(zp.len() as u32);
        zp.extend(z.values().iter().map(|&v| u64::from(v)));
    }

    let graph = file.graph();
    let n = graph.len() as usize;
    let mut desc = vec![0u32; DESCRIPTOR_WORDS * (n + 1)];
    // Where each layer's output lives: (base, is_i32).
    let mut place: Vec<(u32, bool)> = Vec::with_capacity(n);
    let mut act_top = 0u64;
    let mut acc_top = 0u64;
    let mut vector_index = Vec::with_capacity(n);
    let mut next_vec = 0usize;
    let opt = |o: Option<u32>, base: &[u32]| {
        o.and_then(|i| base.get(i as usize).copied())
            .unwrap_or(NONE)
    };
    let mut input_base = NONE;
    let mut input_len = 0u32;
    let mut logits = (NONE, 0u32);
    for (li, l) in graph.iter().enumerate() {
        let unsupported = |what: String| SeqError::Unsupported {
            layer: li as u32,
            name: l.name().into(),
            what,
        };
        let op = l.op();
        let [oc, oh, ow] = l.out_shape();
        let len = u64::from(oc) * u64::from(oh) * u64::from(ow);
        let ins: Vec<u32> = l.inputs().collect();
        let d = &mut desc[DESCRIPTOR_WORDS * (li + 1)..DESCRIPTOR_WORDS * (li + 2)];
        let set = |d: &mut [u32], f: Field, v: u32| d[f as usize] = v;
        set(d, Field::Op, u32::from(op.raw()));
        set(d, Field::WeightBits, u32::from(l.weight_bits()));
        set(d, Field::ActBits, u32::from(l.act_bits()));
        for f in [
            Field::In0Base,
            Field::In1Base,
            Field::WeightCodebook,
            Field::Bias,
            Field::Thresholds,
            Field::Dirs,
            Field::ActCodebook,
            Field::Align,
            Field::PadZeroPoint,
            Field::InCodebook,
            Field::WeightBase,
        ] {
            set(d, f, NONE);
        }
        set(d, Field::OutC, oc);
        set(d, Field::OutH, oh);
        set(d, Field::OutW, ow);
        let src = |k: usize| -> Result<(u32, bool, [u32; 3], u32), SeqError> {
            let i = *ins
                .get(k)
                .ok_or_else(|| unsupported(format!("input {k} missing")))?;
            let (b, w) = place[i as usize];
            let p = graph
                .get(i)
                .ok_or_else(|| unsupported("bad input".into()))?;
            Ok((b, w, p.out_shape(), i))
        };
        let out_i32;
        match op {
            LayerOp::Input | LayerOp::InputZp => {
                out_i32 = false;
                if input_base != NONE {
                    return Err(unsupported("a second model input".into()));
                }
                input_base = act_top as u32;
                input_len = len as u32;
            }
            LayerOp::Flatten => {
                let (b, w, _, _) = src(0)?;
                place.push((b, w));
                vector_index.push(None);
                set(d, Field::In0Base, b);
                set(d, Field::In0I32, u32::from(w));
                set(d, Field::OutBase, b);
                set(d, Field::OutI32, u32::from(w));
                continue;
            }
            LayerOp::Conv2d
            | LayerOp::Linear
            | LayerOp::MaxPool2d
            | LayerOp::GlobalAvgPool
            | LayerOp::AlignedAdd => {
                let (b0, w0, mut shape, i0) = src(0)?;
                if op == LayerOp::Linear {
                    // Read through a flatten: the window is the flattened tensor's shape.
                    let p = graph
                        .get(i0)
                        .ok_or_else(|| unsupported("bad input".into()))?;
                    if p.op() == LayerOp::Flatten {
                        let g = p.inputs().next().unwrap_or(0);
                        shape = graph.get(g).map_or(shape, |x| x.out_shape());
                    }
                }
                set(d, Field::In0Base, b0);
                set(d, Field::In0I32, u32::from(w0));
                set(d, Field::InC, shape[0]);
                set(d, Field::InH, shape[1]);
                set(d, Field::InW, shape[2]);
                match op {
                    LayerOp::Conv2d | LayerOp::MaxPool2d => {
                        if l.dilation() != [1, 1] || l.groups() != 1 {
                            return Err(unsupported("dilation and groups must be 1".into()));
                        }
                        let [kh, kw] = l.kernel();
                        let [sh, sw] = l.stride();
                        let [pt, pl, _, _] = l.padding();
                        if op == LayerOp::MaxPool2d
                            && (pt != 0 || pl != 0 || l.padding()[2] != 0 || l.padding()[3] != 0)
                        {
                            return Err(unsupported("max-pool padding is not supported".into()));
                        }
                        set(d, Field::Kh, kh);
                        set(d, Field::Kw, kw);
                        set(d, Field::Sh, sh);
                        set(d, Field::Sw, sw);
                        set(d, Field::PadTop, pt);
                        set(d, Field::PadLeft, pl);
                    }
                    LayerOp::Linear => {
                        set(d, Field::Kh, shape[1]);
                        set(d, Field::Kw, shape[2]);
                        set(d, Field::Sh, 1);
                        set(d, Field::Sw, 1);
                    }
                    _ => {}
                }
                if w0 && op != LayerOp::AlignedAdd {
                    return Err(unsupported("reads an accumulator tensor".into()));
                }
                if matches!(op, LayerOp::Conv2d | LayerOp::Linear) {
                    let wi = l
                        .weights()
                        .ok_or_else(|| unsupported("no weights".into()))?;
                    let wt = file
                        .weights()
                        .get(wi)
                        .ok_or_else(|| unsupported("bad weights".into()))?;
                    let mut p = wt.packing();
                    p.word_bits = word_bits;
                    set(d, Field::WeightBase, weight_base[wi as usize]);
                    set(d, Field::WordsPerRow, p.words_per_row() as u32);
                    set(d, Field::WeightCodebook, opt(l.weight_codebook(), &cb_base));
                    set(d, Field::Bias, opt(l.bias(), &bias_base));
                    // Padding code of the input and the codebook that decodes it.
                    let inp = graph
                        .get(i0)
                        .ok_or_else(|| unsupported("bad input".into()))?;
                    if let Some(z) = inp.zero_point() {
                        set(d, Field::PadZeroPoint, opt(Some(z), &zp_base));
                        set(d, Field::InCodebook, opt(inp.act_codebook(), &cb_base));
                    }
                }
                if op == LayerOp::AlignedAdd {
                    let (b1, w1, _, _) = src(1)?;
                    set(d, Field::In1Base, b1);
                    set(d, Field::In1I32, u32::from(w1));
                    let a = l
                        .align()
                        .ok_or_else(|| unsupported("no ALIGNS table".into()))?;
                    set(d, Field::Align, opt(Some(a), &align_base));
                    set(
                        d,
                        Field::MainShift,
                        main_shift.get(a as usize).copied().unwrap_or(0),
                    );
                }
                out_i32 = l.act_bits() == 0 && matches!(op, LayerOp::Conv2d | LayerOp::Linear);
            }
            other => {
                return Err(unsupported(format!(
                    "op {} has no integer form the sequencer executes",
                    other.name()
                )))
            }
        }
        set(d, Field::Thresholds, opt(l.thresholds(), &thr_base));
        set(d, Field::Dirs, opt(l.thresholds(), &dir_base));
        set(d, Field::ActCodebook, opt(l.act_codebook(), &cb_base));
        if let Some(cb) = l.act_codebook().and_then(|c| file.codebooks().get(c)) {
            if cb.grid_bits() > 8 || cb.signed() {
                return Err(unsupported(
                    "activation levels must be unsigned 8-bit".into(),
                ));
            }
        }
        if let Some(cb) = l.weight_codebook().and_then(|c| file.codebooks().get(c)) {
            if cb.grid_bits() > 8 || !cb.signed() {
                return Err(unsupported("weight levels must be signed 8-bit".into()));
            }
        }
        let base = if out_i32 {
            let b = acc_top;
            acc_top += len;
            b
        } else {
            let b = act_top;
            act_top += len;
            b
        };
        if base + len > u64::from(u32::MAX >> 1) {
            return Err(unsupported(
                "tensors exceed the 2^31-element buffers".into(),
            ));
        }
        place.push((base as u32, out_i32));
        set(d, Field::OutBase, base as u32);
        set(d, Field::OutI32, u32::from(out_i32));
        vector_index.push(Some(next_vec));
        next_vec += 1;
        if op == LayerOp::Linear && out_i32 {
            logits = (base as u32, len as u32);
        }
    }
    if input_base == NONE || logits.0 == NONE {
        return Err(SeqError::Unsupported {
            layer: 0,
            name: String::new(),
            what: "the model needs an input layer and a linear classifier".into(),
        });
    }
    let h = &mut desc[..DESCRIPTOR_WORDS];
    h[Header::Magic as usize] = MAGIC;
    h[Header::Version as usize] = VERSION;
    h[Header::Layers as usize] = n as u32;
    h[Header::ActBytes as usize] = act_top as u32;
    h[Header::AccWords as usize] = acc_top as u32;
    h[Header::WeightWords as usize] = weight_words.len() as u32;
    h[Header::Levels as usize] = levels.len() as u32;
    h[Header::Thresholds as usize] = thr.len() as u32;
    h[Header::Dirs as usize] = dirs.len() as u32;
    h[Header::Biases as usize] = bias.len() as u32;
    h[Header::Aligns as usize] = mul.len() as u32;
    h[Header::ZeroPoints as usize] = zp.len() as u32;
    h[Header::WordBits as usize] = word_bits;
    h[Header::InputBase as usize] = input_base;
    h[Header::InputLen as usize] = input_len;
    h[Header::LogitsBase as usize] = logits.0;
    h[Header::LogitsLen as usize] = logits.1;
    h[Header::ModelCrc as usize] = file.file_crc();

    let images = vec![
        words("seq_layers", 32, desc.iter().map(|&v| u64::from(v))),
        MemoryImage {
            name: "seq_weights".into(),
            word_bits,
            lane_bits: word_bits,
            words: weight_words,
        },
        words("seq_levels", 8, levels.iter().map(|&v| u64::from(v as u8))),
        words("seq_thresholds", 32, thr.iter().map(|&v| twos(v))),
        words("seq_dirs", 1, dirs),
        words("seq_bias", 32, bias.iter().map(|&v| twos(v))),
        words("seq_align_mul", 32, mul.iter().map(|&v| twos(v))),
        words("seq_align_shift", 6, shift),
        words("seq_zp", 8, zp),
    ];
    Ok(SeqImages {
        images,
        vector_index,
    })
}

/// Reads descriptor word `f` of layer `layer` from the `seq_layers` words.
pub fn field(layers: &[u32], layer: usize, f: Field) -> Option<u32> {
    layers
        .get(DESCRIPTOR_WORDS * (layer + 1) + f as usize)
        .copied()
}

/// Reads header word `h` from the `seq_layers` words.
pub fn header(layers: &[u32], h: Header) -> Option<u32> {
    layers.get(h as usize).copied()
}
