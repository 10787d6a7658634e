//! Checkpoint round trips, PyTorch layout and strict loading; resumable training.

use nuq_nn::checkpoint::{
    load_model, load_model_bytes, load_train_state, load_train_state_bytes, model_bytes,
    read_model_config, read_model_config_bytes, save_model, save_train_state, CheckpointError,
    TrainState,
};
use nuq_nn::optim::{Optimizer, Sgd};
use nuq_nn::train::train_step;
use nuq_nn::{Arch, CrossEntropy, Mode, ModelConfig, Network, NnError, Rng, Tensor};
use safetensors::{Dtype, SafeTensors};

fn small(arch: Arch) -> ModelConfig {
    ModelConfig {
        arch,
        width: 0.25,
        in_channels: 3,
        classes: 5,
        input_size: (8, 8),
    }
}

fn batch(seed: u64) -> (Tensor, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let x = Tensor::from_vec(
        [4, 8, 8, 3],
        (0..4 * 8 * 8 * 3).map(|_| rng.normal()).collect(),
    )
    .unwrap();
    (x, (0..4).map(|_| rng.below(5) as u32).collect())
}

#[test]
fn model_round_trip_in_pytorch_layout() {
    let dir = tempfile::tempdir().unwrap();
    for arch in [Arch::ResNet20, Arch::VggSmall] {
        let path = dir.path().join(format!("{arch}.safetensors"));
        let mut a = Network::new(small(arch), 1).unwrap();
        // Move the BN statistics away from their defaults.
        let (x, labels) = batch(2);
        let mut opt = Sgd::new(0.9, 0.0);
        let mut ce = CrossEntropy::new(0.0).unwrap();
        train_step(&mut a, &mut ce, &mut opt, &x, &labels, 0.1).unwrap();
        save_model(&mut a, &path).unwrap();
        let mut b = Network::new(small(arch), 99).unwrap();
        load_model(&mut b, &path).unwrap();
        let ya = a.forward(&x, Mode::Eval).unwrap().clone();
        let yb = b.forward(&x, Mode::Eval).unwrap().clone();
        assert_eq!(ya, yb);
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let first = if arch == Arch::ResNet20 {
            "conv1"
        } else {
            "features.0"
        };
        let bn = if arch == Arch::ResNet20 {
            "bn1"
        } else {
            "features.1"
        };
        let w = st.tensor(&format!("{first}.weight")).unwrap();
        let c_out = if arch == Arch::ResNet20 { 4 } else { 32 };
        assert_eq!(w.shape(), [c_out, 3, 3, 3]);
        // PyTorch order [out][in][kh][kw]: element (o=1, i=2, ky=0, kx=1).
        let torch_val = f32::from_le_bytes(w.data()[4 * 46..4 * 47].try_into().unwrap());
        // nuq's OHWI order [out][kh][kw][in]: the same element.
        let mut ohwi_val = 0.0;
        a.visit_params(&mut |n, p| {
            if n == format!("{first}.weight") {
                ohwi_val = p.value[(3 * 3 + 1) * 3 + 2]; // ((o·kh + ky)·kw + kx)·c_in + i
            }
        });
        assert_eq!(torch_val, ohwi_val);
        let nbt = st.tensor(&format!("{bn}.num_batches_tracked")).unwrap();
        assert_eq!((nbt.dtype(), nbt.shape()), (Dtype::I64, &[][..]));
        assert_eq!(i64::from_le_bytes(nbt.data().try_into().unwrap()), 1);
        assert!(st.tensor(&format!("{bn}.running_var")).is_ok());
    }
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
}

#[test]
fn loading_is_strict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let mut a = Network::new(small(Arch::ResNet20), 1).unwrap();
    save_model(&mut a, &path).unwrap();
    // Wrong width: shapes differ.
    let mut wide = Network::new(
        ModelConfig {
            width: 0.5,
            ..small(Arch::ResNet20)
        },
        1,
    )
    .unwrap();
    match load_model(&mut wide, &path) {
        Err(NnError::Checkpoint(CheckpointError::Shape { mismatches, .. })) => {
            assert_eq!(mismatches[0].name, "conv1.weight")
        }
        other => panic!("{other:?}"),
    }
    // Other architecture: names differ.
    let mut vgg = Network::new(small(Arch::VggSmall), 1).unwrap();
    assert!(matches!(
        load_model(&mut vgg, &path),
        Err(NnError::Checkpoint(CheckpointError::Names { .. }))
    ));
    // Garbage file and missing file.
    std::fs::write(&path, b"not safetensors").unwrap();
    assert!(matches!(
        load_model(&mut a, &path),
        Err(NnError::Checkpoint(CheckpointError::Format { .. }))
    ));
    assert!(matches!(
        load_model(&mut a, &dir.path().join("absent")),
        Err(NnError::Checkpoint(CheckpointError::Io { .. }))
    ));
}

