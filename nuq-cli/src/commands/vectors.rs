//! `nuq vectors`: golden test vectors for a hardware testbench — input images and every
//! layer's integer output, as `$readmemh` text and raw little-endian binary, with a manifest.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use nuq_kernels::KernelPath;
use nuq_nn::data::Split;
use nuq_nn::integer::{IntegerRunner, Node, TensorData, TensorKind};
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
        every layer, the exact integers the hardware must produce: `NN_op.hex` ($readmemh: \
        one element per line, u8 activation codes as 2 hex digits, int32 accumulators and \
        logits as 8 hex digits two's complement) and `NN_op.bin` (raw little-endian), all in \
        NHWC order with the image index outermost, plus manifest.json describing every file \
        (shape, element type, layer) and the predicted classes. Images come from the \
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
    /// `u8` (activation codes, input bytes) or `i32` (accumulators, logits).
    dtype: &'static str,
    /// `codes`, `accumulator`, `logits` or `input`.
    kind: &'static str,
    /// `[n, h, w, c]`.
    shape: [usize; 4],
    /// `$readmemh` file.
    hex: String,
    /// Raw little-endian file.
    bin: String,
}

/// manifest.json.
#[derive(Debug, Serialize)]
struct Manifest {
    model: String,
    images: usize,
    source: String,
    layout: &'static str,
    labels: Option<Vec<u16>>,
    predictions: Vec<usize>,
    logits: Vec<Vec<i32>>,
    tensors: Vec<TensorEntry>,
}

fn op_name(node: &Node) -> &'static str {
    match node {
        Node::Conv(_) => "conv",
        Node::Add(_) => "add",
        Node::MaxPool(_) => "maxpool",
        Node::GlobalAvgPool { .. } => "gap",
        Node::Linear(_) => "linear",
    }
}

/// `$readmemh` text and raw bytes of one tensor.
fn encode(data: TensorData<'_>) -> (String, Vec<u8>) {
    let mut hex = String::new();
    let mut bin = Vec::new();
    match data {
        TensorData::Levels(v) => {
            for &x in v {
                let _ = writeln!(hex, "{x:02x}");
            }
            bin.extend_from_slice(v);
        }
        TensorData::Int32(v) => {
            for &x in v {
                let _ = writeln!(hex, "{:08x}", x as u32);
                bin.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    (hex, bin)
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
    let mut staged = StagedDir::new(&a.out)?;
    let mut tensors = Vec::new();
    let mut failure: Option<Failure> = None;
    let mut add = |index: usize,
                   op: &'static str,
                   kind: TensorKind,
                   shape: [usize; 4],
                   data: TensorData<'_>,
                   staged: &mut StagedDir|
     -> CmdResult {
        let stem = format!("{index:02}_{op}");
        let (hex, bin) = encode(data);
        staged.add(&format!("{stem}.hex"), hex.as_bytes())?;
        staged.add(&format!("{stem}.bin"), &bin)?;
        tensors.push(TensorEntry {
            index,
            op,
            dtype: match data {
                TensorData::Levels(_) => "u8",
                TensorData::Int32(_) => "i32",
            },
            kind: match (index, kind) {
                (0, _) => "input",
                (_, TensorKind::Levels) => "codes",
                (_, TensorKind::Accumulator) => "accumulator",
                (_, TensorKind::Logits) => "logits",
            },
            shape,
            hex: format!("{stem}.hex"),
            bin: format!("{stem}.bin"),
        });
        Ok(())
    };
    add(
        0,
        "input",
        TensorKind::Levels,
        [n, inp.height, inp.width, inp.channels],
        TensorData::Levels(&images),
        &mut staged,
    )?;
    let logits = runner
        .forward_with(&images, n, &mut |i, info, data| {
            if failure.is_none() {
                if let Err(e) = add(
                    i + 1,
                    op_name(&model.nodes[i]),
                    info.kind,
                    [n, info.h, info.w, info.c],
                    data,
                    &mut staged,
                ) {
                    failure = Some(e);
                }
            }
        })
        .map_err(nn)?
        .to_vec();
    if let Some(f) = failure {
        return Err(f);
    }
    let classes = runner.classes();
    let logits: Vec<Vec<i32>> = logits.chunks(classes.max(1)).map(<[i32]>::to_vec).collect();
    let predictions = logits.iter().map(|row| argmax(row)).collect();
    let manifest = Manifest {
        model: a.model.display().to_string(),
        images: n,
        source,
        layout: "NHWC, image index outermost",
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
