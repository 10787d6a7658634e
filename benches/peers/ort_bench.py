"""ONNX Runtime int8 inference throughput (CPU execution provider, all graph optimizations,
intra-op threads as given, sequential execution).

For each model and batch: warm up, then 5 rounds of about one second of back-to-back calls;
prints the median round as
    ort model=NAME batch=B threads=T img_per_s=X ort_version=V

usage: python ort_bench.py DIR THREADS [BATCH...]   (default batches 1 64)
"""
import os
import sys
import time

import numpy as np
import onnxruntime as ort


def bench(path, batch, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {"input": np.random.default_rng(0).standard_normal((batch, 3, 32, 32)).astype(np.float32)}
    for _ in range(5):
        session.run(None, feed)
    t = time.perf_counter()
    session.run(None, feed)
    calls = max(1, int(1.0 / (time.perf_counter() - t)))
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls):
            session.run(None, feed)
        rates.append(calls * batch / (time.perf_counter() - t))
    return sorted(rates)[len(rates) // 2]


if __name__ == "__main__":
    d, threads = sys.argv[1], int(sys.argv[2])
    batches = [int(b) for b in sys.argv[3:]] or [1, 64]
    for name in ("resnet18", "vgg-small"):
        for batch in batches:
            rate = bench(os.path.join(d, f"{name}.int8.onnx"), batch, threads)
            print(
                f"ort model={name} batch={batch} threads={threads} img_per_s={rate:.1f} "
                f"ort_version={ort.__version__}",
                flush=True,
            )
