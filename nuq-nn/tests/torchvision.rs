//! torchvision's ImageNet-style ResNet-18/34: names and shapes as torchvision builds them,
//! a torchvision-named checkpoint that loads, trains and goes through quantization.

use std::sync::Arc;

use half::f16;
use nuq_nn::checkpoint::{load_model_bytes, model_bytes};
use nuq_nn::data::{Augment, Dataset};
use nuq_nn::integer::{from_file_model, to_file_model, Node};
use nuq_nn::optim::Sgd;
use nuq_nn::pipeline::{quantize_with_twin, twin_agreement, Quiet, Recipe};
use nuq_nn::quant::{Family, QuantConfig};
use nuq_nn::train::train_step;
use nuq_nn::{Arch, CrossEntropy, Mode, ModelConfig, Network, Rng, Tensor};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

fn ch(base: usize, width: f32) -> usize {
    ((base as f32 * width).round() as usize).max(1)
}

/// The `state_dict` names and shapes of torchvision's `ResNet(BasicBlock, blocks)` at a width
/// multiplier, in torchvision's order, as `torchvision.models.resnet` builds them.
fn torchvision_tensors(
    blocks: [usize; 4],
    width: f32,
    in_ch: usize,
    classes: usize,
) -> Vec<(String, Vec<usize>)> {
    let mut t = Vec::new();
    let bn = |t: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
        for s in ["weight", "bias", "running_mean", "running_var"] {
            t.push((format!("{p}.{s}"), vec![c]));
        }
        t.push((format!("{p}.num_batches_tracked"), vec![]));
    };
    let mut inplanes = ch(64, width);
    t.push(("conv1.weight".into(), vec![inplanes, in_ch, 7, 7]));
    bn(&mut t, "bn1", inplanes);
    for (i, &n) in blocks.iter().enumerate() {
        let planes = ch(64 << i, width);
        let stride = if i == 0 { 1 } else { 2 };
        for b in 0..n {
            let p = format!("layer{}.{b}", i + 1);
            t.push((format!("{p}.conv1.weight"), vec![planes, inplanes, 3, 3]));
            bn(&mut t, &format!("{p}.bn1"), planes);
            t.push((format!("{p}.conv2.weight"), vec![planes, planes, 3, 3]));
            bn(&mut t, &format!("{p}.bn2"), planes);
            if b == 0 && (stride != 1 || inplanes != planes) {
                t.push((
                    format!("{p}.downsample.0.weight"),
                    vec![planes, inplanes, 1, 1],
                ));
                bn(&mut t, &format!("{p}.downsample.1"), planes);
            }
            inplanes = planes;
        }
    }
    t.push(("fc.weight".into(), vec![classes, inplanes]));
    t.push(("fc.bias".into(), vec![classes]));
    t
}

fn config(arch: Arch, width: f32, in_ch: usize, side: usize) -> ModelConfig {
    ModelConfig {
        arch,
        width,
        in_channels: in_ch,
        classes: 10,
        input_size: (side, side),
    }
}

#[test]
fn names_and_shapes_are_torchvisions() {
    for (arch, blocks) in [
        (Arch::ResNet18ImageNet, [2, 2, 2, 2]),
        (Arch::ResNet34ImageNet, [3, 4, 6, 3]),
    ] {
        for (width, in_ch) in [(0.25, 1), (0.5, 3)] {
            let mut net = Network::new(config(arch, width, in_ch, 32), 1).unwrap();
            let bytes = model_bytes(&mut net).unwrap();
            let st = SafeTensors::deserialize(&bytes).unwrap();
            let mut ours: Vec<(String, Vec<usize>)> = st
                .tensors()
                .into_iter()
                .map(|(n, t)| (n, t.shape().to_vec()))
                .collect();
            let mut theirs = torchvision_tensors(blocks, width, in_ch, 10);
            ours.sort();
            theirs.sort();
            assert_eq!(ours, theirs, "{arch} ×{width}");
        }
    }
    assert_eq!(
        "resnet18-imagenet".parse::<Arch>().unwrap(),
        Arch::ResNet18ImageNet
    );
    assert_eq!(
        "ResNet34_ImageNet".parse::<Arch>().unwrap(),
        Arch::ResNet34ImageNet
    );
    for arch in Arch::ALL {
        assert_eq!(arch.name().parse::<Arch>().unwrap(), arch);
        assert!(Arch::NAMES.contains(arch.name()));
    }
}

#[test]
fn full_size_parameter_counts_match_torchvision() {
    // torchvision: resnet18 11 689 512 and resnet34 21 797 672 parameters (ImageNet, 1000
    // classes); 1.82 G and 3.67 G multiply-accumulates per 224×224 image.
    for (arch, params, gmacs) in [
        (Arch::ResNet18ImageNet, 11_689_512, 1.82),
        (Arch::ResNet34ImageNet, 21_797_672, 3.67),
    ] {
        let cfg = ModelConfig {
            classes: 1000,
            ..config(arch, 1.0, 3, 224)
        };
        let mut net = Network::new(cfg, 0).unwrap();
        assert_eq!(net.num_params(), params, "{arch}");
        let macs = net.macs_per_image() as f64 / 1e9;
        assert!((macs / gmacs - 1.0).abs() < 0.01, "{arch}: {macs}");
    }
}

