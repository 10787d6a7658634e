//! Finite-difference gradient checks for every layer and for a small residual network.

use nuq_nn::gradcheck::{check_layer, GradCheckConfig};
use nuq_nn::{
    basic_block, BatchNorm2d, Conv2d, Conv2dConfig, Flatten, GlobalAvgPool, Layer, Linear,
    MaxPool2d, Mode, NnError, Relu, Relu6, Rng, Sequential, Tensor,
};

fn random_tensor(shape: [usize; 4], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()).unwrap()
}

/// Values bounded away from zero and from each other, so ReLU kinks and max-pool ties are
/// never within one finite-difference step.
fn separated_tensor(shape: [usize; 4], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n: usize = shape.iter().product();
    let mut vals: Vec<f32> = (0..n).map(|i| 0.1 + 0.05 * i as f32).collect();
    rng.shuffle(&mut vals);
    for v in vals.iter_mut() {
        if rng.below(2) == 0 {
            *v = -*v;
        }
    }
    Tensor::from_vec(shape, vals).unwrap()
}

fn assert_passes(layer: &mut dyn Layer, x: &Tensor, cfg: &GradCheckConfig) {
    let report = check_layer(layer, x, cfg).unwrap();
    assert!(report.checked > 0);
    assert!(
        report.skipped * 6 < report.checked,
        "{}: too many non-smooth coordinates ({} skipped, {} checked)",
        layer.describe(),
        report.skipped,
        report.checked
    );
    assert_eq!(
        report.failed,
        0,
        "{}: {} of {} coordinates off, worst {} (ratio {:.2})",
        layer.describe(),
        report.failed,
        report.checked,
        report.worst,
        report.worst_ratio
    );
}

#[test]
fn conv2d_gradients() {
    let cases = [
        (Conv2dConfig::square(3, 4, 3, 1, 1), [3, 5, 6, 3]),
        (Conv2dConfig::square(4, 5, 3, 2, 1), [2, 7, 6, 4]),
        (Conv2dConfig::square(4, 3, 1, 1, 0), [3, 4, 4, 4]),
        (Conv2dConfig::square(4, 3, 1, 2, 0), [2, 5, 5, 4]),
        (
            Conv2dConfig {
                c_in: 2,
                c_out: 3,
                kernel: (2, 3),
                stride: (2, 1),
                padding: (0, 2),
                dilation: (1, 1),
                bias: true,
                groups: 1,
            },
            [2, 5, 4, 2],
        ),
        // Dilated: square dilation 2, and a non-square kernel with dilation (2, 3).
        (
            Conv2dConfig {
                dilation: (2, 2),
                ..Conv2dConfig::square(3, 4, 3, 1, 2)
            },
            [2, 6, 5, 3],
        ),
        (
            Conv2dConfig {
                c_in: 2,
                c_out: 3,
                kernel: (2, 3),
                stride: (2, 1),
                padding: (1, 2),
                dilation: (2, 3),
                bias: true,
                groups: 1,
            },
            [2, 6, 5, 2],
        ),
    ];
    let cfg = GradCheckConfig::default();
    for (i, (cc, shape)) in cases.into_iter().enumerate() {
        let mut rng = Rng::new(10 + i as u64);
        let mut conv = Conv2d::new(cc, &mut rng).unwrap();
        if let Some(b) = &mut conv.bias {
            b.value.iter_mut().for_each(|v| *v = rng.uniform(-0.5, 0.5));
        }
        assert_passes(&mut conv, &random_tensor(shape, 20 + i as u64), &cfg);
    }
}