#[test]
fn resumed_training_matches_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    let (mp, sp) = (
        dir.path().join("m.safetensors"),
        dir.path().join("s.safetensors"),
    );
    let cfg = small(Arch::ResNet20);
    let mut ce = CrossEntropy::new(0.1).unwrap();
    let mut a = Network::new(cfg, 3).unwrap();
    let mut opt = Sgd::new(0.9, 5e-4);
    opt.nesterov = true;
    for s in 0..2 {
        let (x, l) = batch(10 + s);
        train_step(&mut a, &mut ce, &mut opt, &x, &l, 0.05).unwrap();
    }
    let rng = Rng::new(77);
    save_model(&mut a, &mp).unwrap();
    let (tensors, steps) = opt.state();
    let state = TrainState {
        epoch: 1,
        step: 2,
        rng: rng.state(),
        optimizer: tensors,
        optimizer_steps: steps,
        extra: vec![("note".into(), "test".into())],
        model: Some(model_bytes(&mut a).unwrap()),
    };
    save_train_state(&state, &sp).unwrap();
    // The state holds the model checkpoint byte for byte; equal networks give equal bytes.
    assert_eq!(
        load_train_state(&sp).unwrap().model.as_deref(),
        Some(&std::fs::read(&mp).unwrap()[..])
    );
    let (x, l) = batch(20);
    train_step(&mut a, &mut ce, &mut opt, &x, &l, 0.05).unwrap();

    let mut b = Network::new(cfg, 4).unwrap();
    load_model(&mut b, &mp).unwrap();
    let restored = load_train_state(&sp).unwrap();
    assert_eq!(restored.epoch, 1);
    assert_eq!(restored.rng, rng.state());
    assert_eq!(
        restored.extra,
        vec![("note".to_string(), "test".to_string())]
    );
    let mut opt_b = Sgd::new(0.9, 5e-4);
    opt_b.nesterov = true;
    opt_b
        .load_state(restored.optimizer, restored.optimizer_steps)
        .unwrap();
    train_step(&mut b, &mut ce, &mut opt_b, &x, &l, 0.05).unwrap();
    let mut wa = Vec::new();
    a.visit_params(&mut |_, p| wa.extend_from_slice(&p.value));
    let mut wb = Vec::new();
    b.visit_params(&mut |_, p| wb.extend_from_slice(&p.value));
    assert_eq!(wa, wb);
}

#[test]
fn model_config_is_read_back_from_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let cfg = small(Arch::VggSmall);
    let mut net = Network::new(cfg, 3).unwrap();
    save_model(&mut net, &path).unwrap();
    assert_eq!(read_model_config(&path).unwrap(), Some(cfg));

    // A checkpoint without nuq metadata (as PyTorch writes it) has no configuration.
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let plain = dir.path().join("plain.safetensors");
    let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.tensors().into_iter().collect();
    std::fs::write(&plain, safetensors::serialize(tensors, None).unwrap()).unwrap();
    assert_eq!(read_model_config(&plain).unwrap(), None);

    // Present but malformed metadata is an error naming the key.
    let broken = dir.path().join("broken.safetensors");
    let meta = std::collections::HashMap::from([
        ("nuq.arch".to_string(), "vgg-small".to_string()),
        ("nuq.width".to_string(), "-1".to_string()),
    ]);
    let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.tensors().into_iter().collect();
    std::fs::write(
        &broken,
        safetensors::serialize(tensors, Some(meta)).unwrap(),
    )
    .unwrap();
    let err = read_model_config(&broken).unwrap_err().to_string();
    assert!(err.contains("nuq.width") && err.contains("-1"), "{err}");
}

/// `bytes` (a safetensors file) with the metadata value of `key` replaced by `value`.
fn with_metadata(bytes: &[u8], key: &str, value: &str) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header["__metadata__"][key] = serde_json::Value::String(value.into());
    let mut text = serde_json::to_string(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

#[test]
fn crafted_metadata_cannot_make_the_network_allocate_without_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let mut net = Network::new(small(Arch::ResNet20), 3).unwrap();
    save_model(&mut net, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for (key, value, what) in [
        ("nuq.width", "1000", "width 1000"),
        ("nuq.classes", "1000000000000", "1000000000000 classes"),
        ("nuq.input_size", "100000x100000", "input 100000x100000"),
        ("nuq.in_channels", "99999", "99999 input channels"),
    ] {
        let crafted = with_metadata(&bytes, key, value);
        let cfg = read_model_config_bytes(&path, &crafted)
            .unwrap()
            .expect("nuq metadata");
        match Network::new(cfg, 0) {
            Err(NnError::TooLarge { detail, .. }) => assert!(detail.contains(what), "{detail}"),
            other => panic!("{key}={value}: expected TooLarge, got {:?}", other.err()),
        }
    }
    // VGG-Small's classifier grows with the input: 4096×4096 images into 65536 classes would
    // be a 2^40-weight linear layer.
    let cfg = ModelConfig {
        arch: Arch::VggSmall,
        width: 0.25,
        in_channels: 1,
        classes: 1 << 16,
        input_size: (4096, 4096),
    };
    assert!(matches!(
        Network::new(cfg, 0),
        Err(NnError::TooLarge { .. })
    ));
}

#[test]
fn byte_level_loaders_match_the_file_loaders() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let mut net = Network::new(small(Arch::VggSmall), 3).unwrap();
    save_model(&mut net, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let cfg = read_model_config_bytes(&path, &bytes).unwrap().unwrap();
    assert_eq!(cfg, small(Arch::VggSmall));
    let mut a = Network::new(cfg, 9).unwrap();
    let mut b = Network::new(cfg, 10).unwrap();
    load_model(&mut a, &path).unwrap();
    load_model_bytes(&mut b, &path, &bytes).unwrap();
    let x = Tensor::zeros([1, 8, 8, 3]);
    let la = a.forward(&x, Mode::Eval).unwrap().data().to_vec();
    let lb = b.forward(&x, Mode::Eval).unwrap().data().to_vec();
    assert_eq!(la, lb);
    // Every truncation is an error, never a panic.
    for cut in (0..bytes.len()).step_by(97) {
        assert!(load_model_bytes(&mut b, &path, &bytes[..cut]).is_err());
        assert!(load_train_state_bytes(&path, &bytes[..cut]).is_err());
        let _ = read_model_config_bytes(&path, &bytes[..cut]);
    }
}
