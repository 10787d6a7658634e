//! `nuq demo`: the whole method on real Fashion-MNIST in a few minutes.
//!
//! Trains a small VGG-like network in float, quantizes it after training to 4-bit
//! non-uniform (k-quantile, the paper's quantizer) and 4-bit uniform weights and activations,
//! converts both to the integer model (BN and scales folded into MAC thresholds), evaluates
//! them with integers only, prints a table and writes the k-quantile model as `demo.nuq`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use nuq_fpga_fmt::{CodebookKind, WriteOptions};
use nuq_kernels::KernelPath;
use nuq_nn::checkpoint::{load_model, save_model};
use nuq_nn::data::{load_mnist_like, Augment, BatchLoader, Dataset, Split};
use nuq_nn::integer::{to_file_model, IntegerModel, IntegerRunner};
use nuq_nn::optim::{LrSchedule, Optimizer, Schedule, Sgd, WeightDecay};
use nuq_nn::quant::{Family, InputNorm, QuantConfig, QuantizedNetwork};
use nuq_nn::train::{eval_batch, train_step, Stats};
use nuq_nn::{Arch, CrossEntropy, ModelConfig, Network, Tensor};
use serde::Serialize;

use crate::exit::{CmdResult, Failure};
use crate::output;
use crate::progress::Progress;

/// Where Debian's `dataset-fashion-mnist` package puts the data.
pub const DEFAULT_DATA: &str = "/usr/share/datasets/fashion-mnist";

/// Train, quantize (4-bit k-quantile and 4-bit uniform) and run integer-only on Fashion-MNIST.
#[derive(Debug, Args)]
#[command(
    long_about = "Runs the whole nuq method on real Fashion-MNIST: trains a small VGG-like \
        network in float, quantizes it to 4-bit non-uniform (k-quantile, the paper's quantizer) \
        and to 4-bit uniform weights and activations (first conv and classifier at 8 bits), \
        folds batch-norm and the scales into integer MAC thresholds, evaluates both integer \
        models with integers only, prints float vs integer accuracy and model size, and writes \
        the k-quantile model to demo.nuq. About two minutes on two idle cores.",
    after_help = "Examples:\n  \
        nuq demo\n  \
        nuq demo --data ~/fashion-mnist --epochs 3 --json\n\n\
        The data: `apt-get install dataset-fashion-mnist` (Debian) or --data DIR holding \
        train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz] \
        and t10k-labels-idx1-ubyte[.gz]."
)]
pub struct DemoArgs {
    /// Directory with the Fashion-MNIST IDX files (gzipped or not).
    #[arg(long, default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// Training epochs.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub epochs: u32,
    /// Channel width multiplier of VGG-Small (1.0 = 128/256/512 channels).
    #[arg(long, default_value_t = 0.125)]
    pub width: f32,
    /// Weight and activation bits of the inner layers.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(2..=8))]
    pub bits: u8,
    /// Training images of quantization-aware fine-tuning per codebook (0: calibration only).
    #[arg(long, default_value_t = 30_000)]
    pub qat_images: usize,
    /// Where to write the k-quantile integer model.
    #[arg(long, default_value = "demo.nuq")]
    pub out: PathBuf,
    /// Random seed (weights, batch order, augmentation).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object with the results at the end.
    #[arg(long)]
    pub json: bool,
}

/// The demo's results (the `--json` object).
#[derive(Debug, Serialize)]
pub struct DemoReport {
    /// Test accuracy of the float network.
    pub float_acc: f64,
    /// Test accuracy of the k-quantile integer model (integer-only inference).
    pub int_acc: f64,
    /// Test accuracy of the uniform integer model.
    pub uniform_int_acc: f64,
    /// Size of the written `.nuq` file.
    pub model_bytes: u64,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// Bits of inner weights and activations.
    pub bits: u8,
    /// Training epochs.
    pub epochs: u32,
    /// Width multiplier.
    pub width: f32,
    /// Test images.
    pub test_images: usize,
    /// The model file.
    pub model_path: String,
}

fn nn(e: nuq_nn::NnError) -> Failure {
    Failure::new(e.to_string())
}

fn load(dir: &Path) -> Result<(Dataset, Dataset), Failure> {
    if !dir.is_dir() {
        return Err(Failure::new(format!(
            "Fashion-MNIST not found: {} is not a directory; install it with `apt-get install dataset-fashion-mnist` or pass --data DIR",
            dir.display()
        )));
    }
    let train = load_mnist_like(dir, Split::Train).map_err(|e| {
        Failure::new(format!(
            "{e} (install `dataset-fashion-mnist` or pass --data DIR with the IDX files)"
        ))
    })?;
    let test = load_mnist_like(dir, Split::Test).map_err(|e| Failure::new(e.to_string()))?;
    Ok((train, test))
}

