"""Times the zoo in PyTorch on the CPU: a training step (forward,
cross-entropy, backward, SGD with momentum) at the standard batch, and
inference at batch 1 and at the standard batch. Prints one JSON object per
line: {"system", "model", "mode", "batch", "ms"} (median of the runs).

    python torch_bench.py [MODEL ...] [--threads N] [--compile]

Eager by default ("pytorch"); with --compile, the model goes through
`torch.compile` (Inductor, which builds C++ with the machine's compiler) and
the rows say "torch.compile". Compilation happens in the warm-up runs, which
are not timed; a model that fails to compile is reported on stderr and
skipped.
"""

import json
import statistics
import sys
import time

import torch

from models import RECONSTRUCT, ZOO


def median_ms(fn, budget=2.0, min_runs=5):
    fn()  # warm up
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < budget:
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
        if len(times) > 1000:
            break
    return statistics.median(times)


def main():
    args = sys.argv[1:]
    threads = 2
    if "--threads" in args:
        i = args.index("--threads")
        threads = int(args[i + 1])
        del args[i : i + 2]
    compiled = "--compile" in args
    args = [a for a in args if a != "--compile"]
    system = "torch.compile" if compiled else "pytorch"
    torch.set_num_threads(threads)
    for name in args or [m for m in ZOO if m not in RECONSTRUCT]:
        try:
            rows = time_model(name, compiled)
        except Exception as e:  # noqa: BLE001 - any compile failure skips the model
            print(f"{system} {name}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        for mode, n, ms in rows:
            print(json.dumps({"system": system, "model": name, "mode": mode, "batch": n, "ms": round(ms, 4)}), flush=True)


def time_model(name, compiled):
    """[(mode, batch, median ms)] of one model."""
    cls, shape, batch = ZOO[name]
    torch.manual_seed(0)
    model = cls()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, *shape)
    labels = torch.randint(0, 10, (batch,))
    run = torch.compile(model) if compiled else model

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(run(x), labels).backward()
        opt.step()

    model.train()
    rows = [("train_step", batch, median_ms(step))]
    model.eval()
    with torch.no_grad():
        for n in (1, batch):
            xn = x[:n].contiguous()
            rows.append(("forward", n, median_ms(lambda: run(xn))))
    return rows


if __name__ == "__main__":
    main()
