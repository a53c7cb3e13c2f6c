"""ONNX import parity on torchvision models: each of ResNet-18,
MobileNetV2, SqueezeNet 1.1 and GoogLeNet (weights=None, eval mode) is
exported by PyTorch (opset 17, TrainingMode.PRESERVE, no constant
folding), imported by `netc import`, and run by netc on a random input
(`netc export --io`, which runs the imported network and its imported
weights through netc's f64 interpreter). onnxruntime runs PyTorch's file on
the same input; the worst logit difference relative to the largest logit
is printed per model (with the logits' standard deviation, to show that
they are not all alike), with pass or fail at 1e-5. onnxruntime also runs
netc's own export of the imported network (the round trip), compared the
same way.

Run from the repository root, with a release build of netc:
    cargo build --release -p netc-cli
    /work/venv/bin/python bench/peers/onnx_parity.py [--netc target/release/netc] [models...]
"""
import argparse
import os
import subprocess
import tempfile

import numpy as np
import onnxruntime as ort
import torch
import torchvision
from safetensors.numpy import load_file

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
MODELS = {
    "resnet18": lambda: torchvision.models.resnet18(weights=None),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(weights=None),
    "squeezenet1_1": lambda: torchvision.models.squeezenet1_1(weights=None),
    "googlenet": lambda: torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True),
}


def randomise_bn(model, gen):
    """Batch norm's statistics and affine terms made non-trivial, as trained
    ones are: with torchvision's initial ones (mean 0, variance 1) the
    deeper models' logits shrink to their biases and hide differences."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.75)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def ort_run(path, x):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x})
    return y


def relative(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6))


def parity(netc, name, tmp):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    randomise_bn(model, torch.Generator().manual_seed(0))
    onnx_path = os.path.join(tmp, name + ".onnx")
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(
        model, (x,), onnx_path, input_names=["x"], output_names=["logits"],
        opset_version=17, do_constant_folding=False, dynamo=False,
        training=torch.onnx.TrainingMode.PRESERVE,
    )
    net = os.path.join(tmp, name + ".net")
    subprocess.run([netc, "import", onnx_path, "-o", net], check=True, stdout=subprocess.DEVNULL)
    weights = os.path.join(tmp, name + ".safetensors")
    again = os.path.join(tmp, name + ".netc.onnx")
    io_path = os.path.join(tmp, name + ".io.safetensors")
    subprocess.run(
        [netc, "export", net, "--weights", weights, "-o", again, "--batch", "1", "--io", io_path],
        check=True, stdout=subprocess.DEVNULL,
    )
    io = load_file(io_path)
    (x_name,) = [k for k in io if k != "output"]
    netc_logits = io["output"]
    spread = float(netc_logits.std())
    imported = relative(netc_logits, ort_run(onnx_path, io[x_name]))
    round_trip = relative(netc_logits, ort_run(again, io[x_name]))
    return imported, round_trip, spread


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--netc", default=os.path.join(ROOT, "target", "release", "netc"))
    parser.add_argument("models", nargs="*")
    args = parser.parse_args()
    names = args.models or list(MODELS)
    passed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            imported, round_trip, spread = parity(args.netc, name, tmp)
            ok = imported < 1e-5 and round_trip < 1e-5
            passed += ok
            print(
                f"{name:15s} {'pass' if ok else 'FAIL'}  import vs onnxruntime {imported:.2e}"
                f"  netc's re-export in onnxruntime {round_trip:.2e}  (logits' spread {spread:.2e})",
                flush=True,
            )
    print(f"{passed} of {len(names)} within 1e-5")


if __name__ == "__main__":
    main()
