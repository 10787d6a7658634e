"""nuq's quantizers inside PyTorch: fake-quantized modules whose forward is nuq's float twin.

Every table (weight codebooks and per-row scales, activation thresholds, levels and scales) is
computed by nuq (``nuq._nuq``), then applied with torch ops, so training runs on CPU or CUDA,
under ``torch.distributed`` DDP or not. The forward reproduces nuq's twin:

* a weight ``w`` of row ``r`` is used as ``s_r · L[i] · f``, ``i`` the level nearest to
  ``u = (w / f − m_r) / s_r`` (float64, ties up, as ``Codebook::nearest_f64``; ``f`` the first
  convolution's ``255 · std`` per input channel, ``m_r`` the row mean under weight
  normalisation); the gradient reaches the float master unchanged (straight-through);
* an activation after a ReLU gets code ``#{j : x >= t_j}`` and value ``float32(scale · L[code])``
  (thresholds rounded up to float32, which is exact for float32 inputs); its gradient passes
  where ``x <=`` the top level (clipped straight-through);
* the global average pool is rounded to the activation grid before the classifier, as the
  integer pool rounds; batch-norm is PyTorch's (batch statistics in training, running ones in
  evaluation), which is what nuq's fold reads.

Usage::

    model = nuq.torch.resnet18(width=0.25, in_channels=1, num_classes=10)
    model.load_state_dict(...)                       # a trained float model
    nuq.torch.quantize(model, "resnet18", calib, bits=4, family="lloyd",
                       mean=[0.286], std=[0.353])    # calib: normalised NCHW images
    ...                                              # train as usual (DDP welcome)
    nuq.torch.export(model, "model.nuq")             # nuq's fold, a .nuq file

The models nuq folds are its own (:func:`resnet18`, :func:`resnet20`, :func:`vgg_small`, with
torchvision tensor names; a torchvision ``resnet18`` with a 3×3 stride-1 ``conv1`` and no
max-pool is the same network).
"""

from __future__ import annotations

import math
import types
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import _nuq

__all__ = [
    "BasicBlock",
    "ResNet",
    "resnet18",
    "resnet20",
    "vgg_small",
    "build",
    "NuqActivation",
    "GridRound",
    "quantize",
    "calibrate",
    "recalibrate",
    "tables",
    "load_tables",
    "broadcast_tables",
    "export",
    "to_nuq_network",
    "save_checkpoint",
    "normalise",
]


# --------------------------------------------------------------------------------------------
# nuq's models with torchvision names
# --------------------------------------------------------------------------------------------


def _ch(base: int, width: float) -> int:
    # nuq's ModelConfig::ch: round half away from zero in f32, at least 1.
    v = np.float32(base) * np.float32(width)
    return max(1, int(math.floor(float(v) + 0.5)))