/// Grouped convolutions (groups 2) and depthwise ones (channel multiplier 1 and 2), stride 1
/// and 2, with and without bias, dilation 1 and 2.
#[test]
fn grouped_and_depthwise_conv2d_gradients() {
    let grouped = |c_in, c_out, k, stride, padding, groups, bias| Conv2dConfig {
        c_in,
        c_out,
        kernel: (k, k),
        stride: (stride, stride),
        padding: (padding, padding),
        dilation: (1, 1),
        bias,
        groups,
    };
    let dilated = |cc: Conv2dConfig| Conv2dConfig {
        dilation: (2, 2),
        ..cc
    };
    let cases = [
        (grouped(4, 6, 3, 1, 1, 2, false), [2, 5, 5, 4]),
        (grouped(4, 4, 3, 2, 1, 2, true), [2, 6, 5, 4]),
        (grouped(4, 6, 1, 1, 0, 2, false), [2, 3, 4, 4]),
        (grouped(3, 3, 3, 1, 1, 3, false), [2, 5, 4, 3]),
        (grouped(3, 3, 3, 2, 1, 3, true), [2, 6, 6, 3]),
        (grouped(3, 6, 3, 1, 1, 3, false), [2, 4, 5, 3]),
        (grouped(3, 6, 3, 2, 0, 3, true), [2, 7, 5, 3]),
        // Groups and dilation 2 together.
        (dilated(grouped(4, 6, 3, 1, 2, 2, true)), [2, 5, 5, 4]),
        (dilated(grouped(3, 6, 3, 2, 1, 3, false)), [2, 6, 7, 3]),
    ];
    let cfg = GradCheckConfig::default();
    for (i, (cc, shape)) in cases.into_iter().enumerate() {
        let mut rng = Rng::new(40 + i as u64);
        let mut conv = Conv2d::new(cc, &mut rng).unwrap();
        if let Some(b) = &mut conv.bias {
            b.value.iter_mut().for_each(|v| *v = rng.uniform(-0.5, 0.5));
        }
        assert_passes(&mut conv, &random_tensor(shape, 50 + i as u64), &cfg);
    }
}

/// A depthwise layer (multiplier 2, stride 2) against its definition: output channel `o`
/// reads input channel `o / 2` only.
#[test]
fn depthwise_conv2d_matches_direct_convolution() {
    let cc = Conv2dConfig {
        c_in: 3,
        c_out: 6,
        kernel: (3, 3),
        stride: (2, 2),
        padding: (1, 1),
        dilation: (1, 1),
        bias: false,
        groups: 3,
    };
    let mut conv = Conv2d::new(cc, &mut Rng::new(8)).unwrap();
    assert_eq!(conv.weight.torch_shape, vec![6, 1, 3, 3]);
    let x = random_tensor([2, 5, 6, 3], 9);
    let y = conv.forward(&x, Mode::Eval).unwrap().clone();
    let w = conv.weight.to_torch();
    let [n, oh, ow, co] = y.shape();
    assert_eq!([oh, ow], [3, 3]);
    for img in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..co {
                    let mut s = 0.0f64;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let iy = (oy * 2 + ky) as isize - 1;
                            let ix = (ox * 2 + kx) as isize - 1;
                            if iy < 0 || ix < 0 || iy >= 5 || ix >= 6 {
                                continue;
                            }
                            let xv =
                                x.data()[((img * 5 + iy as usize) * 6 + ix as usize) * 3 + o / 2];
                            s += xv as f64 * w[(o * 3 + ky) * 3 + kx] as f64;
                        }
                    }
                    let got = y.data()[((img * oh + oy) * ow + ox) * co + o];
                    assert!((got as f64 - s).abs() < 1e-5, "{got} vs {s}");
                }
            }
        }
    }
}

#[test]
fn conv2d_refuses_groups_that_do_not_divide_the_channels() {
    let mut rng = Rng::new(1);
    for (c_in, c_out, groups) in [(4, 6, 0), (4, 6, 3), (3, 6, 2)] {
        let cc = Conv2dConfig {
            groups,
            ..Conv2dConfig::square(c_in, c_out, 3, 1, 1)
        };
        assert!(matches!(
            Conv2d::new(cc, &mut rng),
            Err(NnError::InvalidParameter { .. })
        ));
    }
}

#[test]
fn conv2d_refuses_a_zero_dilation() {
    for dilation in [(0, 1), (1, 0)] {
        let cc = Conv2dConfig {
            dilation,
            ..Conv2dConfig::square(2, 2, 3, 1, 1)
        };
        assert!(matches!(
            Conv2d::new(cc, &mut Rng::new(1)),
            Err(NnError::InvalidParameter { .. })
        ));
    }
}

#[test]
fn conv2d_matches_direct_convolution() {
    let cc = Conv2dConfig {
        c_in: 3,
        c_out: 2,
        kernel: (3, 2),
        stride: (1, 2),
        padding: (1, 1),
        dilation: (1, 1),
        bias: true,
        groups: 1,
    };
    let mut rng = Rng::new(5);
    let mut conv = Conv2d::new(cc, &mut rng).unwrap();
    conv.bias.as_mut().unwrap().value = vec![0.25, -0.5];
    let x = random_tensor([2, 4, 5, 3], 6);
    let y = conv.forward(&x, Mode::Eval).unwrap().clone();
    let w = conv.weight.to_torch();
    let [n, oh, ow, co] = y.shape();
    for img in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..co {
                    let mut s = [0.25f64, -0.5][o];
                    for i in 0..3 {
                        for ky in 0..3 {
                            for kx in 0..2 {
                                let iy = (oy + ky) as isize - 1;
                                let ix = (ox * 2 + kx) as isize - 1;
                                if iy < 0 || ix < 0 || iy >= 4 || ix >= 5 {
                                    continue;
                                }
                                let xv =
                                    x.data()[((img * 4 + iy as usize) * 5 + ix as usize) * 3 + i];
                                s += xv as f64 * w[((o * 3 + i) * 3 + ky) * 2 + kx] as f64;
                            }
                        }
                    }
                    let got = y.data()[((img * oh + oy) * ow + ox) * co + o];
                    assert!((got as f64 - s).abs() < 1e-5, "{got} vs {s}");
                }
            }
        }
    }
}

