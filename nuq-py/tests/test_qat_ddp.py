"""examples/python/qat_ddp.py with 2 CPU processes (gloo) on a tiny model and dataset."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import require

torch = require("torch")
import nuq  # noqa: E402
import nuq.torch as nt  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "qat_ddp.py"


def test_qat_ddp_two_processes(tiny_dataset, tmp_path):
    torch.manual_seed(0)
    model = nt.resnet20(width=0.125, in_channels=1, num_classes=10)
    images, labels = nuq.load_dataset(tiny_dataset, "train")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for i in range(8):
        x = nt.normalise(images[i * 64 : (i + 1) * 64], [0.2860], [0.3530])
        loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(labels[i * 64 : (i + 1) * 64]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    ckpt = tmp_path / "float.safetensors"
    nt.save_checkpoint(model, str(ckpt), input_size=(28, 28))
    out = tmp_path / "m.nuq"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), "--checkpoint", str(ckpt), "--model", "resnet20",
         "--width", "0.125", "--bits", "4", "--family", "lloyd", "--epochs", "1",
         "--world-size", "2", "--out", str(out), "--data", tiny_dataset,
         "--calib-images", "128", "--batch", "64", "--test-images", "256"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(result) == {"torch_acc", "int_acc", "agreement", "img_per_s", "world_size"}
    assert result["world_size"] == 2 and result["img_per_s"] > 0
    assert result["agreement"] >= 0.97, result
    assert abs(result["int_acc"] - result["torch_acc"]) <= 0.03, result
    m = nuq.IntegerModel.load(str(out))
    test, _ = nuq.load_dataset(tiny_dataset, "test")
    assert m.predict(test).shape == (256,)
