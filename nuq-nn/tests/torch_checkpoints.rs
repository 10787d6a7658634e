//! Forgiving loading of PyTorch checkpoints: wrapper prefixes, a missing or float
//! `num_batches_tracked`, half and double precision; and errors that name the problem.

use std::sync::OnceLock;

use half::{bf16, f16};
use nuq_nn::checkpoint::{load_model_bytes, model_bytes, CheckpointError};
use nuq_nn::optim::Sgd;
use nuq_nn::train::train_step;
use nuq_nn::{Arch, BufferMut, CrossEntropy, ModelConfig, Network, NnError, Rng, Tensor};
use proptest::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

fn cfg(width: f32) -> ModelConfig {
    ModelConfig {
        arch: Arch::ResNet20,
        width,
        in_channels: 3,
        classes: 5,
        input_size: (8, 8),
    }
}

/// Every parameter (PyTorch layout) and buffer of `net`.
fn values(net: &mut Network) -> (Vec<f32>, Vec<i64>) {
    let mut f = Vec::new();
    let mut n = Vec::new();
    net.visit_params(&mut |_, p| f.extend(p.to_torch()));
    net.visit_buffers(&mut |_, b| match b {
        BufferMut::F32(v) => f.extend_from_slice(v),
        BufferMut::I64(v) => n.push(*v),
    });
    (f, n)
}

/// A trained ResNet-20 whose values are exact in `f16` and `bf16`, as a nuq checkpoint, with
/// its values.
fn reference() -> &'static (Vec<u8>, Vec<f32>, Vec<i64>) {
    static R: OnceLock<(Vec<u8>, Vec<f32>, Vec<i64>)> = OnceLock::new();
    R.get_or_init(|| {
        let mut net = Network::new(cfg(0.25), 1).unwrap();
        let mut rng = Rng::new(2);
        let x = Tensor::from_vec([4, 8, 8, 3], (0..768).map(|_| rng.normal()).collect()).unwrap();
        let mut ce = CrossEntropy::new(0.0).unwrap();
        let mut opt = Sgd::new(0.9, 0.0);
        for _ in 0..3 {
            train_step(&mut net, &mut ce, &mut opt, &x, &[0, 1, 2, 3], 0.1).unwrap();
        }
        let exact = |v: f32| {
            let b = bf16::from_f32(v).to_f32();
            if f16::from_f32(b).to_f32() == b {
                b
            } else {
                0.0
            }
        };
        net.visit_params(&mut |_, p| p.value.iter_mut().for_each(|v| *v = exact(*v)));
        net.visit_buffers(&mut |_, b| {
            if let BufferMut::F32(v) = b {
                v.iter_mut().for_each(|x| *x = exact(*x));
            }
        });
        let (f, n) = values(&mut net);
        assert!(n.iter().all(|&c| c == 3), "{n:?}");
        (model_bytes(&mut net).unwrap(), f, n)
    })
}

