//! Post-training quantization (optionally with fine-tuning) of a float checkpoint to the
//! integer model for several weight × activation codebook families, evaluated with integers
//! only on a dataset's test split — a loop over [`nuq_nn::pipeline::quantize`].
//!
//! ```text
//! cargo run --release -p nuq-nn --example ptq -- --checkpoint vgg.safetensors \
//!     --model vgg-small --width 0.125 --data /usr/share/datasets/fashion-mnist \
//!     --mean 0 --std 0.353 --bits 4 --weights kquantile --acts kquantile
//! ```
//! Several `--weights`/`--acts` pairs may be given as comma lists; every pair is evaluated.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;

use nuq_nn::checkpoint::load_model;
use nuq_nn::data::{load_mnist_like, Augment, Split};
use nuq_nn::pipeline::{integer_accuracy, quantize, Quiet, Recipe};
use nuq_nn::quant::{family_name, parse_family, Family, QuantConfig};
use nuq_nn::{Arch, ModelConfig, Network};

fn families(list: &str) -> Result<Vec<Family>, nuq_nn::NnError> {
    list.split(',').map(parse_family).collect()
}

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
            "--weights" => wfams = families(&v()?)?,
            "--acts" => afams = families(&v()?)?,
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
    let train = Arc::new(train);
    let augment = Augment::normalize_only(vec![mean], vec![std]);
    for &wf in &wfams {
        for &af in &afams {
            let mut net = Network::new(cfg, 0)?;
            load_model(&mut net, &checkpoint)?;
            let mut recipe = Recipe::new(QuantConfig::new(bits, wf));
            recipe.config.act_family = af;
            recipe.config.per_channel = per_channel;
            recipe.calib_images = calib;
            recipe.qat_images = qat_images;
            recipe.qat_lr = qat_lr;
            recipe.seed = 7;
            let model = quantize(net, &recipe, &train, &augment, &Quiet)?;
            println!(
                "ptq model={arch} width={width} bits={bits} weights={} acts={} qat_images={qat_images} int_acc={:.4}",
                family_name(wf),
                family_name(af),
                integer_accuracy(&model, &test)?
            );
        }
    }
    Ok(())
}
