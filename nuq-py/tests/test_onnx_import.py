"""`Network.from_onnx` (`nuq_nn::onnx::import`): float ONNX CNNs with depthwise, grouped and
separable-residual convolutions and ReLU6 compute ONNX Runtime's logits in nuq, quantize and
fold like a built-in network, and their integer models export to ONNX and QONNX graphs that
ONNX Runtime and qonnx's executor run to nuq's integer logits exactly."""

import os

import numpy as np
import pytest

import nuq
from conftest import require

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "nuq-nn", "tests", "fixtures", "onnx")

# (fixture, channels, side, classes): depthwise + ReLU6 (MobileNet-style), grouped
# convolutions, depthwise branches inside residual blocks, ResNet-50-style bottleneck blocks
# (three convolutions on the main branch).
MODELS = [
    ("mobilenet_tiny", 3, 16, 5),
    ("grouped_tiny", 3, 10, 4),
    ("separable_resnet", 3, 12, 3),
    ("bottleneck_resnet", 3, 12, 5),
]
NAMES = [m[0] for m in MODELS]

# The float fixtures have a fixed batch of 2.
ORT_BATCH = 2

MEAN = [0.49, 0.48, 0.45]
STD = [0.25, 0.24, 0.26]

# (bits, weight family, activation family)
QUANT = [
    (4, "lloyd", "lloyd"),
    (4, "uniform", "uniform"),
    (3, "kquantile", "kquantile"),
    (3, "apot", "uniform"),
]


def fixture(name):
    return os.path.join(FIXTURES, f"{name}.onnx")


def model(name):
    return next(m for m in MODELS if m[0] == name)


def normal_images(n, side, channels, seed):
    return np.random.default_rng(seed).normal(0, 1, (n, side, side, channels)).astype(np.float32)


def byte_images(n, side, channels, seed):
    """NHWC uint8 images with structure (a gradient) and noise, saturating at both ends."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-60, 320, side)[None, :, None, None]
    x = ramp + rng.normal(0, 80, (n, side, side, channels))
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", NAMES)
def test_imported_network_describes_the_files_input(name):
    _, channels, side, classes = model(name)
    net = nuq.Network.from_onnx(fixture(name))
    assert net.arch == "onnx" and net.width == 1.0
    assert (net.in_channels, net.input_size, net.classes) == (channels, (side, side), classes)


@pytest.mark.parametrize("name", NAMES)
def test_float_forward_equals_onnx_runtime(name):
    ort = require("onnxruntime")
    _, channels, side, classes = model(name)
    net = nuq.Network.from_onnx(fixture(name))
    sess = ort.InferenceSession(fixture(name), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    x = normal_images(8, side, channels, seed=5)
    got = net.forward(x)
    assert got.shape == (8, classes) and got.dtype == np.float32
    want = np.concatenate(
        [
            sess.run(None, {inp.name: x[i : i + ORT_BATCH].transpose(0, 3, 1, 2).copy()})[0]
            for i in range(0, len(x), ORT_BATCH)
        ]
    )
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_and_checkpoint_round_trip(tmp_path, name):
    _, channels, side, _ = model(name)
    net = nuq.Network.from_onnx(fixture(name))
    sd = net.state_dict()
    assert sd and all(isinstance(k, str) for k in sd)
    x = normal_images(4, side, channels, seed=9)
    other = nuq.Network.from_onnx(fixture(name))
    other.load_state_dict({k: v for k, v in sd.items() if v.dtype == np.float32})
    np.testing.assert_array_equal(other.forward(x), net.forward(x))
    path = str(tmp_path / "m.safetensors")
    net.save(path)
    loaded = nuq.Network.from_onnx(fixture(name))
    loaded.load(path)
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x))


def integer_model(name, bits, family, act_family, seed=1):
    _, channels, side, _ = model(name)
    net = nuq.Network.from_onnx(fixture(name))
    qn = net.quantize(bits, family, MEAN[:channels], STD[:channels], act_family=act_family)
    qn.calibrate(normal_images(16, side, channels, seed))
    # The twin runs after calibration like a built-in network's.
    assert np.isfinite(qn.forward(normal_images(2, side, channels, seed + 1))).all()
    return qn.to_integer()


@pytest.mark.parametrize("bits,family,act_family", QUANT)
@pytest.mark.parametrize("name", NAMES)
def test_onnx_runtime_computes_nuqs_integer_logits_exactly(tmp_path, name, bits, family, act_family):
    ort = require("onnxruntime")
    _, channels, side, classes = model(name)
    m = integer_model(name, bits, family, act_family)
    path = str(tmp_path / "m.onnx")
    report = m.export_onnx(path)
    assert report["exact"] and report["flavour"] == "onnx"
    x = byte_images(17, side, channels, seed=3)
    want = m.forward(x)
    assert want.shape == (17, classes)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"image": x.transpose(0, 3, 1, 2).copy()})[0]
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bits,family,act_family", [QUANT[0], QUANT[2]])
@pytest.mark.parametrize("name", NAMES)
def test_qonnx_executor_computes_nuqs_integer_logits_exactly(tmp_path, name, bits, family, act_family):
    require("qonnx")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    _, channels, side, _ = model(name)
    m = integer_model(name, bits, family, act_family)
    path = str(tmp_path / "m.qonnx.onnx")
    n = 6
    report = m.export_onnx(path, flavour="qonnx", batch=n)
    assert report["flavour"] == "qonnx" and report["batch"] == n
    wrapped = ModelWrapper(path)
    ops = {node.op_type for node in wrapped.graph.node}
    assert "MultiThreshold" in ops and "ConvInteger" not in ops
    x = byte_images(n, side, channels, seed=11)
    out = execute_onnx(wrapped, {"image": x.transpose(0, 3, 1, 2).astype(np.float32)})
    got = out["logits"]
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, m.forward(x).astype(np.float64))


def test_a_refused_model_names_the_node():
    with pytest.raises(nuq.NuqError) as e:
        nuq.Network.from_onnx(fixture("unsupported_leaky_relu"))
    msg = str(e.value)
    assert "/act/LeakyRelu" in msg and "LeakyRelu" in msg and "unsupported_leaky_relu.onnx" in msg


def test_a_missing_file_raises(tmp_path):
    with pytest.raises(nuq.NuqError, match="nope.onnx"):
        nuq.Network.from_onnx(str(tmp_path / "nope.onnx"))
