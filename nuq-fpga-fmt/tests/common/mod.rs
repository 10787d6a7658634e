//! Helpers shared by the integration tests.
#![allow(dead_code)]

use nuq_core::MacThresholds;
use nuq_fpga_fmt::model::{Codebook, Layer, Metadata, WeightTensor};
use nuq_fpga_fmt::reader::Scale;
use nuq_fpga_fmt::{
    encode, reseal, samples, CodebookKind, Direction, LayerOp, Model, NuqFile, SectionKind,
    TileOrder, WriteOptions,
};
use std::path::PathBuf;

/// `tests/golden/`.
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
}

/// The committed golden files as `(stem, bytes, model)`.
pub fn goldens() -> Vec<(&'static str, Vec<u8>, Model)> {
    samples::all()
        .into_iter()
        .map(|(name, m)| {
            let path = golden_dir().join(format!("{name}.nuq"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e}; create the golden files with NUQ_BLESS=1 cargo test -p nuq-fpga-fmt --test golden", path.display())
            });
            (name, bytes, m)
        })
        .collect()
}

/// A freshly encoded sample.
pub fn sample_bytes(m: &Model) -> Vec<u8> {
    encode(m, &WriteOptions::default()).expect("sample encodes")
}

/// Absolute offset of the payload of section `kind`.
pub fn section_offset(bytes: &[u8], kind: SectionKind) -> usize {
    let f = NuqFile::parse(bytes).expect("valid file");
    let s = f
        .sections()
        .find(|s| s.kind == Some(kind))
        .expect("section present");
    s.offset as usize
}

/// Overwrites bytes at `rel` within section `kind` with `new`, then fixes every checksum.
pub fn patch(bytes: &[u8], kind: SectionKind, rel: usize, new: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let at = section_offset(bytes, kind) + rel;
    out[at..at + new.len()].copy_from_slice(new);
    reseal(&mut out);
    out
}

/// Overwrites bytes at absolute offset `at`, then fixes every checksum.
pub fn patch_abs(bytes: &[u8], at: usize, new: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at..at + new.len()].copy_from_slice(new);
    reseal(&mut out);
    out
}

/// Builds a file from raw section payloads the way a later minor version could: header of
/// `header_size` bytes, table entries of `entry_size` bytes, payloads at `alignment`.
pub fn relayout(
    minor: u16,
    header_size: usize,
    entry_size: usize,
    alignment: usize,
    sections: &[(u32, Vec<u8>)],
) -> Vec<u8> {
    let table_end = header_size + entry_size * sections.len();
    let mut out = vec![0u8; table_end];
    out[..8].copy_from_slice(&nuq_fpga_fmt::layout::MAGIC);
    out[8..10].copy_from_slice(&1u16.to_le_bytes());
    out[10..12].copy_from_slice(&minor.to_le_bytes());
    out[12..16].copy_from_slice(&0x0A0B_0C0Du32.to_le_bytes());
    out[16..20].copy_from_slice(&(header_size as u32).to_le_bytes());
    out[24..28].copy_from_slice(&(alignment as u32).to_le_bytes());
    out[28..32].copy_from_slice(&(sections.len() as u32).to_le_bytes());
    out[44..48].copy_from_slice(&(header_size as u32).to_le_bytes());
    out[48..52].copy_from_slice(&(entry_size as u32).to_le_bytes());
    for (i, (kind, payload)) in sections.iter().enumerate() {
        while !out.len().is_multiple_of(alignment) {
            out.push(0);
        }
        let e = header_size + i * entry_size;
        let offset = out.len() as u64;
        out[e..e + 4].copy_from_slice(&kind.to_le_bytes());
        out[e + 8..e + 16].copy_from_slice(&offset.to_le_bytes());
        out[e + 16..e + 24].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(payload);
    }
    reseal(&mut out);
    out
}

/// The payloads of a valid file as `(kind, bytes)` in table order.
pub fn payloads(bytes: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let f = NuqFile::parse(bytes).expect("valid file");
    f.sections()
        .map(|s| {
            (
                s.kind_raw,
                bytes[s.offset as usize..(s.offset + s.length) as usize].to_vec(),
            )
        })
        .collect()
}

