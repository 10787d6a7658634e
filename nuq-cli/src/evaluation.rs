//! Test accuracy of a float network and of an integer model.

use std::sync::Arc;

use nuq_kernels::KernelPath;
use nuq_nn::data::{Augment, BatchLoader, Dataset};
use nuq_nn::integer::{IntegerModel, IntegerRunner};
use nuq_nn::quant::QuantizedNetwork;
use nuq_nn::train::{eval_batch, Stats};
use nuq_nn::Mode;
use nuq_nn::{CrossEntropy, Network};

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
    let mut runner = IntegerRunner::new(model, KernelPath::best_available()).map_err(nn)?;
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
        .chunks(per * BATCH)
        .zip(data.labels.chunks(BATCH))
    {
        let pred = runner.predict(chunk, labels.len()).map_err(nn)?;
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
    let mut runner = IntegerRunner::new(model, KernelPath::best_available()).map_err(nn)?;
    let norm = qn.input_norm.clone();
    let per = data.image_len();
    let (mut same, mut right) = (0usize, 0usize);
    for (chunk, labels) in data
        .images
        .chunks(per * BATCH)
        .zip(data.labels.chunks(BATCH))
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