/// The demo's input normalisation: zero mean offset (format 1.0 has no input zero point),
/// Fashion-MNIST's standard deviation. No crops or flips: a two-epoch run converges faster
/// without them and is too short to overfit.
fn augment() -> Augment {
    Augment::normalize_only(vec![0.0], vec![0.353])
}

fn train(
    net: &mut Network,
    data: &Arc<Dataset>,
    a: &DemoArgs,
    progress: &Progress,
) -> Result<(), Failure> {
    let batch = 128;
    let steps = data.len() / batch;
    let total = steps * a.epochs as usize;
    let mut opt = Sgd::new(0.9, 5e-4);
    opt.nesterov = true;
    opt.decay_mode = WeightDecay::L2;
    let schedule = Schedule::one_cycle(0.1, total.max(2));
    schedule.validate().map_err(nn)?;
    let mut ce = CrossEntropy::new(0.0).map_err(nn)?;
    let bar = progress.bar(total as u64, "training");
    let mut step = 0;
    for epoch in 0..a.epochs {
        let mut stats = Stats::default();
        for b in BatchLoader::new(
            data.clone(),
            batch,
            augment(),
            true,
            true,
            a.seed,
            u64::from(epoch),
        ) {
            let s = train_step(
                net,
                &mut ce,
                &mut opt as &mut dyn Optimizer,
                &b.images,
                &b.labels,
                schedule.lr(step),
            )
            .map_err(nn)?;
            stats.add(s);
            step += 1;
            bar.inc(1);
        }
        progress.note(&format!(
            "epoch {}/{}: train loss {:.4}, accuracy {:.2}%",
            epoch + 1,
            a.epochs,
            stats.mean_loss(),
            100.0 * stats.accuracy()
        ));
    }
    bar.finish();
    Ok(())
}

fn float_accuracy(net: &mut Network, test: &Arc<Dataset>) -> Result<f64, Failure> {
    let mut ce = CrossEntropy::new(0.0).map_err(nn)?;
    let mut stats = Stats::default();
    for b in BatchLoader::new(test.clone(), 500, augment().eval(), false, false, 0, 0) {
        stats.add(eval_batch(net, &mut ce, &b.images, &b.labels).map_err(nn)?);
    }
    Ok(stats.accuracy())
}

/// Top-1 accuracy of an integer model on a dataset, integers only.
pub fn integer_accuracy(model: &IntegerModel, test: &Dataset) -> Result<f64, Failure> {
    let mut runner = IntegerRunner::new(model, KernelPath::best_available()).map_err(nn)?;
    let per = test.image_len();
    let mut correct = 0usize;
    for (chunk, labels) in test.images.chunks(per * 500).zip(test.labels.chunks(500)) {
        let pred = runner.predict(chunk, labels.len()).map_err(nn)?;
        correct += pred
            .iter()
            .zip(labels)
            .filter(|(p, &l)| **p == usize::from(l))
            .count();
    }
    Ok(correct as f64 / test.len().max(1) as f64)
}

fn calibration_batch(train: &Dataset, norm: &InputNorm, n: usize) -> Result<Tensor, Failure> {
    let n = n.min(train.len());
    norm.normalise(
        &train.images[..n * train.image_len()],
        n,
        train.height,
        train.width,
    )
    .map_err(nn)
}

/// Calibrates the activation quantizers, then fine-tunes with the quantizers in the loop
/// (straight-through) on `a.qat_images` training images, and folds into the integer model.
fn quantize(
    cfg: ModelConfig,
    weights: &Path,
    family: Family,
    a: &DemoArgs,
    data: &(Arc<Dataset>, Tensor),
    norm: &InputNorm,
    progress: &Progress,
) -> Result<IntegerModel, Failure> {
    let (train, calib) = data;
    let mut net = Network::new(cfg, 0).map_err(nn)?;
    load_model(&mut net, weights).map_err(nn)?;
    let mut qn = QuantizedNetwork::prepare(net, QuantConfig::new(a.bits, family), norm.clone())
        .map_err(nn)?;
    qn.calibrate(calib).map_err(nn)?;
    let batch = 128;
    let steps = a.qat_images / batch;
    if steps > 0 {
        let mut opt = Sgd::new(0.9, 5e-4);
        opt.nesterov = true;
        opt.decay_mode = WeightDecay::L2;
        let schedule = Schedule::Cosine {
            lr: 0.01,
            min_lr: 0.0,
            warmup: 0,
            total: steps,
        };
        schedule.validate().map_err(nn)?;
        let mut ce = CrossEntropy::new(0.0).map_err(nn)?;
        let bar = progress.bar(steps as u64, &format!("QAT {family}"));
        let loader = BatchLoader::new(train.clone(), batch, augment(), true, true, a.seed + 1, 0);
        for (step, b) in loader.take(steps).enumerate() {
            qn.qat_step(&mut ce, &mut opt, &b.images, &b.labels, schedule.lr(step))
                .map_err(nn)?;
            bar.inc(1);
        }
        bar.finish();
    }
    qn.to_integer().map_err(nn)
}

