//! UNIQ's gradual schedule: every weight layer in exactly one stage, in order; at each stage
//! the earlier blocks quantized (and frozen: unchanged by training), the current one
//! quantized and trained, the later ones in full precision with their activations passed
//! through; at the end every layer quantized and the integer model the fold of the twin.

use std::collections::BTreeMap;
use std::sync::Arc;

use nuq_nn::data::{Augment, Dataset};
use nuq_nn::integer::IntegerRunner;
use nuq_nn::optim::Sgd;
use nuq_nn::pipeline::{quantize_with_twin, twin_agreement, Quiet, Recipe};
use nuq_nn::quant::{
    gradual_stages, ActQuant, Family, InputNorm, Phase, QuantConfig, QuantizedNetwork,
};
use nuq_nn::{Arch, BufferMut, CrossEntropy, Mode, ModelConfig, Network, NnError, Rng, Tensor};

fn cfg(arch: Arch) -> ModelConfig {
    ModelConfig {
        arch,
        width: 0.125,
        in_channels: 2,
        classes: 10,
        input_size: (8, 8),
    }
}

fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..n * 8 * 8 * 2)
        .map(|i| ((i % 128) as f32 * 0.7 + rng.uniform(0.0, 160.0)) as u8)
        .collect()
}

fn batch(norm: &InputNorm, n: usize, seed: u64) -> Tensor {
    norm.normalise(&bytes(n, seed), n, 8, 8).unwrap()
}

/// Every layer in exactly one stage, stages contiguous and in order, all used, sizes within
/// one of each other; no more stages than layers, at least one.
#[test]
fn the_schedule_puts_every_layer_in_one_stage_in_order() {
    for layers in 1..60 {
        for stages in 1..=layers {
            let s = gradual_stages(layers, stages).unwrap();
            assert_eq!(s.len(), layers);
            assert_eq!(s[0], 0);
            assert_eq!(s[layers - 1], stages - 1);
            assert!(s.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1));
            let mut sizes = vec![0usize; stages];
            for &i in &s {
                sizes[i] += 1;
            }
            let (lo, hi) = (layers / stages, layers.div_ceil(stages));
            assert!(sizes.iter().all(|&n| n == lo || n == hi), "{sizes:?}");
        }
        for stages in [0, layers + 1] {
            assert!(matches!(
                gradual_stages(layers, stages),
                Err(NnError::InvalidParameter { .. })
            ));
        }
    }
}

/// The weights the network uses, by layer.
fn used_weights(qn: &mut QuantizedNetwork) -> BTreeMap<String, Vec<f32>> {
    let names = qn.weight_layers();
    let mut w = BTreeMap::new();
    qn.net.visit_params(&mut |name, p| {
        if let Some(n) = name.strip_suffix(".weight") {
            if names.iter().any(|x| x == n) {
                w.insert(n.to_string(), p.value.clone());
            }
        }
    });
    w
}

/// Every parameter and running statistic (f32), by name.
fn state(qn: &mut QuantizedNetwork) -> BTreeMap<String, Vec<f32>> {
    let mut m = BTreeMap::new();
    qn.net.visit_params(&mut |name, p| {
        m.insert(name.to_string(), p.value.clone());
    });
    qn.net.visit_buffers(&mut |name, b| {
        if let BufferMut::F32(v) = b {
            m.insert(name.to_string(), v.clone());
        }
    });
    m
}

/// The most distinct values in one row of a layer's used weights.
fn distinct_per_row(qn: &QuantizedNetwork, name: &str, w: &[f32]) -> usize {
    let rows = qn.weight_quantizer(name).unwrap().weights.scales.len();
    w.chunks(w.len() / rows)
        .map(|r| {
            let mut v: Vec<u32> = r.iter().map(|x| x.to_bits()).collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        })
        .max()
        .unwrap()
}

/// (bypassed, calibrated) activation quantizers.
fn activations(qn: &QuantizedNetwork) -> (usize, usize) {
    let (mut bypassed, mut fitted) = (0, 0);
    let mut count = |a: &ActQuant| {
        bypassed += usize::from(a.bypassed());
        fitted += usize::from(a.quantizer.is_some());
    };
    nuq_nn::visit_leaves(&qn.net.body, "", &mut |_, l| {
        if let Some(a) = l.as_any().downcast_ref::<ActQuant>() {
            count(a);
        }
    });
    (bypassed, fitted)
}

