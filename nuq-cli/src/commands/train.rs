//! `nuq train`: float training with checkpoints after every epoch and resume, or (with
//! `--bits`) quantization-aware training from a float checkpoint to a `.nuq` integer model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use nuq_nn::checkpoint::{
    load_model, load_model_bytes, load_train_state, model_bytes, save_model, save_train_state,
    train_state_path, TrainState,
};
use nuq_nn::data::Split;
use nuq_nn::optim::Optimizer;
use nuq_nn::{Arch, ModelConfig, Network, Rng};
use serde::Serialize;

use crate::dataset::DataArgs;
use crate::exit::{nn, CmdResult, Failure};
use crate::float_model::{self, parse_arch, parse_width, ModelArgs};
use crate::model_file::write_model;
use crate::output;
use crate::progress::Progress;
use crate::quantization::{parse_family, QuantArgs};
use nuq_nn::pipeline::{
    float_stats, integer_accuracy, quantize, train_float, Flow, Plan, Position, ScheduleKind,
};

/// Train a network in float, or fine-tune it with quantizers in the loop.
#[derive(Debug, Args)]
#[command(
    long_about = "Float training (default): trains --model from scratch on the dataset, \
        evaluates on the test split after every epoch and writes the model (safetensors, \
        PyTorch tensor names) plus its training state (OUT.state) after every epoch, so an \
        interrupted run continues with --resume.\n\n\
        Quantization-aware training (--bits B): starts from the float checkpoint --init, \
        quantizes it (codebook --family, B-bit weights and activations, first conv and \
        classifier 8-bit), calibrates the activation quantizers and trains --epochs epochs \
        with the quantizers in the loop, then writes the integer model (.nuq) to --out. \
        The same pipeline as `nuq quantize --qat-epochs`.",
    after_help = "Examples:\n  \
        nuq train --model vgg-small --width 0.25 --epochs 10 --out vgg.safetensors\n  \
        nuq train --out vgg.safetensors --epochs 10 --resume\n  \
        nuq train --dataset cifar10 --data ~/cifar-10-batches-bin --model resnet18 --out r18.safetensors\n  \
        nuq train --bits 3 --family kquantile --init vgg.safetensors --epochs 1 --out vgg-w3a3.nuq"
)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Network to train: resnet18, resnet20, vgg-small, resnet18-imagenet or
    /// resnet34-imagenet (see the README's model table).
    #[arg(long, default_value = "vgg-small", value_parser = parse_arch)]
    model: Arch,
    /// Channel width multiplier (1 = the published widths).
    #[arg(long, default_value_t = 0.25, value_parser = parse_width)]
    width: f32,
    /// Epochs in total (with --resume: up to this many).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    epochs: u32,
    /// Images per step (for --bits too: the fine-tuning's).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    batch: u64,
    /// Peak learning rate (SGD, Nesterov momentum 0.9): 0.1 by default; for --bits, the
    /// fine-tuning's, 0.08 by default.
    #[arg(long)]
    lr: Option<f32>,
    /// L2 weight decay (not on batch-norm parameters and biases).
    #[arg(long, default_value_t = 5e-4)]
    wd: f32,
    /// Learning-rate schedule: onecycle (warm-up, then cosine to zero) or cosine (one epoch
    /// of warm-up).
    #[arg(long, default_value = "onecycle", value_parser = parse_schedule)]
    schedule: ScheduleKind,
    /// Seed of the initial weights, batch order and augmentation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Train without random crops and flips.
    #[arg(long)]
    no_augment: bool,
    /// Where to write the model: a .safetensors checkpoint (float) or a .nuq file (--bits).
    #[arg(long)]
    out: PathBuf,
    /// Stop after this epoch (continue later with --resume and the same settings).
    #[arg(long, value_name = "EPOCH", value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "bits")]
    stop_after: Option<u32>,
    /// Continue the float run saved at --out (reads OUT and OUT.state).
    #[arg(long, conflicts_with_all = ["bits", "init"])]
    resume: bool,
    /// Quantization-aware training to B-bit weights and activations (needs --init).
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=8), requires = "init")]
    bits: Option<u8>,
    /// Codebook family for --bits: kquantile (the paper), lloyd, apot or uniform.
    #[arg(long, default_value = "kquantile", value_parser = parse_family, requires = "bits")]
    family: nuq_nn::quant::Family,
    /// Float model quantization-aware training starts from: a .safetensors checkpoint or an
    /// ONNX file (.onnx).
    #[arg(long, requires = "bits")]
    init: Option<PathBuf>,
    /// Learn the activation clips and weight scales during --bits training (APoT-style clip
    /// gradient, LSQ gradient scaling).
    #[arg(long, requires = "bits")]
    learn_clip: bool,
    /// Threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    threads: Option<u64>,
    /// Print the results as one JSON object on stdout (the text goes to stderr).
    #[arg(long)]
    json: bool,
}

