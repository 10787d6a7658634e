//! `nuq demo`: the whole method on real Fashion-MNIST in a few minutes.
//!
//! Trains a small VGG-like network in float, quantizes it after training to 4-bit
//! non-uniform (k-quantile, the paper's quantizer) and 4-bit uniform weights and activations,
//! converts both to the integer model (BN and scales folded into MAC thresholds), evaluates
//! them with integers only, prints a table and writes the k-quantile model as `demo.nuq`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use nuq_fpga_fmt::CodebookKind;
use nuq_nn::checkpoint::save_model;
use nuq_nn::data::{Augment, Split};
use nuq_nn::quant::{Family, QuantConfig};
use nuq_nn::{Arch, ModelConfig, Network};
use serde::Serialize;

use crate::dataset::{load_split, DatasetKind, FASHION_MNIST_DIR};
use crate::exit::{nn, CmdResult, Failure};
use crate::float_model;
use crate::model_file::write_model;
use crate::output;
use crate::progress::Progress;
use nuq_nn::pipeline::{
    float_stats, integer_accuracy, quantize, train_float, Flow, Plan, Position, Recipe,
    ScheduleKind,
};

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
    #[arg(long, default_value = FASHION_MNIST_DIR)]
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
    /// Print the results as one JSON object on stdout (the text goes to stderr).
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

/// The demo's input normalisation: zero mean offset (the input byte is the level, no zero
/// point), Fashion-MNIST's standard deviation. No crops or flips: a two-epoch run converges
/// faster without them and is too short to overfit.
fn augment() -> Augment {
    Augment::normalize_only(vec![0.0], vec![0.353])
}

/// The demo's float training: SGD + Nesterov, one-cycle to 0.1, batch 128.
fn plan(a: &DemoArgs) -> Plan {
    Plan {
        epochs: a.epochs,
        batch: 128,
        lr: 0.1,
        wd: 5e-4,
        decay_bn: true,
        schedule: ScheduleKind::Onecycle,
        seed: a.seed,
    }
}

/// Calibration on 2000 training images, then `a.qat_images` of fine-tuning.
fn recipe(a: &DemoArgs, family: Family) -> Recipe {
    Recipe {
        qat_images: a.qat_images,
        seed: a.seed + 1,
        ..Recipe::new(QuantConfig::new(a.bits, family))
    }
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
    let train_set = load_split(DatasetKind::FashionMnist, &a.data, Split::Train)?;
    let test_set = load_split(DatasetKind::FashionMnist, &a.data, Split::Test)?;
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
    let plan = plan(a);
    let mut opt = plan.optimizer();
    train_float::<Failure>(
        &mut net,
        &mut opt,
        &train_set,
        &augment(),
        &plan,
        Position::default(),
        &progress,
        &mut |_, _, at, stats| {
            progress.note(&format!(
                "epoch {}/{}: train loss {:.4}, accuracy {:.2}%",
                at.epoch,
                a.epochs,
                stats.mean_loss(),
                100.0 * stats.accuracy()
            ));
            Ok(Flow::Continue)
        },
    )?;
    let float_acc = float_stats(&mut net, &test_set, &augment())?.accuracy();
    progress.note(&format!("float test accuracy {:.2}%", 100.0 * float_acc));

    let scratch = tempfile::tempdir()
        .map_err(|e| Failure::new(format!("cannot create a temporary directory: {e}")))?;
    let weights = scratch.path().join("float.safetensors");
    save_model(&mut net, &weights).map_err(nn)?;
    let kq = quantize(
        float_model::load(&weights, cfg)?,
        &recipe(a, Family::KQuantile),
        &train_set,
        &augment(),
        &progress,
    )?;
    let int_acc = integer_accuracy(&kq, &test_set)?;
    progress.note(&format!(
        "{}-bit k-quantile integer accuracy {:.2}%",
        a.bits,
        100.0 * int_acc
    ));
    let uni = quantize(
        float_model::load(&weights, cfg)?,
        &recipe(a, Family::Uniform),
        &train_set,
        &augment(),
        &progress,
    )?;
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
    let model_bytes = write_model(&a.out, &kq, CodebookKind::KQuantile, meta)?;

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
    output::finish(a.json, &table(&report), &report)
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