#[test]
fn batchnorm_gradients_train_and_eval() {
    for (fused, mode) in [
        (false, Mode::Train),
        (true, Mode::Train),
        (false, Mode::Eval),
        (true, Mode::Eval),
    ] {
        let mut bn = BatchNorm2d::new(3, fused);
        let mut rng = Rng::new(3);
        bn.weight
            .value
            .iter_mut()
            .for_each(|v| *v = rng.uniform(0.5, 1.5));
        bn.bias
            .value
            .iter_mut()
            .for_each(|v| *v = rng.uniform(-0.3, 0.3));
        bn.running_mean = vec![0.1, -0.2, 0.05];
        bn.running_var = vec![0.8, 1.3, 0.6];
        let cfg = GradCheckConfig {
            mode,
            step: 1e-3,
            ..GradCheckConfig::default()
        };
        // Momentum 0 keeps eval-mode statistics fixed while the checker perturbs inputs.
        bn.momentum = 0.0;
        let x = random_tensor([4, 3, 2, 3], 7);
        assert_passes(&mut bn, &x, &cfg);
    }
}

/// BatchNorm fused with ReLU6: both kinks (0 and 6) mask the gradient.
#[test]
fn batchnorm_relu6_gradients_train_and_eval() {
    for mode in [Mode::Train, Mode::Eval] {
        let mut bn = BatchNorm2d::with_relu6(3);
        bn.weight.value = vec![5.0, 4.0, 6.0];
        bn.bias.value = vec![2.0, 3.0, 1.0];
        bn.running_mean = vec![0.1, -0.2, 0.05];
        bn.running_var = vec![0.8, 1.3, 0.6];
        bn.momentum = 0.0;
        let x = random_tensor([4, 3, 2, 3], 17);
        let y = bn.forward(&x, mode).unwrap().clone();
        assert!(y.data().iter().all(|&v| (0.0..=6.0).contains(&v)));
        assert!(y.data().contains(&6.0), "{mode:?}: no value capped");
        let cfg = GradCheckConfig {
            mode,
            step: 1e-3,
            ..GradCheckConfig::default()
        };
        assert_passes(&mut bn, &x, &cfg);
    }
}

