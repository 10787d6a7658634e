#!/usr/bin/env python3
"""Trains one of nuq's models in PyTorch (float) and writes the safetensors checkpoint that
``nuq quantize``, ``nuq eval`` and ``qat_ddp.py`` read (torchvision names, checked by nuq).

    python examples/python/train_float.py --model resnet18 --width 0.25 --epochs 2 \\
        --out resnet18.safetensors

SGD with Nesterov momentum 0.9, weight decay 5e-4, cosine decay of ``--lr``, batch 128,
random crops (padding 2) and no flips, as ``nuq train`` does on Fashion-MNIST. Prints one JSON
line ``{"float_acc", "img_per_s"}``.
"""

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

import nuq
import nuq.torch as nt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--data", default=nuq.FASHION_MNIST)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--mean", type=float, nargs="+", default=[0.2860])
    p.add_argument("--std", type=float, nargs="+", default=[0.3530])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    train, labels = nuq.load_dataset(args.data, "train", args.dataset)
    test, test_labels = nuq.load_dataset(args.data, "test", args.dataset)
    _, h, w, c = train.shape
    model = nt.build(args.model, args.width, c, 10, (h, w))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = max(1, int(args.epochs * len(train)) // args.batch)
    rng = np.random.default_rng(args.seed)
    order = np.empty(0, dtype=np.int64)
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        if len(order) < args.batch:
            order = np.concatenate([order, rng.permutation(len(train))])
        idx, order = order[: args.batch], order[args.batch :]
        x = nt.normalise(train[idx], args.mean, args.std)
        # Random crops with 2 pixels of zero (normalised) padding.
        x = F.pad(x, (2, 2, 2, 2))
        dy, dx = rng.integers(0, 5, 2)
        x = x[:, :, dy : dy + h, dx : dx + w]
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = F.cross_entropy(model(x), torch.from_numpy(labels[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    elapsed = time.perf_counter() - start
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test), 500):
            pred = model(nt.normalise(test[i : i + 500], args.mean, args.std)).argmax(1).numpy()
            correct += int((pred == test_labels[i : i + 500]).sum())
    nt.save_checkpoint(model, args.out, args.model, args.width, (h, w))
    print(json.dumps({"float_acc": round(correct / len(test), 4),
                      "img_per_s": round(steps * args.batch / elapsed, 1)}), flush=True)


if __name__ == "__main__":
    main()
