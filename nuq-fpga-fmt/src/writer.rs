//! The deterministic writer: the same [`Model`] always gives the same bytes. Every file it
//! produces is read back by [`NuqFile::parse`] before it is returned or written, so the writer
//! can never emit a file the reader rejects.

use crate::enums::SectionKind;
use crate::layout::*;
use crate::le::{U16Le, U32Le, U64Le};
use crate::model::{AlignTable, Codebook, Layer, Model, WeightTensor, ZeroPointTable};
use crate::reader::{NuqFile, Packing, Scale};
use crate::seal::reseal;
use bytemuck::bytes_of;
use nuq_core::MacThresholds;
use std::io::Write;
use std::mem::size_of;
use std::path::Path;
use std::string::String;
use std::vec::Vec;

/// Writer options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Payload alignment: a power of two in 8..=65536 (default 64).
    pub alignment: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            alignment: DEFAULT_ALIGNMENT,
        }
    }
}

/// Why a model could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The model holds something the format cannot encode.
    #[error("cannot encode {what}: {why}")]
    Encode {
        /// The item (e.g. `weights[2].indices[17]`).
        what: String,
        /// The reason.
        why: String,
    },
    /// The encoded model breaks a rule of the format (bad reference, shape, ordering, ...).
    #[error("the model is not valid: {0}")]
    Invalid(#[from] crate::Error),
    /// Writing the file failed.
    #[error("I/O error writing {path}: {source}")]
    Io {
        /// The file being written.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn enc(what: impl Into<String>, why: impl Into<String>) -> WriteError {
    WriteError::Encode {
        what: what.into(),
        why: why.into(),
    }
}

fn u32_of(v: usize, what: &str) -> Result<u32, WriteError> {
    u32::try_from(v).map_err(|_| enc(what, format!("{v} does not fit u32")))
}

fn align_to(v: &mut Vec<u8>, base: u64, align: u64) {
    while !(base + v.len() as u64).is_multiple_of(align) {
        v.push(0);
    }
}

/// Builds one table section: head, records, then blobs in canonical order.
struct SectionBuf {
    head: Vec<u8>,
    records: Vec<u8>,
    blobs: Vec<u8>,
    blob_base: u64,
}

impl SectionBuf {
    fn new(
        head_size: usize,
        record_size: usize,
        count: usize,
        what: &str,
    ) -> Result<Self, WriteError> {
        if count > caps::RECORDS as usize {
            return Err(enc(
                what,
                format!("{count} records exceed the cap {}", caps::RECORDS),
            ));
        }
        let mut head = Vec::with_capacity(head_size);
        head.extend_from_slice(bytes_of(&RawTableHead {
            head_size: U32Le::new(head_size as u32),
            record_size: U32Le::new(record_size as u32),
            count: U32Le::new(count as u32),
            reserved: U32Le::new(0),
        }));
        Ok(SectionBuf {
            head,
            records: Vec::new(),
            blobs: Vec::new(),
            blob_base: (head_size + record_size * count) as u64,
        })
    }

    fn blob(&mut self, data: &[u8], align: u64) -> RawBlob {
        align_to(&mut self.blobs, self.blob_base, align);
        let offset = self.blob_base + self.blobs.len() as u64;
        self.blobs.extend_from_slice(data);
        RawBlob {
            offset: U64Le::new(offset),
            length: U64Le::new(data.len() as u64),
        }
    }

    fn string(&mut self, s: &str, what: &str) -> Result<RawBlob, WriteError> {
        if s.len() as u64 > caps::STRING {
            return Err(enc(
                what,
                format!("{} bytes exceed the cap {}", s.len(), caps::STRING),
            ));
        }
        Ok(self.blob(s.as_bytes(), BYTE_BLOB_ALIGN))
    }

    fn finish(mut self) -> Vec<u8> {
        self.head.append(&mut self.records);
        self.head.append(&mut self.blobs);
        self.head
    }
}

fn reference(v: Option<u32>, layer: usize, field: &str) -> Result<U32Le, WriteError> {
    match v {
        Some(NONE) => Err(enc(
            format!("layers[{layer}].{field}"),
            "0xffffffff is reserved for \"no reference\"",
        )),
        v => Ok(U32Le::new(v.unwrap_or(NONE))),
    }
}

/// The GRAPH section; `minor` 1 writes the 1.1 record (with `align` and `zero_point`).
fn graph(layers: &[Layer], minor: u16) -> Result<Vec<u8>, WriteError> {
    let record = if minor >= 1 {
        LAYER_RECORD_1_1
    } else {
        LAYER_RECORD_1_0
    } as usize;
    let mut s = SectionBuf::new(16, record, layers.len(), "layers")?;
    for (i, l) in layers.iter().enumerate() {
        if l.inputs.len() > caps::LAYER_INPUTS as usize {
            return Err(enc(
                format!("layers[{i}].inputs"),
                format!("{} inputs exceed the cap 4", l.inputs.len()),
            ));
        }
        let mut inputs = [U32Le::new(NONE); 4];
        for (slot, &x) in inputs.iter_mut().zip(&l.inputs) {
            *slot = U32Le::new(x);
        }
        let name = s.string(&l.name, &format!("layers[{i}].name"))?;
        let raw = RawLayer {
            op: U16Le::new(l.op.raw()),
            weight_bits: l.weight_bits,
            act_bits: l.act_bits,
            input_count: l.inputs.len() as u8,
            reserved0: [0; 3],
            inputs,
            out_shape: l.out_shape.map(U32Le::new),
            kernel: l.kernel.map(U32Le::new),
            stride: l.stride.map(U32Le::new),
            padding: l.padding.map(U32Le::new),
            dilation: l.dilation.map(U32Le::new),
            groups: U32Le::new(l.groups),
            weights: reference(l.weights, i, "weights")?,
            weight_codebook: reference(l.weight_codebook, i, "weight_codebook")?,
            weight_scale: reference(l.weight_scale, i, "weight_scale")?,
            bias: reference(l.bias, i, "bias")?,
            thresholds: reference(l.thresholds, i, "thresholds")?,
            act_codebook: reference(l.act_codebook, i, "act_codebook")?,
            act_scale: reference(l.act_scale, i, "act_scale")?,
            reserved1: U32Le::new(0),
            name,
        };
        s.records.extend_from_slice(bytes_of(&raw));
        if minor >= 1 {
            s.records.extend_from_slice(bytes_of(&RawLayerExt {
                align: reference(l.align, i, "align")?,
                zero_point: reference(l.zero_point, i, "zero_point")?,
            }));
        }
    }
    Ok(s.finish())
}

fn aligns(ts: &[AlignTable]) -> Result<Vec<u8>, WriteError> {
    let mut s = SectionBuf::new(16, size_of::<RawAlign>(), ts.len(), "aligns")?;
    for (i, t) in ts.iter().enumerate() {
        let m: Vec<i32> = t.factors.iter().map(|f| f.multiplier()).collect();
        let sh: Vec<u8> = t.factors.iter().map(|f| f.shift()).collect();
        let multipliers = s.blob(&i32_bytes(&m), NUMERIC_BLOB_ALIGN);
        let shifts = s.blob(&sh, BYTE_BLOB_ALIGN);
        let raw = RawAlign {
            channels: U32Le::new(u32_of(sh.len(), &format!("aligns[{i}].factors"))?),
            main_shift: t.main_shift,
            reserved: [0; 3],
            multipliers,
            shifts,
        };
        s.records.extend_from_slice(bytes_of(&raw));
    }
    Ok(s.finish())
}

fn zero_points(ts: &[ZeroPointTable]) -> Result<Vec<u8>, WriteError> {
    let mut s = SectionBuf::new(16, size_of::<RawZeroPoints>(), ts.len(), "zero_points")?;
    for (i, t) in ts.iter().enumerate() {
        let values = s.blob(&t.values, BYTE_BLOB_ALIGN);
        let raw = RawZeroPoints {
            channels: U32Le::new(u32_of(t.values.len(), &format!("zero_points[{i}].values"))?),
            bits: t.bits,
            reserved: [0; 3],
            values,
        };
        s.records.extend_from_slice(bytes_of(&raw));
    }
    Ok(s.finish())
}

fn codebooks(cbs: &[Codebook]) -> Result<Vec<u8>, WriteError> {
    let mut s = SectionBuf::new(16, size_of::<RawCodebook>(), cbs.len(), "codebooks")?;
    for (i, c) in cbs.iter().enumerate() {
        let mut data = Vec::with_capacity(c.levels.len() * c.elem_type.size());
        for (k, &v) in c.levels.iter().enumerate() {
            match c.elem_type {
                crate::ElementType::I16 => {
                    let v = i16::try_from(v).map_err(|_| {
                        enc(
                            format!("codebooks[{i}].levels[{k}]"),
                            format!("{v} does not fit i16"),
                        )
                    })?;
                    data.extend_from_slice(&v.to_le_bytes());
                }
                crate::ElementType::I32 => data.extend_from_slice(&v.to_le_bytes()),
            }
        }
        let levels = s.blob(&data, NUMERIC_BLOB_ALIGN);
        let raw = RawCodebook {
            kind: c.kind,
            bits: c.bits,
            grid_bits: c.grid_bits,
            signed: u8::from(c.signed),
            elem_type: c.elem_type.raw(),
            reserved0: [0; 3],
            level_count: U32Le::new(u32_of(c.levels.len(), &format!("codebooks[{i}].levels"))?),
            reserved1: U32Le::new(0),
            levels,
        };
        s.records.extend_from_slice(bytes_of(&raw));
    }
    Ok(s.finish())
}

/// Packs `t.indices` into words as the format lays them out.
pub fn pack(t: &WeightTensor) -> Result<Vec<u8>, String> {
    if !(1..=8).contains(&t.bits) {
        return Err(format!("bits {} outside 1..=8", t.bits));
    }
    if !crate::reader::WORD_BITS.contains(&t.word_bits) {
        return Err(format!(
            "word width {} is not 32, 64, 128, 256 or 512",
            t.word_bits
        ));
    }
    let elements = t
        .dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(u64::from(d)))
        .ok_or("dimension product overflows")?;
    if t.dims.is_empty() || t.dims.len() > 4 || t.dims.contains(&0) {
        return Err(format!("dims {:?} must be 1 to 4 non-zero values", t.dims));
    }
    if elements != t.indices.len() as u64 {
        return Err(format!(
            "{} indices for dims {:?} ({elements} elements)",
            t.indices.len(),
            t.dims
        ));
    }
    let row_len = match t.order {
        crate::TileOrder::Flat => elements,
        crate::TileOrder::RowPerOutput => elements / u64::from(t.dims[0]),
    };
    let p = Packing {
        bits: t.bits.into(),
        word_bits: t.word_bits.into(),
        order: t.order,
        elements,
        row_len,
    };
    let wb = usize::from(t.word_bits / 8);
    let total = usize::try_from(p.word_count())
        .map_err(|_| "too many words")?
        .checked_mul(wb)
        .ok_or("too many words")?;
    let mut out = vec![0u8; total];
    for (i, &v) in t.indices.iter().enumerate() {
        if u32::from(v) >> t.bits != 0 {
            return Err(format!(
                "index {v} at element {i} does not fit {} bits",
                t.bits
            ));
        }
        let (w, lane) = p.position(i as u64);
        let bit = lane as usize * usize::from(t.bits);
        let at = w as usize * wb + bit / 8;
        let shifted = u16::from(v) << (bit % 8);
        out[at] |= shifted as u8;
        if shifted > 0xFF {
            out[at + 1] |= (shifted >> 8) as u8;
        }
    }
    Ok(out)
}