/// One epoch of a float run.
#[derive(Debug, Serialize)]
struct EpochReport {
    epoch: u32,
    train_loss: f64,
    train_acc: f64,
    test_loss: f64,
    test_acc: f64,
    seconds: f64,
}

/// The `--json` object of a float run.
#[derive(Debug, Serialize)]
struct FloatReport {
    model: String,
    width: f32,
    dataset: String,
    epochs: u32,
    test_acc: f64,
    seconds: f64,
    out: String,
    history: Vec<EpochReport>,
}

/// The `--json` object of a quantization-aware run.
#[derive(Debug, Serialize)]
struct QatReport {
    quantizer: String,
    epochs: u32,
    int_acc: f64,
    model_bytes: u64,
    seconds: f64,
    out: String,
}

/// Settings a resumed run must share with the run it continues.
fn plan_entries(a: &TrainArgs) -> Vec<(String, String)> {
    vec![
        ("dataset".into(), a.data.dataset.name().into()),
        ("epochs".into(), a.epochs.to_string()),
        ("batch".into(), a.batch.to_string()),
        ("lr".into(), format!("{:?}", a.lr)),
        ("wd".into(), a.wd.to_string()),
        ("schedule".into(), format!("{:?}", a.schedule)),
        ("seed".into(), a.seed.to_string()),
        ("augment".into(), (!a.no_augment).to_string()),
    ]
}

/// Parses a schedule name for clap.
fn parse_schedule(s: &str) -> Result<ScheduleKind, String> {
    s.parse::<ScheduleKind>().map_err(|e| e.to_string())
}

/// Runs the command on a thread pool of `--threads` threads.
pub fn run(a: &TrainArgs) -> CmdResult {
    let threads = a.threads.map_or(0, |t| t as usize);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Failure::new(format!("cannot start {threads} threads: {e}")))?;
    pool.install(|| match a.bits {
        Some(bits) => run_qat(a, bits),
        None => run_float(a),
    })
}