/// Stage by stage: phases as the schedule says; quantized layers on their codebook grid,
/// float layers off it; frozen layers' weights, codebooks and indices unchanged by
/// training steps, float layers' weights moved; later activations passed through until
/// their stage. Then every layer quantized and the integer model computes the twin.
#[test]
fn each_stage_quantizes_freezes_and_floats_the_right_layers() {
    let bits = 2u8;
    let stages = 3;
    for arch in [Arch::VggSmall, Arch::ResNet20] {
        for freeze in [true, false] {
            let net = Network::new(cfg(arch), 3).unwrap();
            let norm = InputNorm::from_mean_std(&[0.3, 0.5], &[0.3, 0.2]).unwrap();
            let mut qn = QuantizedNetwork::prepare(
                net,
                QuantConfig::new(bits, Family::KQuantile),
                norm.clone(),
            )
            .unwrap();
            let calib = batch(&norm, 32, 1);
            let names = qn.weight_layers_in_order();
            let stage_of = gradual_stages(names.len(), stages).unwrap();
            let mut opt = Sgd::new(0.9, 5e-4);
            let mut ce = CrossEntropy::new(0.0).unwrap();
            let x = batch(&norm, 16, 4);
            let labels: Vec<u32> = (0..16).map(|i| i % 10).collect();
            let err = qn.begin_stage(stages, stages, freeze, &calib).unwrap_err();
            assert!(matches!(err, NnError::InvalidParameter { .. }), "{err}");
            for stage in 0..stages {
                qn.begin_stage(stages, stage, freeze, &calib).unwrap();
                let phases = qn.layer_phases();
                assert_eq!(phases.len(), names.len());
                for ((name, phase, frozen), (want_name, &s)) in
                    phases.iter().zip(names.iter().zip(&stage_of))
                {
                    assert_eq!(name, want_name);
                    let want = match s.cmp(&stage) {
                        std::cmp::Ordering::Less => Phase::Done,
                        std::cmp::Ordering::Equal => Phase::Active,
                        std::cmp::Ordering::Greater => Phase::Float,
                    };
                    assert_eq!(*phase, want, "{arch} stage {stage} layer {name}");
                    assert_eq!(*frozen, freeze && want == Phase::Done);
                }
                let before = used_weights(&mut qn);
                let views: BTreeMap<String, (Vec<u8>, Vec<f64>)> = names
                    .iter()
                    .map(|n| {
                        let v = qn.weight_quantizer(n).unwrap();
                        (
                            n.clone(),
                            (v.weights.table.indices.clone(), v.weights.scales.clone()),
                        )
                    })
                    .collect();
                for (name, phase, _) in &phases {
                    // Edge layers have 8-bit codebooks; short rows (1×1 shortcuts) may have
                    // fewer distinct float weights than levels.
                    if qn.weight_quantizer(name).unwrap().edge {
                        continue;
                    }
                    let d = distinct_per_row(&qn, name, &before[name]);
                    let row = before[name].len()
                        / qn.weight_quantizer(name).unwrap().weights.scales.len();
                    if *phase == Phase::Float && row > 2 << bits {
                        assert!(d > 1 << bits, "{arch} {name}: float weights on a grid");
                    } else {
                        assert!(d <= 1 << bits, "{arch} {name}: {d} values in a row");
                    }
                }
                if stage + 1 < stages {
                    assert!(matches!(
                        qn.to_integer(),
                        Err(NnError::GradualUnfinished(_))
                    ));
                }
                let (bypassed, fitted) = activations(&qn);
                assert_eq!(bypassed == 0, stage + 1 == stages, "{arch} stage {stage}");
                assert!(fitted > 0);
                let state0 = state(&mut qn);
                for _ in 0..3 {
                    qn.qat_step(&mut ce, &mut opt, &x, &labels, 0.2).unwrap();
                }
                let after = used_weights(&mut qn);
                // Batch-norm parameters and statistics of frozen layers stay; the rest move.
                let state1 = state(&mut qn);
                let kept = state0
                    .iter()
                    .filter(|(n, v)| !n.ends_with(".weight") && state1[*n] == **v)
                    .count();
                assert_eq!(
                    kept > 0,
                    freeze && stage > 0,
                    "{arch} stage {stage}: {kept} non-weight tensors unchanged"
                );
                for (name, phase, frozen) in &phases {
                    let moved = before[name] != after[name];
                    if *frozen {
                        assert!(!moved, "{arch} stage {stage}: frozen {name} moved");
                        let v = qn.weight_quantizer(name).unwrap();
                        assert_eq!(v.weights.table.indices, views[name].0, "{name}");
                        assert_eq!(v.weights.scales, views[name].1, "{name}");
                    } else if *phase == Phase::Float {
                        assert!(moved, "{arch} stage {stage}: float {name} did not train");
                    }
                }
                if !freeze && stage > 0 {
                    assert!(
                        phases
                            .iter()
                            .any(|(n, p, _)| *p == Phase::Done && before[n] != after[n]),
                        "{arch} stage {stage}: no trained done layer moved"
                    );
                }
            }
            qn.finish_gradual(&calib).unwrap();
            assert!(qn
                .layer_phases()
                .iter()
                .all(|(_, p, f)| *p == Phase::Active && !f));
            assert_eq!(activations(&qn).0, 0);
            // The integer model computes the twin.
            let model = qn.to_integer().unwrap();
            let test_bytes = bytes(24, 8);
            let xt = norm.normalise(&test_bytes, 24, 8, 8).unwrap();
            let twin = qn.net.forward(&xt, Mode::Eval).unwrap().data().to_vec();
            let mut runner = IntegerRunner::new(&model, nuq_kernels::KernelPath::Scalar).unwrap();
            let ints = runner.forward(&test_bytes, 24).unwrap().to_vec();
            fn argmax<T: PartialOrd>(r: &[T]) -> usize {
                (0..r.len()).fold(0, |b, j| if r[j] > r[b] { j } else { b })
            }
            let agree = twin
                .chunks(10)
                .zip(ints.chunks(10))
                .filter(|(t, i)| argmax(t) == argmax(i))
                .count();
            assert!(agree >= 22, "{arch} freeze {freeze}: {agree} of 24 agree");
        }
    }
}

