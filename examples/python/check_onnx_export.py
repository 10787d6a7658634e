#!/usr/bin/env python3
"""Exports a ``.nuq`` integer model as ONNX and QONNX and checks both against nuq on a test
set: ONNX Runtime runs the ONNX flavour, qonnx's executor the QONNX flavour.

    python examples/python/check_onnx_export.py demo.nuq \\
        --data /usr/share/datasets/fashion-mnist --out-dir export/

Writes ``model.onnx`` and ``model.qonnx.onnx`` into ``--out-dir`` (what ``nuq export
--onnx/--qonnx`` writes) and prints one JSON line: the integer model's test accuracy, each
runtime's top-1 agreement with it, whether every logit was identical, the export reports'
``exact`` flags and each runtime's images per second. Needs ``onnxruntime`` and ``qonnx``
(``pip install onnxruntime qonnx``) and the ``nuq`` wheel.
"""

import argparse
import json
import os
import platform
import time

import numpy as np

import nuq


def cpu_model():
    """The CPU's model name (Linux), else the machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="the .nuq model")
    p.add_argument("--data", required=True, help="dataset folder (as nuq's --data)")
    p.add_argument("--kind", default="mnist", help="mnist (IDX files) or cifar10")
    p.add_argument("--out-dir", default=".", help="where the two exports are written")
    p.add_argument("--limit", type=int, default=0, help="first N test images only (0: all)")
    p.add_argument("--qonnx-batch", type=int, default=1000, help="fixed batch of the QONNX graph")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import onnxruntime as ort
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    model = nuq.IntegerModel.load(args.model)
    images, labels = nuq.load_dataset(args.data, "test", args.kind)
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    n = len(images)
    want = model.forward(images)
    pred = want.argmax(1)

    os.makedirs(args.out_dir, exist_ok=True)
    onnx_path = os.path.join(args.out_dir, "model.onnx")
    qonnx_path = os.path.join(args.out_dir, "model.qonnx.onnx")
    onnx_report = model.export_onnx(onnx_path)
    b = min(args.qonnx_batch, n)
    qonnx_report = model.export_onnx(qonnx_path, flavour="qonnx", batch=b)

    nchw = images.transpose(0, 3, 1, 2)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    t = time.perf_counter()
    ort_logits = np.concatenate([sess.run(None, {"image": nchw[i : i + 500].copy()})[0] for i in range(0, n, 500)])
    ort_s = time.perf_counter() - t

    wrapper = ModelWrapper(qonnx_path)
    q_logits = []
    t = time.perf_counter()
    for i in range(0, n, b):
        x = nchw[i : i + b].astype(np.float32)
        pad = b - len(x)
        if pad:
            x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], np.float32)])
        out = execute_onnx(wrapper, {"image": x})["logits"]
        q_logits.append(out[: b - pad])
    q_s = time.perf_counter() - t
    q_logits = np.concatenate(q_logits)

    result = {
        "model": args.model,
        "images": n,
        "int_acc": float((pred == labels).mean()),
        "ort_agreement": float((ort_logits.argmax(1) == pred).mean()),
        "ort_logits_identical": bool(np.array_equal(ort_logits, want)),
        "ort_exact_report": onnx_report["exact"],
        "ort_img_per_s": n / ort_s,
        "qonnx_agreement": float((q_logits.argmax(1) == pred).mean()),
        "qonnx_logits_identical": bool(np.array_equal(q_logits, want.astype(np.float64))),
        "qonnx_exact_report": qonnx_report["exact"],
        "qonnx_img_per_s": n / q_s,
        "onnx_bytes": os.path.getsize(onnx_path),
        "qonnx_bytes": os.path.getsize(qonnx_path),
        "cpu": cpu_model(),
        "onnxruntime": ort.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