#[test]
fn batchnorm_statistics_follow_pytorch() {
    let mut bn = BatchNorm2d::new(2, false);
    // channel 0: 1, 2, 3, 4 ; channel 1: 0, 0, 0, 8
    let x = Tensor::from_vec([1, 2, 2, 2], vec![1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 8.0]).unwrap();
    let y = bn.forward(&x, Mode::Train).unwrap().clone();
    // mean 2.5, biased var 1.25 → y0 = (1 − 2.5)/sqrt(1.25 + 1e-5)
    assert!((y.data()[0] - (-1.5 / (1.25f32 + 1e-5).sqrt())).abs() < 1e-5);
    // running_mean = 0.9·0 + 0.1·2.5; running_var = 0.9·1 + 0.1·(unbiased 5/3)
    assert!((bn.running_mean[0] - 0.25).abs() < 1e-6);
    assert!((bn.running_var[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6);
    assert!((bn.running_mean[1] - 0.2).abs() < 1e-6);
    assert!((bn.running_var[1] - (0.9 + 0.1 * 16.0)).abs() < 1e-5);
    assert_eq!(bn.num_batches_tracked, 1);
    let e = bn.forward(&x, Mode::Eval).unwrap().clone();
    let want = (1.0 - 0.25) / (bn.running_var[0] + 1e-5).sqrt();
    assert!((e.data()[0] - want).abs() < 1e-5);
    assert_eq!(bn.num_batches_tracked, 1);
}

#[test]
fn elementwise_and_pooling_gradients() {
    let cfg = GradCheckConfig {
        step: 1e-3,
        ..GradCheckConfig::default()
    };
    let x = separated_tensor([2, 4, 6, 3], 9);
    assert_passes(&mut Relu::new(), &x, &cfg);
    assert_passes(&mut Relu6::new(), &x, &cfg);
    assert!(
        x.data().iter().any(|&v| v > 6.1),
        "some inputs beyond ReLU6's cap"
    );
    assert_passes(&mut MaxPool2d::new(2, 2).unwrap(), &x, &cfg);
    assert_passes(&mut MaxPool2d::new(3, 1).unwrap(), &x, &cfg);
    assert_passes(&mut MaxPool2d::with_padding(3, 2, 1).unwrap(), &x, &cfg);
    assert_passes(&mut MaxPool2d::with_padding(2, 1, 1).unwrap(), &x, &cfg);
    assert_passes(&mut GlobalAvgPool::new(), &x, &cfg);
    assert_passes(&mut Flatten::new(), &x, &cfg);
}

/// PyTorch's padded max-pool: padded positions are `-inf`, so they never win, even over an
/// all-negative input.
#[test]
fn padded_max_pool_matches_a_naive_reference() {
    let x = random_tensor([2, 7, 5, 3], 12);
    let x = Tensor::from_vec(x.shape(), x.data().iter().map(|v| v - 2.0).collect()).unwrap();
    for (k, s, p) in [(3, 2, 1), (2, 2, 1), (3, 1, 1), (5, 3, 2), (3, 2, 0)] {
        let mut pool = MaxPool2d::with_padding(k, s, p).unwrap();
        let y = pool.forward(&x, Mode::Eval).unwrap().clone();
        let [n, h, w, c] = x.shape();
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        assert_eq!(y.shape(), [n, oh, ow, c], "k{k} s{s} p{p}");
        for img in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ch in 0..c {
                        let mut m = f32::NEG_INFINITY;
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) = (
                                    (oy * s + ky) as isize - p as isize,
                                    (ox * s + kx) as isize - p as isize,
                                );
                                if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                                    m = m.max(
                                        x.data()
                                            [((img * h + iy as usize) * w + ix as usize) * c + ch],
                                    );
                                }
                            }
                        }
                        assert_eq!(y.data()[((img * oh + oy) * ow + ox) * c + ch], m);
                    }
                }
            }
        }
    }
    assert!(MaxPool2d::with_padding(3, 2, 2).is_err());
    assert!(MaxPool2d::with_padding(2, 2, 2).is_err());
}

#[test]
fn flatten_uses_channel_major_order() {
    let x = Tensor::from_vec([1, 1, 2, 2], vec![1.0, 10.0, 2.0, 20.0]).unwrap();
    let mut f = Flatten::new();
    assert_eq!(
        f.forward(&x, Mode::Eval).unwrap().data(),
        &[1.0, 2.0, 10.0, 20.0]
    );
}

#[test]
fn linear_gradients() {
    let mut rng = Rng::new(4);
    let mut lin = Linear::new(7, 5, true, &mut rng).unwrap();
    assert_passes(
        &mut lin,
        &random_tensor([3, 1, 1, 7], 8),
        &GradCheckConfig::default(),
    );
    assert!(matches!(
        lin.forward(&Tensor::zeros([3, 2, 1, 7]), Mode::Eval),
        Err(NnError::InputShape { .. })
    ));
}

#[test]
fn basic_block_gradients() {
    let cfg = GradCheckConfig {
        step: 1e-3,
        atol: 3e-3,
        ..GradCheckConfig::default()
    };
    for (c_in, c_out, stride) in [(3, 3, 1), (3, 5, 2)] {
        let mut rng = Rng::new(30 + stride as u64);
        let mut block = basic_block(c_in, c_out, stride, &mut rng).unwrap();
        let projection = block
            .nodes()
            .iter()
            .any(|n| n.name().starts_with("downsample."));
        assert_eq!(projection, stride != 1 || c_in != c_out);
        assert_passes(&mut block, &random_tensor([2, 4, 3, c_in], 31), &cfg);
    }
}