/// A valid chain model (input, then conv / pool / relu steps, an optional residual add, a
/// global pool) built deterministically from its parameters.
pub fn build(
    c0: u32,
    hw: u32,
    steps: &[(u8, u8, u32, usize, u8)],
    seed: u64,
    entries: std::collections::BTreeMap<String, String>,
    residual: bool,
) -> Model {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut m = Model {
        metadata: Metadata {
            producer: "proptest".into(),
            producer_version: format!("{seed}"),
            entries,
        },
        ..Default::default()
    };
    m.scales.push(Scale {
        value: 0.5,
        exponent: Some(-1),
        multiplier_shift: None,
    });
    let mut input = Layer::new("input", LayerOp::Input, &[], [c0, hw, hw]);
    input.act_bits = 8;
    input.act_scale = Some(0);
    m.layers.push(input);
    let mut shape = [c0, hw, hw];
    let words = [32u16, 64, 128, 256, 512];
    for (k, &(kind, bits, ch, word, order)) in steps.iter().enumerate() {
        let prev = m.layers.len() as u32 - 1;
        match kind {
            0 | 3 => {
                let levels: Vec<i32> = (0..(1i32 << bits)).map(|v| v * 2 - (1 << bits)).collect();
                m.codebooks
                    .push(Codebook::new(CodebookKind::Custom, bits + 2, true, levels));
                let cb = m.codebooks.len() as u32 - 1;
                let n = (ch * shape[0] * 9) as usize;
                m.weights.push(WeightTensor {
                    bits,
                    word_bits: words[word],
                    order: if order == 1 {
                        TileOrder::RowPerOutput
                    } else {
                        TileOrder::Flat
                    },
                    dims: vec![ch, shape[0], 3, 3],
                    indices: (0..n).map(|_| (next() % (1 << bits)) as u8).collect(),
                });
                let mut l = Layer::new(
                    &format!("conv{k}"),
                    LayerOp::Conv2d,
                    &[prev],
                    [ch, shape[1], shape[2]],
                )
                .with_window([3, 3], [1, 1], [1; 4]);
                l.weight_bits = bits;
                l.weights = Some(m.weights.len() as u32 - 1);
                l.weight_codebook = Some(cb);
                l.weight_scale = Some(0);
                if kind == 3 {
                    m.biases.push((0..ch).map(|_| next() as i32).collect());
                    l.bias = Some(m.biases.len() as u32 - 1);
                }
                let abits = (bits % 4) + 1;
                let per = (1usize << abits) - 1;
                let mut values = Vec::new();
                for _ in 0..ch {
                    let mut row: Vec<i32> = (0..per).map(|_| next() as i32 >> 8).collect();
                    row.sort();
                    values.extend(row);
                }
                m.thresholds.push(
                    MacThresholds::new(
                        abits,
                        values,
                        (0..ch)
                            .map(|_| {
                                if next() % 3 == 0 {
                                    Direction::Falling
                                } else {
                                    Direction::Rising
                                }
                            })
                            .collect(),
                    )
                    .unwrap(),
                );
                l.act_bits = abits;
                l.thresholds = Some(m.thresholds.len() as u32 - 1);
                shape = [ch, shape[1], shape[2]];
                m.layers.push(l);
            }
            1 => {
                if shape[1] >= 2 && shape[2] >= 2 {
                    shape = [shape[0], shape[1] / 2, shape[2] / 2];
                    m.layers.push(
                        Layer::new(&format!("pool{k}"), LayerOp::MaxPool2d, &[prev], shape)
                            .with_window([2, 2], [2, 2], [0; 4]),
                    );
                }
            }
            _ => m.layers.push(Layer::new(
                &format!("relu{k}"),
                LayerOp::Relu,
                &[prev],
                shape,
            )),
        }
    }
    if residual && m.layers.len() >= 2 {
        let last = m.layers.len() as u32 - 1;
        m.layers
            .push(Layer::new("add", LayerOp::Add, &[last, last], shape));
    }
    let prev = m.layers.len() as u32 - 1;
    m.layers.push(Layer::new(
        "gap",
        LayerOp::GlobalAvgPool,
        &[prev],
        [shape[0], 1, 1],
    ));
    m
}

