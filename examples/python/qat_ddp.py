#!/usr/bin/env python3
"""Quantization-aware fine-tuning of a PyTorch-trained CNN with nuq's quantizers under
PyTorch's DistributedDataParallel, then nuq's fold into a ``.nuq`` integer model.

    python examples/python/qat_ddp.py --checkpoint resnet18.safetensors --model resnet18 \\
        --width 0.25 --bits 4 --family lloyd --epochs 0.5 --world-size 2 --out model.nuq

The recipe is ``nuq quantize``'s, so the two compare on the same checkpoint and budget: the
activation quantizers calibrated on the first ``--calib-images`` training images, then SGD
(Nesterov momentum 0.9, weight decay 5e-4, cosine decay of ``--lr`` to zero) over
``--epochs`` of the training set in global batches of ``--batch`` images (split between the
processes), weights re-quantized from float masters at every step. Processes use gloo on CPUs
and NCCL on GPUs (``--device cuda``: one GPU per process). The last line printed is one JSON
object: ``{"torch_acc", "int_acc", "agreement", "img_per_s", "world_size"}`` — the PyTorch
fake-quantized model's test accuracy, the integer model's (nuq, integers only), the fraction
of test images on which the two predict the same class, and training images per second.
"""

import argparse
import json
import math
import os
import socket
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import nuq
import nuq.torch as nt


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="float checkpoint (safetensors, torchvision names)")
    p.add_argument("--model", default="resnet18", help="resnet18, resnet20 or vgg-small")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--family", default="kquantile", help="kquantile, lloyd, apot or uniform")
    p.add_argument("--epochs", type=float, default=1.0, help="fine-tuning epochs (fractions allowed)")
    p.add_argument("--world-size", type=int, default=1)
    p.add_argument("--out", required=True, help="the .nuq file to write")
    p.add_argument("--data", default=nuq.FASHION_MNIST, help="dataset folder")
    p.add_argument("--dataset", default="mnist", help="mnist (IDX files) or cifar10")
    p.add_argument("--mean", type=float, nargs="+", default=[0.2860])
    p.add_argument("--std", type=float, nargs="+", default=[0.3530])
    p.add_argument("--batch", type=int, default=128, help="global batch (all processes)")
    p.add_argument("--lr", type=float, default=0.08)  # nuq_nn::pipeline::QAT_LR
    p.add_argument("--calib-images", type=int, default=2000)
    p.add_argument("--train-images", type=int, default=0, help="use only the first N (0: all)")
    p.add_argument("--test-images", type=int, default=0, help="use only the first N (0: all)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_checkpoint(args, classes, in_channels, size):
    """The checkpoint's tensors read by nuq (its rules: wrapper prefixes, dtypes, shapes)."""
    net = nuq.Network(args.model, args.width, in_channels, classes, size)
    net.load(args.checkpoint)
    return {k: torch.from_numpy(np.array(v)) for k, v in net.state_dict().items()}


def predict(model, images, mean, std, device, batch=500):
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = nt.normalise(images[i : i + batch], mean, std).to(device)
            out.append(model(x).argmax(1).cpu().numpy())
    return np.concatenate(out)


def worker(rank, args, port):
    world = args.world_size
    cuda = args.device == "cuda"
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    device = torch.device(f"cuda:{rank}" if cuda else "cpu")
    if not cuda:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    torch.manual_seed(args.seed)

    train, train_labels = nuq.load_dataset(args.data, "train", args.dataset)
    test, test_labels = nuq.load_dataset(args.data, "test", args.dataset)
    if args.train_images:
        train, train_labels = train[: args.train_images], train_labels[: args.train_images]
    if args.test_images:
        test, test_labels = test[: args.test_images], test_labels[: args.test_images]
    _, h, w, c = train.shape
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    classes = max(classes, 10)

    model = nt.build(args.model, args.width, c, classes, (h, w))
    model.load_state_dict(load_checkpoint(args, classes, c, (h, w)))
    model.to(device)
    calib = nt.normalise(train[: max(1, min(args.calib_images, len(train)))], args.mean, args.std)
    nt.quantize(model, calib, bits=args.bits, family=args.family, mean=args.mean, std=args.std)
    nt.broadcast_tables(model, src=0)

    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank] if cuda else None)
    per_rank = max(1, args.batch // world)
    global_batch = per_rank * world
    steps = max(1, int(round(args.epochs * len(train))) // global_batch)
    opt = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    rng = np.random.default_rng(args.seed)
    order = np.empty(0, dtype=np.int64)
    ddp.train()
    dist.barrier()
    start = time.perf_counter()
    for step in range(steps):
        if len(order) < global_batch:  # a new epoch, the same permutation on every rank
            order = np.concatenate([order, rng.permutation(len(train))])
        batch, order = order[:global_batch], order[global_batch:]
        mine = batch[rank * per_rank : (rank + 1) * per_rank]
        x = nt.normalise(train[mine], args.mean, args.std).to(device)
        y = torch.from_numpy(train_labels[mine]).to(device)
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = F.cross_entropy(ddp(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if cuda:
        torch.cuda.synchronize()
    dist.barrier()
    elapsed = time.perf_counter() - start
    if rank == 0:
        model.eval()
        torch_pred = predict(model, test, args.mean, args.std, device)
        integer = nt.export(model, args.out, {"recipe": f"qat_ddp {args.family} W{args.bits}/A{args.bits} epochs {args.epochs} world {world}"})
        int_pred = integer.predict(test)
        result = {
            "torch_acc": round(float((torch_pred == test_labels).mean()), 4),
            "int_acc": round(float((int_pred == test_labels).mean()), 4),
            "agreement": round(float((int_pred == torch_pred).mean()), 4),
            "img_per_s": round(steps * global_batch / elapsed, 1),
            "world_size": world,
        }
        print(json.dumps(result), flush=True)
    dist.barrier()
    dist.destroy_process_group()


def main(argv=None):
    args = parse_args(argv)
    if len(args.mean) != len(args.std):
        sys.exit("--mean and --std need one value per channel each")
    port = free_port()
    if args.world_size == 1:
        worker(0, args, port)
    else:
        mp.spawn(worker, args=(args, port), nprocs=args.world_size, join=True)


if __name__ == "__main__":
    main()
