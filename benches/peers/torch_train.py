"""PyTorch CPU training-step throughput, the peer of `train-report`: the same CIFAR
ResNet-18 and VGG-Small (with batch norm, as trained), one step = forward, cross-entropy,
backward and SGD (momentum 0.9, weight decay 5e-4) on a fixed random batch, channels_last
memory format (PyTorch's faster CPU layout for convolutions).

After two warm-up steps, 5 rounds of about two seconds of steps; prints the median round as
    torch model=NAME batch=B threads=T img_per_s=X torch_version=V

usage: python torch_train.py THREADS [BATCH]   (default batch 128)
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(c_in, c_out, kernel, stride):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out)
    )


class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.a = conv_bn(c_in, c_out, 3, stride)
        self.b = conv_bn(c_out, c_out, 3, 1)
        self.shortcut = conv_bn(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()

    def forward(self, x):
        return F.relu(self.b(F.relu(self.a(x))) + self.shortcut(x))


def resnet18():
    layers, c = [conv_bn(3, 64, 3, 1), nn.ReLU()], 64
    for stage, width in enumerate((64, 128, 256, 512)):
        for block in range(2):
            layers.append(Block(c, width, 2 if stage > 0 and block == 0 else 1))
            c = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
    return nn.Sequential(*layers)


def vgg_small():
    layers, c = [], 3
    for width in (128, 256, 512):
        for _ in range(2):
            layers += [conv_bn(c, width, 3, 1), nn.ReLU()]
            c = width
        layers.append(nn.MaxPool2d(2))
    layers += [nn.Flatten(), nn.Linear(c * 4 * 4, 10)]
    return nn.Sequential(*layers)


def bench(model, batch):
    torch.manual_seed(0)
    model = model.to(memory_format=torch.channels_last).train()
    x = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(2):
        step()
    t = time.perf_counter()
    step()
    steps = max(1, int(2.0 / (time.perf_counter() - t)))
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * batch / (time.perf_counter() - t))
    return sorted(rates)[len(rates) // 2]


if __name__ == "__main__":
    threads = int(sys.argv[1])
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    torch.set_num_threads(threads)
    for name, build in (("resnet18", resnet18), ("vgg-small", vgg_small)):
        rate = bench(build(), batch)
        print(
            f"torch model={name} batch={batch} threads={threads} img_per_s={rate:.1f} "
            f"torch_version={torch.__version__}",
            flush=True,
        )
