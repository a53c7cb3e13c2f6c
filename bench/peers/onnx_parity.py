"""ONNX import parity on torchvision models: each of ResNet-18,
MobileNetV2, SqueezeNet 1.1 and GoogLeNet (weights=None) is exported by
PyTorch (opset 17, TrainingMode.PRESERVE, no constant folding) and
imported by `netc import`. Per model it prints, with pass or fail:

- inference, eval mode: the logits of netc's f64 interpreter (`netc
  export --io`) and of netc's compiled code (`netc run`) against
  onnxruntime on PyTorch's file, within 1e-5 of the largest logit; and
  onnxruntime on netc's own re-export of the import (the round trip);
- one training step, train mode (batch norm on batch statistics,
  dropout at p = 0 so that masks cannot differ): the model exported in
  training mode, imported with `--loss cross-entropy`, and stepped once by
  `netc run --train-steps 1` (plain SGD) from PyTorch's own state_dict
  against PyTorch's step on the same batch and labels: the loss within
  1e-5; the parameters and running statistics after the step, relative to
  each tensor's largest, are printed. The step's change is ill-conditioned
  in float32 (batch norm's backward sums tens of thousands of terms to
  nearly nothing), so PyTorch's own float32 step is up to about 1e-2 from
  its float64 step: the change is measured against the float64 one, and
  netc's distance (the L2 norm of the difference over every parameter,
  relative to the change's) must be at most twice PyTorch's float32
  distance.

Run from the repository root, with a release build of netc:
    cargo build --release -p netc-cli
    /work/venv/bin/python bench/peers/onnx_parity.py [--netc target/release/netc] [models...]
"""
import argparse
import copy
import os
import subprocess
import tempfile
import warnings

import numpy as np
import onnxruntime as ort
import torch
import torchvision
from safetensors.numpy import load_file, save_file

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


def export(model, x, path):
    torch.onnx.export(
        model, (x,), path, input_names=["x"], output_names=["logits"],
        opset_version=17, do_constant_folding=False, dynamo=False,
        training=torch.onnx.TrainingMode.PRESERVE,
    )


def run(*args):
    subprocess.run([str(a) for a in args], check=True, stdout=subprocess.DEVNULL)


def inference(netc, name, model, tmp):
    """The interpreter's, the compiled code's and the re-export's logits
    against onnxruntime's, on an eval-mode export."""
    onnx_path = os.path.join(tmp, name + ".onnx")
    export(model.eval(), torch.randn(1, 3, 224, 224), onnx_path)
    net = os.path.join(tmp, name + ".net")
    run(netc, "import", onnx_path, "-o", net)
    weights = os.path.join(tmp, name + ".safetensors")
    again = os.path.join(tmp, name + ".netc.onnx")
    io_path = os.path.join(tmp, name + ".io.safetensors")
    run(netc, "export", net, "--weights", weights, "-o", again, "--batch", "1", "--io", io_path)
    io = load_file(io_path)
    (x_name,) = [k for k in io if k != "output"]
    x = io[x_name]
    want = ort_run(onnx_path, x)
    interpreted = io["output"]
    return {
        "interpreter": relative(interpreted, want),
        "round trip": relative(interpreted, ort_run(again, x)),
        "spread": float(interpreted.std()),
    }


