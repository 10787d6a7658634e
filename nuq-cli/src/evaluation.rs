//! Test accuracy of a float network and of an integer model.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nuq_kernels::KernelPath;
use nuq_nn::data::{Augment, BatchLoader, Dataset};
use nuq_nn::integer::{IntegerModel, IntegerRunner, DEFAULT_MEMORY_LIMIT};
use nuq_nn::quant::QuantizedNetwork;
use nuq_nn::train::{eval_batch, Stats};
use nuq_nn::Mode;
use nuq_nn::{CrossEntropy, Network, NnError};

use crate::exit::Failure;
use crate::training::nn;

/// Index of the first largest value (the predicted class, as the integer runner picks it).
pub fn argmax<T: PartialOrd>(row: &[T]) -> usize {
    let mut best = 0;
    for (j, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = j;
        }
    }
    best
}

/// Images per evaluation batch.
const BATCH: usize = 500;

/// The working-memory limit of every integer runner this process starts (`--memory-limit`).
static MEMORY_LIMIT: AtomicU64 = AtomicU64::new(DEFAULT_MEMORY_LIMIT);

/// The `--memory-limit` option of the commands that run a `.nuq` model.
#[derive(Debug, Clone, clap::Args)]
pub struct MemoryArgs {
    /// Working memory the integer model may use (bytes, or with a K, M, G or T suffix, powers
    /// of 1024); a model or batch that needs more is refused before anything is allocated.
    #[arg(long, value_name = "BYTES", default_value = "8G", value_parser = parse_bytes)]
    pub memory_limit: u64,
}

impl MemoryArgs {
    /// Makes the limit the one every integer runner of this process uses.
    pub fn apply(&self) {
        MEMORY_LIMIT.store(self.memory_limit, Ordering::Relaxed);
    }
}

/// Parses `8G`, `512M`, `64K`, `1T` or a plain byte count.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix {c:?}; use K, M, G or T")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a byte count such as 8G or 512M, found {text:?}"))?;
    n.checked_mul(1 << shift)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{text:?} is not a positive size below 2^64 bytes"))
}

/// An integer runner on the best kernel path under the process's memory limit.
pub fn runner(model: &IntegerModel) -> Result<IntegerRunner<'_>, Failure> {
    IntegerRunner::with_memory_limit(
        model,
        KernelPath::best_available(),
        MEMORY_LIMIT.load(Ordering::Relaxed),
    )
    .map_err(runner_err)
}

/// A runner's error, with the option that raises the memory limit.
pub fn runner_err(e: NnError) -> Failure {
    match e {
        NnError::MemoryLimit { .. } => Failure::new(format!(
            "{e}: pass --memory-limit BYTES (e.g. --memory-limit 64G) to allow more"
        )),
        e => nn(e),
    }
}

/// The largest batch up to [`BATCH`] that fits the runner's memory limit.
fn batch_size(runner: &IntegerRunner<'_>) -> Result<usize, Failure> {
    let mut b = BATCH;
    while runner.check_batch(b).is_err() && b > 1 {
        b /= 2;
    }
    runner.check_batch(b).map_err(runner_err)?;
    Ok(b)
}

/// Loss and top-1 accuracy of the float network (inference mode) on `data`.
pub fn float_stats(
    net: &mut Network,
    data: &Arc<Dataset>,
    augment: &Augment,
) -> Result<Stats, Failure> {
    let mut ce = CrossEntropy::new(0.0).map_err(nn)?;
    let mut stats = Stats::default();
    for b in BatchLoader::new(data.clone(), BATCH, augment.eval(), false, false, 0, 0) {
        stats.add(eval_batch(net, &mut ce, &b.images, &b.labels).map_err(nn)?);
    }
    Ok(stats)
}

/// Checks that the images of `data` have the shape the integer model takes.
pub fn check_input_shape(model: &IntegerModel, data: &Dataset) -> Result<(), Failure> {
    let i = &model.input;
    if (i.height, i.width, i.channels) != (data.height, data.width, data.channels) {
        return Err(Failure::new(format!(
            "the model takes {}x{}x{} images but the dataset has {}x{}x{}; pass the dataset the model was trained on (--dataset, --data)",
            i.height, i.width, i.channels, data.height, data.width, data.channels
        )));
    }
    Ok(())
}

/// Top-1 accuracy of an integer model on `data`, integers only, on the best kernel path.
pub fn integer_accuracy(model: &IntegerModel, data: &Dataset) -> Result<f64, Failure> {
    check_input_shape(model, data)?;
    let mut runner = runner(model)?;
    let batch = batch_size(&runner)?;
    if runner.classes() < data.classes {
        return Err(Failure::new(format!(
            "the model has {} classes but the dataset has {}",
            runner.classes(),
            data.classes
        )));
    }
    let per = data.image_len();
    let mut correct = 0usize;
    for (chunk, labels) in data
        .images
        .chunks(per * batch)
        .zip(data.labels.chunks(batch))
    {
        let pred = runner.predict(chunk, labels.len()).map_err(runner_err)?;
        correct += pred
            .iter()
            .zip(labels)
            .filter(|(p, &l)| **p == usize::from(l))
            .count();
    }
    Ok(correct as f64 / data.len().max(1) as f64)
}

/// How the integer model and the fake-quantized float twin it was folded from compare on
/// `data`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwinAgreement {
    /// Share of images on which both predict the same class.
    pub top1: f64,
    /// Top-1 accuracy of the float twin.
    pub twin_acc: f64,
}

/// Runs the twin (float, quantizers in place) and the integer model over `data` and compares
/// their predictions image by image.
pub fn twin_agreement(
    qn: &mut QuantizedNetwork,
    model: &IntegerModel,
    data: &Dataset,
) -> Result<TwinAgreement, Failure> {
    check_input_shape(model, data)?;
    let mut runner = runner(model)?;
    let batch = batch_size(&runner)?;
    let norm = qn.input_norm.clone();
    let per = data.image_len();
    let (mut same, mut right) = (0usize, 0usize);
    for (chunk, labels) in data
        .images
        .chunks(per * batch)
        .zip(data.labels.chunks(batch))
    {
        let n = labels.len();
        let int_pred = runner.predict(chunk, n).map_err(nn)?;
        let x = norm
            .normalise(chunk, n, data.height, data.width)
            .map_err(nn)?;
        let logits = qn.net.forward(&x, Mode::Eval).map_err(nn)?;
        let classes = logits.data().len() / n.max(1);
        for (i, row) in logits.data().chunks_exact(classes).enumerate() {
            let best = argmax(row);
            same += usize::from(best == int_pred[i]);
            right += usize::from(best == usize::from(labels[i]));
        }
    }
    let total = data.len().max(1) as f64;
    Ok(TwinAgreement {
        top1: same as f64 / total,
        twin_acc: right as f64 / total,
    })
}
