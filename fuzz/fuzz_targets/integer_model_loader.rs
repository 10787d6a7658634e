//! Fuzzes the path from `.nuq` bytes to integer-only inference: parse, rebuild the integer
//! model (`nuq_nn::integer::from_file_model`) and, when it is accepted, run one all-zero image
//! on the scalar kernels. Oracles: no panic anywhere; an accepted model yields one logit per
//! class or a clean error (e.g. a possible accumulator overflow).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuq_fpga_fmt::{reseal, Model, NuqFile};
use nuq_kernels::KernelPath;
use nuq_nn::integer::{from_file_model, IntegerRunner};

fn check(bytes: &[u8]) {
    let Ok(file) = NuqFile::parse(bytes) else {
        return;
    };
    let Ok(model) = from_file_model(&Model::from_file(&file)) else {
        return;
    };
    let inp = &model.input;
    // Keep runs short: skip huge inputs the fuzzer can describe in a few bytes.
    if inp.channels * inp.height * inp.width > 1 << 16 || model.macs_per_image().map_or(true, |m| m > 1 << 24) {
        return;
    }
    let Ok(mut runner) = IntegerRunner::new(&model, KernelPath::Scalar) else {
        return;
    };
    let image = vec![0u8; inp.channels * inp.height * inp.width];
    let classes = runner.classes();
    if let Ok(logits) = runner.forward(&image, 1) {
        assert_eq!(logits.len(), classes);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // With checksums recomputed the input reaches the model rebuild.
    let mut sealed = data.to_vec();
    reseal(&mut sealed);
    check(&sealed);
});
