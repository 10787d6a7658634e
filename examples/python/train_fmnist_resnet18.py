"""Trains a torchvision-style ResNet-18 (ImageNet stem: 7×7 stride-2 conv and 3×3 stride-2
max-pool) at width ×0.25 — or, with ``--model mobilenet``, a MobileNet-V1-style network of
depthwise-separable convolutions with ReLU6 — on Fashion-MNIST in PyTorch and exports it to
ONNX, for nuq to import:

    python examples/python/train_fmnist_resnet18.py --epochs 1 --out r18.onnx
    nuq eval r18.onnx --json            # float accuracy as nuq reads the ONNX file
    nuq quantize r18.onnx --bits 4 --qat-epochs 0.5 --out r18.nuq
    python examples/python/train_fmnist_resnet18.py --model mobilenet --width 0.5 --out mb.onnx

The script prints PyTorch's float test accuracy (and writes it to OUT.json) so it can be
compared with nuq's. Inputs are normalised as nuq normalises Fashion-MNIST:
(pixel / 255 − 0.2860) / 0.3530. Needs torch, onnx and numpy; reads the dataset from the
Debian package's directory (or --data).
"""

import argparse
import gzip
import json
import pathlib
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

warnings.filterwarnings("ignore")
MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(data_dir / f"{prefix}-images-idx3-ubyte.gz")
    y = read_idx(data_dir / f"{prefix}-labels-idx1-ubyte.gz")
    x = (torch.from_numpy(x.copy()).float().div_(255.0) - MEAN) / STD
    return x.unsqueeze(1), torch.from_numpy(y.copy()).long()


class BasicBlock(nn.Module):
    """torchvision's BasicBlock (same parameter names)."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision's resnet18 with a width multiplier and a configurable input."""

    def __init__(self, width=0.25, in_ch=1, classes=10):
        super().__init__()
        ch = [max(1, round(b * width)) for b in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_ch, ch[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(ch[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c = ch[0]
        for i, w in enumerate(ch):
            blocks = []
            for b in range(2):
                blocks.append(BasicBlock(c, w, 2 if i > 0 and b == 0 else 1))
                c = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class MobileNetV1(nn.Module):
    """MobileNet-V1 (Howard et al. 2017) for 28×28 inputs: a 3×3 convolution, then blocks of
    depthwise 3×3 and pointwise 1×1 convolutions, each followed by batch-norm and ReLU6,
    global average pooling and a linear classifier. ``width`` scales every channel count."""

    # (output channels at width 1, stride of the depthwise convolution)
    BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]

    def __init__(self, width=0.5, in_ch=1, classes=10):
        super().__init__()

        def ch(c):
            return max(8, round(c * width))

        c = ch(32)
        layers = [nn.Conv2d(in_ch, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU6(inplace=True)]
        for c_out, stride in self.BLOCKS:
            c_out = ch(c_out)
            layers += [
                nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU6(inplace=True),
                nn.Conv2d(c, c_out, 1, 1, 0, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU6(inplace=True),
            ]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def accuracy(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            correct += (model(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum().item()
    return correct / len(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=pathlib.Path, default=pathlib.Path("/usr/share/datasets/fashion-mnist"))
    p.add_argument("--model", choices=["resnet18", "mobilenet"], default="resnet18")
    p.add_argument("--epochs", type=float, default=1.0, help="may be fractional")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument(
        "--fold-bn",
        action="store_true",
        help="let the exporter fold BN into the convolutions (default: keep BatchNormalization nodes)",
    )
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("resnet18_fmnist.onnx"))
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "test")
    model = ResNet18(a.width) if a.model == "resnet18" else MobileNetV1(a.width)
    steps = int(a.epochs * len(xtr) / a.batch)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=max(1, steps))
    t0 = time.time()
    model.train()
    order = torch.randperm(len(xtr))
    for step in range(steps):
        k = (step * a.batch) % len(xtr)
        if k + a.batch > len(xtr):
            order = torch.randperm(len(xtr))
        idx = order[k : k + a.batch]
        loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            print(f"step {step}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
    acc = accuracy(model, xte, yte)
    print(f"PyTorch float test accuracy {acc:.4f} after {a.epochs} epochs ({time.time() - t0:.0f} s)")
    mode = torch.onnx.TrainingMode.EVAL if a.fold_bn else torch.onnx.TrainingMode.PRESERVE
    torch.onnx.export(
        model,
        (xte[:1],),
        str(a.out),
        dynamo=False,
        opset_version=a.opset,
        training=mode,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    info = {"model": a.model, "seed": a.seed, "float_accuracy": acc, "epochs": a.epochs, "width": a.width, "opset": a.opset, "fold_bn": a.fold_bn}
    a.out.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {a.out} ({a.out.stat().st_size} bytes) and {a.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