fn run_float(a: &TrainArgs) -> CmdResult {
    let t0 = Instant::now();
    if a.out.extension().is_some_and(|e| e == "nuq") {
        return Err(Failure::new(format!(
            "{}: float training writes a safetensors checkpoint; name it .safetensors (integer models come from --bits or `nuq quantize`)",
            a.out.display()
        )));
    }
    let progress = Progress::new();
    let train = Arc::new(a.data.load(Split::Train)?);
    let test = Arc::new(a.data.load(Split::Test)?);
    let augment = if a.no_augment {
        a.data.eval_augment(train.channels)?
    } else {
        a.data.train_augment(train.channels)?
    };
    let cfg = ModelConfig {
        arch: a.model,
        width: a.width,
        in_channels: train.channels,
        classes: train.classes,
        input_size: (train.height, train.width),
    };
    let plan = Plan {
        epochs: a.epochs,
        batch: a.batch as usize,
        lr: a.lr.unwrap_or(0.1),
        wd: a.wd,
        decay_bn: false,
        schedule: a.schedule,
        seed: a.seed,
    };
    if !(plan.lr.is_finite() && plan.lr > 0.0 && plan.wd.is_finite() && plan.wd >= 0.0) {
        return Err(Failure::new(format!(
            "--lr must be positive and --wd non-negative, got {} and {}",
            plan.lr, plan.wd
        )));
    }
    plan.steps_per_epoch(train.len())?;
    let mut net = Network::new(cfg, a.seed).map_err(nn)?;
    let mut opt = plan.optimizer();
    let mut from = Position::default();
    let state_file = train_state_path(&a.out);
    if a.resume {
        from = resume(a, &mut net, &mut opt, &state_file)?;
        progress.note(&format!(
            "resuming {} at epoch {} of {}",
            a.out.display(),
            from.epoch + 1,
            a.epochs
        ));
    }
    progress.note(&format!(
        "{} ×{} on {} ({} train / {} test images, {}x{}x{}), {} parameters",
        a.model,
        a.width,
        a.data.dataset.name(),
        train.len(),
        test.len(),
        train.height,
        train.width,
        train.channels,
        net.num_params()
    ));
    let mut history = Vec::new();
    let mut epoch_start = Instant::now();
    let trained = train_float::<Failure>(
        &mut net,
        &mut opt,
        &train,
        &augment,
        &plan,
        from,
        &progress,
        &mut |net, opt, at, stats| {
            let te = float_stats(net, &test, &augment)?;
            // The state file carries the model too: a run killed between the two writes
            // resumes from the state's consistent pair.
            let model = model_bytes(net).map_err(nn)?;
            save_model(net, &a.out).map_err(nn)?;
            let (tensors, optimizer_steps) = opt.state();
            save_train_state(
                &TrainState {
                    epoch: u64::from(at.epoch),
                    step: at.step as u64,
                    // Batch order and augmentation derive from (seed, epoch).
                    rng: Rng::new(a.seed).state(),
                    optimizer: tensors,
                    optimizer_steps,
                    extra: plan_entries(a),
                    model: Some(model),
                },
                &state_file,
            )
            .map_err(nn)?;
            let e = EpochReport {
                epoch: at.epoch,
                train_loss: stats.mean_loss(),
                train_acc: stats.accuracy(),
                test_loss: te.mean_loss(),
                test_acc: te.accuracy(),
                seconds: epoch_start.elapsed().as_secs_f64(),
            };
            output::human(a.json, &format!(
                "epoch {:>3}/{}  train loss {:.4} acc {:6.2}%  test loss {:.4} acc {:6.2}%  {:.1} s\n",
                e.epoch,
                a.epochs,
                e.train_loss,
                100.0 * e.train_acc,
                e.test_loss,
                100.0 * e.test_acc,
                e.seconds
            ))?;
            history.push(e);
            epoch_start = Instant::now();
            if a.stop_after == Some(at.epoch) && at.epoch < a.epochs {
                return Ok(Flow::Stop);
            }
            Ok(Flow::Continue)
        },
    );
    trained?;
    let stopped_at = history.last().map_or(from.epoch, |e| e.epoch);
    if stopped_at < a.epochs {
        output::human(
            a.json,
            &format!(
                "stopped after epoch {stopped_at} of {} as asked; continue with --resume\n",
                a.epochs
            ),
        )?;
    }
    let test_acc = match history.last() {
        Some(e) => e.test_acc,
        None => float_stats(&mut net, &test, &augment)?.accuracy(),
    };
    let report = FloatReport {
        model: a.model.to_string(),
        width: a.width,
        dataset: a.data.dataset.name().into(),
        epochs: stopped_at,
        test_acc,
        seconds: t0.elapsed().as_secs_f64(),
        out: a.out.display().to_string(),
        history,
    };
    let text = format!(
        "test accuracy {:.2}% after {} epochs; model in {} (state in {})\n",
        100.0 * report.test_acc,
        stopped_at,
        a.out.display(),
        state_file.display()
    );
    output::finish(a.json, &text, &report)
}

