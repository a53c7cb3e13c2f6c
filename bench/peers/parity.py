"""Writes, for one zoo model, what netc must reproduce: PyTorch's initial
weights, a batch, and PyTorch's logits, loss, every gradient and the weights
after one SGD step, to a safetensors file that `parity` (Rust) checks.

    python parity.py MODEL OUT_DIR [BATCH]
"""

import sys

import torch
from safetensors.torch import save_file

from models import ZOO


def main():
    name, out = sys.argv[1], sys.argv[2]
    cls, shape, batch = ZOO[name]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else min(batch, 16)
    torch.manual_seed(0)
    model = cls() if name != "alexnet" else cls(p=0.0)
    model.train()  # batch norm on batch statistics, as netc's train step
    weights = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if "num_batches" not in k}
    save_file(weights, f"{out}/{name}.init.safetensors")
    x = torch.rand(batch, *shape)
    labels = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    opt.zero_grad()
    loss.backward()
    grads = {f"grad.{k}": p.grad.detach().clone() for k, p in model.named_parameters()}
    opt.step()
    after = {f"after.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items() if "num_batches" not in k}
    expected = {
        "x": x.contiguous(),
        "labels": labels.to(torch.float32),
        "logits": logits.detach().contiguous(),
        "loss": loss.detach().reshape(1),
        **grads,
        **after,
    }
    save_file(expected, f"{out}/{name}.expected.safetensors")
    print(f"{name}: batch {batch}, loss {loss.item():.6f}, wrote {out}/{name}.*.safetensors")


if __name__ == "__main__":
    main()