#[test]
fn every_input_size_has_a_valid_output_at_every_layer() {
    // 28×28 (Fashion-MNIST): 14 after the stem conv, 7 after the max-pool, then 7, 4, 2, 1.
    let net = Network::new(config(Arch::ResNet18ImageNet, 0.25, 1, 28), 1).unwrap();
    let mut shape = [2, 28, 28, 1];
    let mut sides = Vec::new();
    for (name, layer) in net.body.layers() {
        shape = layer.output_shape(shape).unwrap();
        if [
            "conv1", "maxpool", "layer1.1", "layer2.1", "layer3.1", "layer4.1",
        ]
        .contains(&name.as_str())
        {
            sides.push(shape[1]);
        }
    }
    assert_eq!(sides, [14, 7, 7, 4, 2, 1]);
    assert_eq!(shape, [2, 1, 1, 10]);
    for side in [1, 5, 28, 32, 33, 64] {
        for arch in [Arch::ResNet18ImageNet, Arch::ResNet34ImageNet] {
            let mut net = Network::new(config(arch, 0.125, 3, side), 1).unwrap();
            let y = net
                .forward(&Tensor::zeros([1, side, side, 3]), Mode::Eval)
                .unwrap();
            assert_eq!(y.shape(), [1, 1, 1, 10], "{arch} at {side}");
        }
    }
    // An empty input is refused, naming the layer that cannot take it.
    let err = Network::new(config(Arch::ResNet18ImageNet, 0.25, 1, 0), 1)
        .err()
        .expect("a 0×0 input is refused")
        .to_string();
    assert!(err.contains("Conv2d") || err.contains("input"), "{err}");
}

/// A checkpoint as a PyTorch user would save a torchvision ResNet-18 (×0.25, 1 input channel)
/// trained under `DataParallel` in half precision with the batch counts dropped: random
/// values under torchvision's names and shapes.
fn torchvision_checkpoint(seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> =
        torchvision_tensors([2, 2, 2, 2], 0.25, 1, 10)
            .into_iter()
            .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
            .map(|(n, shape)| {
                let len: usize = shape.iter().product();
                let v = |rng: &mut Rng| -> f32 {
                    if n.ends_with("running_var")
                        || (n.contains("bn") || n.contains("downsample.1")) && n.ends_with("weight")
                    {
                        rng.uniform(0.5, 1.5)
                    } else {
                        rng.normal() * 0.1
                    }
                };
                let bytes = (0..len)
                    .flat_map(|_| f16::from_f32(v(&mut rng)).to_le_bytes())
                    .collect();
                (format!("module.{n}"), shape, bytes)
            })
            .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F16, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn images(n: usize, seed: u64) -> Arc<Dataset> {
    let mut rng = Rng::new(seed);
    Arc::new(Dataset {
        images: (0..n * 28 * 28).map(|_| rng.below(256) as u8).collect(),
        labels: (0..n).map(|i| (i % 10) as u16).collect(),
        height: 28,
        width: 28,
        channels: 1,
        classes: 10,
    })
}

#[test]
fn a_torchvision_checkpoint_loads_trains_and_quantizes_to_integers() {
    let cfg = config(Arch::ResNet18ImageNet, 0.25, 1, 28);
    let mut net = Network::new(cfg, 3).unwrap();
    load_model_bytes(
        &mut net,
        "resnet18.safetensors".as_ref(),
        &torchvision_checkpoint(4),
    )
    .unwrap();
    // One training step moves the weights and keeps everything finite.
    let mut rng = Rng::new(5);
    let x = Tensor::from_vec([8, 28, 28, 1], (0..8 * 784).map(|_| rng.normal()).collect()).unwrap();
    let labels: Vec<u32> = (0..8).collect();
    let mut before = Vec::new();
    net.visit_params(&mut |_, p| before.extend_from_slice(&p.value));
    let mut ce = CrossEntropy::new(0.0).unwrap();
    let stats = train_step(
        &mut net,
        &mut ce,
        &mut Sgd::new(0.9, 0.0),
        &x,
        &labels,
        0.05,
    )
    .unwrap();
    assert!(stats.loss_sum.is_finite());
    let mut after = Vec::new();
    net.visit_params(&mut |_, p| after.extend_from_slice(&p.value));
    assert_ne!(before, after);
    assert!(after.iter().all(|v| v.is_finite()));
    // Prepare, calibrate, fine-tune and fold, through the padded stem max-pool.
    let data = images(32, 6);
    let mut recipe = Recipe::new(QuantConfig::new(4, Family::KQuantile));
    recipe.calib_images = 16;
    recipe.qat_images = 16;
    let norm = Augment::normalize_only(vec![0.286], vec![0.353]);
    let (model, mut twin) = quantize_with_twin(net, &recipe, &data, &norm, &Quiet).unwrap();
    let pool = model.nodes.iter().find_map(|n| match n {
        Node::MaxPool(p) => Some(p.clone()),
        _ => None,
    });
    let pool = pool.expect("the stem's max-pool");
    assert_eq!((pool.kernel, pool.stride, pool.padding), (3, 2, 1));
    // The integer model computes what its float twin computes.
    let agree = twin_agreement(&mut twin, &model, &data).unwrap();
    assert!(agree.top1 >= 0.9, "top-1 agreement {}", agree.top1);
    // The padded pool survives the .nuq file.
    let file = to_file_model(&model, Family::KQuantile, Default::default()).unwrap();
    assert_eq!(from_file_model(&file).unwrap(), model);
}
