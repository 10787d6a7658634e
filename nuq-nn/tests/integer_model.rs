//! The integer model against its fake-quantized float twin, and against a naive reference.

mod common;
use common::{images, randomise_bn};
use nuq_kernels::KernelPath;
use nuq_nn::integer::{from_file_model, to_file_model, IntegerRunner, TensorData};
use nuq_nn::quant::{Family, InputNorm, QuantConfig, QuantizedNetwork};
use nuq_nn::{Arch, Mode, ModelConfig, Network};

/// Test images per case: agreement is measured to 1 in 1 000.
const IMAGES: usize = 1000;

struct Case {
    /// A built-in network, or `Arch::Custom` for [`custom_graph`].
    arch: Arch,
    width: f32,
    size: usize,
    channels: usize,
    family: Family,
    bits: u8,
    per_channel: bool,
    negative_bn: bool,
    act_per_channel: bool,
    /// Every fused ReLU becomes a ReLU6, with batch-norm scales large enough that many
    /// pre-activations exceed 6.
    relu6: bool,
}

/// Float twin vs integer model: returns (top-1 agreement, share of images whose logits differ
/// by more than 1e-4 of the logit range, the largest such difference).
///
/// The documented bound: the integer logits equal the twin's up to float rounding, except on
/// images where some activation lies within float rounding of a threshold (the twin computes
/// in f32), where one code moves by one step.
fn agreement(case: &Case) -> (f64, f64, f64) {
    let cfg = ModelConfig {
        arch: case.arch,
        width: case.width,
        in_channels: case.channels,
        classes: 10,
        input_size: (case.size, case.size),
    };
    let mut net = if case.arch == Arch::Custom {
        custom_graph(cfg, 11)
    } else {
        Network::new(cfg, 11).unwrap()
    };
    randomise_bn(&mut net, 5, case.negative_bn);
    if case.relu6 {
        relu6_everywhere(&mut net.body);
    }
    let norm =
        InputNorm::from_mean_std(&vec![0.3; case.channels], &vec![0.35; case.channels]).unwrap();
    let mut qc = QuantConfig::new(case.bits, case.family);
    qc.per_channel = case.per_channel;
    qc.act_per_channel = case.act_per_channel;
    let mut qn = QuantizedNetwork::prepare(net, qc, norm.clone()).unwrap();
    let len = case.size * case.size * case.channels;
    let calib = images(64, len, 1);
    qn.calibrate(&norm.normalise(&calib, 64, case.size, case.size).unwrap())
        .unwrap();
    let model = qn.to_integer().unwrap();
    if case.relu6 {
        assert_capped_at_six(&qn.net.body);
    }

    let n = IMAGES;
    let test = images(n, len, 2);
    let x = norm.normalise(&test, n, case.size, case.size).unwrap();
    let float_logits = qn.net.forward(&x, Mode::Eval).unwrap().data().to_vec();
    let mut runner = IntegerRunner::new(&model, KernelPath::best_available()).unwrap();
    let int_logits = runner.forward(&test, n).unwrap().to_vec();
    let unit = f64::from(model.logit_scale.get());
    let argmax = |r: &[f32]| (0..r.len()).fold(0, |b, j| if r[j] > r[b] { j } else { b });
    let mut agree = 0;
    let mut worst: f64 = 0.0;
    let mut off = 0usize;
    let spread = float_logits.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    for i in 0..n {
        let f = &float_logits[i * 10..(i + 1) * 10];
        let q: Vec<f32> = int_logits[i * 10..(i + 1) * 10]
            .iter()
            .map(|&v| (f64::from(v) * unit) as f32)
            .collect();
        agree += usize::from(argmax(f) == argmax(&q));
        let mut d: f64 = 0.0;
        for j in 0..10 {
            d = d.max(f64::from((f[j] - q[j]).abs()) / spread);
        }
        if d > 1e-4 {
            off += 1;
        }
        worst = worst.max(d);
    }
    (agree as f64 / n as f64, off as f64 / n as f64, worst)
}

