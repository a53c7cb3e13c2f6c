"""Times the vendor BLAS SGEMMs on large squares (1024³ and 2048³ by
default), for comparison with `gemm_bench` run in the same minutes:
PyTorch's `torch.mm` (MKL, or oneDNN, as the wheel ships) and NumPy's `@`
(OpenBLAS). Prints one JSON object per line, in `gemm_bench --json`'s
fields: {"impl", "m", "n", "k", "threads", "gflops"} (best of the runs: the
same statistic `gemm_bench` reports). Has no FMA peak of its own; divide by
the peak `gemm_bench` prints.

    python blas.py [SIZE ...]          # default 1024 2048, on 1 and 2 threads

Each thread count runs in a child process, since OpenBLAS reads its thread
count from the environment when it loads.
"""

import json
import os
import subprocess
import sys
import time


def best_gflops(fn, n, budget=2.0):
    fn()  # warm up
    best = float("inf")
    start = time.perf_counter()
    runs = 0
    while runs < 3 or time.perf_counter() - start < budget:
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        runs += 1
    return 2 * n**3 / best / 1e9


def child(threads, sizes):
    import numpy as np

    rows = []
    for n in sizes:
        a = np.random.rand(n, n).astype(np.float32)
        b = np.random.rand(n, n).astype(np.float32)
        rows.append(("numpy (OpenBLAS)", n, best_gflops(lambda: a @ b, n)))
    try:
        import torch

        torch.set_num_threads(threads)
        for n in sizes:
            a, b = torch.rand(n, n), torch.rand(n, n)
            rows.append((f"torch {torch.__version__} mm", n, best_gflops(lambda: torch.mm(a, b), n)))
    except ImportError:
        print("torch not installed: skipped", file=sys.stderr)
    for impl, n, gflops in rows:
        print(json.dumps({"impl": impl, "m": n, "n": n, "k": n, "threads": threads, "gflops": round(gflops, 1)}))


def main():
    args = sys.argv[1:]
    if args and args[0] == "--child":
        child(int(args[1]), [int(s) for s in args[2:]])
        return
    sizes = [int(s) for s in args] or [1024, 2048]
    for threads in (1, 2):
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        # These two make OpenBLAS pick a kernel for another core.
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
        cmd = [sys.executable, __file__, "--child", str(threads)] + [str(n) for n in sizes]
        subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
