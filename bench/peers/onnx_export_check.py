"""netc's ONNX exports in onnxruntime: each zoo model (cli/models/*.net)
and the export test network (tests/onnx/export/every_op.net) is exported
by `netc export` with the weights a generated model's `new(seed)` draws,
together with a random input and netc's output on it (its f64
interpreter, `--io`); onnxruntime runs the file on the same input, and the
worst difference, relative to the largest output, is printed per model.

For the small models (`--fixtures`, the default list below) onnxruntime's
output is saved as tests/onnx/export/<model>.ort.safetensors (`input`,
`output`), which cli/tests/export.rs compares with netc's output without
Python.

Run from the repository root, with a release build of netc:
    cargo build --release -p netc-cli
    /work/venv/bin/python bench/peers/onnx_export_check.py [--netc target/release/netc] [models...]
"""
import argparse
import glob
import os
import subprocess
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file, save_file

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
FIXTURES = os.path.join(ROOT, "tests", "onnx", "export")
SMALL = ["every_op", "lenet5", "mlp", "linear", "resnet20", "autoencoder"]
BATCH = 2


def model_paths():
    paths = {os.path.splitext(os.path.basename(p))[0]: p for p in glob.glob(os.path.join(ROOT, "cli", "models", "*.net"))}
    paths["every_op"] = os.path.join(FIXTURES, "every_op.net")
    return dict(sorted(paths.items()))


def check(netc, name, path, tmp, write_fixture):
    onnx_path = os.path.join(tmp, name + ".onnx")
    io_path = os.path.join(tmp, name + ".io.safetensors")
    subprocess.run(
        [netc, "export", path, "-o", onnx_path, "--batch", str(BATCH), "--seed", "0", "--io", io_path],
        check=True, stdout=subprocess.DEVNULL,
    )
    onnx.checker.check_model(onnx.load(onnx_path), full_check=True)
    io = load_file(io_path)
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    feeds = {i.name: io[i.name] for i in sess.get_inputs()}
    (y,) = sess.run(None, feeds)
    want = io["output"]
    worst = float(np.abs(y - want).max() / max(np.abs(want).max(), 1e-6))
    if write_fixture:
        (x_name,) = feeds
        save_file({"input": feeds[x_name], "output": y}, os.path.join(FIXTURES, name + ".ort.safetensors"))
    return worst, os.path.getsize(onnx_path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--netc", default=os.path.join(ROOT, "target", "release", "netc"))
    parser.add_argument("--no-fixtures", action="store_true", help="do not rewrite the committed fixtures")
    parser.add_argument("models", nargs="*")
    args = parser.parse_args()
    paths = model_paths()
    names = args.models or list(paths)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            worst, size = check(args.netc, name, paths[name], tmp, name in SMALL and not args.no_fixtures)
            verdict = "pass" if worst < 1e-5 else "FAIL"
            failed += verdict == "FAIL"
            print(f"{name:20s} {verdict}  worst relative difference {worst:.2e}  ({size / 1e6:.1f} MB)", flush=True)
    print(f"{len(names) - failed} of {len(names)} within 1e-5")


if __name__ == "__main__":
    main()