fn encode(values: impl Iterator<Item = f64>, dtype: Dtype) -> Vec<u8> {
    values
        .flat_map(|v| match dtype {
            Dtype::F64 => v.to_le_bytes().to_vec(),
            Dtype::F32 => (v as f32).to_le_bytes().to_vec(),
            Dtype::F16 => f16::from_f64(v).to_le_bytes().to_vec(),
            Dtype::BF16 => bf16::from_f64(v).to_le_bytes().to_vec(),
            Dtype::I32 => (v as i32).to_le_bytes().to_vec(),
            Dtype::I64 => (v as i64).to_le_bytes().to_vec(),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// How to rewrite the reference checkpoint, as a PyTorch user's file might differ.
#[derive(Clone, Debug)]
struct Variant {
    /// Prefix of every name.
    prefix: String,
    /// Element type of the float tensors.
    dtype: Dtype,
    /// Element type of `num_batches_tracked`; `None` drops it.
    count: Option<Dtype>,
}

impl Default for Variant {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            dtype: Dtype::F32,
            count: Some(Dtype::I64),
        }
    }
}

/// The reference checkpoint rewritten by `v` (without nuq metadata, as PyTorch writes it),
/// then by `edit` on the `(name, dtype, shape, bytes)` list.
fn rewrite(
    v: &Variant,
    edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
) -> Vec<u8> {
    let st = SafeTensors::deserialize(&reference().0).unwrap();
    let mut out = Vec::new();
    for (name, t) in st.tensors() {
        let (dtype, data) = if t.dtype() == Dtype::I64 {
            let Some(d) = v.count else { continue };
            let c = i64::from_le_bytes(t.data().try_into().unwrap());
            (d, encode(std::iter::once(c as f64), d))
        } else {
            let f = t
                .data()
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())));
            (v.dtype, encode(f, v.dtype))
        };
        out.push((
            format!("{}{name}", v.prefix),
            dtype,
            t.shape().to_vec(),
            data,
        ));
    }
    edit(&mut out);
    let views: Vec<(String, TensorView<'_>)> = out
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn load(bytes: &[u8], width: f32) -> Result<(Vec<f32>, Vec<i64>), NnError> {
    let mut net = Network::new(cfg(width), 99).unwrap();
    let before = values(&mut net);
    let r = load_model_bytes(&mut net, "torch.safetensors".as_ref(), bytes);
    let after = values(&mut net);
    if r.is_err() {
        assert_eq!(before, after, "a failed load changed the network");
    }
    r.map(|()| after)
}

fn load_error(bytes: &[u8], width: f32) -> (CheckpointError, String) {
    match load(bytes, width) {
        Err(NnError::Checkpoint(e)) => {
            let text = e.to_string();
            (e, text)
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn pytorch_variants_load_to_the_same_values() {
    let (_, f, n) = reference();
    let zeros = vec![0; n.len()];
    for (v, counts) in [
        (Variant::default(), n),
        (
            Variant {
                count: None,
                ..Default::default()
            },
            &zeros,
        ),
        (
            Variant {
                prefix: "module.".into(),
                ..Default::default()
            },
            n,
        ),
        (
            Variant {
                prefix: "module.module.".into(),
                ..Default::default()
            },
            n,
        ),
        (
            Variant {
                prefix: "_orig_mod.".into(),
                ..Default::default()
            },
            n,
        ),
        (
            Variant {
                dtype: Dtype::F16,
                ..Default::default()
            },
            n,
        ),
        (
            Variant {
                dtype: Dtype::BF16,
                ..Default::default()
            },
            n,
        ),
        (
            Variant {
                dtype: Dtype::F64,
                ..Default::default()
            },
            n,
        ),
        (
            Variant {
                count: Some(Dtype::F32),
                ..Default::default()
            },
            n,
        ),
        (
            Variant {
                count: Some(Dtype::F16),
                ..Default::default()
            },
            n,
        ),
        (
            Variant {
                count: Some(Dtype::I32),
                ..Default::default()
            },
            n,
        ),
        (
            Variant {
                prefix: "module.".into(),
                dtype: Dtype::F16,
                count: None,
            },
            &zeros,
        ),
    ] {
        let got = load(&rewrite(&v, |_| {}), 0.25).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!((&got.0, &got.1), (f, counts), "{v:?}");
    }
}

fn rename(list: &mut [(String, Dtype, Vec<usize>, Vec<u8>)], from: &str, to: &str) {
    list.iter_mut().find(|t| t.0 == from).unwrap().0 = to.into();
}

#[test]
fn a_wrong_checkpoint_names_the_problem() {
    let plain = Variant::default();
    // Renamed tensors: the missing and the unexpected names, with their counts.
    let bytes = rewrite(&plain, |l| {
        rename(l, "fc.weight", "head.weight");
        rename(l, "fc.bias", "head.bias");
    });
    let (e, text) = load_error(&bytes, 0.25);
    assert!(matches!(e, CheckpointError::Names { .. }), "{e:?}");
    assert!(
        text.contains(r#"2 missing ("fc.weight", "fc.bias")"#)
            && text.contains(r#"2 unexpected ("head.bias", "head.weight")"#),
        "{text}"
    );
    // A prefix nuq does not strip: every name is listed as missing and unexpected, the first
    // few shown.
    let bytes = rewrite(
        &Variant {
            prefix: "model.".into(),
            ..plain.clone()
        },
        |_| {},
    );
    let (_, text) = load_error(&bytes, 0.25);
    assert!(
        text.contains(r#"missing ("conv1.weight", "bn1.weight", "bn1.bias""#)
            && text.contains(r#"unexpected ("model.bn1.bias""#)
            && text.contains("more"),
        "{text}"
    );
    // The wrong width: every mismatched shape, expected and found.
    let (e, text) = load_error(&rewrite(&plain, |_| {}), 0.5);
    let CheckpointError::Shape { mismatches, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(mismatches[0].name, "conv1.weight");
    assert!(
        text.contains(r#""conv1.weight" is [4, 3, 3, 3], expected [8, 3, 3, 3]"#)
            && text.contains(&format!(
                "{} tensors with the wrong shape",
                mismatches.len()
            )),
        "{text}"
    );
    // An integer weight.
    let bytes = rewrite(&plain, |l| {
        let t = l.iter_mut().find(|t| t.0 == "fc.bias").unwrap();
        t.1 = Dtype::I32;
        t.3 = encode([0.0; 5].into_iter(), Dtype::I32);
    });
    let (_, text) = load_error(&bytes, 0.25);
    assert!(
        text.contains(r#"tensor "fc.bias" has dtype I32, expected a float type"#),
        "{text}"
    );
    // A batch count that is not a whole number.
    let bytes = rewrite(
        &Variant {
            count: Some(Dtype::F32),
            ..plain.clone()
        },
        |l| {
            l.iter_mut()
                .find(|t| t.0 == "bn1.num_batches_tracked")
                .unwrap()
                .3 = 2.5f32.to_le_bytes().to_vec();
        },
    );
    let (e, text) = load_error(&bytes, 0.25);
    assert!(matches!(e, CheckpointError::Count { .. }), "{e:?}");
    assert!(
        text.contains(r#""bn1.num_batches_tracked" holds 2.5"#),
        "{text}"
    );
    // A double beyond f32.
    let bytes = rewrite(
        &Variant {
            dtype: Dtype::F64,
            ..plain.clone()
        },
        |l| {
            let t = l.iter_mut().find(|t| t.0 == "fc.bias").unwrap();
            t.3[8..16].copy_from_slice(&1e300f64.to_le_bytes());
        },
    );
    let (_, text) = load_error(&bytes, 0.25);
    assert!(
        text.contains(r#""fc.bias" value 1e300 at index 1 does not fit f32"#),
        "{text}"
    );
    // The same tensor with and without a wrapper prefix.
    let bytes = rewrite(&plain, |l| {
        let mut t = l.iter().find(|t| t.0 == "fc.bias").unwrap().clone();
        t.0 = "module.fc.bias".into();
        l.push(t);
    });
    let (e, text) = load_error(&bytes, 0.25);
    assert!(matches!(e, CheckpointError::Duplicate { .. }), "{e:?}");
    assert!(
        text.contains(r#""fc.bias" and "module.fc.bias" both stand for "fc.bias""#),
        "{text}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any nesting of wrappers, any float type, with or without batch counts: the same values.
    #[test]
    fn any_wrapping_and_float_type_loads_the_same_values(
        wrappers in proptest::collection::vec(prop_oneof![Just("module."), Just("_orig_mod.")], 0..4),
        dtype in prop_oneof![Just(Dtype::F32), Just(Dtype::F16), Just(Dtype::BF16), Just(Dtype::F64)],
        count in prop_oneof![
            Just(None), Just(Some(Dtype::I64)), Just(Some(Dtype::F32)), Just(Some(Dtype::F64)), Just(Some(Dtype::BF16))
        ],
    ) {
        let (_, f, n) = reference();
        let v = Variant { prefix: wrappers.concat(), dtype, count };
        let got = load(&rewrite(&v, |_| {}), 0.25).unwrap();
        prop_assert_eq!(&got.0, f);
        let want: Vec<i64> = if count.is_some() { n.clone() } else { vec![0; n.len()] };
        prop_assert_eq!(got.1, want);
    }
}