/// A hand-wired graph: the input read by three nodes, a join of three tensors with ReLU, a
/// join without one, and a nested residual block.
#[test]
fn graph_gradients() {
    use nuq_nn::Graph;
    let mut rng = Rng::new(50);
    let conv = |ci, co, k, p, rng: &mut Rng| {
        Conv2d::new(Conv2dConfig::square(ci, co, k, 1, p), rng).unwrap()
    };
    let mut g = Graph::new();
    let a = g.push(0, "a", conv(3, 4, 3, 1, &mut rng)).unwrap();
    let a = g.push(a, "a_bn", BatchNorm2d::new(4, true)).unwrap();
    let b = g.push(0, "b", conv(3, 4, 1, 0, &mut rng)).unwrap();
    let c = g.push(0, "c", conv(3, 4, 3, 1, &mut rng)).unwrap();
    let s = g.push_add(&[a, b, c], "sum3", true).unwrap();
    let d = g
        .push(s, "block", basic_block(4, 4, 1, &mut rng).unwrap())
        .unwrap();
    g.push_add(&[d, s], "linear_join", false).unwrap();
    let cfg = GradCheckConfig {
        step: 1e-3,
        atol: 3e-3,
        max_checks_per_tensor: 24,
        ..GradCheckConfig::default()
    };
    assert_passes(&mut g, &random_tensor([2, 5, 4, 3], 51), &cfg);
    let mut names = Vec::new();
    g.visit_params("g", &mut |n, _| names.push(n.to_string()));
    assert!(!names.contains(&"g.block.downsample.0.weight".to_string()));
    assert!(
        names.contains(&"g.block.conv2.weight".to_string()),
        "{names:?}"
    );
    // A node whose output nobody reads, and an input from the future, are errors.
    let mut dead = Graph::new();
    dead.push(0, "x", Relu::new()).unwrap();
    dead.push(0, "y", Relu::new()).unwrap();
    assert!(dead
        .forward(&random_tensor([1, 2, 2, 1], 1), Mode::Eval)
        .is_err());
    assert!(Graph::new().push(3, "z", Relu::new()).is_err());
    assert!(Graph::new().push_add(&[0], "one", true).is_err());
}

#[test]
fn small_network_gradients() {
    let mut rng = Rng::new(40);
    let mut net = Sequential::new();
    net.push(
        "conv1",
        Conv2d::new(Conv2dConfig::square(2, 4, 3, 1, 1), &mut rng).unwrap(),
    )
    .push("bn1", BatchNorm2d::new(4, true))
    .push("layer1.0", basic_block(4, 6, 2, &mut rng).unwrap())
    .push("pool", MaxPool2d::new(2, 2).unwrap())
    .push("flatten", Flatten::new())
    .push("fc", Linear::new(6 * 2 * 2, 3, true, &mut rng).unwrap());
    let cfg = GradCheckConfig {
        step: 1e-3,
        atol: 3e-3,
        max_checks_per_tensor: 24,
        ..GradCheckConfig::default()
    };
    assert_passes(&mut net, &random_tensor([3, 8, 8, 2], 41), &cfg);
    let mut names = Vec::new();
    net.visit_params("", &mut |n, _| names.push(n.to_string()));
    assert!(
        names.contains(&"layer1.0.downsample.0.weight".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"layer1.0.bn2.bias".to_string()));
}

/// A layer with a deliberately wrong backward pass: the checker must reject it.
#[derive(Clone)]
struct WrongBackward {
    out: Tensor,
    dx: Tensor,
}

impl Layer for WrongBackward {
    fn describe(&self) -> String {
        "WrongBackward".into()
    }
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        Ok(input)
    }
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Result<&Tensor, NnError> {
        self.out = Tensor::from_vec(x.shape(), x.data().iter().map(|v| 2.0 * v).collect())?;
        Ok(&self.out)
    }
    fn output(&self) -> &Tensor {
        &self.out
    }
    fn backward(&mut self, _x: &Tensor, dy: &Tensor, _need: bool) -> Result<(), NnError> {
        // 5 % too large.
        self.dx = Tensor::from_vec(dy.shape(), dy.data().iter().map(|v| 2.1 * v).collect())?;
        Ok(())
    }
    fn input_grad(&self) -> &Tensor {
        &self.dx
    }
}

#[test]
fn checker_rejects_a_wrong_gradient() {
    let mut bad = WrongBackward {
        out: Tensor::default(),
        dx: Tensor::default(),
    };
    let report = check_layer(
        &mut bad,
        &random_tensor([2, 3, 3, 2], 50),
        &GradCheckConfig::default(),
    )
    .unwrap();
    assert!(report.failed > 0, "{report:?}");
}

#[test]
fn backward_without_forward_is_an_error() {
    let mut rng = Rng::new(1);
    let mut conv = Conv2d::new(Conv2dConfig::square(2, 2, 3, 1, 1), &mut rng).unwrap();
    let x = Tensor::zeros([1, 4, 4, 2]);
    assert!(matches!(
        conv.backward(&x, &x, true),
        Err(NnError::NoForward { .. })
    ));
    assert!(matches!(
        conv.forward(&Tensor::zeros([1, 4, 4, 3]), Mode::Eval),
        Err(NnError::InputShape { .. })
    ));
}
