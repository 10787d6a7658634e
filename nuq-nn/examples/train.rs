//! Train a model on Fashion-MNIST, MNIST or CIFAR-10/100 and report per-epoch loss, accuracy
//! and time.
//!
//! ```text
//! cargo run --release -p nuq-nn --example train -- --model vgg-small \
//!     --data /usr/share/datasets/fashion-mnist --epochs 10 --width 0.5
//! ```
//!
//! Options (defaults in brackets): `--model resnet18|resnet20|vgg-small` [vgg-small],
//! `--dataset fashion-mnist|mnist|cifar10|cifar100` [fashion-mnist], `--data DIR`
//! [/usr/share/datasets/fashion-mnist], `--epochs N` [10], `--width W` [1.0], `--batch B` [128],
//! `--lr LR` [0.1 for SGD, 1e-3 for AdamW], `--optimizer sgd|adamw` [sgd], `--momentum M` [0.9],
//! `--nesterov`, `--wd λ` [5e-4], `--decay-bn` (also decay BN and biases),
//! `--schedule cosine|onecycle|step|constant` [cosine], `--warmup-epochs E` [1],
//! `--label-smoothing ε` [0], `--threads T` [2], `--seed S` [1], `--limit-train N`,
//! `--limit-test N`, `--save PATH` (model at PATH, training state at PATH.state after every
//! epoch), `--resume PATH`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use nuq_nn::checkpoint::{
    load_model, load_train_state, save_model, save_train_state, train_state_path, TrainState,
};
use nuq_nn::data::{
    load_cifar10, load_cifar100, load_mnist_like, Augment, BatchLoader, Cifar100Labels, Dataset,
    Split, FASHION_MNIST_DIR,
};
use nuq_nn::optim::{AdamW, LrSchedule, Optimizer, Schedule, Sgd, WeightDecay};
use nuq_nn::train::{eval_batch, train_step, Stats};
use nuq_nn::{Arch, CrossEntropy, ModelConfig, Network, Rng};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Debug)]
struct Args {
    model: Arch,
    dataset: String,
    data: PathBuf,
    epochs: u64,
    width: f32,
    batch: usize,
    lr: Option<f32>,
    optimizer: String,
    momentum: f32,
    nesterov: bool,
    wd: f32,
    decay_bn: bool,
    schedule: String,
    warmup_epochs: f32,
    smoothing: f32,
    threads: usize,
    seed: u64,
    limit_train: Option<usize>,
    limit_test: Option<usize>,
    save: Option<PathBuf>,
    resume: Option<PathBuf>,
}