#[test]
fn resnet_integer_model_agrees_with_fake_quant_twin() {
    for (family, bits, per_channel, negative_bn, act_per_channel) in [
        (Family::KQuantile, 4, true, false, false),
        (Family::KQuantile, 3, true, true, true),
        (Family::LloydMax, 3, false, true, false),
        (Family::Apot, 4, true, true, false),
        (Family::Uniform, 2, true, false, false),
    ] {
        let case = Case {
            arch: Arch::ResNet20,
            width: 0.5,
            size: 12,
            channels: 3,
            family,
            bits,
            per_channel,
            negative_bn,
            act_per_channel,
            relu6: false,
        };
        let (agree, off, worst) = agreement(&case);
        eprintln!("{family:?} {bits} bits: top-1 agreement {agree} on {IMAGES} images");
        assert!(
            agree >= 0.999,
            "{family:?} {bits} bits: top-1 agreement {agree} on {IMAGES} images"
        );
        assert!(
            off <= 0.03,
            "{family:?} {bits} bits: {off} of images off by up to {worst}"
        );
        assert!(
            worst < 0.25,
            "{family:?} {bits} bits: logit difference {worst} of the logit range"
        );
    }
}

/// A network built by code from graphs the built-ins do not have: a bottleneck block
/// (1×1 → 3×3 stride 2 → 1×1, three convolutions on the main branch) with a projection, then
/// a residual block whose main branch holds a whole residual block and a depthwise
/// convolution (its input read by three layers across the two levels), then a hand-wired
/// graph whose join adds two convolutions of one tensor.
fn custom_graph(cfg: ModelConfig, seed: u64) -> Network {
    use nuq_nn::{
        basic_block, BatchNorm2d, Conv2d, Conv2dConfig, Flatten, GlobalAvgPool, Graph, Linear, Rng,
        Sequential,
    };
    let mut rng = Rng::new(seed);
    let mut conv = |ci, co, k, s, p, groups| {
        let mut c = Conv2dConfig::square(ci, co, k, s, p);
        c.groups = groups;
        Conv2d::new(c, &mut rng).unwrap()
    };
    let c = cfg.in_channels;
    let mut body = Sequential::new();
    body.push("conv1", conv(c, 8, 3, 1, 1, 1))
        .push("bn1", BatchNorm2d::new(8, true));
    let mut main = Sequential::new();
    main.push("conv1", conv(8, 4, 1, 1, 0, 1))
        .push("bn1", BatchNorm2d::new(4, true))
        .push("conv2", conv(4, 4, 3, 2, 1, 1))
        .push("bn2", BatchNorm2d::new(4, true))
        .push("conv3", conv(4, 16, 1, 1, 0, 1))
        .push("bn3", BatchNorm2d::new(16, false));
    let mut shortcut = Sequential::new();
    shortcut
        .push("0", conv(8, 16, 1, 2, 0, 1))
        .push("1", BatchNorm2d::new(16, false));
    body.push("layer1.0", Graph::residual(main, Some(shortcut)).unwrap());
    let mut main = Sequential::new();
    main.push(
        "inner",
        basic_block(16, 16, 1, &mut Rng::new(seed + 1)).unwrap(),
    )
    .push("dw", conv(16, 16, 3, 1, 1, 16))
    .push("bn", BatchNorm2d::new(16, false));
    body.push("layer2.0", Graph::residual(main, None).unwrap());
    let mut g = Graph::new();
    let a = g.push(0, "a", conv(16, 12, 3, 1, 1, 1)).unwrap();
    let a = g.push(a, "a_bn", BatchNorm2d::new(12, false)).unwrap();
    let b = g.push(0, "b", conv(16, 12, 1, 1, 0, 1)).unwrap();
    let b = g.push(b, "b_bn", BatchNorm2d::new(12, false)).unwrap();
    g.push_add(&[a, b], "join", true).unwrap();
    body.push("layer3", g);
    body.push("avgpool", GlobalAvgPool::new())
        .push("flatten", Flatten::new())
        .push("fc", Linear::new(12, cfg.classes, true, &mut rng).unwrap());
    Network::from_body(cfg, body).unwrap()
}

#[test]
fn custom_graph_integer_model_agrees_with_fake_quant_twin() {
    for (family, bits, negative_bn) in [(Family::KQuantile, 4, false), (Family::LloydMax, 3, true)]
    {
        let case = Case {
            arch: Arch::Custom,
            width: 1.0,
            size: 12,
            channels: 3,
            family,
            bits,
            per_channel: true,
            negative_bn,
            act_per_channel: false,
            relu6: false,
        };
        let (agree, off, worst) = agreement(&case);
        assert!(
            agree >= 0.999,
            "{family:?} {bits} bits: top-1 agreement {agree} on {IMAGES} images"
        );
        // A network this small moves a logit by a code step on 5–15 % of images whether
        // or not it has graphs (the same layers as a plain chain do it as often), so the
        // share is not bounded here; the class and the size of the step are.
        let _ = off;
        assert!(
            worst < 0.25,
            "{family:?} {bits} bits: logit difference {worst}"
        );
    }
}

