"""Writes the `state_dict` layout of torchvision's models, one file per model,
for `tests/zoo.rs` to hold the zoo's `.net` files to: a line per tensor,
its name, then its shape (`-` for a scalar). Built with `weights=None`, so
nothing is downloaded.

    python state_dicts.py OUT_DIR
"""

import sys
from pathlib import Path

import torchvision.models as tv

MODELS = {
    "resnet18": lambda: tv.resnet18(weights=None),
    "resnet50": lambda: tv.resnet50(weights=None),
    "densenet121": lambda: tv.densenet121(weights=None),
    "mobilenet_v2": lambda: tv.mobilenet_v2(weights=None),
    "mobilenet_v3_small": lambda: tv.mobilenet_v3_small(weights=None),
    "squeezenet1_1": lambda: tv.squeezenet1_1(weights=None),
    "googlenet": lambda: tv.googlenet(weights=None, aux_logits=False, init_weights=False),
    "efficientnet_b0": lambda: tv.efficientnet_b0(weights=None),
    "vgg11": lambda: tv.vgg11(weights=None),
}


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, build in MODELS.items():
        model = build()
        params = sum(p.numel() for p in model.parameters())
        lines = [f"# torchvision {name}: {params} parameters"]
        for key, t in model.state_dict().items():
            shape = " ".join(str(d) for d in t.shape) or "-"
            lines.append(f"{key} {shape}")
        (out / f"{name}.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
