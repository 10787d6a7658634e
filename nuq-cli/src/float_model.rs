//! Float checkpoints: which network a safetensors file holds (from nuq's metadata or from
//! `--model`/`--width` for a PyTorch checkpoint) and loading it for a dataset; ONNX files
//! (by their `.onnx` extension or their first bytes) are imported instead.

use std::io::Read;
use std::path::Path;

use clap::Args;
use nuq_nn::checkpoint::{load_model, read_model_config};
use nuq_nn::data::Dataset;
use nuq_nn::{onnx, Arch, ModelConfig, Network};

use crate::exit::nn;
use crate::exit::Failure;

/// Parses a model name for clap.
pub fn parse_arch(s: &str) -> Result<Arch, String> {
    s.parse::<Arch>().map_err(|e| e.to_string())
}

/// Parses a width multiplier in (0, 4].
pub fn parse_width(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(w) if w > 0.0 && w <= 4.0 => Ok(w),
        _ => Err(format!("expected a width multiplier in (0, 4], got {s:?}")),
    }
}

/// Which network a checkpoint holds, for checkpoints without nuq metadata.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Network of a checkpoint without nuq metadata (e.g. from PyTorch): resnet18, resnet20,
    /// vgg-small (CIFAR stems), resnet18-imagenet or resnet34-imagenet (torchvision's
    /// `resnet18`/`resnet34` with the 7×7 stem and max-pool). Checkpoints written by nuq say
    /// it themselves.
    #[arg(long, value_parser = parse_arch)]
    pub model: Option<Arch>,
    /// Width multiplier of a checkpoint without nuq metadata [default: 1].
    #[arg(long, value_parser = parse_width)]
    pub width: Option<f32>,
}

/// The configuration of the checkpoint at `path` for images of `data`'s shape.
pub fn resolve(path: &Path, args: &ModelArgs, data: &Dataset) -> Result<ModelConfig, Failure> {
    let shown = path.display();
    if !path.is_file() {
        return Err(Failure::new(format!(
            "{shown}: no such checkpoint file; pass a .safetensors file written by `nuq train` or PyTorch"
        )));
    }
    let stored = read_model_config(path).map_err(nn)?;
    let cfg = match stored {
        Some(cfg) => {
            if let Some(m) = args.model.filter(|m| *m != cfg.arch) {
                return Err(Failure::new(format!(
                    "{shown}: holds {} but --model says {m}; drop --model or pass the right checkpoint",
                    cfg.arch
                )));
            }
            if let Some(w) = args.width.filter(|w| *w != cfg.width) {
                return Err(Failure::new(format!(
                    "{shown}: has width {} but --width says {w}; drop --width or pass the right checkpoint",
                    cfg.width
                )));
            }
            cfg
        }
        None => ModelConfig {
            arch: args.model.ok_or_else(|| {
                Failure::new(format!(
                    "{shown}: the checkpoint does not say which network it holds (no nuq metadata); pass --model resnet18|resnet20|vgg-small|resnet18-imagenet|resnet34-imagenet and --width"
                ))
            })?,
            width: args.width.unwrap_or(1.0),
            in_channels: data.channels,
            classes: data.classes,
            input_size: (data.height, data.width),
        },
    };
    let want = (cfg.input_size.0, cfg.input_size.1, cfg.in_channels);
    if want != (data.height, data.width, data.channels) || cfg.classes < data.classes {
        return Err(Failure::new(format!(
            "{shown}: the network takes {}x{}x{} images into {} classes but the dataset has {}x{}x{} images of {} classes; pass the dataset it was trained on (--dataset, --data)",
            want.0, want.1, want.2, cfg.classes, data.height, data.width, data.channels, data.classes
        )));
    }
    Ok(cfg)
}

/// Builds the network of `cfg` and loads the checkpoint's tensors into it.
pub fn load(path: &Path, cfg: ModelConfig) -> Result<Network, Failure> {
    let mut net = Network::new(cfg, 0).map_err(nn)?;
    load_model(&mut net, path).map_err(|e| {
        Failure::new(format!(
            "{e} (is it a {} of width {}? pass --model and --width for checkpoints without nuq metadata)",
            cfg.arch, cfg.width
        ))
    })?;
    Ok(net)
}

/// Whether `path` is an ONNX model rather than a safetensors checkpoint: the `.onnx`
/// extension, or (for another name) bytes that start as ONNX files do.
pub fn is_onnx(path: &Path) -> bool {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        return true;
    }
    if path.extension().is_some_and(|e| e == "safetensors") {
        return false;
    }
    let mut head = [0u8; 9];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| onnx::looks_like_onnx(&head))
}

/// The float network at `path` for images of `data`'s shape: an ONNX model is imported, a
/// safetensors checkpoint is resolved with [`resolve`] and loaded with [`load`].
pub fn open(path: &Path, args: &ModelArgs, data: &Dataset) -> Result<Network, Failure> {
    if !is_onnx(path) {
        let cfg = resolve(path, args, data)?;
        return load(path, cfg);
    }
    let shown = path.display();
    if args.model.is_some() || args.width.is_some() {
        return Err(Failure::new(format!(
            "{shown}: an ONNX model defines its own layers; drop --model and --width"
        )));
    }
    let imported = onnx::import(path).map_err(|e| Failure::new(format!("{shown}: {e}")))?;
    let cfg = *imported.network.config();
    let want = (cfg.input_size.0, cfg.input_size.1, cfg.in_channels);
    if want != (data.height, data.width, data.channels) || cfg.classes < data.classes {
        return Err(Failure::new(format!(
            "{shown}: the network takes {}x{}x{} images into {} classes but the dataset has {}x{}x{} images of {} classes; pass the dataset it was trained on (--dataset, --data), or export the model for that input size",
            want.0, want.1, want.2, cfg.classes, data.height, data.width, data.channels, data.classes
        )));
    }
    let added = imported.origins.iter().filter(|o| o.note.is_some()).count();
    eprintln!(
        "{shown}: ONNX opset {} from {}: {} layers{}",
        imported.opset,
        if imported.producer.is_empty() {
            "an unnamed producer"
        } else {
            &imported.producer
        },
        imported.origins.len(),
        if added > 0 {
            format!(", {added} unit batch-norms after convolutions whose BN the exporter folded")
        } else {
            String::new()
        }
    );
    Ok(imported.network)
}