fn parse_args() -> Result<Args, Error> {
    let mut a = Args {
        model: Arch::VggSmall,
        dataset: "fashion-mnist".into(),
        data: PathBuf::from(FASHION_MNIST_DIR),
        epochs: 10,
        width: 1.0,
        batch: 128,
        lr: None,
        optimizer: "sgd".into(),
        momentum: 0.9,
        nesterov: false,
        wd: 5e-4,
        decay_bn: false,
        schedule: "cosine".into(),
        warmup_epochs: 1.0,
        smoothing: 0.0,
        threads: 2,
        seed: 1,
        limit_train: None,
        limit_test: None,
        save: None,
        resume: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = v()?.parse()?,
            "--dataset" => a.dataset = v()?,
            "--data" => a.data = v()?.into(),
            "--epochs" => a.epochs = v()?.parse()?,
            "--width" => a.width = v()?.parse()?,
            "--batch" => a.batch = v()?.parse()?,
            "--lr" => a.lr = Some(v()?.parse()?),
            "--optimizer" => a.optimizer = v()?,
            "--momentum" => a.momentum = v()?.parse()?,
            "--nesterov" => a.nesterov = true,
            "--wd" => a.wd = v()?.parse()?,
            "--decay-bn" => a.decay_bn = true,
            "--schedule" => a.schedule = v()?,
            "--warmup-epochs" => a.warmup_epochs = v()?.parse()?,
            "--label-smoothing" => a.smoothing = v()?.parse()?,
            "--threads" => a.threads = v()?.parse()?,
            "--seed" => a.seed = v()?.parse()?,
            "--limit-train" => a.limit_train = Some(v()?.parse()?),
            "--limit-test" => a.limit_test = Some(v()?.parse()?),
            "--save" => a.save = Some(v()?.into()),
            "--resume" => a.resume = Some(v()?.into()),
            "--help" | "-h" => {
                println!("see the header of nuq-nn/examples/train.rs for the options");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if a.batch == 0 || a.threads == 0 {
        return Err("--batch and --threads must be positive".into());
    }
    Ok(a)
}

fn load(a: &Args) -> Result<(Dataset, Dataset, Augment), Error> {
    Ok(match a.dataset.as_str() {
        "fashion-mnist" => (
            load_mnist_like(&a.data, Split::Train)?,
            load_mnist_like(&a.data, Split::Test)?,
            Augment::fashion_mnist_train(),
        ),
        "mnist" => (
            load_mnist_like(&a.data, Split::Train)?,
            load_mnist_like(&a.data, Split::Test)?,
            Augment {
                hflip: false,
                mean: vec![0.1307],
                std: vec![0.3081],
                ..Augment::fashion_mnist_train()
            },
        ),
        "cifar10" => (
            load_cifar10(&a.data, Split::Train)?,
            load_cifar10(&a.data, Split::Test)?,
            Augment::cifar10_train(),
        ),
        "cifar100" => (
            load_cifar100(&a.data, Split::Train, Cifar100Labels::Fine)?,
            load_cifar100(&a.data, Split::Test, Cifar100Labels::Fine)?,
            Augment {
                mean: vec![0.5071, 0.4865, 0.4409],
                std: vec![0.2673, 0.2564, 0.2762],
                ..Augment::cifar10_train()
            },
        ),
        other => return Err(format!("unknown dataset {other}").into()),
    })
}

fn run(a: Args) -> Result<(), Error> {
    let (mut train, mut test, augment) = load(&a)?;
    if let Some(n) = a.limit_train {
        train.truncate(n);
    }
    if let Some(n) = a.limit_test {
        test.truncate(n);
    }
    let cfg = ModelConfig {
        arch: a.model,
        width: a.width,
        in_channels: train.channels,
        classes: train.classes,
        input_size: (train.height, train.width),
    };
    let mut net = Network::new(cfg, a.seed)?;
    let adam = a.optimizer == "adamw";
    let mut opt: Box<dyn Optimizer> = match a.optimizer.as_str() {
        "sgd" => {
            let mut s = Sgd::new(a.momentum, a.wd);
            s.nesterov = a.nesterov;
            s.decay_mode = WeightDecay::L2;
            s.decay_bn_and_bias = a.decay_bn;
            Box::new(s)
        }
        "adamw" => {
            let mut o = AdamW::new(a.wd);
            o.decay_bn_and_bias = a.decay_bn;
            Box::new(o)
        }
        other => return Err(format!("unknown optimizer {other}").into()),
    };
    let lr = a.lr.unwrap_or(if adam { 1e-3 } else { 0.1 });
    let steps_per_epoch = train.len() / a.batch;
    if steps_per_epoch == 0 {
        return Err(format!(
            "{} training images are fewer than one batch of {}",
            train.len(),
            a.batch
        )
        .into());
    }
    let total = steps_per_epoch * a.epochs as usize;
    let schedule = match a.schedule.as_str() {
        "cosine" => Schedule::Cosine {
            lr,
            min_lr: 0.0,
            warmup: ((a.warmup_epochs * steps_per_epoch as f32) as usize).min(total),
            total: total.max(1),
        },
        "onecycle" => Schedule::one_cycle(lr, total.max(2)),
        "step" => Schedule::Step {
            lr,
            step_size: (steps_per_epoch * (a.epochs as usize / 3).max(1)).max(1),
            gamma: 0.1,
        },
        "constant" => Schedule::Constant { lr },
        other => return Err(format!("unknown schedule {other}").into()),
    };
    schedule.validate()?;
    let mut first_epoch = 0;
    let mut step = 0usize;
    if let Some(path) = &a.resume {
        load_model(&mut net, path)?;
        let st = load_train_state(&train_state_path(path))?;
        opt.load_state(st.optimizer, st.optimizer_steps)?;
        first_epoch = st.epoch;
        step = st.step as usize;
        println!("resumed from {} at epoch {first_epoch}", path.display());
    }
    let mut ce = CrossEntropy::new(a.smoothing)?;
    let mut eval_ce = CrossEntropy::new(0.0)?;
    let train = Arc::new(train);
    let test = Arc::new(test);
    println!(
        "{} width {} on {} ({} train / {} test, {}x{}x{}), {} parameters, {:.1} M MACs/image, batch {}, {} threads",
        a.model,
        a.width,
        a.dataset,
        train.len(),
        test.len(),
        train.height,
        train.width,
        train.channels,
        net.num_params(),
        net.macs_per_image() as f64 / 1e6,
        a.batch,
        a.threads
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()?;
    for epoch in first_epoch..a.epochs {
        let t0 = Instant::now();
        let mut tr = Stats::default();
        let loader = BatchLoader::new(
            train.clone(),
            a.batch,
            augment.clone(),
            true,
            true,
            a.seed,
            epoch,
        );
        for b in loader {
            let lr_now = schedule.lr(step);
            let s = pool.install(|| {
                train_step(
                    &mut net,
                    &mut ce,
                    opt.as_mut(),
                    &b.images,
                    &b.labels,
                    lr_now,
                )
            })?;
            tr.add(s);
            step += 1;
        }
        let train_time = t0.elapsed().as_secs_f64();
        let mut te = Stats::default();
        for b in BatchLoader::new(test.clone(), 500, augment.eval(), false, false, a.seed, 0) {
            te.add(pool.install(|| eval_batch(&mut net, &mut eval_ce, &b.images, &b.labels))?);
        }
        println!(
            "epoch {:>3}/{}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | lr {:.4} | {:.1} s train ({:.0} img/s), {:.1} s total",
            epoch + 1,
            a.epochs,
            tr.mean_loss(),
            100.0 * tr.accuracy(),
            te.mean_loss(),
            100.0 * te.accuracy(),
            schedule.lr(step.saturating_sub(1)),
            train_time,
            tr.samples as f64 / train_time,
            t0.elapsed().as_secs_f64()
        );
        if let Some(path) = &a.save {
            save_model(&mut net, path)?;
            let (tensors, opt_steps) = opt.state();
            save_train_state(
                &TrainState {
                    epoch: epoch + 1,
                    step: step as u64,
                    // Batch order and augmentation derive from (seed, epoch); saving the
                    // seed's generator state is all a resume needs.
                    rng: Rng::new(a.seed).state(),
                    optimizer: tensors,
                    optimizer_steps: opt_steps,
                    extra: vec![("args".into(), format!("{a:?}"))],
                    model: None,
                },
                &train_state_path(path),
            )?;
        }
    }
    Ok(())
}

fn main() {
    let result = parse_args().and_then(run);
    if let Err(e) = result {
        eprintln!("train: {e}");
        std::process::exit(1);
    }
}
