"""`IntegerModel.export_onnx` (`nuq export --onnx/--qonnx`): ONNX Runtime runs the ONNX
flavour and qonnx's executor the QONNX flavour, and both compute nuq's integer logits."""

import numpy as np
import pytest

import nuq
from conftest import require

ARCHS = [
    # (arch, width, bits, family): residual joins with identity and projection shortcuts,
    # max-pooling (VGG-Small, the ImageNet stem), non-uniform and uniform level tables.
    ("resnet20", 0.25, 4, "lloyd"),
    ("vgg-small", 0.0625, 3, "kquantile"),
    ("resnet18-imagenet", 0.0625, 2, "uniform"),
]


def integer_model(arch, width, bits, family, channels=1, side=28, seed=1):
    net = nuq.Network(arch, width=width, in_channels=channels, classes=10, input_size=(side, side), seed=seed)
    mean, std = [0.3] * channels, [0.35] * channels
    qn = net.quantize(bits, family, mean, std)
    rng = np.random.default_rng(seed)
    qn.calibrate(rng.normal(0, 1, (8, side, side, channels)).astype(np.float32))
    return qn.to_integer()


def images(n, side=28, channels=1, seed=7):
    """NHWC uint8 images with structure (a gradient) and noise, saturating at both ends."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-60, 320, side)[None, :, None, None]
    x = ramp + rng.normal(0, 80, (n, side, side, channels))
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("arch,width,bits,family", ARCHS)
def test_onnx_runtime_computes_nuqs_logits_exactly(tmp_path, arch, width, bits, family):
    ort = require("onnxruntime")
    m = integer_model(arch, width, bits, family)
    path = str(tmp_path / "m.onnx")
    report = m.export_onnx(path)
    assert report["exact"] and report["flavour"] == "onnx" and report["batch"] is None
    x = images(33)
    want = m.forward(x)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert inp.name == "image" and inp.type == "tensor(uint8)"
    got = sess.run(["logits"], {"image": x.transpose(0, 3, 1, 2).copy()})[0]
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


def test_onnx_export_pads_with_the_input_zero_point(tmp_path):
    """Three input channels with different zero points, padded borders: the correction
    constant makes ONNX's zero padding equal nuq's zero-point padding."""
    ort = require("onnxruntime")
    net = nuq.Network("resnet20", width=0.25, in_channels=3, classes=10, input_size=(32, 32), seed=2)
    qn = net.quantize(4, "kquantile", [0.49, 0.48, 0.45], [0.25, 0.24, 0.26])
    qn.calibrate(np.random.default_rng(2).normal(0, 1, (8, 32, 32, 3)).astype(np.float32))
    m = qn.to_integer()
    assert len(set(m.zero_point)) == 3
    path = str(tmp_path / "c.onnx")
    m.export_onnx(path)
    x = images(16, side=32, channels=3, seed=3)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x.transpose(0, 3, 1, 2).copy()})[0]
    np.testing.assert_array_equal(got, m.forward(x))


@pytest.mark.parametrize("arch,width,bits,family", ARCHS[:2])
def test_qonnx_executor_runs_the_multithreshold_flavour(tmp_path, arch, width, bits, family):
    require("qonnx")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    m = integer_model(arch, width, bits, family)
    path = str(tmp_path / "m.qonnx.onnx")
    n = 6
    report = m.export_onnx(path, flavour="qonnx", batch=n)
    assert report["flavour"] == "qonnx" and report["batch"] == n
    model = ModelWrapper(path)
    ops = {node.op_type for node in model.graph.node}
    assert "MultiThreshold" in ops and "ConvInteger" not in ops
    assert model.get_tensor_datatype("image").name == "UINT8"
    x = images(n, seed=11)
    out = execute_onnx(model, {"image": x.transpose(0, 3, 1, 2).astype(np.float32)})
    got = out["logits"]
    want = m.forward(x)
    # Exact: where the worst case could pass float32's integers (report["exact"] false),
    # the accumulators these images produce stay far below it.
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want.astype(np.float64))


def test_export_refuses_a_bad_flavour_and_batch(tmp_path):
    m = integer_model("resnet20", 0.25, 4, "uniform")
    with pytest.raises(nuq.NuqError, match="flavour"):
        m.export_onnx(str(tmp_path / "x.onnx"), flavour="tflite")
    with pytest.raises(nuq.NuqError, match="batch size"):
        m.export_onnx(str(tmp_path / "x.onnx"), batch=0)
    assert not (tmp_path / "x.onnx").exists()