class BasicBlock(nn.Module):
    """torchvision's ``BasicBlock``: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``
    with a 1×1 convolution + batch-norm projection (``downsample``) when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """nuq's CIFAR-style ResNet (3×3 stride-1 stem, no max-pool) with torchvision names."""

    def __init__(self, stages, width=1.0, in_channels=3, num_classes=10):
        super().__init__()
        stem = _ch(stages[0][0], width)
        self.conv1 = nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=False)
        c_in = stem
        for si, (base, blocks) in enumerate(stages):
            c_out = _ch(base, width)
            layers = []
            for b in range(blocks):
                layers.append(BasicBlock(c_in, c_out, 2 if si > 0 and b == 0 else 1))
                c_in = c_out
            setattr(self, f"layer{si + 1}", nn.Sequential(*layers))
        self.num_stages = len(stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet18(width: float = 1.0, in_channels: int = 3, num_classes: int = 10) -> ResNet:
    """nuq's ``resnet18`` (CIFAR stem) with torchvision names, channels scaled by ``width``."""
    return ResNet([(64, 2), (128, 2), (256, 2), (512, 2)], width, in_channels, num_classes)


def resnet20(width: float = 1.0, in_channels: int = 3, num_classes: int = 10) -> ResNet:
    """nuq's ``resnet20`` (3 stages × 3 blocks, 16/32/64 channels, projection shortcuts)."""
    return ResNet([(16, 3), (32, 3), (64, 3)], width, in_channels, num_classes)


class _VggSmall(nn.Module):
    def __init__(self, width, in_channels, num_classes, input_size):
        super().__init__()
        layers: List[nn.Module] = []
        c_in = in_channels
        h, w = input_size
        for base in (128, 256, 512):
            c = _ch(base, width)
            for _ in range(2):
                layers += [nn.Conv2d(c_in, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
                c_in = c
            layers.append(nn.MaxPool2d(2, 2))
            h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in * h * w, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def vgg_small(width=1.0, in_channels=3, num_classes=10, input_size=(32, 32)) -> nn.Module:
    """nuq's ``vgg-small`` with PyTorch ``nn.Sequential`` names (``features.N``, ``classifier``)."""
    return _VggSmall(width, in_channels, num_classes, tuple(input_size))


def build(arch: str, width=1.0, in_channels=3, num_classes=10, input_size=(32, 32)) -> nn.Module:
    """The torch twin of nuq's model ``arch`` (``resnet18``, ``resnet20``, ``vgg-small``)."""
    a = arch.lower().replace("_", "-")
    if a in ("resnet18", "resnet-18"):
        return resnet18(width, in_channels, num_classes)
    if a in ("resnet20", "resnet-20"):
        return resnet20(width, in_channels, num_classes)
    if a in ("vgg-small", "vggsmall", "vgg"):
        return vgg_small(width, in_channels, num_classes, input_size)
    raise ValueError(f"arch: expected resnet18, resnet20 or vgg-small, found {arch!r}")


# --------------------------------------------------------------------------------------------
# The fake-quantization pieces
# --------------------------------------------------------------------------------------------


class _StraightThrough(torch.autograd.Function):
    """Forward: exactly ``q``; backward: ``dy`` to ``x`` (where ``mask``, when given).
    (``x + (q − x).detach()`` would not give ``q`` exactly in floating point.)"""

    @staticmethod
    def forward(ctx, x, q, mask=None):
        ctx.save_for_backward(mask)
        return q

    @staticmethod
    def backward(ctx, dy):
        (mask,) = ctx.saved_tensors
        return (dy if mask is None else dy * mask.to(dy.dtype)), None, None


def _f32_at_least(t: np.ndarray) -> np.ndarray:
    """The smallest float32 >= each float64 threshold: for float32 ``x``, ``x >= t`` exactly
    when ``x >=`` this."""
    t32 = t.astype(np.float32)
    low = t32.astype(np.float64) < t
    t32[low] = np.nextafter(t32[low], np.float32(np.inf))
    return t32


class NuqActivation(nn.Module):
    """ReLU followed by nuq's activation quantizer ``name``.

    Until it has a table, a forward in calibration mode fits one with nuq
    (``nuq.fit_activation``) on the values it sees, channel-last, as nuq's ``ActQuant`` does.
    Tables live in non-persistent buffers: they follow ``.to(device)`` and stay out of the
    ``state_dict`` (so the checkpoint keeps torchvision's names)."""

    def __init__(self, name: str, family: str, bits: int, per_channel: bool = False):
        super().__init__()
        self.name = name
        self.family = family
        self.bits = bits
        self.per_channel = per_channel
        self.calibrating = False
        self.table: Optional[dict] = None
        self.register_buffer("thresholds", torch.zeros(0), persistent=False)
        self.register_buffer("values", torch.zeros(0), persistent=False)
        self.register_buffer("clip", torch.zeros(()), persistent=False)

    def set_table(self, table: dict) -> None:
        """Uses the quantizer ``table`` (a dict as ``nuq.fit_activation`` returns)."""
        if int(table["bits"]) != self.bits:
            raise ValueError(f"{self.name}: a {table['bits']}-bit table for a {self.bits}-bit quantizer")
        dev = self.thresholds.device
        t = np.asarray(table["thresholds"], dtype=np.float64)
        levels = np.asarray(table["levels"], dtype=np.float64)
        values = (float(table["scale"]) * levels).astype(np.float32)
        self.table = {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in table.items()}
        self.thresholds = torch.from_numpy(_f32_at_least(t.reshape(-1, levels.size - 1))).to(dev)
        self.values = torch.from_numpy(values).to(dev)
        self.clip = torch.tensor(float(values[-1]), device=dev)

    def forward(self, x):
        x = F.relu(x)
        if self.table is None:
            if not self.calibrating:
                raise RuntimeError(f"activation quantizer {self.name} is not calibrated (nuq.torch.calibrate)")
            samples = x.detach().permute(0, 2, 3, 1).contiguous().float().cpu().numpy()
            self.set_table(_nuq.fit_activation(samples, self.family, self.bits, self.per_channel))
        if self.thresholds.device != x.device:
            self.to(x.device)
        t = self.thresholds
        if t.shape[0] == 1:
            code = torch.bucketize(x.contiguous(), t[0], right=True)
        else:
            code = torch.zeros_like(x, dtype=torch.long)
            for j in range(t.shape[1]):
                code += (x >= t[:, j].view(1, -1, 1, 1)).long()
        q = self.values[code]
        # Straight-through below the clip, zero above it (nuq's ActQuant backward).
        mask = (x <= self.clip) if x.requires_grad else None
        return _StraightThrough.apply(x, q, mask)

    def extra_repr(self):
        return f"{self.name!r}, {self.family}, bits={self.bits}"


class GridRound(nn.Module):
    """Rounds to multiples of ``scale``, half up (float64), as the integer global pool rounds;
    identity gradient. Without a scale it passes values through."""

    def __init__(self):
        super().__init__()
        self.scale: Optional[float] = None

    def forward(self, x):
        if self.scale is None:
            return x
        s = self.scale
        r = (s * torch.floor(x.double() / s + 0.5)).to(x.dtype)
        return _StraightThrough.apply(x, r)


class _PoolRound(nn.Module):
    def __init__(self, pool: nn.Module):
        super().__init__()
        self.pool = pool
        self.round = GridRound()

    def forward(self, x):
        return self.round(self.pool(x))


def _quantize_weight(module: nn.Module, w: torch.Tensor) -> torch.Tensor:
    """The weight the twin uses, with the straight-through gradient to the master ``w``."""
    q = module.nuq_weight
    factor = module.nuq_factor
    shape = (-1,) + (1,) * (w.dim() - 1)
    fshape = (1, -1) + (1,) * (w.dim() - 2)
    with torch.no_grad():
        w64 = w.detach().double()
        if factor is not None:
            w64 = w64 / factor.view(fshape)
        if q["center"]:
            w64 = w64 - w64.flatten(1).mean(1).view(shape)
        s = module.nuq_scales.view(shape)
        u = w64 / s
        levels = module.nuq_levels
        n = levels.numel()
        p = torch.searchsorted(levels, u.contiguous(), right=False)
        lo = levels[(p - 1).clamp(0, n - 1)]
        hi = levels[p.clamp(0, n - 1)]
        idx = torch.where(u - lo < hi - u, p - 1, p).clamp(0, n - 1)
        deq = s * levels[idx]
        if factor is not None:
            deq = deq * factor.view(fshape)
        deq = deq.to(w.dtype)
    base = w
    if q["center"]:
        base = w - w.flatten(1).mean(1).view(shape)
    return _StraightThrough.apply(base, deq)


def _qconv_forward(self, x):
    return self._conv_forward(x, _quantize_weight(self, self.weight), self.bias)


def _qlinear_forward(self, x):
    return F.linear(x, _quantize_weight(self, self.weight), self.bias)


def _set_weight_table(module: nn.Module, table: dict) -> None:
    """Uses the weight quantizer ``table`` (a dict as ``QuantizedNetwork.weight_quantizer``
    returns). The float64 tables are non-persistent buffers: they follow ``.to(device)`` and
    stay out of the ``state_dict``."""
    dev = module.weight.device
    factor = table.get("input_factor")
    levels = np.asarray(table["levels"], dtype=np.int32)
    scales = np.asarray(table["scales"], dtype=np.float64)
    if scales.shape != (module.weight.shape[0],):
        raise ValueError(f"weight table: {scales.size} scales for {module.weight.shape[0]} rows")
    f64 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), device=dev)  # noqa: E731
    module.register_buffer("nuq_levels", f64(levels), persistent=False)
    module.register_buffer("nuq_scales", f64(scales), persistent=False)
    module.register_buffer("nuq_factor", None if factor is None else f64(factor), persistent=False)
    module.nuq_weight = {"center": bool(table.get("center", False)), "bits": int(table["bits"])}
    module.nuq_table = {
        "bits": int(table["bits"]),
        "levels": levels,
        "scales": scales,
        "input_factor": None if factor is None else np.asarray(factor, dtype=np.float64),
        "center": bool(table.get("center", False)),
    }


def _quantized_block_forward(self, x):
    out = self.nuq_act1(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    identity = x if self.downsample is None else self.downsample(x)
    return self.nuq_act2(out + identity)


class _Identity(nn.Module):
    def forward(self, x):
        return x


# --------------------------------------------------------------------------------------------
# quantize / calibrate / export
# --------------------------------------------------------------------------------------------


def _unwrap(model: nn.Module) -> nn.Module:
    while hasattr(model, "module") and isinstance(getattr(model, "module"), nn.Module) and not hasattr(model, "_nuq"):
        model = model.module
    return model


def _infer_arch(model: nn.Module) -> str:
    if hasattr(model, "features") and hasattr(model, "classifier"):
        return "vgg-small"
    if hasattr(model, "layer4"):
        return "resnet18"
    if hasattr(model, "layer3"):
        return "resnet20"
    raise ValueError("cannot tell nuq's architecture of this model; pass arch=")


_BASE = {"resnet18": 64, "resnet20": 16, "vgg-small": 128}


def _float_state(model: nn.Module) -> Dict[str, np.ndarray]:
    """The model's float tensors (masters, BN statistics) under torchvision names."""
    out = {}
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            out[k] = v.detach().float().cpu().contiguous().numpy()
    return out


def save_checkpoint(model: nn.Module, path: str, arch: Optional[str] = None, width: Optional[float] = None,
                    input_size=(32, 32)) -> None:
    """Writes a float model (one of nuq's, see :func:`build`) as the safetensors checkpoint
    ``nuq quantize`` / ``nuq eval`` read, through nuq's own loader and writer (so the names
    and shapes are checked on the way)."""
    model = _unwrap(model)
    cfg = getattr(model, "_nuq", None)
    arch = (arch or (cfg or {}).get("arch") or _infer_arch(model)).lower().replace("_", "-")
    first = model.features[0] if arch == "vgg-small" else model.conv1
    width = width if width is not None else first.out_channels / _BASE[arch]
    classes = (model.classifier if arch == "vgg-small" else model.fc).out_features
    size = tuple(cfg["input_size"]) if cfg else tuple(input_size)
    net = _nuq.Network(arch, float(width), first.in_channels, classes, size)
    net.load_state_dict(_float_state(model))
    net.save(str(path))


def to_nuq_network(model: nn.Module) -> "_nuq.QuantizedNetwork":
    """nuq's float twin of a model :func:`quantize` prepared: a :class:`nuq.Network` loaded with
    the model's current masters and batch-norm statistics, prepared with the same
    configuration (nuq's ``QuantizedNetwork::prepare``). Its weight tables are fitted to the
    current masters; :func:`export` replaces them with the model's own."""
    model = _unwrap(model)
    cfg = model._nuq
    net = _nuq.Network(cfg["arch"], cfg["width"], cfg["in_channels"], cfg["classes"], tuple(cfg["input_size"]))
    net.load_state_dict(_float_state(model))
    return net.quantize(
        cfg["bits"],
        cfg["family"],
        list(cfg["mean"]),
        list(cfg["std"]),
        per_channel=cfg["per_channel"],
        edge_bits=cfg["edge_bits"],
        act_bits=cfg["act_bits"],
        act_family=cfg["act_family"],
        act_per_channel=cfg["act_per_channel"],
        weight_norm=cfg["weight_norm"],
    )


def _weight_modules(model: nn.Module) -> Dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if hasattr(m, "nuq_weight")}


def _act_modules(model: nn.Module) -> Dict[str, NuqActivation]:
    return {m.name: m for m in model.modules() if isinstance(m, NuqActivation)}


def _fit_weight_tables(model: nn.Module) -> None:
    qn = to_nuq_network(model)
    mods = _weight_modules(model)
    names = qn.weight_layers()
    if set(names) != set(mods):
        raise ValueError(f"weight layers differ: nuq {sorted(names)} vs torch {sorted(mods)}")
    for n in names:
        _set_weight_table(mods[n], qn.weight_quantizer(n))


def normalise(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 NHWC images as the float NCHW tensor nuq's twin sees: ``(byte − zp) / (255 · std)``
    with ``zp = round(255 · mean)`` per channel (the integer model's zero point)."""
    zp = np.round(np.asarray(mean, dtype=np.float32) * np.float32(255.0)).astype(np.float32)
    std = np.asarray(std, dtype=np.float32)
    x = (images.astype(np.float32) - zp) / (np.float32(255.0) * std)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def quantize(
    model: nn.Module,
    calib_images: torch.Tensor,
    bits: int = 4,
    family: str = "kquantile",
    mean: Sequence[float] = (0.5,),
    std: Sequence[float] = (0.5,),
    arch: Optional[str] = None,
    width: Optional[float] = None,
    per_channel: bool = True,
    edge_bits: int = 8,
    act_bits: Optional[int] = None,
    act_family: Optional[str] = None,
    act_per_channel: bool = False,
    weight_norm: bool = False,
) -> nn.Module:
    """Turns ``model`` (one of nuq's models with torchvision names, see :func:`build`) into
    nuq's fake-quantized float twin, in place, and returns it.

    Weight tables come from nuq's ``QuantizedNetwork::prepare`` on the model's weights (the
    first convolution quantized on raw bytes with ``mean``/``std``, the edge layers at
    ``edge_bits``); the activation quantizers, one after every ReLU, are calibrated by nuq in
    one forward pass over ``calib_images`` (normalised NCHW, e.g. :func:`normalise` of the
    first training images; the model is put in ``eval()`` mode for it and left there).
    ``mean`` should be given as nuq uses it (see :func:`normalise`)."""
    if hasattr(model, "_nuq"):
        raise ValueError("model is already quantized")
    arch = (arch or _infer_arch(model)).lower().replace("_", "-")
    if arch not in _BASE:
        raise ValueError(f"arch: nuq.torch folds resnet18, resnet20 and vgg-small, found {arch!r}")
    first = model.features[0] if arch == "vgg-small" else model.conv1
    if width is None:
        width = first.out_channels / _BASE[arch]
    classes = (model.classifier if arch == "vgg-small" else model.fc).out_features
    act_bits = bits if act_bits is None else act_bits
    act_family = family if act_family is None else act_family
    model._nuq = {
        "arch": arch,
        "width": float(width),
        "in_channels": first.in_channels,
        "classes": classes,
        "input_size": tuple(int(s) for s in calib_images.shape[-2:]),
        "bits": bits,
        "family": family,
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "per_channel": per_channel,
        "edge_bits": edge_bits,
        "act_bits": act_bits,
        "act_family": act_family,
        "act_per_channel": act_per_channel,
        "weight_norm": weight_norm,
    }
    # Weight layers: same modules and parameters, a quantizing forward.
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            m.forward = types.MethodType(_qconv_forward, m)
            m.nuq_weight = None
        elif isinstance(m, nn.Linear):
            m.forward = types.MethodType(_qlinear_forward, m)
            m.nuq_weight = None
    _fit_weight_tables(model)

    def act(name):
        return NuqActivation(name, act_family, act_bits, act_per_channel)

    # Activation quantizers after every ReLU, named as nuq names them.
    if arch == "vgg-small":
        feats = model.features
        for i, m in enumerate(list(feats)):
            if isinstance(m, nn.ReLU):
                feats[i] = act(f"features.{i - 1}.act")
    else:
        model.relu = act("bn1.act")
        for s in range(1, 5):
            stage = getattr(model, f"layer{s}", None)
            if stage is None:
                continue
            for b, block in enumerate(stage):
                name = f"layer{s}.{b}"
                block.nuq_act1 = act(f"{name}.bn1.act")
                block.nuq_act2 = act(f"{name}.act")
                block.relu = _Identity()
                block.forward = types.MethodType(_quantized_block_forward, block)
        model.avgpool = _PoolRound(model.avgpool)
    model.to(first.weight.device)  # the new modules' buffers join the weights' device
    calibrate(model, calib_images)
    return model


def _sync_round(model: nn.Module) -> None:
    last = None
    for m in model.modules():
        if isinstance(m, NuqActivation) and m.table is not None:
            last = float(m.table["scale"])
        elif isinstance(m, GridRound):
            m.scale = last


def calibrate(model: nn.Module, images: torch.Tensor) -> None:
    """Fits every activation quantizer that has no table, in one forward pass (evaluation
    mode) over normalised NCHW ``images``, each seeing the already-quantized values before it
    (nuq's ``QuantizedNetwork::calibrate``). Leaves the model in evaluation mode."""
    model = _unwrap(model)
    model.eval()
    acts = list(_act_modules(model).values())
    for a in acts:
        a.calibrating = True
    try:
        dev = next(model.parameters()).device
        with torch.no_grad():
            model(images.to(dev))
    finally:
        for a in acts:
            a.calibrating = False
    _sync_round(model)


def recalibrate(model: nn.Module, images: torch.Tensor) -> None:
    """Refits every weight codebook and scale to the current masters (nuq's prepare) and every
    activation quantizer on ``images`` (nuq's ``QuantizedNetwork::recalibrate``)."""
    model = _unwrap(model)
    _fit_weight_tables(model)
    for a in _act_modules(model).values():
        a.table = None
    calibrate(model, images)


def tables(model: nn.Module) -> dict:
    """Every quantizer table of a quantized model as plain data (numpy arrays, numbers):
    ``{"weights": {layer: table}, "activations": {name: table}}``; picklable, so
    :func:`broadcast_tables` can send it between processes."""
    model = _unwrap(model)
    return {
        "weights": {n: dict(m.nuq_table) for n, m in _weight_modules(model).items()},
        "activations": {n: dict(a.table) for n, a in _act_modules(model).items() if a.table is not None},
    }


def load_tables(model: nn.Module, t: dict) -> None:
    """Sets the quantizer tables :func:`tables` returned (e.g. from another process)."""
    model = _unwrap(model)
    mods = _weight_modules(model)
    for n, table in t["weights"].items():
        _set_weight_table(mods[n], table)
    acts = _act_modules(model)
    for n, table in t["activations"].items():
        acts[n].set_table(table)
    _sync_round(model)


def broadcast_tables(model: nn.Module, src: int = 0) -> None:
    """Makes every process of the default ``torch.distributed`` group use process ``src``'s
    tables (after calibrating there), so all replicas quantize identically."""
    import torch.distributed as dist

    obj = [tables(model) if dist.get_rank() == src else None]
    dist.broadcast_object_list(obj, src=src)
    if dist.get_rank() != src:
        load_tables(model, obj[0])


def export(model: nn.Module, path: Optional[str] = None, metadata: Optional[dict] = None) -> "_nuq.IntegerModel":
    """Hands the model's float masters, batch-norm statistics and quantizer tables to nuq, which
    re-quantizes the masters with those tables, folds batch-norm and the scales into integer
    MAC thresholds (``QuantizedNetwork::to_integer``) and, with ``path``, writes the ``.nuq``
    file. Returns nuq's integer model."""
    model = _unwrap(model)
    cfg = model._nuq
    qn = to_nuq_network(model)
    for n, m in _weight_modules(model).items():
        t = m.nuq_table
        qn.set_weight_quantizer(n, [int(v) for v in t["levels"]], [float(s) for s in t["scales"]])
    for n, a in _act_modules(model).items():
        if a.table is None:
            raise RuntimeError(f"activation quantizer {n} is not calibrated")
        qn.set_activation_quantizer(n, a.table)
    im = qn.to_integer()
    if path is not None:
        meta = {"producer": "nuq.torch", "arch": cfg["arch"], "width": str(cfg["width"])}
        meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
        im.save(str(path), cfg["family"], meta)
    return im
