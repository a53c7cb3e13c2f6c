"""Writes the ONNX import fixtures of tests/onnx: small PyTorch models
exported with the TorchScript exporter (opset 17, no constant folding, so
the shape plumbing PyTorch emits is in the files; training mode preserved,
so a model exported in training mode keeps its batch norm trainable), each beside a
safetensors file of a fixed input (`input`) and onnxruntime's output on it
(`output`). `--big` also writes torchvision's squeezenet1_1 (weights=None,
about 5 MB), which the Rust test uses only when it is present.

Run from the repository root: /work/venv/bin/python bench/peers/onnx_fixtures.py
"""
import argparse
import os

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "onnx")


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 32)
        self.fc2 = nn.Linear(32, 16)
        self.fc3 = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.tanh(self.fc1(x))
        x = torch.sigmoid(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        # view(size(0), -1) is what brings Shape, Gather, Unsqueeze, Concat
        # and Reshape into the export.
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class SmallCnn(nn.Module):
    """BN, a residual Add, a grouped and a dilated conv, Concat, pools with
    padding and ceil mode, LeakyReLU, ReLU6, Hardtanh, Dropout, MatMul + Add
    and Softmax."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.branch = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.BatchNorm2d(8)
        )
        self.side = nn.Conv2d(8, 4, 3, padding=2, dilation=2, stride=1)
        self.pool_avg = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.pool_max = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.conv3 = nn.Conv2d(12, 16, 3, stride=2, padding=1)
        self.pool_avg2 = nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=True)
        self.drop = nn.Dropout(0.3)
        self.w = nn.Parameter(torch.randn(16, 10) * 0.3)
        self.b = nn.Parameter(torch.randn(10) * 0.1)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(self.branch(x) + x)
        x = torch.cat([x, F.leaky_relu(self.side(x), 0.1)], dim=1)
        x = self.pool_max(self.pool_avg(x))
        x = F.relu6(self.conv3(x))
        x = F.hardtanh(self.pool_avg2(x), -0.5, 0.5)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        x = self.drop(x)
        return F.softmax(x @ self.w + self.b, dim=1)


class Breadth(nn.Module):
    """The ops beyond the first importer's: PReLU, ConvTranspose, HardSwish,
    LayerNorm, both GELUs and SiLU (as their formulas), Mul, GroupNorm (as
    PyTorch's InstanceNormalization decomposition), ELU, HardSigmoid,
    a per-channel gate, nearest and bilinear Resize, and Transpose."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.prelu = nn.PReLU(8)
        self.deconv = nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1)
        self.ln = nn.LayerNorm([6, 8, 8])
        self.gn = nn.GroupNorm(3, 6)
        self.elu = nn.ELU(0.7)
        self.se = nn.Linear(6, 6)
        self.fc = nn.Linear(6 * 4 * 4, 10)

    def forward(self, x):
        x = self.prelu(self.conv(x))
        x = F.hardswish(self.deconv(x))
        x = F.gelu(self.ln(x))
        x = F.gelu(x, approximate="tanh") * F.silu(x)
        x = self.elu(self.gn(x))
        g = F.hardsigmoid(self.se(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))
        x = x * g.view(x.size(0), 6, 1, 1)
        x = F.interpolate(F.avg_pool2d(x, 4), scale_factor=2, mode="nearest")
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.avg_pool2d(x, 2).permute(0, 2, 3, 1)
        return F.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)


class BnTrain(nn.Module):
    """Exported in training mode: batch norm with batch statistics, which
    must import as a trainable `batch_norm`."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.bn(self.conv(x))), 1))


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm; where the width or size changes, the
    shortcut is a strided 1x1 conv and batch norm (He et al.'s option B),
    as cli/models/resnet20.net has it."""

    def __init__(self, c_in, c, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.downsample = None
        if stride != 1 or c_in != c:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c, 1, stride=stride, bias=False), nn.BatchNorm2d(c)
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(y + shortcut)


class ResNet20(nn.Module):
    """ResNet-20 for 32x32 CIFAR-10 images (He et al. 2016, section 4.2):
    three stages of 3 basic blocks, 16, 32 and 64 channels."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, c_in = [], 16
        for c, stride in [(16, 1), (32, 2), (64, 2)]:
            stages.append(nn.Sequential(BasicBlock(c_in, c, stride), BasicBlock(c, c), BasicBlock(c, c)))
            c_in = c
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class LrnCnn(nn.Module):
    """AlexNet's shape in small: conv, ReLU, LocalResponseNorm, max pool,
    twice, then a classifier. PyTorch exports LocalResponseNorm as its
    decomposition (Mul, Reshape, Pad, AveragePool, an If, Reshape, Mul,
    Add, Pow, Div), not as an LRN node; the second has an even size."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.lrn1 = nn.LocalResponseNorm(5, alpha=0.1, beta=0.75, k=2.0)
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1)
        self.lrn2 = nn.LocalResponseNorm(4, alpha=0.05, beta=0.5, k=1.0)
        self.fc = nn.Linear(12 * 3 * 3, 10)

    def forward(self, x):
        x = F.max_pool2d(self.lrn1(F.relu(self.conv1(x))), 3, stride=2)
        x = F.max_pool2d(self.lrn2(F.relu(self.conv2(x))), 3, stride=2)
        return self.fc(torch.flatten(x, 1))


def randomise_bn(model, gen):
    """Makes batch norm's running statistics and affine terms non-trivial,
    so that the test sees them."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.2)


def write(name, model, shape, gen, train=False):
    model.train(train)
    randomise_bn(model, gen)
    x = torch.randn(*shape, generator=gen)
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(
        model, (x,), path, input_names=["input"], output_names=["output"],
        opset_version=17, do_constant_folding=False, dynamo=False,
        training=torch.onnx.TrainingMode.PRESERVE,
    )
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"input": x.numpy()})
    with torch.no_grad():
        # In training mode this updates the running statistics, after the export.
        diff = np.abs(model(x).numpy() - y).max()
    save_file({"input": x.numpy(), "output": y}, os.path.join(OUT, name + ".io.safetensors"))
    print(f"{name}: {os.path.getsize(path)} bytes, torch vs onnxruntime max diff {diff:.2e}")


def write_unsupported():
    """A graph whose second node, an Erf, the importer does not map."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu0"), helper.make_node("Erf", ["r"], ["y"], name="erf0")],
        "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, os.path.join(OUT, "unsupported.onnx"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", action="store_true", help="also write squeezenet1_1 (not committed)")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(26)
    torch.manual_seed(26)
    write("mlp", Mlp(), (2, 20), gen)
    write("lenet5", LeNet5(), (2, 1, 28, 28), gen)
    write("small_cnn", SmallCnn(), (2, 3, 15, 15), gen)
    write("breadth", Breadth(), (2, 3, 4, 4), gen)
    write("bn_train", BnTrain(), (4, 2, 6, 6), gen, train=True)
    write("resnet20_cifar", ResNet20(), (2, 3, 32, 32), gen)
    write("lrn_cnn", LrnCnn(), (2, 3, 15, 15), gen)
    write_unsupported()
    if args.big:
        import torchvision

        write("squeezenet1_1", torchvision.models.squeezenet1_1(weights=None), (1, 3, 224, 224), gen)


if __name__ == "__main__":
    main()
