//! Fuzzes ONNX import, protobuf bytes to a float network (`nuq_nn::onnx::import_bytes`):
//! decoding, constant folding, the graph walk and the layer construction. Oracles: no panic,
//! no unbounded allocation, and a small imported network runs a forward pass to logits of
//! the shape its configuration states.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuq_nn::{onnx, Mode, Tensor};

fuzz_target!(|data: &[u8]| {
    let Ok(mut imported) = onnx::import_bytes(data) else {
        return;
    };
    let cfg = *imported.network.config();
    let (h, w) = cfg.input_size;
    // Only small networks run: the fuzzer must stay fast.
    if h * w * cfg.in_channels > 64 * 64 * 4 || imported.network.macs_per_image() > 20_000_000 {
        return;
    }
    let x = Tensor::zeros([1, h, w, cfg.in_channels]);
    let logits = imported
        .network
        .forward(&x, Mode::Eval)
        .expect("an imported network runs");
    assert_eq!(logits.shape(), [1, 1, 1, cfg.classes]);
});
