"""The project's CIFAR models as ONNX graphs, for the ONNX Runtime peer.

Builds the same networks `infer-report` runs (nuq_nn::Arch::ResNet18 and VggSmall at full
width, 32x32x3 input, 10 classes), with batch norm already folded into each convolution's
bias, as plain onnx.helper graphs (no exporter involved):

* ResNet-18 (CIFAR): 3x3 stem 3->64, four stages of two basic blocks (64, 128, 256, 512;
  stride 2 and a 1x1 stride-2 projection at the start of stages 2-4), global average pool,
  fully connected 512->10.
* VGG-Small: 2 x (3x3 conv) per stage at 128, 256, 512 channels, 2x2 max-pool after each
  stage, fully connected 8192->10.

Weights are seeded He-normal draws: speed does not depend on their values.

usage: python models.py OUTDIR   -> OUTDIR/{resnet18,vgg-small}.fp32.onnx, prints MACs/image
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Graph:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.weights, self.count, self.macs = [], [], 0, 0

    def fresh(self, prefix):
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, array, prefix):
        name = self.fresh(prefix)
        self.weights.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv(self, x, c_in, c_out, kernel, stride, out_hw, relu):
        fan_in = c_in * kernel * kernel
        w = self.rng.standard_normal((c_out, c_in, kernel, kernel)) * np.sqrt(2.0 / fan_in)
        b = self.rng.standard_normal(c_out) * 0.05  # folded batch-norm shift
        y = self.fresh("conv")
        pad = kernel // 2
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self.const(w, "w"), self.const(b, "b")],
                [y],
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pad] * 4,
            )
        )
        self.macs += out_hw * out_hw * c_out * fan_in
        return self.relu(y) if relu else y

    def relu(self, x):
        y = self.fresh("relu")
        self.nodes.append(helper.make_node("Relu", [x], [y]))
        return y

    def op(self, kind, inputs, **attrs):
        y = self.fresh(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [y], **attrs))
        return y

    def linear(self, x, c_in, c_out):
        w = self.rng.standard_normal((c_out, c_in)) / np.sqrt(c_in)
        self.nodes.append(
            helper.make_node(
                "Gemm",
                [x, self.const(w, "fc_w"), self.const(np.zeros(c_out), "fc_b")],
                ["logits"],
                transB=1,
            )
        )
        self.macs += c_in * c_out

    def model(self, name):
        graph = helper.make_graph(
            self.nodes,
            name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
            self.weights,
        )
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def resnet18():
    g = Graph(18)
    x = g.conv("input", 3, 64, 3, 1, 32, relu=True)
    c, hw = 64, 32
    for stage, width in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            out_hw = hw // stride
            y = g.conv(x, c, width, 3, stride, out_hw, relu=True)
            y = g.conv(y, width, width, 3, 1, out_hw, relu=False)
            shortcut = x if stride == 1 and c == width else g.conv(x, c, width, 1, stride, out_hw, relu=False)
            x = g.relu(g.op("Add", [y, shortcut]))
            c, hw = width, out_hw
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    g.linear(x, c, 10)
    return g.model("resnet18"), g.macs


def vgg_small():
    g = Graph(7)
    x, c, hw = "input", 3, 32
    for width in (128, 256, 512):
        for _ in range(2):
            x = g.conv(x, c, width, 3, 1, hw, relu=True)
            c = width
        x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        hw //= 2
    g.linear(g.op("Flatten", [x], axis=1), c * hw * hw, 10)
    return g.model("vgg-small"), g.macs


if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, build in (("resnet18", resnet18), ("vgg-small", vgg_small)):
        model, macs = build()
        onnx.save(model, os.path.join(out, f"{name}.fp32.onnx"))
        print(f"{name}: {macs / 1e6:.1f} MMAC/image")
