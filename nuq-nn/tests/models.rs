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
