//! Model construction: parameter counts, MACs and names against the published figures.

use nuq_nn::{Arch, Mode, ModelConfig, Network, Tensor};

fn count(arch: Arch) -> (usize, u64, Vec<String>) {
    let mut net = Network::new(ModelConfig::cifar10(arch), 0).unwrap();
    let mut names = Vec::new();
    net.visit_params(&mut |n, _| names.push(n.to_string()));
    (net.num_params(), net.macs_per_image(), names)
}

#[test]
fn resnet18_matches_reference() {
    let (params, macs, names) = count(Arch::ResNet18);
    // CIFAR ResNet-18 (3×3 stem, projection shortcuts, 10 classes): 11 173 962 ≈ 11.2 M.
    assert_eq!(params, 11_173_962);
    // ≈ 0.556 G MACs per 32×32 image.
    assert!((macs as f64 / 0.556e9 - 1.0).abs() < 0.01, "{macs}");
    for n in [
        "conv1.weight",
        "bn1.weight",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.bias",
        "layer4.1.bn2.weight",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(names.iter().any(|x| x == n), "missing {n}");
    }
    assert!(!names.iter().any(|x| x.starts_with("layer1.0.downsample")));
}

#[test]
fn resnet20_matches_reference() {
    let (params, macs, _) = count(Arch::ResNet20);
    // 0.27 M with 1×1 projection shortcuts (option B): 272 474.
    assert_eq!(params, 272_474);
    assert!((macs as f64 / 41e6 - 1.0).abs() < 0.02, "{macs}");
}

#[test]
fn vgg_small_matches_reference() {
    let (params, macs, names) = count(Arch::VggSmall);
    // 4 574 592 conv + 3 584 BN + 81 930 FC = 4 660 106 ≈ 4.6 M.
    assert_eq!(params, 4_660_106);
    assert!((macs as f64 / 0.608e9 - 1.0).abs() < 0.01, "{macs}");
    for n in [
        "features.0.weight",
        "features.1.weight",
        "features.17.weight",
        "features.18.bias",
        "classifier.weight",
    ] {
        assert!(names.iter().any(|x| x == n), "missing {n}");
    }
}

#[test]
fn fashion_mnist_shapes_and_width() {
    for arch in [Arch::ResNet18, Arch::ResNet20, Arch::VggSmall] {
        let mut net = Network::new(ModelConfig::fashion_mnist(arch, 0.25), 1).unwrap();
        let logits = net
            .forward(&Tensor::zeros([2, 28, 28, 1]), Mode::Train)
            .unwrap();
        assert_eq!(logits.shape(), [2, 1, 1, 10]);
        assert!(logits.data().iter().all(|v| v.is_finite()));
    }
    let mut quarter = Network::new(ModelConfig::fashion_mnist(Arch::ResNet18, 0.25), 1).unwrap();
    let full = count(Arch::ResNet18).0;
    let q = quarter.num_params();
    assert!(q * 14 < full && q * 18 > full, "{q} vs {full}");
    assert!(Network::new(ModelConfig::fashion_mnist(Arch::ResNet18, 0.0), 1).is_err());
    assert!("vgg-small".parse::<Arch>().is_ok() && "alexnet".parse::<Arch>().is_err());
}

#[test]
fn layers_can_be_swapped_and_reached_by_name() {
    use nuq_nn::{BatchNorm2d, Conv2d, Graph, Linear, Relu, Rng};
    let mut net = Network::new(ModelConfig::fashion_mnist(Arch::ResNet20, 0.25), 3).unwrap();
    // Reach a conv weight and a BN inside a block through the concrete types.
    let block = net.body.get_mut("layer2.0").unwrap();
    let block = block.as_any_mut().downcast_mut::<Graph>().unwrap();
    let conv = block
        .get_mut("conv1")
        .unwrap()
        .as_any_mut()
        .downcast_mut::<Conv2d>()
        .unwrap();
    assert_eq!(conv.weight.torch_shape, [8, 4, 3, 3]);
    let bn = block.get_mut("downsample.1").unwrap();
    assert!(bn.as_any_mut().downcast_mut::<BatchNorm2d>().is_some());
    // Swap the classifier for a fresh one and insert an extra layer before it.
    let mut rng = Rng::new(9);
    let old = net
        .body
        .replace(
            "fc",
            Box::new(Linear::new(16, 10, false, &mut rng).unwrap()),
        )
        .unwrap();
    assert!(old.as_any().downcast_ref::<Linear>().is_some());
    let pos = net
        .body
        .layers()
        .iter()
        .position(|(n, _)| n == "fc")
        .unwrap();
    net.body
        .insert(pos, "extra_relu", Box::new(Relu::new()))
        .unwrap();
    assert!(net.body.replace("nope", Box::new(Relu::new())).is_err());
    let logits = net
        .forward(&Tensor::zeros([2, 28, 28, 1]), Mode::Eval)
        .unwrap();
    assert_eq!(logits.shape(), [2, 1, 1, 10]);
    let mut names = Vec::new();
    net.visit_params(&mut |n, _| names.push(n.to_string()));
    assert!(names.contains(&"fc.weight".to_string()) && !names.contains(&"fc.bias".to_string()));
}

#[test]
fn a_cloned_network_computes_the_same_and_trains_apart() {
    for arch in [Arch::ResNet20, Arch::VggSmall] {
        let mut net = Network::new(ModelConfig::fashion_mnist(arch, 0.25), 5).unwrap();
        let mut copy = net.clone();
        let x = Tensor::from_vec(
            [2, 28, 28, 1],
            (0..2 * 28 * 28)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect(),
        )
        .unwrap();
        let y = net.forward(&x, Mode::Eval).unwrap().clone();
        assert!(*copy.forward(&x, Mode::Eval).unwrap() == y, "{arch}");
        // A training-mode pass moves the copy's batch-norm statistics, not the original's,
        // and a changed copy's weight leaves the original's alone.
        copy.forward(&x, Mode::Train).unwrap();
        copy.visit_params(&mut |n, p| {
            if n == "fc.weight" || n == "classifier.weight" {
                p.value.iter_mut().for_each(|v| *v += 1.0);
            }
        });
        assert!(*net.forward(&x, Mode::Eval).unwrap() == y, "{arch}");
        assert!(*copy.forward(&x, Mode::Eval).unwrap() != y, "{arch}");
    }
}