fn weights(ws: &[WeightTensor]) -> Result<Vec<u8>, WriteError> {
    let mut s = SectionBuf::new(16, size_of::<RawWeights>(), ws.len(), "weights")?;
    for (i, t) in ws.iter().enumerate() {
        let data = pack(t).map_err(|why| enc(format!("weights[{i}]"), why))?;
        let mut dims = [U32Le::new(0); 4];
        for (slot, &d) in dims.iter_mut().zip(&t.dims) {
            *slot = U32Le::new(d);
        }
        let word_count = (data.len() / usize::from(t.word_bits / 8)) as u64;
        let blob = s.blob(&data, WEIGHT_BLOB_ALIGN);
        let raw = RawWeights {
            bits: t.bits,
            order: t.order.raw(),
            word_bits: U16Le::new(t.word_bits),
            rank: t.dims.len() as u8,
            reserved0: [0; 3],
            dims,
            element_count: U64Le::new(t.indices.len() as u64),
            word_count: U64Le::new(word_count),
            reserved1: U64Le::new(0),
            data: blob,
        };
        s.records.extend_from_slice(bytes_of(&raw));
    }
    Ok(s.finish())
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn biases(bs: &[Vec<i32>]) -> Result<Vec<u8>, WriteError> {
    let mut s = SectionBuf::new(16, size_of::<RawBias>(), bs.len(), "biases")?;
    for (i, b) in bs.iter().enumerate() {
        let values = s.blob(&i32_bytes(b), NUMERIC_BLOB_ALIGN);
        let raw = RawBias {
            count: U32Le::new(u32_of(b.len(), &format!("biases[{i}]"))?),
            reserved: U32Le::new(0),
            values,
        };
        s.records.extend_from_slice(bytes_of(&raw));
    }
    Ok(s.finish())
}

fn thresholds(ts: &[MacThresholds]) -> Result<Vec<u8>, WriteError> {
    let mut s = SectionBuf::new(16, size_of::<RawThresholds>(), ts.len(), "thresholds")?;
    for (i, t) in ts.iter().enumerate() {
        let values = s.blob(&i32_bytes(t.values()), NUMERIC_BLOB_ALIGN);
        let dirs: Vec<u8> = t.directions().iter().map(|d| d.raw()).collect();
        let directions = s.blob(&dirs, BYTE_BLOB_ALIGN);
        let raw = RawThresholds {
            channels: U32Le::new(u32_of(
                t.channels(),
                &format!("thresholds[{i}].directions"),
            )?),
            bits: t.bits(),
            reserved: [0; 3],
            values,
            directions,
        };
        s.records.extend_from_slice(bytes_of(&raw));
    }
    Ok(s.finish())
}

fn scales(ss: &[Scale]) -> Result<Vec<u8>, WriteError> {
    let mut s = SectionBuf::new(16, size_of::<RawScale>(), ss.len(), "scales")?;
    for sc in ss {
        let (m, sh) = sc.multiplier_shift.unwrap_or((0, 0));
        let raw = RawScale {
            value: U32Le::new(sc.value.to_bits()),
            forms: if sc.exponent.is_some() {
                SCALE_FORM_POW2
            } else {
                0
            } | if sc.multiplier_shift.is_some() {
                SCALE_FORM_MULSHIFT
            } else {
                0
            },
            shift: sh,
            reserved0: [0; 2],
            exponent: U32Le::new(sc.exponent.unwrap_or(0) as u32),
            multiplier: U32Le::new(m as u32),
            reserved1: U64Le::new(0),
        };
        s.records.extend_from_slice(bytes_of(&raw));
    }
    Ok(s.finish())
}

fn metadata(m: &crate::model::Metadata) -> Result<Vec<u8>, WriteError> {
    let head_size = size_of::<RawMetaHead>();
    let mut s = SectionBuf::new(
        head_size,
        size_of::<RawMetaEntry>(),
        m.entries.len(),
        "metadata",
    )?;
    let producer = s.string(&m.producer, "metadata.producer")?;
    let producer_version = s.string(&m.producer_version, "metadata.producer_version")?;
    s.head.extend_from_slice(bytes_of(&producer));
    s.head.extend_from_slice(bytes_of(&producer_version));
    for (k, v) in &m.entries {
        let key = s.string(k, "metadata key")?;
        let value = s.string(v, &format!("metadata[{k}]"))?;
        s.records
            .extend_from_slice(bytes_of(&RawMetaEntry { key, value }));
    }
    Ok(s.finish())
}

/// Serializes `model`. Deterministic: equal models give equal bytes.
///
/// The file declares the lowest minor version that holds the model ([`Model::minor_version`]):
/// a model without 1.1 features is written exactly as format 1.0 (seven sections, 128-byte
/// layer records), so 1.0 files re-encode byte for byte; a model with them is written as 1.1
/// (136-byte layer records, the ALIGNS and ZERO_POINTS sections after METADATA).
pub fn encode(model: &Model, opts: &WriteOptions) -> Result<Vec<u8>, WriteError> {
    let a = opts.alignment;
    if !a.is_power_of_two() || !(MIN_ALIGNMENT..=MAX_ALIGNMENT).contains(&a) {
        return Err(enc(
            "options.alignment",
            format!("{a} is not a power of two in 8..=65536"),
        ));
    }
    let minor = model.minor_version();
    let mut payloads = vec![
        (SectionKind::Graph, graph(&model.layers, minor)?),
        (SectionKind::Codebooks, codebooks(&model.codebooks)?),
        (SectionKind::Weights, weights(&model.weights)?),
        (SectionKind::Biases, biases(&model.biases)?),
        (SectionKind::Thresholds, thresholds(&model.thresholds)?),
        (SectionKind::Scales, scales(&model.scales)?),
        (SectionKind::Metadata, metadata(&model.metadata)?),
    ];
    if minor >= 1 {
        payloads.push((SectionKind::Aligns, aligns(&model.aligns)?));
        payloads.push((SectionKind::ZeroPoints, zero_points(&model.zero_points)?));
    }
    let header_size = size_of::<RawHeader>();
    let table_end = header_size + payloads.len() * size_of::<RawSectionEntry>();
    let mut body = Vec::new();
    let mut entries = Vec::new();
    for (kind, p) in &payloads {
        align_to(&mut body, table_end as u64, a.into());
        let offset = (table_end + body.len()) as u64;
        entries.push(RawSectionEntry {
            kind: U32Le::new(kind.raw()),
            flags: U32Le::new(0),
            offset: U64Le::new(offset),
            length: U64Le::new(p.len() as u64),
            crc: U32Le::new(0),
            reserved: U32Le::new(0),
        });
        body.extend_from_slice(p);
    }
    let header = RawHeader {
        magic: MAGIC,
        version_major: U16Le::new(VERSION_MAJOR),
        version_minor: U16Le::new(minor),
        byte_order: U32Le::new(BYTE_ORDER_MARK),
        header_size: U32Le::new(header_size as u32),
        flags: U32Le::new(0),
        alignment: U32Le::new(a),
        section_count: U32Le::new(payloads.len() as u32),
        file_length: U64Le::new(0),
        file_crc: U32Le::new(0),
        table_offset: U32Le::new(header_size as u32),
        entry_size: U32Le::new(size_of::<RawSectionEntry>() as u32),
        reserved: [0; 12],
    };
    let mut out = Vec::with_capacity(table_end + body.len());
    out.extend_from_slice(bytes_of(&header));
    for e in &entries {
        out.extend_from_slice(bytes_of(e));
    }
    out.extend_from_slice(&body);
    reseal(&mut out);
    NuqFile::parse(&out)?;
    Ok(out)
}

/// Encodes `model` and writes it to `path` atomically ([`write_atomic`]).
pub fn write_file(path: &Path, model: &Model, opts: &WriteOptions) -> Result<(), WriteError> {
    let bytes = encode(model, opts)?;
    write_atomic(path, &bytes).map_err(|source| WriteError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Writes `bytes` to `path` atomically: to `<path>.tmp<pid>` in the same directory, flushed
/// to disk, then renamed over `path`; on failure the temporary file is removed, so `path`
/// holds either its old contents or all of `bytes`, never part of them.
///
/// # Errors
/// The I/O error of creating, writing, flushing or renaming the temporary file (a `path`
/// without a file name is refused the same way).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("nuq-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("hello.bin");
/// nuq_fpga_fmt::writer::write_atomic(&path, b"hello")?;
/// assert_eq!(std::fs::read(&path)?, b"hello");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?
        .to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
