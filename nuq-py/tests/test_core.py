"""One test per function of nuq's Python API (nuq._nuq), against nuq's own definitions."""

import numpy as np
import pytest

import nuq


def normal(n, seed=0):
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def test_fit_codebook_every_family():
    x = normal(20000)
    for family, n in (("kquantile", 16), ("lloyd", 16), ("apot", None), ("uniform", 15)):
        cb = nuq.fit_codebook(x, family, 4)
        levels = cb["levels"]
        assert levels.dtype == np.int32 and np.all(np.diff(levels) > 0)
        assert levels.min() >= -127 and levels.max() <= 127
        if n is not None:
            assert len(levels) == n
        assert cb["scale"] > 0
        # Reconstruction error of nearest-level quantization is small against the signal.
        deq = cb["scale"] * levels[np.abs(x[:, None] / cb["scale"] - levels[None]).argmin(1)]
        sqnr = 10 * np.log10(np.mean(x**2) / np.mean((x - deq) ** 2))
        assert sqnr > 12, (family, sqnr)
    unsigned = nuq.fit_codebook(np.abs(x), "lloyd", 3, signed=False)["levels"]
    assert unsigned.min() >= 0 and unsigned.max() <= 255
    with pytest.raises(nuq.NuqError):
        nuq.fit_codebook(x, "nf4", 4)


def test_calibrate_scale_methods():
    x = normal(4096)
    levels = [-127, -42, 42, 127]
    maxabs = nuq.calibrate_scale(x, levels, "maxabs")
    assert maxabs == pytest.approx(np.abs(x).max() / 127, rel=1e-6)
    mse = nuq.calibrate_scale(x, levels, "mse")
    assert 0 < mse < maxabs
    p = nuq.calibrate_scale(x, levels, "percentile:99")
    assert 0 < p < maxabs
    with pytest.raises(nuq.NuqError):
        nuq.calibrate_scale(x, levels, "best")


def test_quantize_weights_rows_and_scales():
    rows = np.random.default_rng(1).standard_normal((6, 90)) * np.arange(1, 7)[:, None]
    w = rows.astype(np.float32)
    q = nuq.quantize_weights(w, 4, "lloyd", per_channel=True)
    assert q["indices"].shape == w.shape and q["indices"].max() < len(q["levels"])
    assert q["bits"] == 4 and np.all(np.diff(q["scales"]) > 0)  # rows grow in magnitude
    deq = q["scales"][:, None] * q["levels"][q["indices"]]
    assert np.mean((deq - w) ** 2) < 0.02 * np.mean(w**2)
    t = nuq.quantize_weights(w, 4, "lloyd", per_channel=False)
    assert np.all(t["scales"] == t["scales"][0])
    with pytest.raises(nuq.NuqError):
        nuq.quantize_weights(w.ravel()[None, :-1].reshape(1, -1)[:, :0], 4, "lloyd")


def test_fit_activation_and_codes():
    a = np.maximum(normal(64 * 8 * 8 * 4, 2), 0).reshape(64, 8, 8, 4)
    q = nuq.fit_activation(a, "kquantile", 3)
    assert q["thresholds"].shape == (1, 7) and len(q["levels"]) == 8 and q["levels"][0] == 0
    # k-quantile: the positive values split into equal-mass bins.
    codes = nuq.activation_codes(q, a)
    counts = np.bincount(codes[a > 0].ravel(), minlength=8)[1:]
    assert counts.min() > 0.8 * counts.mean()
    # The code is #{j : x >= t_j}.
    x = a.reshape(-1, 4)[:1000]
    want = (x[..., None] >= q["thresholds"][0]).sum(-1)
    assert np.array_equal(nuq.activation_codes(q, np.ascontiguousarray(x)), want)
    pc = nuq.fit_activation(a, "kquantile", 3, per_channel=True)
    assert pc["thresholds"].shape == (4, 7)
    for fam in ("lloyd", "apot", "uniform"):
        assert nuq.fit_activation(a, fam, 2)["thresholds"].shape == (1, 3)
    with pytest.raises(nuq.NuqError):
        nuq.fit_activation(np.full((4, 2), np.nan, np.float32), "lloyd", 2)


def test_activation_codes_shape():
    q = nuq.fit_activation(np.linspace(0, 1, 64, dtype=np.float32).reshape(16, 4), "uniform", 2)
    c = nuq.activation_codes(q, np.zeros((2, 3, 4), np.float32))
    assert c.shape == (2, 3, 4) and c.dtype == np.uint8 and c.max() == 0


def test_nearest_indices_ties_go_up():
    idx = nuq.nearest_indices([-4, 0, 4], np.array([-9.0, -2.0, 1.999, 2.0, 9.0]))
    assert idx.tolist() == [0, 1, 1, 2, 2]


