//! `nuq quantize`: a float checkpoint plus calibration data in, a verified `.nuq` integer
//! model out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use nuq_nn::data::Split;
use serde::Serialize;

use crate::commands::cdf_plots;
use crate::dataset::DataArgs;
use crate::exit::{CmdResult, Failure};
use crate::float_model::{self, ModelArgs};
use crate::mac_cdf::{layer_cdfs, MAX_IMAGES};
use crate::model_file::write_model;
use crate::output::{self, StagedDir};
use crate::progress::Progress;
use crate::quantization::QuantArgs;
use nuq_nn::pipeline::{float_stats, integer_accuracy, quantize_with_twin, twin_agreement};

/// Quantize a float checkpoint to a .nuq integer model.
#[derive(Debug, Args)]
#[command(
    long_about = "Quantizes a float safetensors checkpoint (written by `nuq train`, or by \
        PyTorch with torchvision-style names: pass --model and --width), or a float CNN in an \
        ONNX file (Conv, BatchNormalization, Relu, pools, Flatten, Gemm/MatMul and residual \
        Add; see nuq_nn::onnx), to the integer model: \
        weights become codebook indices (--family, --weight-bits), every activation gets a \
        codebook whose thresholds are calibrated on training images (k-quantile: equal-mass \
        quantiles of the MAC result, the paper's quantizer), batch-norm and the scales fold \
        into per-channel integer MAC thresholds. --qat-epochs adds quantization-aware \
        fine-tuning. The result is evaluated with integers only on the test split (unless \
        --no-eval) and written to --out.",
    after_help = "Examples:\n  \
        nuq quantize vgg.safetensors --out vgg-w4a4.nuq\n  \
        nuq quantize vgg.safetensors --bits 3 --family lloyd --qat-epochs 1 --out vgg-w3a3.nuq\n  \
        nuq quantize resnet18.pt.safetensors --model resnet18 --width 1 --dataset cifar10 \\\n      \
        --data ~/cifar-10-batches-bin --weight-bits 4 --act-bits 4 --out r18.nuq\n  \
        nuq quantize vgg.safetensors --out vgg-w4a4.nuq --plot figures/   \
        # one MAC-result CDF per requantized layer\n  \
        nuq quantize resnet18.onnx --out r18.nuq   # a float CNN exported by torch.onnx.export"
)]
pub struct QuantizeArgs {
    /// The float model: a .safetensors checkpoint or an ONNX file (.onnx).
    checkpoint: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    quant: QuantArgs,
    /// Where to write the integer model.
    #[arg(long)]
    out: PathBuf,
    /// Seed of the fine-tuning's batch order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip the float and integer test-set evaluation.
    #[arg(long)]
    no_eval: bool,
    /// Also draw, per requantized layer of the integer model, the empirical CDF of its
    /// integer MAC result on the first calibration images (at most 256) with the equal-mass
    /// boundaries and the MAC thresholds (the paper's Figure 1): `DIR/<layer>.svg` for one
    /// channel per layer, plus DIR/index.md. Only reads the model.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Print the results as one JSON object on stdout (the text goes to stderr).
    #[arg(long)]
    json: bool,
}

/// The `--json` object.
#[derive(Debug, Serialize)]
struct QuantizeReport {
    model: String,
    width: f32,
    quantizer: String,
    qat_epochs: f32,
    /// Peak learning rate and images per step of the fine-tuning.
    qat_lr: f32,
    qat_batch: u64,
    /// Seed of the fine-tuning's batch order (and of UNIQ noise).
    seed: u64,
    /// Share of each fine-tuning stage trained with UNIQ noise (0: STE throughout).
    uniq_noise: f32,
    /// Stages of UNIQ's gradual schedule (0 or 1: all layers at once).
    gradual: usize,
    /// Whether the gradual schedule froze the blocks of finished stages.
    gradual_frozen: bool,
    /// Weight of the distillation term (0: labels only) and its temperature.
    distill: f32,
    distill_temperature: f32,
    float_acc: Option<f64>,
    int_acc: Option<f64>,
    /// Accuracy of the fake-quantized float twin the integer model was folded from.
    twin_acc: Option<f64>,
    /// Share of test images on which the twin and the integer model predict the same class.
    twin_agreement: Option<f64>,
    model_bytes: u64,
    /// Figures written by --plot (file names inside the directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    plots: Option<Vec<String>>,
    seconds: f64,
    out: String,
}

