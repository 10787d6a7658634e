//! `nuq eval`: test accuracy of a `.nuq` integer model (integers only) or of a float
//! checkpoint.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use nuq_fpga_fmt::layout::MAGIC;
use nuq_nn::data::Split;
use serde::Serialize;

use crate::dataset::DataArgs;
use crate::exit::{CmdResult, Failure};
use crate::float_model::{self, ModelArgs};
use crate::model_file::read_integer_model;
use crate::model_file::MemoryArgs;
use crate::output;
use nuq_nn::pipeline::{float_stats, integer_accuracy};

/// Measure the test accuracy of a .nuq integer model or a float checkpoint.
#[derive(Debug, Args)]
#[command(
    long_about = "Evaluates a model on the test split of a dataset. A .nuq file runs with \
        integers only (image bytes in, int32 logits out, the computation an FPGA performs); \
        a .safetensors checkpoint or an .onnx model runs in float with the dataset's normalisation (--mean, \
        --std to override).",
    after_help = "Examples:\n  \
        nuq eval demo.nuq\n  \
        nuq eval vgg.safetensors --json\n  \
        nuq eval r18.nuq --dataset cifar10 --data ~/cifar-10-batches-bin"
)]
pub struct EvalArgs {
    /// The model: a .nuq integer model, a .safetensors float checkpoint or an ONNX float model.
    model_file: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    memory: MemoryArgs,
    /// Print the results as one JSON object on stdout (the summary line goes to stderr).
    #[arg(long)]
    json: bool,
}

/// The `--json` object.
#[derive(Debug, Serialize)]
struct EvalReport {
    /// `integer` or `float`.
    kind: &'static str,
    accuracy: f64,
    images: usize,
    dataset: String,
    seconds: f64,
}

/// Whether the file starts with the `.nuq` magic bytes.
fn is_nuq(path: &Path) -> Result<bool, Failure> {
    let mut head = [0u8; 8];
    let mut f = std::fs::File::open(path).map_err(|e| {
        Failure::new(match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("{}: no such file; check the path", path.display())
            }
            _ => format!("{}: cannot read the file: {e}", path.display()),
        })
    })?;
    let n = f
        .read(&mut head)
        .map_err(|e| Failure::new(format!("{}: cannot read the file: {e}", path.display())))?;
    Ok(n == head.len() && head == MAGIC || path.extension().is_some_and(|e| e == "nuq"))
}

/// Runs the command.
pub fn run(a: &EvalArgs) -> CmdResult {
    let t0 = Instant::now();
    a.memory.apply();
    if a.model_file.is_dir() {
        return Err(Failure::new(format!(
            "{}: is a directory; pass a .nuq model, a .safetensors checkpoint or an .onnx model",
            a.model_file.display()
        )));
    }
    let integer = is_nuq(&a.model_file)?;
    let (kind, accuracy, images) = if integer {
        let model = read_integer_model(&a.model_file)?;
        let test = a.data.load(Split::Test)?;
        ("integer", integer_accuracy(&model, &test)?, test.len())
    } else {
        let test = Arc::new(a.data.load(Split::Test)?);
        let mut net = float_model::open(&a.model_file, &a.model, &test)?;
        let augment = a.data.eval_augment(test.channels)?;
        (
            "float",
            float_stats(&mut net, &test, &augment)?.accuracy(),
            test.len(),
        )
    };
    let report = EvalReport {
        kind,
        accuracy,
        images,
        dataset: a.data.dataset.name().into(),
        seconds: t0.elapsed().as_secs_f64(),
    };
    let text = format!(
        "{}: {} test accuracy {:.2}% on {} {} images\n",
        a.model_file.display(),
        if integer { "integer-only" } else { "float" },
        100.0 * accuracy,
        images,
        report.dataset
    );
    output::finish(a.json, &text, &report)
}
