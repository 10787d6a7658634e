//! `nuq vectors`: golden test vectors for a hardware testbench — input images and every
//! layer's integer output, as `$readmemh` text and raw little-endian binary, with a manifest.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use nuq_kernels::KernelPath;
use nuq_nn::data::Split;
use nuq_nn::integer::{ConvOutput, IntegerModel, IntegerRunner, Node, TensorData, TensorKind};
use nuq_nn::Rng;
use serde::Serialize;

use crate::dataset::DataArgs;
use crate::exit::nn;
use crate::exit::{CmdResult, Failure};
use crate::model_file::{read_integer_model, MemoryArgs};
use crate::output::{self, StagedDir};
use nuq_nn::pipeline::{argmax, check_input_shape};

/// Write golden test vectors (input and every layer's output) for a .nuq model.
#[derive(Debug, Args)]
#[command(
    long_about = "Runs the integer model on a few images and writes, for the input and for \
        every layer, the exact integers the hardware must produce: `NN_op_KIND.hex` ($readmemh: \
        one element per line, u8 values as 2 hex digits, i32 as 8 and i64 as 16 hex digits \
        two's complement) and `NN_op_KIND.bin` (raw little-endian), all in NHWC order with \
        the image index outermost, plus manifest.json describing every file (shape, element \
        type, kind, layer) and the predicted classes. Kinds: `input` (00_input: the image \
        bytes), `codes` (a requantized layer's comparator-bank output, 0..2^bits-1; \
        max-pooling passes codes through), `levels` (the codes decoded through the output \
        codebook: what the next layer multiplies; global average pooling: rounded mean \
        levels), `accumulator` (i32 accumulator plus bias of a convolution that feeds a \
        residual join), `logits` (i32), and with --accumulators `prerequant` (the value the \
        comparator bank compares: i32 for a convolution, i64 for a residual join). Images come from the \
        dataset's test split (--index, --count) or, with --random, from a seeded generator.",
    after_help = "Examples:\n  \
        nuq vectors demo.nuq --out vectors/\n  \
        nuq vectors demo.nuq --out vectors/ --index 100 --count 4\n  \
        nuq vectors r18.nuq --out vectors/ --random --seed 7"
)]
pub struct VectorsArgs {
    /// The .nuq integer model.
    model: PathBuf,
    /// Output directory (created if missing; files land all together or not at all).
    #[arg(long)]
    out: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    count: u64,
    /// Index of the first test image.
    #[arg(long, default_value_t = 0)]
    index: u64,
    /// Use seeded random image bytes instead of the dataset.
    #[arg(long)]
    random: bool,
    /// Seed of --random.
    #[arg(long, default_value_t = 1, requires = "random")]
    seed: u64,
    #[command(flatten)]
    data: DataArgs,
    /// Also write, for every requantized layer, the value its comparator bank compares
    /// with the thresholds (`NN_op_prerequant`: i32 for a convolution, i64 for a residual
    /// join), so a testbench can tell a MAC error from a comparator error.
    #[arg(long)]
    accumulators: bool,
    #[command(flatten)]
    memory: MemoryArgs,
    /// Print the manifest as one JSON object on stdout (the summary line goes to stderr).
    #[arg(long)]
    json: bool,
}

/// One file pair in the manifest.
#[derive(Debug, Serialize)]
struct TensorEntry {
    /// 0 for the input, then one per layer in execution order.
    index: usize,
    /// Operation that produced it.
    op: &'static str,
    /// `u8` (input bytes, codes, levels), `i32` (accumulators, logits, convolution
    /// pre-requantization values) or `i64` (residual-join pre-requantization sums).
    dtype: &'static str,
    /// What the values are; see [`KINDS`].
    kind: &'static str,
    /// `[n, h, w, c]`.
    shape: [usize; 4],
    /// `$readmemh` file.
    hex: String,
    /// Raw little-endian file.
    bin: String,
}

/// Every `kind` of the manifest, with what it means (also written into the manifest).
const KINDS: [(&str, &str); 6] = [
    (
        "input",
        "the image bytes: the input layer's codes (its codebook is the identity)",
    ),
    (
        "codes",
        "a requantized layer's output codes: what the comparator bank emits, 0..2^act_bits-1 \
         (max-pooling passes its input's codes through)",
    ),
    (
        "levels",
        "activation levels: the codes decoded through the layer's output codebook, what the \
         next layer multiplies (global average pooling: the rounded mean of levels)",
    ),
    (
        "prerequant",
        "with --accumulators: the value the comparator bank compares with the thresholds, \
         i32 accumulator plus bias for a convolution, i64 join sum a*2^main_shift + \
         align(shortcut) for a residual add",
    ),
    (
        "accumulator",
        "a convolution that is not requantized (the main branch of a residual join): the \
         i32 accumulator plus bias",
    ),
    (
        "logits",
        "the classifier's i32 outputs (accumulator plus bias)",
    ),
];

