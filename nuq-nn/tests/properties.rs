//! Property tests: convolution against a direct loop for random geometries, backward passes
//! as exact adjoints of the forward maps, BatchNorm's normalisation, layout round trips.

use nuq_nn::{
    BatchNorm2d, Conv2d, Conv2dConfig, Flatten, Layer, Mode, Param, ParamLayout, ParamRole, Rng,
    Tensor,
};
use proptest::prelude::*;

fn random(shape: [usize; 4], rng: &mut Rng) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()).unwrap()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

#[derive(Debug, Clone)]
struct Case {
    cfg: Conv2dConfig,
    input: [usize; 4],
    seed: u64,
}

/// Channel counts: small ones, and multiples of 16 (the direct kernels' shapes, which
/// `nuq-kernels` runs where the CPU has AVX-512).
fn channels(small: std::ops::Range<usize>) -> impl Strategy<Value = usize> + Clone {
    prop_oneof![3 => small, 1 => Just(16usize), 1 => Just(32usize)]
}

fn case() -> impl Strategy<Value = Case> {
    (
        channels(1..4),
        channels(1..5),
        1usize..4,
        1usize..4,
        1usize..3,
        1usize..3,
        0usize..3,
        0usize..3,
        1usize..4,
        (1usize..3, 1usize..3),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_flat_map(
            |(ci, co, kh, kw, sh, sw, ph, pw, n, (dh, dw), bias, seed)| {
                // The input pixels the dilated kernel spans.
                let (eh, ew) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
                let hmin = eh.saturating_sub(2 * ph).max(1);
                let wmin = ew.saturating_sub(2 * pw).max(1);
                (hmin..hmin + 6, wmin..wmin + 6).prop_map(move |(h, w)| Case {
                    cfg: Conv2dConfig {
                        c_in: ci,
                        c_out: co,
                        kernel: (kh, kw),
                        stride: (sh, sw),
                        padding: (ph, pw),
                        dilation: (dh, dw),
                        bias,
                        groups: 1,
                    },
                    input: [n, h, w, ci],
                    seed,
                })
            },
        )
}

/// A grouped or depthwise convolution: `groups` groups of `ci` inputs and `co` outputs each,
/// dilation 1 or 2.
fn grouped_case() -> impl Strategy<Value = Case> {
    (
        1usize..5,
        1usize..3,
        1usize..3,
        1usize..4,
        1usize..3,
        0usize..2,
        1usize..3,
        1usize..3,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_flat_map(|(groups, ci, co, k, s, p, n, d, bias, seed)| {
            let min = (d * (k - 1) + 1).saturating_sub(2 * p).max(1);
            (min..min + 6, min..min + 6).prop_map(move |(h, w)| Case {
                cfg: Conv2dConfig {
                    c_in: groups * ci,
                    c_out: groups * co,
                    kernel: (k, k),
                    stride: (s, s),
                    padding: (p, p),
                    dilation: (d, d),
                    bias,
                    groups,
                },
                input: [n, h, w, groups * ci],
                seed,
            })
        })
}

/// "Same" convolutions (stride 1, output as large as the input: `2·p = d·(k − 1)` on both
/// axes, as a 3×3 with padding 1, dilated or not) — the networks' common case, which `case()`
/// draws only now and then; `k = 1` on one axis keeps rows and columns independent. Drawn
/// for the input-gradient and adjoint properties.
fn same_case() -> impl Strategy<Value = Case> {
    // (k, d, p) with 2·p = d·(k − 1).
    let axis = prop_oneof![
        Just((1usize, 1usize, 0usize)),
        Just((3, 1, 1)),
        Just((3, 2, 2)),
        Just((5, 1, 2)),
        Just((2, 2, 1))
    ];
    (
        channels(1..5),
        channels(1..5),
        axis.clone(),
        axis,
        1usize..3,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_filter("not pointwise", |(_, _, a, b, ..)| a.0 > 1 || b.0 > 1)
        .prop_flat_map(|(ci, co, (kh, dh, ph), (kw, dw, pw), n, bias, seed)| {
            (1usize..7, 1usize..7).prop_map(move |(h, w)| Case {
                cfg: Conv2dConfig {
                    c_in: ci,
                    c_out: co,
                    kernel: (kh, kw),
                    stride: (1, 1),
                    padding: (ph, pw),
                    dilation: (dh, dw),
                    bias,
                    groups: 1,
                },
                input: [n, h, w, ci],
                seed,
            })
        })
}

/// Every term of a convolution by its definition (PyTorch's, with groups and dilation): calls
/// `f(x_at, y_at, w_at)` for each input element, output element and weight (PyTorch order
/// `[c_out][c_in / groups][kh][kw]`) that multiply, output by output, each output's terms in
/// `(c_in, ky, kx)` order.
fn for_each_term(
    cfg: &Conv2dConfig,
    input: [usize; 4],
    out: [usize; 4],
    mut f: impl FnMut(usize, usize, usize),
) {
    let [n, h, w, c] = input;
    let ci = c / cfg.groups;
    let per_group = cfg.c_out / cfg.groups;
    let (kh, kw) = cfg.kernel;
    for img in 0..n {
        for oy in 0..out[1] {
            for ox in 0..out[2] {
                for o in 0..cfg.c_out {
                    let y_at = ((img * out[1] + oy) * out[2] + ox) * cfg.c_out + o;
                    let c0 = o / per_group * ci;
                    for i in 0..ci {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * cfg.stride.0 + ky * cfg.dilation.0) as isize
                                    - cfg.padding.0 as isize;
                                let ix = (ox * cfg.stride.1 + kx * cfg.dilation.1) as isize
                                    - cfg.padding.1 as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let x_at = ((img * h + iy as usize) * w + ix as usize) * c + c0 + i;
                                f(x_at, y_at, ((o * ci + i) * kh + ky) * kw + kx);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The convolution by its definition, weights in PyTorch order.
fn direct(
    cfg: &Conv2dConfig,
    x: &Tensor,
    torch_w: &[f32],
    bias: Option<&[f32]>,
    out: [usize; 4],
) -> Vec<f32> {
    let mut y: Vec<f64> = (0..out.iter().product::<usize>())
        .map(|at| bias.map_or(0.0, |b| b[at % cfg.c_out] as f64))
        .collect();
    for_each_term(cfg, x.shape(), out, |xi, yi, wi| {
        y[yi] += x.data()[xi] as f64 * torch_w[wi] as f64;
    });
    y.into_iter().map(|v| v as f32).collect()
}

/// The input gradient by its definition: `dx[i][iy][ix][c] = Σ dy[i][oy][ox][o] · W[o][c][ky][kx]`
/// over every output pixel and tap that read input pixel `(iy, ix)`.
fn direct_input_grad(
    cfg: &Conv2dConfig,
    x_shape: [usize; 4],
    torch_w: &[f32],
    dy: &Tensor,
) -> Vec<f32> {
    let mut dx = vec![0.0f64; x_shape.iter().product()];
    for_each_term(cfg, x_shape, dy.shape(), |xi, yi, wi| {
        dx[xi] += dy.data()[yi] as f64 * torch_w[wi] as f64;
    });
    dx.into_iter().map(|v| v as f32).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn conv_forward_matches_direct_loop(c in case()) {
        let mut rng = Rng::new(c.seed);
        let mut conv = Conv2d::new(c.cfg, &mut rng).unwrap();
        if let Some(b) = &mut conv.bias {
            b.value.iter_mut().for_each(|v| *v = rng.uniform(-1.0, 1.0));
        }
        let x = random(c.input, &mut rng);
        let y = conv.forward(&x, Mode::Train).unwrap().clone();
        let want = direct(&c.cfg, &x, &conv.weight.to_torch(), conv.bias.as_ref().map(|b| &b.value[..]), y.shape());
        for (a, b) in y.data().iter().zip(&want) {
            prop_assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn grouped_conv_forward_matches_direct_loop(c in grouped_case()) {
        let mut rng = Rng::new(c.seed);
        let mut conv = Conv2d::new(c.cfg, &mut rng).unwrap();
        if let Some(b) = &mut conv.bias {
            b.value.iter_mut().for_each(|v| *v = rng.uniform(-1.0, 1.0));
        }
        let x = random(c.input, &mut rng);
        let y = conv.forward(&x, Mode::Train).unwrap().clone();
        let want = direct(&c.cfg, &x, &conv.weight.to_torch(), conv.bias.as_ref().map(|b| &b.value[..]), y.shape());
        for (a, b) in y.data().iter().zip(&want) {
            prop_assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    /// The input gradient (col2im, or the direct product of pointwise layers) against its
    /// definition, value by value: stronger than the adjoint identity's one number.
    #[test]
    fn conv_input_grad_matches_direct_loop(c in prop_oneof![same_case(), case(), grouped_case()]) {
        let mut rng = Rng::new(c.seed ^ 2);
        let mut conv = Conv2d::new(c.cfg, &mut rng).unwrap();
        let x = random(c.input, &mut rng);
        let y = conv.forward(&x, Mode::Train).unwrap().clone();
        let dy = random(y.shape(), &mut rng);
        conv.backward(&x, &dy, true).unwrap();
        let want = direct_input_grad(&c.cfg, c.input, &conv.weight.to_torch(), &dy);
        prop_assert_eq!(conv.input_grad().shape(), c.input);
        for (a, b) in conv.input_grad().data().iter().zip(&want) {
            prop_assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    /// As `conv_backward_is_the_adjoint`, for grouped and depthwise convolutions.
    #[test]
    fn grouped_conv_backward_is_the_adjoint(c in grouped_case()) {
        let mut rng = Rng::new(c.seed ^ 1);
        let mut conv = Conv2d::new(c.cfg, &mut rng).unwrap();
        let x = random(c.input, &mut rng);
        let y = conv.forward(&x, Mode::Train).unwrap().clone();
        let dy = random(y.shape(), &mut rng);
        conv.backward(&x, &dy, true).unwrap();
        let lhs = dot(y.data(), dy.data());
        let by_x = dot(x.data(), conv.input_grad().data());
        let by_w = dot(&conv.weight.value, &conv.weight.grad);
        let tol = 1e-4 * (1.0 + lhs.abs());
        prop_assert!((lhs - by_x).abs() < tol, "{lhs} vs {by_x}");
        prop_assert!((lhs - by_w).abs() < tol, "{lhs} vs {by_w}");
    }

    /// The conv is linear in x and in W: ⟨y − b, dy⟩ = ⟨x, dX⟩ = ⟨W, dW⟩, and Σ dy = db.
    #[test]
    fn conv_backward_is_the_adjoint(c in prop_oneof![case(), same_case()]) {
        let mut rng = Rng::new(c.seed ^ 1);
        let mut conv = Conv2d::new(c.cfg, &mut rng).unwrap();
        let x = random(c.input, &mut rng);
        let y = conv.forward(&x, Mode::Train).unwrap().clone();
        let dy = random(y.shape(), &mut rng);
        conv.backward(&x, &dy, true).unwrap();
        let lhs = dot(y.data(), dy.data());
        let by_x = dot(x.data(), conv.input_grad().data());
        let by_w = dot(&conv.weight.value, &conv.weight.grad);
        let tol = 1e-4 * (1.0 + lhs.abs());
        prop_assert!((lhs - by_x).abs() < tol, "{lhs} vs {by_x}");
        prop_assert!((lhs - by_w).abs() < tol, "{lhs} vs {by_w}");
        if let Some(b) = &conv.bias {
            let per_channel: Vec<f64> = (0..c.cfg.c_out)
                .map(|o| dy.data().iter().skip(o).step_by(c.cfg.c_out).map(|&v| v as f64).sum())
                .collect();
            for (g, w) in b.grad.iter().zip(per_channel) {
                prop_assert!((*g as f64 - w).abs() < 1e-4);
            }
        }
    }

    /// The fused activation's mask in BatchNorm's backward pass is exactly the forward's: in
    /// evaluation mode `dx = γσ⁻¹·dy` where the output passed (strictly inside `(0, cap)`)
    /// and exactly 0 where the ReLU (or ReLU6) cut it, element by element.
    #[test]
    fn batchnorm_fused_activation_masks_where_the_forward_cut(
        n in 1usize..4, h in 1usize..5, w in 1usize..5, c in 1usize..6, relu6 in any::<bool>(),
        seed in any::<u64>()
    ) {
        let mut rng = Rng::new(seed);
        let mut bn = if relu6 { BatchNorm2d::with_relu6(c) } else { BatchNorm2d::new(c, true) };
        bn.weight.value = (0..c).map(|_| rng.uniform(-4.0, 4.0)).collect();
        bn.bias.value = (0..c).map(|_| rng.uniform(-3.0, 3.0)).collect();
        bn.running_mean = (0..c).map(|_| rng.uniform(-0.5, 0.5)).collect();
        bn.running_var = (0..c).map(|_| rng.uniform(0.2, 2.0)).collect();
        let mut x = random([n, h, w, c], &mut rng);
        // Channel 0 without bias and some inputs exactly at the running mean: their
        // pre-activation is exactly 0 there, the ReLU's kink (cut: the output is 0).
        bn.bias.value[0] = 0.0;
        for (i, v) in x.data_mut().iter_mut().enumerate() {
            if i % 5 == 0 {
                *v = bn.running_mean[i % c];
            }
        }
        let y = bn.forward(&x, Mode::Eval).unwrap().clone();
        let dy = random(y.shape(), &mut rng);
        bn.backward(&x, &dy, true).unwrap();
        let cap = bn.activation_cap();
        for (i, ((&yv, &g), &d)) in y.data().iter().zip(dy.data()).zip(bn.input_grad().data()).enumerate() {
            let ch = i % c;
            let s = bn.weight.value[ch] / (bn.running_var[ch] + bn.eps).sqrt();
            if yv <= 0.0 || yv >= cap {
                prop_assert_eq!(d, 0.0, "element {} (y = {}) was cut", i, yv);
            } else {
                prop_assert!((d - s * g).abs() <= 1e-5 * (1.0 + (s * g).abs()), "element {}: {} vs {}", i, d, s * g);
            }
        }
    }

    #[test]
    fn batchnorm_train_output_has_affine_moments(
        n in 1usize..4, h in 1usize..5, w in 2usize..5, c in 1usize..5, seed in any::<u64>()
    ) {
        let mut rng = Rng::new(seed);
        let mut bn = BatchNorm2d::new(c, false);
        let gamma: Vec<f32> = (0..c).map(|_| rng.uniform(0.5, 2.0)).collect();
        let beta: Vec<f32> = (0..c).map(|_| rng.uniform(-1.0, 1.0)).collect();
        bn.weight.value = gamma.clone();
        bn.bias.value = beta.clone();
        let mut x = random([n, h, w, c], &mut rng);
        // A large common offset checks that the statistics do not cancel catastrophically.
        x.data_mut().iter_mut().for_each(|v| *v = *v * 3.0 + 100.0);
        let y = bn.forward(&x, Mode::Train).unwrap();
        let m = (n * h * w) as f64;
        for ch in 0..c {
            let vals: Vec<f64> = y.data().iter().skip(ch).step_by(c).map(|&v| v as f64).collect();
            let mean = vals.iter().sum::<f64>() / m;
            let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m;
            let xs: Vec<f64> = x.data().iter().skip(ch).step_by(c).map(|&v| v as f64).collect();
            let xm = xs.iter().sum::<f64>() / m;
            let xv = xs.iter().map(|v| (v - xm) * (v - xm)).sum::<f64>() / m;
            // f32 statistics around the offset of 100 are off by a few ulps of 103 (~3e-5),
            // which normalisation divides by the channel's spread: a channel of two nearly
            // equal values is ill-conditioned, whatever the implementation.
            let cond = 3e-5 / (xv + 1e-5).sqrt();
            let g = gamma[ch] as f64;
            prop_assert!(
                (mean - beta[ch] as f64).abs() < 1e-3 + g * cond,
                "mean {mean} vs {}", beta[ch]
            );
            let want = g.powi(2) * xv / (xv + 1e-5);
            prop_assert!(
                (var - want).abs() < 2e-3 * (1.0 + want) + 2.0 * want * cond,
                "var {var} vs {want}"
            );
        }
    }

    #[test]
    fn conv_weight_layout_round_trips(co in 1usize..5, ci in 1usize..5, kh in 1usize..4, kw in 1usize..4, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let len = co * ci * kh * kw;
        let torch: Vec<f32> = (0..len).map(|_| rng.normal()).collect();
        let mut p = Param::new(vec![0.0; len], ParamRole::ConvWeight, vec![co, ci, kh, kw]);
        p.layout = ParamLayout::ConvOhwi { c_out: co, c_in: ci, kh, kw };
        p.set_from_torch(&torch).unwrap();
        prop_assert_eq!(p.to_torch(), torch);
    }

    #[test]
    fn flatten_backward_inverts_forward(n in 1usize..3, h in 1usize..4, w in 1usize..4, c in 1usize..4, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = random([n, h, w, c], &mut rng);
        let mut f = Flatten::new();
        let y = f.forward(&x, Mode::Eval).unwrap().clone();
        f.backward(&x, &y, true).unwrap();
        prop_assert_eq!(f.input_grad(), &x);
    }
}
