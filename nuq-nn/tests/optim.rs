//! Optimiser steps and schedules against hand-computed values.

use nuq_nn::optim::{AdamW, LrSchedule, Optimizer, Schedule, Sgd, WeightDecay};
use nuq_nn::{Param, ParamRole, Parameterized};

/// Two parameters: a conv weight and a BN bias, with fixed gradients.
struct Toy {
    w: Param,
    b: Param,
}

impl Parameterized for Toy {
    fn for_each_param(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
        f("conv.weight", &mut self.w);
        f("bn.bias", &mut self.b);
    }
}

fn toy() -> Toy {
    let mut w = Param::new(vec![1.0, -2.0], ParamRole::ConvWeight, vec![2]);
    w.grad = vec![0.5, 0.25];
    let mut b = Param::new(vec![3.0], ParamRole::BnBias, vec![1]);
    b.grad = vec![-1.0];
    Toy { w, b }
}

fn close(a: &[f32], b: &[f32]) {
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
    }
}

#[test]
fn sgd_momentum_l2_by_hand() {
    let mut m = toy();
    let mut opt = Sgd::new(0.9, 0.1);
    opt.decay_bn_and_bias = false;
    opt.step(&mut m, 0.1).unwrap();
    // g = 0.5 + 0.1·1 = 0.6 → b = 0.6 → w = 1 − 0.06 = 0.94; g = 0.25 − 0.2 = 0.05 → w = −2.005
    close(&m.w.value, &[0.94, -2.005]);
    // BN bias: no decay, g = −1 → w = 3.1
    close(&m.b.value, &[3.1]);
    opt.step(&mut m, 0.1).unwrap();
    // g = 0.5 + 0.094 = 0.594, b = 0.9·0.6 + 0.594 = 1.134 → w = 0.94 − 0.1134 = 0.8266
    close(&m.w.value[..1], &[0.8266]);
    let (state, steps) = opt.state();
    assert_eq!(steps, 2);
    assert_eq!(state[0].0, "momentum_buffer.conv.weight");
    close(&state[0].1[..1], &[1.134]);
}

#[test]
fn sgd_nesterov_and_decoupled_by_hand() {
    let mut m = toy();
    let mut opt = Sgd::new(0.9, 0.1);
    opt.nesterov = true;
    opt.decay_mode = WeightDecay::Decoupled;
    opt.step(&mut m, 0.1).unwrap();
    // b = 0.5, d = 0.5 + 0.9·0.5 = 0.95; w = 1·(1 − 0.01) − 0.095 = 0.895
    close(&m.w.value[..1], &[0.895]);
    // BN bias decayed too: 3·0.99 − 0.1·(−1 − 0.9) = 2.97 + 0.19 = 3.16
    close(&m.b.value, &[3.16]);
}

#[test]
fn adamw_by_hand() {
    let mut m = toy();
    let mut opt = AdamW::new(0.01);
    opt.step(&mut m, 0.1).unwrap();
    // first step: m̂ = g, v̂ = g², update = lr·sign(g) (ε negligible), decay w·(1 − 0.001)
    close(&m.w.value, &[1.0 * 0.999 - 0.1, -2.0 * 0.999 - 0.1]);
    opt.step(&mut m, 0.1).unwrap();
    // same gradient again: m̂ = g, v̂ = g² → another lr·sign(g)
    let w0 = (1.0f32 * 0.999 - 0.1) * 0.999 - 0.1;
    close(&m.w.value[..1], &[w0]);
    let (state, steps) = opt.state();
    assert_eq!(steps, 2);
    let names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "exp_avg.conv.weight",
            "exp_avg_sq.conv.weight",
            "exp_avg.bn.bias",
            "exp_avg_sq.bn.bias"
        ]
    );
    let mut restored = AdamW::new(0.01);
    restored.load_state(state, steps).unwrap();
    let mut a = toy();
    let mut b = toy();
    opt.step(&mut a, 0.05).unwrap();
    restored.step(&mut b, 0.05).unwrap();
    assert_eq!(a.w.value, b.w.value);
}

#[test]
fn optimiser_rejects_a_different_model() {
    let mut m = toy();
    let mut opt = Sgd::new(0.9, 0.0);
    opt.step(&mut m, 0.1).unwrap();
    struct Other(Param);
    impl Parameterized for Other {
        fn for_each_param(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
            f("fc.weight", &mut self.0);
        }
    }
    let mut o = Other(Param::new(vec![0.0; 2], ParamRole::LinearWeight, vec![2]));
    assert!(opt.step(&mut o, 0.1).is_err());
}

#[test]
fn schedules_by_hand() {
    let c = Schedule::Cosine {
        lr: 1.0,
        min_lr: 0.0,
        warmup: 2,
        total: 6,
    };
    let lrs: Vec<f32> = (0..7).map(|s| c.lr(s)).collect();
    // warm-up 0.5, 1.0; then cos over 4 steps: 1, 0.8536, 0.5, 0.1464, 0
    close(&lrs, &[0.5, 1.0, 0.853_553_4, 0.5, 0.146_446_6, 0.0, 0.0]);
    let s = Schedule::Step {
        lr: 0.1,
        step_size: 3,
        gamma: 0.5,
    };
    close(
        &[s.lr(0), s.lr(2), s.lr(3), s.lr(7)],
        &[0.1, 0.1, 0.05, 0.025],
    );
    // OneCycle(max 1, total 10): up phase ends at step 2 (0.3·10 − 1), starts at 0.04;
    // step 1 is half-way: 1 + (0.04 − 1)/2·(1 + cos(π/2)) = 0.52; last step = 0.04/1e4.
    let o = Schedule::one_cycle(1.0, 10);
    close(&[o.lr(0), o.lr(1), o.lr(2)], &[0.04, 0.52, 1.0]);
    assert!((o.lr(9) - 4e-6).abs() < 1e-9);
    assert!(o.lr(5) < 1.0 && o.lr(5) > o.lr(6));
    assert!(Schedule::Step {
        lr: 0.1,
        step_size: 0,
        gamma: 0.5
    }
    .validate()
    .is_err());
    assert!(c.validate().is_ok());
}