def test_network_state_dict_round_trip():
    net = nuq.Network("resnet20", width=0.25, in_channels=1, classes=10, input_size=(28, 28), seed=3)
    sd = net.state_dict()
    assert sd["conv1.weight"].shape == (4, 1, 3, 3) and "layer2.0.downsample.0.weight" in sd
    other = nuq.Network("resnet20", width=0.25, in_channels=1, classes=10, input_size=(28, 28), seed=4)
    other.load_state_dict({k: v for k, v in sd.items() if v.dtype == np.float32})
    x = normal(2 * 28 * 28).reshape(2, 28, 28, 1)
    assert np.array_equal(net.forward(x), other.forward(x))
    with pytest.raises(nuq.NuqError):
        other.load_state_dict({"conv1.weight": sd["conv1.weight"]})
    with pytest.raises(nuq.NuqError):
        nuq.Network("alexnet")


def test_network_load_checkpoint(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file

    net = nuq.Network("vgg-small", width=0.0625, in_channels=1, classes=10, input_size=(28, 28))
    sd = net.state_dict()
    save_file(sd, str(tmp_path / "m.safetensors"))
    other = nuq.Network("vgg-small", width=0.0625, in_channels=1, classes=10, input_size=(28, 28), seed=9)
    other.load(str(tmp_path / "m.safetensors"))
    assert np.array_equal(other.state_dict()["features.0.weight"], sd["features.0.weight"])


def prepared(family="lloyd"):
    net = nuq.Network("resnet20", width=0.25, in_channels=1, classes=10, input_size=(28, 28), seed=1)
    qn = net.quantize(4, family, [0.286], [0.353])
    qn.calibrate(normal(8 * 28 * 28, 5).reshape(8, 28, 28, 1))
    return net, qn


def test_quantized_network_tables():
    net, qn = prepared()
    with pytest.raises(nuq.NuqError):
        net.state_dict()  # consumed
    assert qn.input_norm[0] == pytest.approx([73 / 255])
    names = qn.weight_layers()
    assert "conv1" in names and "fc" in names
    first = qn.weight_quantizer("conv1")
    assert first["edge"] and first["bits"] == 8 and first["input_factor"] is not None
    inner = qn.weight_quantizer("layer1.0.conv1")
    assert inner["bits"] == 4 and inner["input_factor"] is None and len(inner["scales"]) == 4
    acts = qn.activation_names()
    assert acts[0] == "bn1.act" and "layer3.2.act" in acts
    a = qn.activation_quantizer("bn1.act")
    assert a["thresholds"].shape == (1, 15)
    x = normal(2 * 28 * 28, 6).reshape(2, 28, 28, 1)
    before = qn.forward(x)
    qn.set_activation_quantizer("bn1.act", a)
    qn.set_weight_quantizer("layer1.0.conv1", inner["levels"].tolist(), inner["scales"].tolist())
    assert np.allclose(qn.forward(x), before, atol=1e-4)
    with pytest.raises(nuq.NuqError):
        qn.set_weight_quantizer("layer1.0.conv1", inner["levels"].tolist(), [1.0])
    with pytest.raises(nuq.NuqError):
        qn.activation_quantizer("nope")


def test_integer_model_save_load_predict(tmp_path):
    _, qn = prepared()
    m = qn.to_integer()
    assert m.input_shape == (28, 28, 1) and m.classes == 10 and m.zero_point == [73]
    assert m.macs_per_image > 0 and m.logit_scale > 0
    path = str(tmp_path / "m.nuq")
    size = m.save(path, "lloyd", {"note": "test"})
    assert size > 1000
    back = nuq.IntegerModel.load(path)
    imgs = (np.random.default_rng(7).random((9, 28, 28, 1)) * 255).astype(np.uint8)
    assert np.array_equal(back.forward(imgs), m.forward(imgs))
    assert np.array_equal(back.predict(imgs), m.forward(imgs).argmax(1))
    with pytest.raises(nuq.NuqError):
        m.predict(np.zeros((1, 32, 32, 3), np.uint8))
    (tmp_path / "bad.nuq").write_bytes(b"not a nuq file")
    with pytest.raises(nuq.NuqError):
        nuq.IntegerModel.load(str(tmp_path / "bad.nuq"))


def test_load_dataset(tiny_dataset):
    images, labels = nuq.load_dataset(tiny_dataset, "train")
    assert images.shape == (512, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (512,) and labels.max() <= 9
    test_images, _ = nuq.load_dataset(tiny_dataset, "test")
    assert test_images.shape[0] == 256
    with pytest.raises(nuq.NuqError):
        nuq.load_dataset(tiny_dataset, "valid")