/// manifest.json.
#[derive(Debug, Serialize)]
struct Manifest {
    model: String,
    images: usize,
    source: String,
    layout: &'static str,
    kinds: std::collections::BTreeMap<&'static str, &'static str>,
    labels: Option<Vec<u16>>,
    predictions: Vec<usize>,
    logits: Vec<Vec<i32>>,
    tensors: Vec<TensorEntry>,
}

pub(crate) fn op_name(node: &Node) -> &'static str {
    match node {
        Node::Conv(_) => "conv",
        Node::Add(_) => "add",
        Node::MaxPool(_) => "maxpool",
        Node::GlobalAvgPool { .. } => "gap",
        Node::Linear(_) => "linear",
    }
}

/// One tensor's values as the vectors hold them.
#[derive(Debug, Clone)]
pub(crate) enum Values {
    U8(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl Values {
    pub(crate) fn of(data: TensorData<'_>) -> Self {
        match data {
            TensorData::Levels(v) => Values::U8(v.to_vec()),
            TensorData::Int32(v) => Values::I32(v.to_vec()),
        }
    }

    fn dtype(&self) -> &'static str {
        match self {
            Values::U8(_) => "u8",
            Values::I32(_) => "i32",
            Values::I64(_) => "i64",
        }
    }

    /// Element `i` widened.
    pub(crate) fn get(&self, i: usize) -> i64 {
        match self {
            Values::U8(v) => i64::from(v[i]),
            Values::I32(v) => i64::from(v[i]),
            Values::I64(v) => v[i],
        }
    }
}

/// `$readmemh` text and raw bytes of one tensor.
fn encode(data: &Values) -> (String, Vec<u8>) {
    let mut hex = String::new();
    let mut bin = Vec::new();
    match data {
        Values::U8(v) => {
            for &x in v {
                let _ = writeln!(hex, "{x:02x}");
            }
            bin.extend_from_slice(v);
        }
        Values::I32(v) => {
            for &x in v {
                let _ = writeln!(hex, "{:08x}", x as u32);
                bin.extend_from_slice(&x.to_le_bytes());
            }
        }
        Values::I64(v) => {
            for &x in v {
                let _ = writeln!(hex, "{:016x}", x as u64);
                bin.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    (hex, bin)
}

/// The codes of `levels` under the strictly increasing codebook `book`.
fn codes_of(levels: &[u8], book: &[u8]) -> Vec<u8> {
    let mut inv = [0u8; 256];
    for (k, &l) in book.iter().enumerate() {
        inv[usize::from(l)] = k as u8;
    }
    levels.iter().map(|&l| inv[usize::from(l)]).collect()
}

/// The value node `i` compares with its thresholds, for every output element of `n` images
/// (`None` for a node without requantization), recomputed from the tensors it reads.
pub(crate) fn prerequant(
    model: &IntegerModel,
    i: usize,
    tensors: &[Values],
    n: usize,
) -> Option<Values> {
    let infos = model.tensor_infos().ok()?;
    match &model.nodes[i] {
        Node::Conv(c) if matches!(c.output, ConvOutput::Codes(_)) => {
            let x = infos[c.input];
            let o = infos[i + 1];
            let Values::U8(inp) = &tensors[c.input] else {
                return None;
            };
            let w: Vec<i32> = c.weights.decoded().into_iter().map(i32::from).collect();
            let k = c.kernel;
            let kk = k * k * c.c_in;
            let mut out = Vec::with_capacity(n * o.len());
            for img in 0..n {
                let base = img * x.len();
                for oy in 0..o.h {
                    for ox in 0..o.w {
                        for oc in 0..c.c_out {
                            let mut acc = c.bias[oc];
                            for ky in 0..k {
                                for kx in 0..k {
                                    let iy = (oy * c.stride + ky) as isize - c.padding as isize;
                                    let ix = (ox * c.stride + kx) as isize - c.padding as isize;
                                    for ci in 0..c.c_in {
                                        let v = if iy < 0
                                            || ix < 0
                                            || iy >= x.h as isize
                                            || ix >= x.w as isize
                                        {
                                            if c.input == 0 {
                                                model.input.zero_point[ci]
                                            } else {
                                                0
                                            }
                                        } else {
                                            inp[base + (iy as usize * x.w + ix as usize) * x.c + ci]
                                        };
                                        let wk = w[oc * kk + (ky * k + kx) * c.c_in + ci];
                                        acc = acc.wrapping_add(i32::from(v) * wk);
                                    }
                                }
                            }
                            out.push(acc);
                        }
                    }
                }
            }
            Some(Values::I32(out))
        }
        Node::Add(a) => {
            let o = infos[i + 1];
            let ta = &tensors[a.a];
            let tb = &tensors[a.b];
            let out = (0..n * o.len())
                .map(|e| {
                    let al = a.align[e % o.c];
                    (ta.get(e) << a.a_shift) + al.apply(tb.get(e))
                })
                .collect();
            Some(Values::I64(out))
        }
        _ => None,
    }
}

/// Runs the command.
pub fn run(a: &VectorsArgs) -> CmdResult {
    let model = read_integer_model(&a.model)?;
    let inp = &model.input;
    let per = inp.height * inp.width * inp.channels;
    let n = a.count as usize;
    // Refuse a model or batch above the memory limit before allocating the images.
    let mut runner = IntegerRunner::with_memory_limit(
        &model,
        KernelPath::best_available(),
        a.memory.memory_limit,
    )
    .map_err(nn)?;
    runner.check_batch(n).map_err(nn)?;
    let (images, labels, source) = if a.random {
        let mut rng = Rng::new(a.seed);
        let bytes = (0..n * per).map(|_| rng.below(256) as u8).collect();
        (bytes, None, format!("random bytes, seed {}", a.seed))
    } else {
        let test = a.data.load(Split::Test)?;
        check_input_shape(&model, &test)?;
        let first = usize::try_from(a.index).unwrap_or(usize::MAX);
        if first.saturating_add(n) > test.len() {
            return Err(Failure::new(format!(
                "--index {} --count {n} goes past the {} test images",
                a.index,
                test.len()
            )));
        }
        (
            test.images[first * per..(first + n) * per].to_vec(),
            Some(test.labels[first..first + n].to_vec()),
            format!(
                "{} test images {}..{}",
                a.data.dataset.name(),
                first,
                first + n
            ),
        )
    };
    // Every tensor of the batch, input first (the pre-requantization values are recomputed
    // from them).
    let mut values: Vec<Values> = vec![Values::U8(images.clone())];
    let mut shapes = vec![[n, inp.height, inp.width, inp.channels]];
    let logits = runner
        .forward_with(&images, n, &mut |_, info, data| {
            values.push(Values::of(data));
            shapes.push([n, info.h, info.w, info.c]);
        })
        .map_err(nn)?
        .to_vec();
    // The codebook each levels tensor's codes index (`None`: levels without codes).
    let mut books: Vec<Option<Vec<u8>>> = vec![None];
    for node in &model.nodes {
        let book = match node {
            Node::Conv(c) => match &c.output {
                ConvOutput::Codes(r) => Some(r.lut()),
                ConvOutput::Accumulator => None,
            },
            Node::Add(a) => Some(a.output.lut()),
            Node::MaxPool(p) => books[p.input].clone(),
            Node::GlobalAvgPool { .. } | Node::Linear(_) => None,
        };
        books.push(book);
    }
    let infos = model.tensor_infos().map_err(nn)?;
    let mut staged = StagedDir::new(&a.out)?;
    let mut tensors = Vec::new();
    let mut add = |index: usize,
                   op: &'static str,
                   kind: &'static str,
                   shape: [usize; 4],
                   data: &Values,
                   staged: &mut StagedDir|
     -> CmdResult {
        let stem = if index == 0 {
            format!("{index:02}_{op}")
        } else {
            format!("{index:02}_{op}_{kind}")
        };
        let (hex, bin) = encode(data);
        staged.add(&format!("{stem}.hex"), hex.as_bytes())?;
        staged.add(&format!("{stem}.bin"), &bin)?;
        tensors.push(TensorEntry {
            index,
            op,
            dtype: data.dtype(),
            kind,
            shape,
            hex: format!("{stem}.hex"),
            bin: format!("{stem}.bin"),
        });
        Ok(())
    };
    add(0, "input", "input", shapes[0], &values[0], &mut staged)?;
    for (i, node) in model.nodes.iter().enumerate() {
        let t = i + 1;
        let op = op_name(node);
        if a.accumulators {
            if let Some(pre) = prerequant(&model, i, &values, n) {
                add(t, op, "prerequant", shapes[t], &pre, &mut staged)?;
            }
        }
        match (infos[t].kind, &values[t]) {
            (TensorKind::Levels, Values::U8(levels)) => {
                if let Some(book) = &books[t] {
                    let codes = Values::U8(codes_of(levels, book));
                    add(t, op, "codes", shapes[t], &codes, &mut staged)?;
                }
                add(t, op, "levels", shapes[t], &values[t], &mut staged)?;
            }
            (TensorKind::Logits, v) => add(t, op, "logits", shapes[t], v, &mut staged)?,
            (_, v) => add(t, op, "accumulator", shapes[t], v, &mut staged)?,
        }
    }
    let classes = runner.classes();
    let logits: Vec<Vec<i32>> = logits.chunks(classes.max(1)).map(<[i32]>::to_vec).collect();
    let predictions = logits.iter().map(|row| argmax(row)).collect();
    let manifest = Manifest {
        model: a.model.display().to_string(),
        images: n,
        source,
        layout: "NHWC, image index outermost",
        kinds: KINDS.into_iter().collect(),
        labels,
        predictions,
        logits,
        tensors,
    };
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Failure::new(format!("cannot encode the manifest: {e}")))?;
    staged.add("manifest.json", json.as_bytes())?;
    let files = staged.commit()?;
    let text = format!(
        "wrote {} files for {} tensors of {n} image(s) to {}\n",
        files.len(),
        manifest.tensors.len(),
        a.out.display()
    );
    output::finish(a.json, &text, &manifest)
}
