"""Writes what netc's layer-norm and group-norm kernels must reproduce:
for each case, an input, affine parameters and an output gradient, and
PyTorch's output and gradients (`nn.functional.layer_norm` and
`group_norm`, forward and autograd backward) in float32 and in float64,
to a safetensors file that `norm_parity` (Rust) checks.

    python norm_parity.py OUT_DIR

Keys: `<case>.<tensor>` for the inputs (`x`, `weight`, `bias`, `dy`),
`<case>.<result>` for PyTorch's float32 results (`y`, `dx`, `dweight`,
`dbias`) and `<case>.exact.<result>` for the float64 ones, rounded.
"""

import sys

import torch
from safetensors.torch import save_file

# (case, kind, input shape, normalized_shape or groups, affine, eps); the
# same table is in tests/examples/norm_parity.rs.
CASES = [
    ("ln_whole", "layer", [3, 6, 5, 7], [6, 5, 7], True, 1e-5),
    ("ln_last", "layer", [3, 6, 5, 7], [7], True, 1e-5),
    ("ln_rows", "layer", [4, 33], [33], False, 1e-3),
    ("gn_image", "group", [3, 12, 5, 7], 4, True, 1e-5),
    ("gn_features", "group", [5, 12], 3, True, 1e-5),
    ("gn_instance", "group", [2, 8, 3, 3], 8, False, 1e-5),
]


def run(kind, x, arg, weight, bias, dy, eps, dtype):
    x = x.to(dtype).requires_grad_(True)
    params = []
    if weight is not None:
        weight = weight.to(dtype).requires_grad_(True)
        bias = bias.to(dtype).requires_grad_(True)
        params = [weight, bias]
    if kind == "layer":
        y = torch.nn.functional.layer_norm(x, arg, weight, bias, eps)
    else:
        y = torch.nn.functional.group_norm(x, arg, weight, bias, eps)
    grads = torch.autograd.grad(y, [x] + params, dy.to(dtype))
    out = {"y": y.detach(), "dx": grads[0]}
    if params:
        out["dweight"], out["dbias"] = grads[1], grads[2]
    return {k: v.to(torch.float32).contiguous() for k, v in out.items()}


def main():
    out_dir = sys.argv[1]
    torch.manual_seed(0)
    tensors = {}
    for case, kind, shape, arg, affine, eps in CASES:
        x = torch.randn(shape) * 2 + 0.5
        dy = torch.randn(shape)
        pshape = arg if kind == "layer" else [shape[1]]
        weight = torch.rand(pshape) + 0.5 if affine else None
        bias = torch.randn(pshape) if affine else None
        tensors[f"{case}.x"], tensors[f"{case}.dy"] = x, dy
        if affine:
            tensors[f"{case}.weight"], tensors[f"{case}.bias"] = weight, bias
        for k, v in run(kind, x, arg, weight, bias, dy, eps, torch.float32).items():
            tensors[f"{case}.{k}"] = v
        for k, v in run(kind, x, arg, weight, bias, dy, eps, torch.float64).items():
            tensors[f"{case}.exact.{k}"] = v
    save_file(tensors, f"{out_dir}/norm_parity.safetensors")


if __name__ == "__main__":
    main()