fn dataset(n: usize, seed: u64) -> Arc<Dataset> {
    let mut rng = Rng::new(seed);
    Arc::new(Dataset {
        images: bytes(n, seed),
        labels: (0..n).map(|_| rng.below(10) as u16).collect(),
        height: 8,
        width: 8,
        channels: 2,
        classes: 10,
    })
}

/// Through the pipeline: gradual with STE and with UNIQ noise folds into an integer model
/// that agrees with its twin; the recipe refuses a schedule it cannot run.
#[test]
fn the_pipeline_runs_the_gradual_schedule_and_folds_the_twin() {
    let data = dataset(96, 2);
    let augment = Augment::normalize_only(vec![0.3, 0.5], vec![0.3, 0.2]);
    for (arch, noise) in [(Arch::VggSmall, 0.0), (Arch::ResNet20, 0.5)] {
        let net = Network::new(cfg(arch), 5).unwrap();
        let mut r = Recipe::new(QuantConfig::new(3, Family::KQuantile));
        r.calib_images = 32;
        r.qat_images = 96;
        r.gradual = 3;
        r.noise_share = noise;
        r.recalib_every = 1;
        let (model, mut twin) = quantize_with_twin(net, &r, &data, &augment, &Quiet).unwrap();
        assert!(twin
            .layer_phases()
            .iter()
            .all(|(_, p, f)| *p == Phase::Active && !f));
        let agree = twin_agreement(&mut twin, &model, &data).unwrap();
        assert!(agree.top1 >= 0.95, "{arch}: top-1 agreement {}", agree.top1);
    }
    let net = || Network::new(cfg(Arch::VggSmall), 5).unwrap();
    let mut r = Recipe::new(QuantConfig::new(3, Family::KQuantile));
    r.gradual = 2;
    assert!(matches!(
        quantize_with_twin(net(), &r, &data, &augment, &Quiet),
        Err(NnError::GradualWithoutFineTuning)
    ));
    r.qat_images = 32;
    r.stages = vec![4];
    assert!(matches!(
        quantize_with_twin(net(), &r, &data, &augment, &Quiet),
        Err(NnError::GradualWithProgressive)
    ));
    r.stages.clear();
    r.gradual = 1000;
    assert!(matches!(
        quantize_with_twin(net(), &r, &data, &augment, &Quiet),
        Err(NnError::InvalidParameter { .. })
    ));
}
