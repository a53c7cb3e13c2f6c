"""Writes, for one zoo model, what netc must reproduce: PyTorch's initial
weights, a batch, and PyTorch's logits, loss, every gradient and the weights
after one SGD step, to a safetensors file that `parity` (Rust) checks.

    python parity.py MODEL OUT_DIR [BATCH]

Beside PyTorch's float32 results (keys `logits`, `loss`, `grad.*`,
`after.*`) the file holds two things that tell a rounding difference from
a bug:
- `exact.<key>`: the same step in float64, from the same weights and batch;
- `jump.<key>`: how far that float64 result moves when the batch is
  multiplied by (1 + 1e-6·N(0, 1)), the largest `max|a−b| / max|b|` over
  six draws. 1e-6 is the relative rounding error of a float32 layer
  output that sums a few hundred products. ReLU and max-pool make the
  gradient jump where an input crosses a kink or a tie, so any float32
  implementation may land that far from the exact answer.
"""

import sys

import torch
from safetensors.torch import save_file

from masks import use_netc_masks
from models import RECONSTRUCT, ZOO

PERTURBATION = 1e-6
DRAWS = 6


def build(cls, name):
    """The model with netc's dropout and stochastic-depth masks of the
    `parity` example's first step (seed 0, step 1)."""
    model = cls()
    use_netc_masks(model, seed=0, step=1)
    return model


def step(cls, name, init, x, labels, dtype):
    """One training step (forward, cross-entropy, backward, SGD with
    momentum) in `dtype`; returns every tensor the parity check compares."""
    model = build(cls, name)
    model.load_state_dict(init)
    model = model.to(dtype)
    model.train()  # batch norm on batch statistics, as netc's train step
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    logits = model(x.to(dtype))
    if name in RECONSTRUCT:
        loss = 0.5 * (logits - x.to(dtype)).pow(2).sum() / x.shape[0]
    else:
        loss = torch.nn.functional.cross_entropy(logits, labels)
    opt.zero_grad()
    loss.backward()
    out = {"logits": logits.detach().clone(), "loss": loss.detach().reshape(1)}
    out.update({f"grad.{k}": p.grad.detach().clone() for k, p in model.named_parameters()})
    opt.step()
    out.update({f"after.{k}": v.detach().clone() for k, v in model.state_dict().items() if "num_batches" not in k})
    return out


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()


def main():
    name, out = sys.argv[1], sys.argv[2]
    cls, shape, batch = ZOO[name]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else min(batch, 16)
    torch.manual_seed(0)
    model = build(cls, name)
    init = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file({k: v for k, v in init.items() if "num_batches" not in k}, f"{out}/{name}.init.safetensors")
    x = torch.rand(batch, *shape)
    labels = torch.randint(0, 10, (batch,))
    f32 = step(cls, name, init, x, labels, torch.float32)
    exact = step(cls, name, init, x, labels, torch.float64)
    jump = {k: 0.0 for k in exact}
    noise = torch.Generator().manual_seed(1)
    for _ in range(DRAWS):
        bumped = x.double() * (1 + PERTURBATION * torch.randn(x.shape, generator=noise, dtype=torch.float64))
        moved = step(cls, name, init, bumped, labels, torch.float64)
        jump = {k: max(jump[k], rel(moved[k], exact[k])) for k in exact}
    expected = {"x": x.contiguous(), "labels": labels.to(torch.float32)}
    expected.update({k: v.contiguous() for k, v in f32.items()})
    expected.update({f"exact.{k}": v.float().contiguous() for k, v in exact.items()})
    expected.update({f"jump.{k}": torch.tensor([v], dtype=torch.float32) for k, v in jump.items()})
    save_file(expected, f"{out}/{name}.expected.safetensors")
    own = max(rel(f32[k].double(), exact[k]) for k in exact)
    print(
        f"{name}: batch {batch}, loss {f32['loss'].item():.6f}; PyTorch float32 against float64: worst {own:.2e}; "
        f"float64 moved by a 1e-6 perturbation: worst {max(jump.values()):.2e}; wrote {out}/{name}.*.safetensors"
    )


if __name__ == "__main__":
    main()