/// Joins the integer model cannot express are refused by name.
#[test]
fn joins_without_an_integer_form_are_refused_by_name() {
    use nuq_nn::{
        BatchNorm2d, Conv2d, Conv2dConfig, Flatten, GlobalAvgPool, Graph, Linear, Rng, Sequential,
    };
    let cfg = ModelConfig {
        arch: Arch::Custom,
        width: 1.0,
        in_channels: 1,
        classes: 4,
        input_size: (6, 6),
    };
    let build = |relu: bool, three: bool| {
        let mut rng = Rng::new(3);
        let mut body = Sequential::new();
        body.push(
            "conv1",
            Conv2d::new(Conv2dConfig::square(1, 4, 3, 1, 1), &mut rng).unwrap(),
        )
        .push("bn1", BatchNorm2d::new(4, true));
        let mut g = Graph::new();
        let a = g
            .push(
                0,
                "a",
                Conv2d::new(Conv2dConfig::square(4, 4, 3, 1, 1), &mut rng).unwrap(),
            )
            .unwrap();
        let a = g.push(a, "a_bn", BatchNorm2d::new(4, false)).unwrap();
        let mut ins = vec![a, 0];
        if three {
            ins.push(0);
        }
        g.push_add(&ins, "join", relu).unwrap();
        body.push("block", g)
            .push("avgpool", GlobalAvgPool::new())
            .push("flatten", Flatten::new())
            .push("fc", Linear::new(4, 4, true, &mut rng).unwrap());
        Network::from_body(cfg, body).unwrap()
    };
    let norm = InputNorm::from_mean_std(&[0.3], &[0.35]).unwrap();
    for (relu, three, why) in [
        (false, false, "without a ReLU"),
        (true, true, "more than two"),
    ] {
        let mut qn = QuantizedNetwork::prepare(
            build(relu, three),
            QuantConfig::new(4, Family::LloydMax),
            norm.clone(),
        )
        .unwrap();
        let x = norm.normalise(&images(8, 36, 1), 8, 6, 6).unwrap();
        qn.calibrate(&x).unwrap();
        let e = qn.to_integer().unwrap_err().to_string();
        assert!(e.contains("block.join") && e.contains(why), "{e}");
    }
}

#[test]
fn vgg_integer_model_agrees_with_fake_quant_twin() {
    for act_per_channel in [false, true] {
        let case = Case {
            arch: Arch::VggSmall,
            width: 0.0625,
            size: 16,
            channels: 1,
            family: Family::KQuantile,
            bits: 4,
            per_channel: true,
            negative_bn: true,
            act_per_channel,
            relu6: false,
        };
        let (agree, off, worst) = agreement(&case);
        eprintln!("VGG {act_per_channel}: top-1 agreement {agree} on {IMAGES} images");
        assert!(
            agree >= 0.999,
            "{act_per_channel}: top-1 agreement {agree} on {IMAGES} images"
        );
        assert!(
            off <= 0.03,
            "{act_per_channel}: {off} of images off by up to {worst}"
        );
        assert!(worst < 0.25, "{act_per_channel}: logit difference {worst}");
    }
}

/// Turns every fused ReLU into a ReLU6 and stretches the batch-norm scales by 6, so a good
/// share of the activations is capped.
fn relu6_everywhere(s: &mut nuq_nn::Sequential) {
    nuq_nn::visit_leaves_mut(s, "", &mut |_, l| {
        if let Some(bn) = l.as_any_mut().downcast_mut::<nuq_nn::BatchNorm2d>() {
            if bn.fused_relu {
                bn.relu6 = true;
                bn.weight.value.iter_mut().for_each(|v| *v *= 6.0);
                bn.bias.value.iter_mut().for_each(|v| *v += 2.0);
            }
        }
    });
}

/// Every activation quantizer after a ReLU6 represents nothing above 6.
fn assert_capped_at_six(s: &nuq_nn::Sequential) {
    let mut seen = 0;
    for (name, l) in s.layers() {
        if let Some(a) = l.as_any().downcast_ref::<nuq_nn::quant::ActQuant>() {
            assert_eq!(a.cap_value(), Some(6.0), "{name}");
            let q = a.quantizer.as_ref().unwrap();
            assert!(q.clip() <= 6.0 + 1e-9, "{name}: clip {}", q.clip());
            assert!(q.thresholds.iter().all(|&t| t <= 6.0 || t.is_infinite()));
            seen += 1;
        }
    }
    assert!(seen > 0);
}

