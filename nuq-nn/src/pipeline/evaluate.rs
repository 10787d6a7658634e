//! Test accuracy of a float network, of an integer model (integers only), and how closely the
//! integer model follows the fake-quantized float twin it was folded from.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nuq_kernels::KernelPath;

use crate::data::{Augment, BatchLoader, Dataset};
use crate::error::NnError;
use crate::integer::{IntegerModel, IntegerRunner, DEFAULT_MEMORY_LIMIT};
use crate::layer::Mode;
use crate::loss::CrossEntropy;
use crate::models::Network;
use crate::quant::QuantizedNetwork;
use crate::train::{eval_batch, Stats};

/// Images per evaluation batch.
const BATCH: usize = 500;

/// Index of the first largest value: the predicted class, as the integer runner picks it.
///
/// ```
/// assert_eq!(nuq_nn::pipeline::argmax(&[1, 5, 5, 2]), 1);
/// ```
pub fn argmax<T: PartialOrd>(row: &[T]) -> usize {
    let mut best = 0;
    for (j, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = j;
        }
    }
    best
}

/// The working-memory limit of the integer runners [`integer_accuracy`] and
/// [`twin_agreement`] start (every pipeline step that evaluates an integer model).
static MEMORY_LIMIT: AtomicU64 = AtomicU64::new(DEFAULT_MEMORY_LIMIT);

/// Sets the working-memory limit (bytes) of the integer runners the evaluations of this
/// process start (default [`DEFAULT_MEMORY_LIMIT`]); the `nuq` tool's `--memory-limit`.
pub fn set_memory_limit(bytes: u64) {
    MEMORY_LIMIT.store(bytes, Ordering::Relaxed);
}

/// The working-memory limit [`set_memory_limit`] set.
pub fn memory_limit() -> u64 {
    MEMORY_LIMIT.load(Ordering::Relaxed)
}

/// An integer runner on the best kernel path under the memory limit, and the largest batch up
/// to 500 images that fits it.
fn runner(model: &IntegerModel) -> Result<(IntegerRunner<'_>, usize), NnError> {
    let runner =
        IntegerRunner::with_memory_limit(model, KernelPath::best_available(), memory_limit())?;
    let mut b = BATCH;
    while runner.check_batch(b).is_err() && b > 1 {
        b /= 2;
    }
    runner.check_batch(b)?;
    Ok((runner, b))
}

/// Loss and top-1 accuracy of the float network (inference mode) on `data`.
///
/// # Errors
/// A forward-pass error (e.g. images of another shape than the network takes).
pub fn float_stats(
    net: &mut Network,
    data: &Arc<Dataset>,
    augment: &Augment,
) -> Result<Stats, NnError> {
    let mut ce = CrossEntropy::new(0.0)?;
    let mut stats = Stats::default();
    for b in BatchLoader::new(data.clone(), BATCH, augment.eval(), false, false, 0, 0) {
        stats.add(eval_batch(net, &mut ce, &b.images, &b.labels)?);
    }
    Ok(stats)
}

/// Checks that the images of `data` have the shape the integer model takes.
///
/// # Errors
/// [`NnError::ImageShape`] naming both shapes.
pub fn check_input_shape(model: &IntegerModel, data: &Dataset) -> Result<(), NnError> {
    let i = &model.input;
    if (i.height, i.width, i.channels) != (data.height, data.width, data.channels) {
        return Err(NnError::ImageShape {
            model: [i.height, i.width, i.channels],
            data: [data.height, data.width, data.channels],
        });
    }
    Ok(())
}

/// Top-1 accuracy of an integer model on `data`, integers only, on the best kernel path.
///
/// # Errors
/// [`NnError::ImageShape`], [`NnError::ClassCount`] when the model has fewer classes than the
/// dataset, or an inference error.
pub fn integer_accuracy(model: &IntegerModel, data: &Dataset) -> Result<f64, NnError> {
    check_input_shape(model, data)?;
    let (mut runner, batch) = runner(model)?;
    if runner.classes() < data.classes {
        return Err(NnError::ClassCount {
            model: runner.classes(),
            data: data.classes,
        });
    }
    let per = data.image_len();
    let mut correct = 0usize;
    for (chunk, labels) in data
        .images
        .chunks(per * batch)
        .zip(data.labels.chunks(batch))
    {
        let pred = runner.predict(chunk, labels.len())?;
        correct += pred
            .iter()
            .zip(labels)
            .filter(|(p, &l)| **p == usize::from(l))
            .count();
    }
    Ok(correct as f64 / data.len().max(1) as f64)
}

/// How the integer model and the fake-quantized float twin it was folded from compare.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwinAgreement {
    /// Share of images on which both predict the same class.
    pub top1: f64,
    /// Top-1 accuracy of the float twin.
    pub twin_acc: f64,
}

/// Runs the twin (float, quantizers in place) and the integer model over `data` and compares
/// their predictions image by image.
///
/// # Errors
/// [`NnError::ImageShape`], or an inference error of either model.
pub fn twin_agreement(
    qn: &mut QuantizedNetwork,
    model: &IntegerModel,
    data: &Dataset,
) -> Result<TwinAgreement, NnError> {
    check_input_shape(model, data)?;
    let (mut runner, batch) = runner(model)?;
    let norm = qn.input_norm.clone();
    let per = data.image_len();
    let (mut same, mut right) = (0usize, 0usize);
    for (chunk, labels) in data
        .images
        .chunks(per * batch)
        .zip(data.labels.chunks(batch))
    {
        let n = labels.len();
        let int_pred = runner.predict(chunk, n)?;
        let x = norm.normalise(chunk, n, data.height, data.width)?;
        let logits = qn.net.forward(&x, Mode::Eval)?;
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
