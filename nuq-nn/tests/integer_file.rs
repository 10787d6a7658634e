//! The integer model through the `.nuq` file (format 1.1): residual networks with an input zero
//! point are written, read back as the same model and run to the same logits; files using ops
//! the integer model has no form for are refused with an error naming the layer.

mod common;
use common::{images, randomise_bn};
use nuq_fpga_fmt::{encode, CodebookKind, LayerOp, Model, NuqFile, WriteOptions};
use nuq_kernels::KernelPath;
use nuq_nn::integer::{from_file_model, to_file_model, IntegerModel, IntegerRunner, Node};
use nuq_nn::quant::{Family, InputNorm, QuantConfig, QuantizedNetwork};
use nuq_nn::{Arch, ModelConfig, Network};

/// A calibrated integer model of `arch` on `size`×`size` images with `channels` channels whose
/// input mean is `mean` (so a non-zero input zero point when `mean > 0`).
fn integer_model(
    arch: Arch,
    width: f32,
    size: usize,
    channels: usize,
    mean: f32,
    family: Family,
    bits: u8,
) -> IntegerModel {
    let cfg = ModelConfig {
        arch,
        width,
        in_channels: channels,
        classes: 10,
        input_size: (size, size),
    };
    let mut net = Network::new(cfg, 17).unwrap();
    randomise_bn(&mut net, 23, true);
    let norm = InputNorm::from_mean_std(&vec![mean; channels], &vec![0.3; channels]).unwrap();
    let mut qn =
        QuantizedNetwork::prepare(net, QuantConfig::new(bits, family), norm.clone()).unwrap();
    let len = size * size * channels;
    qn.calibrate(&norm.normalise(&images(16, len, 8), 16, size, size).unwrap())
        .unwrap();
    qn.to_integer().unwrap()
}

fn bytes_of(m: &IntegerModel) -> Vec<u8> {
    let fm = to_file_model(m, CodebookKind::KQuantile, Default::default()).unwrap();
    encode(&fm, &WriteOptions::default()).unwrap()
}

fn read_back(bytes: &[u8]) -> IntegerModel {
    let file = NuqFile::parse(bytes).unwrap();
    from_file_model(&Model::from_file(&file)).unwrap()
}

/// Writes, reads back and runs `model`: the same model (up to `f32` scales), the same bytes
/// when written again, the same logits.
fn assert_round_trip(model: &IntegerModel, hw: usize, channels: usize, minor: u16) {
    let bytes = bytes_of(model);
    let file = NuqFile::parse(&bytes).unwrap();
    assert_eq!(file.version(), (1, minor));
    let back = read_back(&bytes);
    // The model holds its informative scales as f32, as the file does: the round trip is exact.
    assert_eq!(&back, model);
    assert_eq!(bytes_of(&back), bytes, "re-written file differs");
    let n = 5;
    let test = images(n, hw * hw * channels, 31);
    let path = KernelPath::best_available();
    let a = IntegerRunner::new(model, path)
        .unwrap()
        .forward(&test, n)
        .unwrap()
        .to_vec();
    let b = IntegerRunner::new(&back, path)
        .unwrap()
        .forward(&test, n)
        .unwrap()
        .to_vec();
    assert_eq!(a, b);
}

#[test]
fn resnet20_with_an_input_zero_point_round_trips_through_bytes() {
    let model = integer_model(Arch::ResNet20, 0.25, 8, 3, 0.45, Family::KQuantile, 3);
    assert!(model.input.zero_point.iter().all(|&z| z == 115));
    let adds: Vec<_> = model
        .nodes
        .iter()
        .filter_map(|n| match n {
            Node::Add(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(adds.len(), 9, "ResNet-20 has nine residual joins");
    assert!(
        adds.iter()
            .flat_map(|a| &a.align)
            .any(|f| f.multiplier() < 0),
        "negative batch-norm scales give negative alignment factors"
    );
    assert_round_trip(&model, 8, 3, 1);
    // The file holds one aligned_add per join and the input's zero points.
    let file_model = to_file_model(&model, CodebookKind::KQuantile, Default::default()).unwrap();
    assert_eq!(file_model.layers[0].op, LayerOp::InputZp);
    assert_eq!(file_model.zero_points[0].values, vec![115; 3]);
    assert_eq!(
        file_model
            .layers
            .iter()
            .filter(|l| l.op == LayerOp::AlignedAdd)
            .count(),
        9
    );
    assert_eq!(file_model.aligns.len(), 9);
}

#[test]
fn resnet18_round_trips_through_bytes() {
    let model = integer_model(Arch::ResNet18, 0.0625, 8, 1, 0.5, Family::Uniform, 4);
    assert!(model.nodes.iter().any(|n| matches!(n, Node::Add(_))));
    assert_round_trip(&model, 8, 1, 1);
}

#[test]
fn models_without_1_1_features_are_written_as_format_1_0() {
    let model = integer_model(Arch::VggSmall, 0.0625, 8, 1, 0.0, Family::LloydMax, 3);
    assert_round_trip(&model, 8, 1, 0);
}

#[test]
fn files_using_ops_without_an_integer_form_are_refused() {
    let model = integer_model(Arch::ResNet20, 0.25, 8, 1, 0.5, Family::Uniform, 2);
    let base = to_file_model(&model, CodebookKind::Uniform, Default::default()).unwrap();
    // A plain `add` (no alignment): valid in the file, but it has no integer semantics.
    let mut plain = base.clone();
    let at = plain
        .layers
        .iter()
        .position(|l| l.op == LayerOp::AlignedAdd)
        .unwrap();
    plain.layers[at].op = LayerOp::Add;
    plain.layers[at].align = None;
    let bytes = encode(&plain, &WriteOptions::default()).unwrap();
    let e = from_file_model(&Model::from_file(&NuqFile::parse(&bytes).unwrap()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("layer {at}")) && e.contains("op = add is not supported"),
        "{e}"
    );
    // An owned model whose input_zp names a missing zero-point table is an error, not a panic.
    let mut no_table = base.clone();
    no_table.zero_points.clear();
    let e = from_file_model(&no_table).unwrap_err().to_string();
    assert!(e.contains("zero-point table"), "{e}");
    // An aligned_add without an alignment table in the owned model.
    let mut no_align = base;
    no_align.aligns.clear();
    let e = from_file_model(&no_align).unwrap_err().to_string();
    assert!(e.contains("no alignment table"), "{e}");
}
