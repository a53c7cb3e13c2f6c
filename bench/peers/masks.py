"""netc's dropout and stochastic-depth masks in PyTorch, so that a training
step with dropout can be compared with netc's exactly.

netc decides whether element `i` of a masked layer is kept with the
counter-based Philox4x32-10 generator: block `i // 4` of the stream
`step | layer << 48` under the key `seed`, word `i % 4`, kept when its top
24 bits are below `round((1 - p) * 2**24)`. Layers are numbered from 1 in
the order the network file lists them (the order of the calls); dropout numbers the elements of the
whole batch, stochastic depth its samples (row mode) or the batch (one
decision).
"""

import numpy as np
import torch
from torch import nn

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
LOW = 0xFFFFFFFF


def philox(counter, key):
    """Philox4x32-10 on arrays of 32-bit counter words (held in uint64)."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in counter)
    k0, k1 = key
    for r in range(10):
        p0, p1 = np.uint64(M0) * c0, np.uint64(M1) * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & np.uint64(LOW)
        hi1, lo1 = p1 >> np.uint64(32), p1 & np.uint64(LOW)
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        if r < 9:
            k0, k1 = (k0 + W0) & LOW, (k1 + W1) & LOW
    return c0, c1, c2, c3


def keeps(seed, step, layer, p, count):
    """netc's keep decisions 0..count of one masked layer, as booleans."""
    stream = (step & ((1 << 48) - 1)) | (layer << 48)
    blocks = np.arange((count + 3) // 4, dtype=np.uint64)
    words = philox(
        (blocks & np.uint64(LOW), blocks >> np.uint64(32), np.full_like(blocks, stream & LOW), np.full_like(blocks, stream >> 32)),
        (seed & LOW, seed >> 32),
    )
    words = np.stack(words, axis=1).reshape(-1)[:count]
    keep_below = round((1.0 - float(np.float32(p))) * (1 << 24))
    return torch.from_numpy((words >> np.uint64(8)) < np.uint64(keep_below))


class NetcMask(nn.Module):
    """Dropout (`per_sample=False`) or row-mode stochastic depth with
    netc's masks at `seed` and `step`; its layer number is its place among
    the masked layers called in this forward pass (`calls` is shared by
    them and reset before each pass), so a module applied twice takes two
    numbers and one never applied takes none, as in the network file."""

    def __init__(self, p, seed, step, per_sample, calls):
        super().__init__()
        self.p, self.seed, self.step, self.per_sample, self.calls = p, seed, step, per_sample, calls

    def forward(self, x):
        self.calls["layer"] += 1
        count = x.shape[0] if self.per_sample else x.numel()
        kept = keeps(self.seed, self.step, self.calls["layer"], self.p, count).to(x.dtype)
        kept = kept.reshape(-1, *([1] * (x.dim() - 1))) if self.per_sample else kept.reshape(x.shape)
        p32 = float(np.float32(self.p))
        scale = float(np.float32(1.0 / (1.0 - p32))) if x.dtype == torch.float32 else 1.0 / (1.0 - p32)
        return x * kept * scale


def use_netc_masks(model, seed, step):
    """Replaces every `nn.Dropout` and row-mode `StochasticDepth` of `model`
    by `NetcMask`."""
    from torchvision.ops import StochasticDepth

    calls = {"layer": 0}
    model.register_forward_pre_hook(lambda *_: calls.update(layer=0))
    for path, child in list(model.named_modules()):
        if isinstance(child, (nn.Dropout, StochasticDepth)):
            per_sample = isinstance(child, StochasticDepth)
            assert not per_sample or child.mode == "row", "the zoo uses row mode only"
            parent_path, _, name = path.rpartition(".")
            setattr(model.get_submodule(parent_path), name, NetcMask(child.p, seed, step, per_sample, calls))
