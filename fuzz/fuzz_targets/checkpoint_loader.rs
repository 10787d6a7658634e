//! Fuzzes checkpoint loading, safetensors bytes to a network: the nuq metadata
//! (`read_model_config_bytes`), the strict tensor loader (`load_model_bytes`) into a small
//! fixed network and, when the metadata describes a small network, into that network, and the
//! training-state reader (`load_train_state_bytes`). Oracles: no panic, no unbounded
//! allocation, and a network that accepted the tensors runs a forward pass to logits of the
//! right shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuq_nn::checkpoint::{load_model_bytes, load_train_state_bytes, read_model_config_bytes};
use nuq_nn::{Arch, Mode, ModelConfig, Network, Tensor};
use std::path::Path;

/// The network the seeds were written from: VGG-Small at width 1/32 on 8×8×1 images.
fn fixed() -> ModelConfig {
    ModelConfig {
        arch: Arch::VggSmall,
        width: 0.03125,
        in_channels: 1,
        classes: 10,
        input_size: (8, 8),
    }
}

fn load_and_run(cfg: ModelConfig, bytes: &[u8]) {
    let Ok(mut net) = Network::new(cfg, 0) else {
        return;
    };
    if load_model_bytes(&mut net, Path::new("fuzz.safetensors"), bytes).is_ok() {
        let (h, w) = cfg.input_size;
        let x = Tensor::zeros([1, h, w, cfg.in_channels]);
        let logits = net.forward(&x, Mode::Eval).expect("a loaded network runs");
        assert_eq!(logits.shape(), [1, 1, 1, cfg.classes]);
    }
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    if let Ok(Some(cfg)) = read_model_config_bytes(path, data) {
        // Only small networks: the fuzzer must stay fast (the size caps of `Network::new`
        // are tested elsewhere).
        if cfg.width <= 0.25
            && cfg.in_channels <= 4
            && cfg.classes <= 100
            && cfg.input_size.0 <= 32
            && cfg.input_size.1 <= 32
        {
            load_and_run(cfg, data);
        }
    }
    load_and_run(fixed(), data);
    let _ = load_train_state_bytes(path, data);
});
