"""netc's weights files and torchvision's state dicts, both ways, strictly:
a torchvision model with random weights is saved as safetensors
(`num_batches_tracked` included), netc loads it strictly and saves it
again, and torchvision loads netc's file with `strict=True` and gets every
tensor back bit for bit.

    python strict_load.py [MODEL ...]     (default: resnet18 vgg11)
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torchvision.models as tv
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]


def check(name):
    torch.manual_seed(0)
    model = getattr(tv, name)(weights=None)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.num_batches_tracked.fill_(3)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    with tempfile.TemporaryDirectory() as d:
        ours, back = Path(d) / "torch.safetensors", Path(d) / "netc.safetensors"
        save_file(state, ours)
        subprocess.run(
            ["cargo", "run", "--release", "-q", "-p", "netc-tests", "--example", "state_dict_roundtrip", "--", name, str(ours), str(back)],
            cwd=ROOT,
            check=True,
        )
        loaded = load_file(back)
        fresh = getattr(tv, name)(weights=None)
        fresh.load_state_dict(loaded, strict=True)
        for key, value in state.items():
            if "num_batches_tracked" in key:
                continue
            assert torch.equal(fresh.state_dict()[key], value), key
    print(f"{name}: {len(state)} tensors, torchvision -> netc -> torchvision, strict both ways, bit-identical")


if __name__ == "__main__":
    for name in sys.argv[1:] or ["resnet18", "vgg11"]:
        check(name)