def training_step(netc, name, model, tmp, batch=4, lr=0.01):
    """The compiled code's eval-mode logits against onnxruntime's, and one
    SGD step of netc against PyTorch's, on a training-mode export."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    # Tracing in training mode updates batch norm's running statistics:
    # every export and both steps start from this state.
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.eval()
    onnx_eval = os.path.join(tmp, name + ".eval.onnx")
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 1000, (batch,), generator=torch.Generator().manual_seed(2))
    export(model, x, onnx_eval)
    model.train()
    onnx_train = os.path.join(tmp, name + ".train.onnx")
    export(model, x, onnx_train)
    model.load_state_dict(start)
    net = os.path.join(tmp, name + "_train.net")
    run(netc, "import", onnx_train, "-o", net, "--loss", "cross-entropy")
    # PyTorch's own state_dict, which loads strictly: the import kept its
    # names.
    weights = os.path.join(tmp, name + ".start.safetensors")
    save_file({k: v.numpy() for k, v in start.items() if not k.endswith("num_batches_tracked")}, weights)
    inputs = os.path.join(tmp, name + ".inputs.safetensors")
    save_file({"input": x.numpy(), "labels": labels.numpy()}, inputs)
    out = os.path.join(tmp, name + ".out.safetensors")
    after = os.path.join(tmp, name + ".after.safetensors")
    run(netc, "run", net, "--weights", weights, "--inputs", inputs, "-o", out,
        "--train-steps", "1", "--optimizer", "sgd", "--lr", lr, "--save", after)
    got_out = load_file(out)
    compiled = relative(got_out["output"], ort_run(onnx_eval, x.numpy()))

    # PyTorch's step in float32, and in float64 as the truth both are
    # measured against.
    truth_model = copy.deepcopy(model).double()
    stepped = {}
    for m, xs in ((model, x), (truth_model, x.double())):
        opt = torch.optim.SGD(m.parameters(), lr=lr)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(m(xs), labels)
        loss.backward()
        opt.step()
        stepped[m is model] = (loss.item(), m.state_dict())
    (loss32, torch_after), (_, truth_after) = stepped[True], stepped[False]
    netc_after = load_file(after)
    worst_param, worst_name, squares = 0.0, "", {"netc": 0.0, "torch": 0.0, "truth": 0.0}
    for key, old in start.items():
        if key.endswith("num_batches_tracked"):
            continue
        got, want = netc_after[key].astype(np.float64), torch_after[key].double().numpy()
        d = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))
        if d > worst_param:
            worst_param, worst_name = d, key
        if "running_" in key:
            continue
        change = truth_after[key].numpy() - old.double().numpy()
        squares["netc"] += float(((got - old.double().numpy() - change) ** 2).sum())
        squares["torch"] += float(((want - old.double().numpy() - change) ** 2).sum())
        squares["truth"] += float((change ** 2).sum())
    return {
        "compiled": compiled,
        "loss": abs(float(got_out["loss"][0]) - loss32) / abs(loss32),
        "params": worst_param,
        "params tensor": worst_name,
        "update netc": (squares["netc"] / squares["truth"]) ** 0.5,
        "update torch": (squares["torch"] / squares["truth"]) ** 0.5,
    }


def parity(netc, name, tmp):
    torch.manual_seed(0)
    model = MODELS[name]()
    randomise_bn(model, torch.Generator().manual_seed(0))
    result = inference(netc, name, model, tmp)
    result.update(training_step(netc, name, model, tmp))
    return result


def main():
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("--netc", default=os.path.join(ROOT, "target", "release", "netc"))
    parser.add_argument("models", nargs="*")
    args = parser.parse_args()
    names = args.models or list(MODELS)
    passed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            r = parity(args.netc, name, tmp)
            inference_ok = max(r["interpreter"], r["compiled"], r["round trip"]) < 1e-5
            # PyTorch's own float32 step is as far from the float64 one:
            # netc's may be up to twice as far.
            step_ok = r["loss"] < 1e-5 and r["update netc"] <= 2 * r["update torch"] + 1e-6
            ok = inference_ok and step_ok
            passed += ok
            print(
                f"{name:15s} {'pass' if ok else 'FAIL'}  vs onnxruntime: interpreter "
                f"{r['interpreter']:.2e}, compiled {r['compiled']:.2e}, netc's re-export "
                f"{r['round trip']:.2e} (logits' spread {r['spread']:.2e});  one SGD step vs "
                f"PyTorch: loss {r['loss']:.2e}, parameters after it {r['params']:.2e} "
                f"({r['params tensor']}); the "
                f"step's change against float64's: netc {r['update netc']:.2e}, PyTorch "
                f"float32 {r['update torch']:.2e}",
                flush=True,
            )
    print(f"{passed} of {len(names)} pass")


if __name__ == "__main__":
    main()