/// ReLU6 (PyTorch's `nn.ReLU6`) fused into batch-norm: the quantizer after it is capped at 6,
/// so the float twin (capped values) and the integer model (thresholds on the uncapped
/// accumulator) agree.
#[test]
fn relu6_integer_model_agrees_with_fake_quant_twin() {
    for (family, bits, act_per_channel) in [
        (Family::KQuantile, 4, false),
        (Family::KQuantile, 3, true),
        (Family::Uniform, 3, false),
        (Family::Apot, 4, false),
    ] {
        let case = Case {
            arch: Arch::VggSmall,
            width: 0.0625,
            size: 16,
            channels: 1,
            family,
            bits,
            per_channel: true,
            negative_bn: true,
            act_per_channel,
            relu6: true,
        };
        let (agree, off, worst) = agreement(&case);
        eprintln!("ReLU6 {family:?} {bits}: top-1 agreement {agree} on {IMAGES} images");
        assert!(agree >= 0.999, "{family:?} {bits}: top-1 agreement {agree}");
        assert!(
            off <= 0.03,
            "{family:?} {bits}: {off} of images off by up to {worst}"
        );
    }
}

/// Per-channel k-quantile thresholds reach the integer model: channels of one layer get
/// different MAC thresholds beyond what batch-norm folding alone would give.
#[test]
fn per_channel_activation_thresholds_differ_between_channels() {
    let cfg = ModelConfig {
        arch: Arch::VggSmall,
        width: 0.0625,
        in_channels: 1,
        classes: 10,
        input_size: (16, 16),
    };
    let norm = InputNorm::from_mean_std(&[0.3], &[0.35]).unwrap();
    let calib = images(32, 256, 1);
    let x = norm.normalise(&calib, 32, 16, 16).unwrap();
    let thresholds = |per: bool| {
        let mut qc = QuantConfig::new(3, Family::KQuantile);
        qc.act_per_channel = per;
        let mut qn =
            QuantizedNetwork::prepare(Network::new(cfg, 11).unwrap(), qc, norm.clone()).unwrap();
        qn.calibrate(&x).unwrap();
        let model = qn.to_integer().unwrap();
        match &model.nodes[1] {
            nuq_nn::integer::Node::Conv(c) => match &c.output {
                nuq_nn::integer::ConvOutput::Codes(r) => r.thresholds.clone(),
                other => panic!("second conv outputs {other:?}"),
            },
            other => panic!("node 1 is {other:?}"),
        }
    };
    let (layer, channel) = (thresholds(false), thresholds(true));
    assert_eq!(layer.values().len(), channel.values().len());
    assert_ne!(layer, channel);
}

#[test]
fn every_kernel_path_gives_identical_logits_and_dumps() {
    let cfg = ModelConfig {
        arch: Arch::ResNet20,
        width: 0.25,
        in_channels: 1,
        classes: 10,
        input_size: (8, 8),
    };
    let mut net = Network::new(cfg, 3).unwrap();
    randomise_bn(&mut net, 9, true);
    let norm = InputNorm::from_mean_std(&[0.5], &[0.25]).unwrap();
    let mut qn =
        QuantizedNetwork::prepare(net, QuantConfig::new(4, Family::KQuantile), norm.clone())
            .unwrap();
    let calib = images(32, 64, 4);
    qn.calibrate(&norm.normalise(&calib, 32, 8, 8).unwrap())
        .unwrap();
    let model = qn.to_integer().unwrap();
    let test = images(7, 64, 5);
    let mut reference: Option<(Vec<i32>, Vec<Vec<u8>>)> = None;
    for path in KernelPath::ALL.into_iter().filter(|p| p.is_available()) {
        let mut runner = IntegerRunner::new(&model, path).unwrap();
        let mut dumps = Vec::new();
        let logits = runner
            .forward_with(&test, 7, &mut |_, _, data| {
                dumps.push(match data {
                    TensorData::Levels(v) => v.to_vec(),
                    TensorData::Int32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                })
            })
            .unwrap()
            .to_vec();
        assert_eq!(dumps.len(), model.nodes.len());
        match &reference {
            None => reference = Some((logits, dumps)),
            Some((l, d)) => {
                assert_eq!(&logits, l, "{path:?}");
                assert_eq!(&dumps, d, "{path:?}");
            }
        }
    }
}