/// Runs the command.
pub fn run(a: &QuantizeArgs) -> CmdResult {
    let t0 = Instant::now();
    if a.out.extension().is_some_and(|e| e == "safetensors") {
        return Err(Failure::new(format!(
            "{}: the integer model is a .nuq file, not safetensors; choose another --out",
            a.out.display()
        )));
    }
    // Prepare the figure directory first: an unwritable --plot fails before any work.
    let mut plot_dir = a.plot.as_deref().map(StagedDir::new).transpose()?;
    let progress = Progress::new();
    let train = Arc::new(a.data.load(Split::Train)?);
    let augment = a.data.eval_augment(train.channels)?;
    let test = if a.no_eval {
        None
    } else {
        Some(Arc::new(a.data.load(Split::Test)?))
    };
    let mut net = float_model::open(&a.checkpoint, &a.model, &train)?;
    let cfg = *net.config();
    let float_acc = match &test {
        Some(t) => Some(float_stats(&mut net, t, &augment)?.accuracy()),
        None => None,
    };
    let recipe = a.quant.recipe(train.len(), a.seed);
    let (model, mut twin) = quantize_with_twin(net, &recipe, &train, &augment, &progress)?;
    let (int_acc, agreement) = match &test {
        Some(t) => (
            Some(integer_accuracy(&model, t)?),
            Some(twin_agreement(&mut twin, &model, t)?),
        ),
        None => (None, None),
    };
    let mut plot_files = None;
    if let Some(staged) = &mut plot_dir {
        let images = recipe.calib_images.min(MAX_IMAGES).min(train.len()).max(1);
        let per = train.height * train.width * train.channels;
        let layers =
            layer_cdfs(&model, &train.images[..images * per], images).map_err(Failure::new)?;
        for l in &layers {
            let p = cdf_plots::layer_plot(l).map_err(Failure::new)?;
            staged.add(&p.file_name, p.svg.as_bytes())?;
        }
        staged.add("index.md", cdf_plots::index(&layers, images).as_bytes())?;
        plot_files = Some(layers.len());
    }
    let mut meta = BTreeMap::new();
    meta.insert("model".into(), format!("{} width {}", cfg.arch, cfg.width));
    meta.insert("dataset".into(), a.data.dataset.name().into());
    meta.insert("quantizer".into(), a.quant.describe());
    meta.insert("qat_epochs".into(), a.quant.qat_epochs.to_string());
    meta.insert(
        "source".into(),
        a.checkpoint
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    if let Some(f) = float_acc {
        meta.insert("float_accuracy".into(), format!("{f:.4}"));
    }
    if let Some(i) = int_acc {
        meta.insert("integer_accuracy".into(), format!("{i:.4}"));
    }
    let family = a.quant.weight_family.unwrap_or(a.quant.family);
    let model_bytes = write_model(&a.out, &model, family, meta)?;
    let plots = match plot_dir {
        Some(staged) => Some(
            staged
                .commit()?
                .iter()
                .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
                .collect::<Vec<_>>(),
        ),
        None => None,
    };
    let report = QuantizeReport {
        model: cfg.arch.to_string(),
        width: cfg.width,
        quantizer: a.quant.describe(),
        qat_epochs: a.quant.qat_epochs,
        qat_lr: a.quant.qat_lr,
        qat_batch: a.quant.qat_batch,
        seed: a.seed,
        uniq_noise: a.quant.uniq_noise,
        gradual: a.quant.gradual,
        gradual_frozen: a.quant.gradual > 1 && !a.quant.gradual_train_done,
        distill: a.quant.distill,
        distill_temperature: a.quant.distill_temperature,
        float_acc,
        int_acc,
        twin_acc: agreement.map(|a| a.twin_acc),
        twin_agreement: agreement.map(|a| a.top1),
        model_bytes,
        plots,
        seconds: t0.elapsed().as_secs_f64(),
        out: a.out.display().to_string(),
    };
    let mut text = format!(
        "{} ×{}: {}, {} QAT epochs\n",
        report.model, report.width, report.quantizer, report.qat_epochs
    );
    if let (Some(f), Some(i)) = (float_acc, int_acc) {
        text.push_str(&format!(
            "test accuracy: float {:.2}%, integer-only {:.2}% ({:+.2} points)\n",
            100.0 * f,
            100.0 * i,
            100.0 * (i - f)
        ));
    }
    if let Some(a) = agreement {
        text.push_str(&format!(
            "fake-quantized float twin {:.2}%, same prediction as the integer model on {:.2}% of the test images\n",
            100.0 * a.twin_acc,
            100.0 * a.top1
        ));
    }
    text.push_str(&format!("wrote {} ({} bytes)\n", report.out, model_bytes));
    if let (Some(dir), Some(n)) = (&a.plot, plot_files) {
        text.push_str(&format!(
            "wrote {n} MAC-result CDF figure(s) and index.md to {}\n",
            dir.display()
        ));
    }
    output::finish(a.json, &text, &report)
}