/// Loads the model and optimiser state of an interrupted run, checking it is the same run.
fn resume(
    a: &TrainArgs,
    net: &mut Network,
    opt: &mut nuq_nn::optim::Sgd,
    state_file: &Path,
) -> Result<Position, Failure> {
    if !a.out.is_file() || !state_file.is_file() {
        return Err(Failure::new(format!(
            "--resume: {} or {} is missing; start the run without --resume",
            a.out.display(),
            state_file.display()
        )));
    }
    let stored = nuq_nn::checkpoint::read_model_config(&a.out).map_err(nn)?;
    if stored != Some(*net.config()) {
        return Err(Failure::new(format!(
            "--resume: {} holds {}, not {} ×{} for this dataset; pass the same --model, --width and --dataset",
            a.out.display(),
            stored.map_or("a network without nuq metadata".to_string(), |c| format!(
                "{} ×{} ({}x{}x{}, {} classes)",
                c.arch, c.width, c.input_size.0, c.input_size.1, c.in_channels, c.classes
            )),
            a.model,
            a.width
        )));
    }
    let st = load_train_state(state_file).map_err(nn)?;
    match &st.model {
        Some(bytes) => load_model_bytes(net, state_file, bytes).map_err(nn)?,
        None => load_model(net, &a.out).map_err(nn)?,
    }
    let want = plan_entries(a);
    for (k, v) in &want {
        match st.extra.iter().find(|(sk, _)| sk == k) {
            Some((_, sv)) if sv == v => {}
            Some((_, sv)) => {
                return Err(Failure::new(format!(
                    "--resume: the run in {} used {k} = {sv}, this command says {v}; resume with the same settings",
                    state_file.display()
                )))
            }
            None => {
                return Err(Failure::new(format!(
                    "--resume: {} does not record {k}; it was not written by `nuq train`",
                    state_file.display()
                )))
            }
        }
    }
    if st.epoch >= u64::from(a.epochs) {
        return Err(Failure::new(format!(
            "--resume: {} already finished {} of {} epochs; nothing to do",
            a.out.display(),
            st.epoch,
            a.epochs
        )));
    }
    opt.load_state(st.optimizer, st.optimizer_steps)
        .map_err(nn)?;
    Ok(Position {
        epoch: st.epoch as u32,
        step: st.step as usize,
    })
}

fn run_qat(a: &TrainArgs, bits: u8) -> CmdResult {
    let t0 = Instant::now();
    let init = a
        .init
        .as_ref()
        .ok_or_else(|| Failure::new("--bits needs --init, the float checkpoint to start from"))?;
    let progress = Progress::new();
    let train = Arc::new(a.data.load(Split::Train)?);
    let test = a.data.load(Split::Test)?;
    let augment = a.data.eval_augment(train.channels)?;
    let model_args = ModelArgs {
        model: None,
        width: None,
    };
    let net = float_model::open(init, &model_args, &train)?;
    let cfg = *net.config();
    let q = QuantArgs {
        bits,
        weight_bits: None,
        act_bits: None,
        family: a.family,
        weight_family: None,
        act_family: None,
        per_tensor: false,
        edge_bits: 8,
        act_per_channel: false,
        learn_clip: a.learn_clip,
        weight_norm: false,
        calib_images: 2000,
        qat_epochs: a.epochs as f32,
        qat_lr: a.lr.unwrap_or(nuq_nn::pipeline::QAT_LR),
        qat_batch: a.batch,
        recalib_every: 0,
        progressive: Vec::new(),
        assign: nuq_core::Assignment::Quantile,
        bin_level: nuq_core::BinLevel::Centroid,
        fixed_quantiles: false,
        uniq_noise: 0.0,
        gradual: 0,
        gradual_train_done: false,
        distill: 0.0,
        distill_temperature: 1.0,
    };
    let recipe = q.recipe(train.len(), a.seed);
    let model = quantize(net, &recipe, &train, &augment, &progress)?;
    let int_acc = integer_accuracy(&model, &test)?;
    let mut meta = BTreeMap::new();
    meta.insert("model".into(), format!("{} width {}", cfg.arch, cfg.width));
    meta.insert("dataset".into(), a.data.dataset.name().into());
    meta.insert("quantizer".into(), q.describe());
    meta.insert("qat_epochs".into(), a.epochs.to_string());
    meta.insert("integer_accuracy".into(), format!("{int_acc:.4}"));
    let model_bytes = write_model(&a.out, &model, a.family, meta)?;
    let report = QatReport {
        quantizer: q.describe(),
        epochs: a.epochs,
        int_acc,
        model_bytes,
        seconds: t0.elapsed().as_secs_f64(),
        out: a.out.display().to_string(),
    };
    let text = format!(
        "{}: {} epochs of quantization-aware training, integer-only test accuracy {:.2}%; wrote {} ({} bytes)\n",
        report.quantizer,
        a.epochs,
        100.0 * int_acc,
        report.out,
        model_bytes
    );
    output::finish(a.json, &text, &report)
}