/// Rewrites a GRAPH payload as a later minor version could: every layer record grows by 8 bytes
/// (a new field), and a new blob follows the names.
pub fn extend_graph(payload: &[u8]) -> Vec<u8> {
    grow_graph(payload, &[0xAB; 8], b"future blob")
}

/// Rewrites a GRAPH payload with `extra` appended to every layer record and `trailing` after
/// the last blob.
pub fn grow_graph(payload: &[u8], extra: &[u8], trailing: &[u8]) -> Vec<u8> {
    let rd = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().unwrap());
    let head = u32::from_le_bytes(payload[0..4].try_into().unwrap()) as usize;
    let rec = u32::from_le_bytes(payload[4..8].try_into().unwrap()) as usize;
    let count = u32::from_le_bytes(payload[8..12].try_into().unwrap()) as usize;
    let grow = extra.len();
    let mut out = payload[..head].to_vec();
    out[4..8].copy_from_slice(&((rec + grow) as u32).to_le_bytes());
    for i in 0..count {
        let r = head + i * rec;
        let mut record = payload[r..r + rec].to_vec();
        let name_off = rd(r + 112) + (grow * count) as u64;
        record[112..120].copy_from_slice(&name_off.to_le_bytes());
        out.extend_from_slice(&record);
        out.extend_from_slice(extra);
    }
    out.extend_from_slice(&payload[head + rec * count..]);
    out.extend_from_slice(trailing);
    out
}

/// The payloads of a format 1.0 file rewritten in the 1.1 layout (what a file declaring 1.1 or
/// later must have): layer records grow by `align` and `zero_point` (both none), and empty
/// ALIGNS and ZERO_POINTS sections follow. Payloads already in the 1.1 layout are returned as
/// they are.
pub fn as_1_1(secs: &[(u32, Vec<u8>)]) -> Vec<(u32, Vec<u8>)> {
    if secs.iter().any(|(k, _)| *k == SectionKind::Aligns.raw()) {
        return secs.to_vec();
    }
    let empty = |record: u32| {
        [16u32, record, 0, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let mut out: Vec<(u32, Vec<u8>)> = secs
        .iter()
        .map(|(k, p)| {
            if *k == SectionKind::Graph.raw() {
                (*k, grow_graph(p, &[0xFF; 8], b""))
            } else {
                (*k, p.clone())
            }
        })
        .collect();
    out.push((SectionKind::Aligns.raw(), empty(40)));
    out.push((SectionKind::ZeroPoints.raw(), empty(24)));
    out
}

/// A file whose `flatten` reads a `252017 × 6444494 × 11357979` input: the product is
/// `2^64 + 26`, which a 64-bit multiplication wraps to 26 (so a reader doing that would accept
/// the declared `[26, 1, 1]`). Every other field is valid.
pub fn wrapping_flatten() -> Vec<u8> {
    let mut m = Model::default();
    m.scales.push(Scale {
        value: 1.0,
        exponent: None,
        multiplier_shift: None,
    });
    m.codebooks
        .push(Codebook::new(CodebookKind::Uniform, 8, true, vec![-1, 1]));
    // Written with a 26 × 1 × 1 input, then the input's out_shape (graph record 0, byte 24 of
    // the 16-byte-headed record) is patched and every checksum fixed.
    let mut input = Layer::new("in", LayerOp::Input, &[], [26, 1, 1]);
    input.act_bits = 0;
    m.layers.push(input);
    m.layers
        .push(Layer::new("flat", LayerOp::Flatten, &[0], [26, 1, 1]));
    m.weights.push(WeightTensor {
        bits: 1,
        word_bits: 32,
        order: TileOrder::RowPerOutput,
        dims: vec![2, 26],
        indices: vec![1; 52],
    });
    let mut fc = Layer::new("fc", LayerOp::Linear, &[1], [2, 1, 1]);
    fc.weight_bits = 1;
    fc.weights = Some(0);
    fc.weight_codebook = Some(0);
    fc.weight_scale = Some(0);
    m.layers.push(fc);
    let bytes = encode(&m, &WriteOptions::default()).expect("a valid model");
    let dims: Vec<u8> = [252_017u32, 6_444_494, 11_357_979]
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect();
    patch(&bytes, SectionKind::Graph, 16 + 24, &dims)
}