#[test]
fn uncalibrated_network_is_a_clear_error() {
    let cfg = ModelConfig {
        arch: Arch::VggSmall,
        width: 0.0625,
        in_channels: 1,
        classes: 10,
        input_size: (8, 8),
    };
    let net = Network::new(cfg, 1).unwrap();
    let norm = InputNorm::from_mean_std(&[0.5], &[0.25]).unwrap();
    let qn = QuantizedNetwork::prepare(net, QuantConfig::new(4, Family::Uniform), norm).unwrap();
    let e = qn.to_integer().unwrap_err().to_string();
    assert!(e.contains("not calibrated"), "{e}");
}

#[test]
fn vgg_model_round_trips_through_the_file_format() {
    let cfg = ModelConfig {
        arch: Arch::VggSmall,
        width: 0.0625,
        in_channels: 1,
        classes: 10,
        input_size: (16, 16),
    };
    let mut net = Network::new(cfg, 21).unwrap();
    randomise_bn(&mut net, 4, true);
    let norm = InputNorm::from_mean_std(&[0.0], &[0.3]).unwrap();
    let mut qn =
        QuantizedNetwork::prepare(net, QuantConfig::new(3, Family::LloydMax), norm.clone())
            .unwrap();
    qn.calibrate(&norm.normalise(&images(32, 256, 8), 32, 16, 16).unwrap())
        .unwrap();
    let model = qn.to_integer().unwrap();
    let file_model = to_file_model(
        &model,
        nuq_fpga_fmt::CodebookKind::LloydMax,
        Default::default(),
    )
    .unwrap();
    let bytes = nuq_fpga_fmt::encode(&file_model, &nuq_fpga_fmt::WriteOptions::default()).unwrap();
    let parsed = nuq_fpga_fmt::NuqFile::parse(&bytes).unwrap();
    let back = from_file_model(&nuq_fpga_fmt::Model::from_file(&parsed)).unwrap();
    let test = images(9, 256, 3);
    let path = KernelPath::best_available();
    let a = IntegerRunner::new(&model, path)
        .unwrap()
        .forward(&test, 9)
        .unwrap()
        .to_vec();
    let b = IntegerRunner::new(&back, path)
        .unwrap()
        .forward(&test, 9)
        .unwrap()
        .to_vec();
    assert_eq!(a, b);
}

/// A threshold put 0.001 accumulator units below a reachable accumulator value (0) is
/// moved off it by `separate_ties`, which changes no code of the integer model.
#[test]
fn separate_ties_moves_a_near_tie_without_changing_the_integer_model() {
    use nuq_nn::layers::BatchNorm2d;
    let cfg = ModelConfig {
        arch: Arch::VggSmall,
        width: 0.0625,
        in_channels: 1,
        classes: 10,
        input_size: (16, 16),
    };
    let mut net = Network::new(cfg, 11).unwrap();
    randomise_bn(&mut net, 5, false);
    let norm = InputNorm::from_mean_std(&[0.3], &[0.35]).unwrap();
    let mut qn =
        QuantizedNetwork::prepare(net, QuantConfig::new(3, Family::Apot), norm.clone()).unwrap();
    qn.calibrate(&norm.normalise(&images(64, 256, 1), 64, 16, 16).unwrap())
        .unwrap();
    let s_in = qn
        .activation_quantizer("features.1.act")
        .unwrap()
        .unwrap()
        .scale;
    let t0 = qn
        .activation_quantizer("features.4.act")
        .unwrap()
        .unwrap()
        .thresholds[0];
    let s_w = qn.weight_quantizer("features.3").unwrap().weights.scales[0];
    for (name, l) in qn.net.body.layers_mut() {
        if name == "features.4" {
            let bn = l.as_any_mut().downcast_mut::<BatchNorm2d>().unwrap();
            let g = f64::from(bn.weight.value[0])
                / (f64::from(bn.running_var[0]) + f64::from(bn.eps)).sqrt();
            let d = g * s_w * s_in;
            // (t0 − c) / d = −0.001 with c = β − g·μ.
            let c = t0 + 1e-3 * d;
            bn.bias.value[0] = (c + g * f64::from(bn.running_mean[0])) as f32;
        }
    }
    let before = qn.to_integer().unwrap();
    assert!(qn.separate_ties().unwrap() >= 1);
    assert_eq!(qn.separate_ties().unwrap(), 0, "every margin kept");
    let after = qn.to_integer().unwrap();
    let test = images(200, 256, 2);
    let mut a = IntegerRunner::new(&before, KernelPath::best_available()).unwrap();
    let mut b = IntegerRunner::new(&after, KernelPath::best_available()).unwrap();
    assert_eq!(
        a.forward(&test, 200).unwrap().to_vec(),
        b.forward(&test, 200).unwrap().to_vec()
    );
}