/// Runs the demo.
pub fn run(a: &DemoArgs) -> CmdResult {
    let t0 = Instant::now();
    if !(a.width > 0.0 && a.width <= 1.0) {
        return Err(Failure::new(format!(
            "--width must be in (0, 1], got {}",
            a.width
        )));
    }
    let progress = Progress::new();
    let (train_set, test_set) = load(&a.data)?;
    progress.note(&format!(
        "Fashion-MNIST from {}: {} train / {} test images",
        a.data.display(),
        train_set.len(),
        test_set.len()
    ));
    let cfg = ModelConfig::fashion_mnist(Arch::VggSmall, a.width);
    let mut net = Network::new(cfg, a.seed).map_err(nn)?;
    let train_set = Arc::new(train_set);
    let test_set = Arc::new(test_set);
    train(&mut net, &train_set, a, &progress)?;
    let float_acc = float_accuracy(&mut net, &test_set)?;
    progress.note(&format!("float test accuracy {:.2}%", 100.0 * float_acc));

    let scratch = tempfile::tempdir()
        .map_err(|e| Failure::new(format!("cannot create a temporary directory: {e}")))?;
    let weights = scratch.path().join("float.safetensors");
    save_model(&mut net, &weights).map_err(nn)?;
    let norm = InputNorm::from_mean_std(&augment().mean, &augment().std).map_err(nn)?;
    let calib = calibration_batch(&train_set, &norm, 2000)?;

    let qdata = (train_set.clone(), calib);
    let kq = quantize(
        cfg,
        &weights,
        Family::KQuantile,
        a,
        &qdata,
        &norm,
        &progress,
    )?;
    let int_acc = integer_accuracy(&kq, &test_set)?;
    progress.note(&format!(
        "{}-bit k-quantile integer accuracy {:.2}%",
        a.bits,
        100.0 * int_acc
    ));
    let uni = quantize(cfg, &weights, Family::Uniform, a, &qdata, &norm, &progress)?;
    let uniform_int_acc = integer_accuracy(&uni, &test_set)?;
    progress.note(&format!(
        "{}-bit uniform integer accuracy {:.2}%",
        a.bits,
        100.0 * uniform_int_acc
    ));

    let mut meta = std::collections::BTreeMap::new();
    meta.insert("model".to_string(), format!("vgg-small width {}", a.width));
    meta.insert("dataset".to_string(), "fashion-mnist".to_string());
    meta.insert("float_accuracy".to_string(), format!("{float_acc:.4}"));
    meta.insert("integer_accuracy".to_string(), format!("{int_acc:.4}"));
    meta.insert(
        "quantizer".to_string(),
        format!("k-quantile W{0}/A{0}, first/last 8-bit", a.bits),
    );
    let file_model = to_file_model(&kq, CodebookKind::KQuantile, meta).map_err(nn)?;
    nuq_fpga_fmt::write_file(&a.out, &file_model, &WriteOptions::default())
        .map_err(|e| Failure::new(format!("{}: {e}", a.out.display())))?;
    let model_bytes = std::fs::metadata(&a.out)
        .map_err(|e| Failure::new(format!("{}: {e}", a.out.display())))?
        .len();

    let report = DemoReport {
        float_acc,
        int_acc,
        uniform_int_acc,
        model_bytes,
        seconds: t0.elapsed().as_secs_f64(),
        bits: a.bits,
        epochs: a.epochs,
        width: a.width,
        test_images: test_set.len(),
        model_path: a.out.display().to_string(),
    };
    output::print(&table(&report))?;
    if a.json {
        output::print_json(&report)?;
    }
    Ok(())
}

fn table(r: &DemoReport) -> String {
    format!(
        "\nVGG-Small ×{} on Fashion-MNIST ({} test images), {} epochs, {:.0} s\n\
         {:<44} {:>9}\n\
         {:<44} {:>8.2}%\n\
         {:<44} {:>8.2}%\n\
         {:<44} {:>8.2}%\n\
         model file {} ({} bytes, {} bits/weight inside, 8-bit first conv and classifier)\n",
        r.width,
        r.test_images,
        r.epochs,
        r.seconds,
        "model",
        "accuracy",
        "float (fp32)",
        100.0 * r.float_acc,
        format!("integer-only, {0}-bit k-quantile W/A (the paper)", r.bits),
        100.0 * r.int_acc,
        format!("integer-only, {0}-bit uniform W/A", r.bits),
        100.0 * r.uniform_int_acc,
        r.model_path,
        r.model_bytes,
        r.bits
    )
}
