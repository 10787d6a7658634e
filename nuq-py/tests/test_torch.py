"""nuq.torch: the PyTorch forward equals nuq's float twin, and export is nuq's fold."""

import numpy as np
import pytest

from conftest import require

torch = require("torch")
import nuq  # noqa: E402
import nuq.torch as nt  # noqa: E402

MEAN, STD = [0.286], [0.353]


def images(n, seed=0):
    rng = np.random.default_rng(seed)
    base = np.zeros((n, 28, 28, 1))
    for i in range(n):
        base[i, rng.integers(0, 20) :, rng.integers(0, 20) :] = 180
    return np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)


def quantized(arch="resnet20", width=0.25, family="lloyd", bits=4, seed=0, **kw):
    torch.manual_seed(seed)
    m = nt.build(arch, width, 1, 10, (28, 28))
    # Non-trivial batch-norm statistics: a few training-mode passes.
    m.train()
    with torch.no_grad():
        for s in range(3):
            m(nt.normalise(images(32, 100 + s), MEAN, STD))
    nt.quantize(m, nt.normalise(images(64, 1), MEAN, STD), bits=bits, family=family,
                mean=MEAN, std=STD, **kw)
    return m


def nuq_twin(m):
    """nuq's own float twin with the torch model's masters and tables."""
    qn = nt.to_nuq_network(m)
    t = nt.tables(m)
    for n, w in t["weights"].items():
        qn.set_weight_quantizer(n, w["levels"].tolist(), w["scales"].tolist())
    for n, a in t["activations"].items():
        qn.set_activation_quantizer(n, a)
    return qn


@pytest.mark.parametrize("arch,family", [("resnet20", "lloyd"), ("vgg-small", "kquantile")])
def test_forward_equals_nuq_twin(arch, family):
    m = quantized(arch, 0.125 if arch == "vgg-small" else 0.25, family)
    m.eval()
    x = nt.normalise(images(48, 2), MEAN, STD)
    with torch.no_grad():
        lt = m(x).numpy()
    ln = nuq_twin(m).forward(np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy()))
    assert np.abs(lt - ln).max() < 1e-3 * max(1.0, np.abs(ln).max())
    assert np.array_equal(lt.argmax(1), ln.argmax(1))


def test_weight_rounding_is_nuqs():
    m = quantized()
    conv = m.layer1[0].conv1
    t = conv.nuq_table
    u = conv.weight.detach().double().numpy() / t["scales"][:, None, None, None]
    want = t["scales"][:, None, None, None] * t["levels"][nuq.nearest_indices(t["levels"].tolist(), u)]
    got = nt._quantize_weight(conv, conv.weight).detach().numpy()
    assert np.array_equal(got, want.astype(np.float32))
    # Exactly half-way between two levels goes up.
    lv = t["levels"].astype(np.float64)
    mid = (lv[3] + lv[4]) / 2 * t["scales"][0]
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = float(np.float32(mid))
    u0 = float(np.float32(mid)) / t["scales"][0]
    idx = nuq.nearest_indices(t["levels"].tolist(), np.array([u0]))[0]
    got = nt._quantize_weight(conv, conv.weight)[0, 0, 0, 0].item()
    assert got == np.float32(t["scales"][0] * lv[idx])


def test_activation_codes_are_nuqs():
    a = nt.NuqActivation("t", "kquantile", 3)
    samples = np.abs(np.random.default_rng(3).standard_normal((16, 4, 4, 5))).astype(np.float32)
    table = nuq.fit_activation(samples, "kquantile", 3)
    a.set_table(table)
    t = table["thresholds"][0]
    # Values on and around every threshold, in float32.
    x = np.concatenate([t[np.isfinite(t)], np.nextafter(t[np.isfinite(t)], 0), samples.ravel()])
    x = x.astype(np.float32)
    codes = nuq.activation_codes(table, x[:, None])[:, 0]
    got = a(torch.from_numpy(x).view(1, 1, 1, -1)).view(-1).numpy()
    want = (table["scale"] * table["levels"][codes].astype(np.float64)).astype(np.float32)
    assert np.array_equal(got, want)


def test_straight_through_gradients():
    m = quantized()
    m.train()
    x = nt.normalise(images(16, 4), MEAN, STD)
    loss = torch.nn.functional.cross_entropy(m(x), torch.arange(16) % 10)
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert m.layer1[0].conv1.weight.grad.abs().sum() > 0
    a = nt.NuqActivation("t", "uniform", 2)
    a.set_table(nuq.fit_activation(np.linspace(0, 1, 64, dtype=np.float32).reshape(16, 4), "uniform", 2))
    x = torch.tensor([0.5, 100.0], requires_grad=True)
    a(x.view(1, 1, 1, 2)).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0]


def test_export_agrees_with_torch(tmp_path):
    m = quantized()
    m.eval()
    test = images(200, 5)
    with torch.no_grad():
        pt = m(nt.normalise(test, MEAN, STD)).argmax(1).numpy()
    path = str(tmp_path / "m.nuq")
    im = nt.export(m, path, {"run": "test"})
    back = nuq.IntegerModel.load(path)
    pi = back.predict(test)
    assert np.array_equal(pi, im.predict(test))
    assert (pi == pt).mean() >= 0.99


def test_tables_round_trip_and_recalibrate():
    m = quantized()
    t = nt.tables(m)
    other = quantized(seed=0)
    for a in nt._act_modules(other).values():
        a.table = None
    nt.load_tables(other, t)
    x = nt.normalise(images(8, 6), MEAN, STD)
    m.eval(), other.eval()
    with torch.no_grad():
        assert torch.equal(m(x), other(x))
    nt.recalibrate(m, nt.normalise(images(32, 7), MEAN, STD))
    assert all(a.table is not None for a in nt._act_modules(m).values())
    # The state_dict keeps torchvision's names (tables are not in it).
    assert set(m.state_dict()) == set(nt.build("resnet20", 0.25, 1, 10).state_dict())
    with pytest.raises(ValueError):
        nt.quantize(m, x)


def test_uncalibrated_forward_fails():
    a = nt.NuqActivation("t", "lloyd", 2)
    with pytest.raises(RuntimeError):
        a(torch.ones(1, 1, 1, 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_forward_equals_cpu():
    m = quantized()
    m.eval()
    x = nt.normalise(images(16, 8), MEAN, STD)
    with torch.no_grad():
        cpu = m(x)
        gpu = m.cuda()(x.cuda()).cpu()
    assert (cpu.argmax(1) == gpu.argmax(1)).float().mean() >= 0.9
