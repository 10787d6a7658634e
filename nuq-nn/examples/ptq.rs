//! Post-training quantization of a float checkpoint to the integer model, evaluated with
//! integers only on a dataset's test split.
//!
//! ```text
//! cargo run --release -p nuq-nn --example ptq -- --checkpoint vgg.safetensors \
//!     --model vgg-small --width 0.125 --data /usr/share/datasets/fashion-mnist \
//!     --mean 0 --std 0.353 --bits 4 --weights kquantile --acts kquantile
//! ```
//! Several `--weights`/`--acts` pairs may be given as comma lists; every pair is evaluated.

use std::error::Error;
use std::path::PathBuf;

use nuq_kernels::KernelPath;
use nuq_nn::checkpoint::load_model;
use nuq_nn::data::{load_mnist_like, Augment, BatchLoader, Split};
use nuq_nn::integer::IntegerRunner;
use nuq_nn::optim::{LrSchedule, Schedule, Sgd};
use nuq_nn::quant::{Family, InputNorm, QuantConfig, QuantizedNetwork};
use nuq_nn::CrossEntropy;
use nuq_nn::{Arch, ModelConfig, Network};

fn main() -> Result<(), Box<dyn Error>> {
    let mut checkpoint = PathBuf::new();
    let mut arch = Arch::VggSmall;
    let mut width = 0.125f32;
    let mut data = PathBuf::from("/usr/share/datasets/fashion-mnist");
    let (mut mean, mut std) = (0.0f32, 0.353f32);
    let mut bits = 4u8;
    let mut wfams = vec![Family::KQuantile];
    let mut afams = vec![Family::KQuantile];
    let mut calib = 2000usize;
    let mut per_channel = true;
    let mut qat_images = 0usize;
    let mut qat_lr = 0.01f32;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--checkpoint" => checkpoint = v()?.into(),
            "--model" => arch = v()?.parse()?,
            "--width" => width = v()?.parse()?,
            "--data" => data = v()?.into(),
            "--mean" => mean = v()?.parse()?,
            "--std" => std = v()?.parse()?,
            "--bits" => bits = v()?.parse()?,
            "--weights" => wfams = v()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--acts" => afams = v()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--calib" => calib = v()?.parse()?,
            "--per-tensor" => per_channel = false,
            "--qat-images" => qat_images = v()?.parse()?,
            "--qat-lr" => qat_lr = v()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let train = load_mnist_like(&data, Split::Train)?;
    let test = load_mnist_like(&data, Split::Test)?;
    let cfg = ModelConfig {
        arch,
        width,
        in_channels: train.channels,
        classes: train.classes,
        input_size: (train.height, train.width),
    };
    let norm = InputNorm::from_mean_std(&[mean], &[std])?;
    let n = calib.min(train.len());
    let calib_x = norm.normalise(
        &train.images[..n * train.image_len()],
        n,
        train.height,
        train.width,
    )?;
    for &wf in &wfams {
        for &af in &afams {
            let mut net = Network::new(cfg, 0)?;
            load_model(&mut net, &checkpoint)?;
            let mut qc = QuantConfig::new(bits, wf);
            qc.act_family = af;
            qc.per_channel = per_channel;
            let mut qn = QuantizedNetwork::prepare(net, qc, norm.clone())?;
            qn.calibrate(&calib_x)?;
            if qat_images > 0 {
                let train_set = std::sync::Arc::new(train.clone());
                let batch = 128;
                let steps = qat_images / batch;
                let mut opt = Sgd::new(0.9, 5e-4);
                opt.nesterov = true;
                let schedule = Schedule::Cosine {
                    lr: qat_lr,
                    min_lr: 0.0,
                    warmup: 0,
                    total: steps.max(1),
                };
                let mut ce = CrossEntropy::new(0.0)?;
                let aug = Augment::normalize_only(vec![mean], vec![std]);
                for (step, b) in BatchLoader::new(train_set, batch, aug, true, true, 7, 0)
                    .take(steps)
                    .enumerate()
                {
                    qn.qat_step(&mut ce, &mut opt, &b.images, &b.labels, schedule.lr(step))?;
                }
            }
            let model = qn.to_integer()?;
            let mut runner = IntegerRunner::new(&model, KernelPath::best_available())?;
            let per = test.image_len();
            let mut correct = 0;
            for (chunk, labels) in test.images.chunks(per * 500).zip(test.labels.chunks(500)) {
                let pred = runner.predict(chunk, labels.len())?;
                correct += pred
                    .iter()
                    .zip(labels)
                    .filter(|(p, &l)| **p == usize::from(l))
                    .count();
            }
            println!(
                "ptq model={arch} width={width} bits={bits} weights={wf} acts={af} qat_images={qat_images} int_acc={:.4}",
                correct as f64 / test.len() as f64
            );
        }
    }
    Ok(())
}
