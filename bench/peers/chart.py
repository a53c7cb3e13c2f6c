"""Draws the bar chart of BENCHMARKS.md from the runner's results: for each
model, mode and batch, netc's median time over the best peer's, on a log
scale (so 0.5x and 2x are the same distance from parity).

    python bench/peers/chart.py [target/peers/results.json] [out.png]

Needs matplotlib (pip install matplotlib); the runner calls it when present.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main():
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target/peers/results.json"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else src.with_name("chart.png")
    times = json.loads(src.read_text())["times"]
    rows = {}
    for r in times:
        rows.setdefault((r["model"], r["mode"], r["batch"]), {})[r["system"]] = r["ms"]
    labels, ratios, peers = [], [], []
    for (model, mode, batch), t in rows.items():
        others = {s: v for s, v in t.items() if s != "netc"}
        if "netc" not in t or not others:
            continue
        best = min(others, key=others.get)
        labels.append(f"{model} {mode.replace('_', ' ')} @{batch}")
        ratios.append(t["netc"] / others[best])
        peers.append(best)
    if not ratios:
        sys.exit("no peer timings in " + str(src))
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(ratios) + 1.4))
    colors = ["#2e7d32" if r <= 1 else "#c62828" for r in ratios]
    y = range(len(ratios))[::-1]
    # Bars grow from parity, left when netc is faster, right when slower.
    ax.barh(list(y), [r - 1 for r in ratios], color=colors, left=1)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels)
    for yi, r, p in zip(y, ratios, peers):
        ax.text(r * (1.04 if r >= 1 else 0.96), yi, f"{r:.2f}", va="center", ha="left" if r >= 1 else "right", fontsize=8)
    ax.set_xlim(min(ratios + [0.5]) / 1.6, max(ratios + [2.0]) * 1.6)
    ax.set_xticks([0.25, 0.5, 1, 2, 4])
    ax.set_xticklabels(["0.25x", "0.5x", "1x", "2x", "4x"])
    ax.set_xlabel("netc time / best peer's time (left of 1x: netc faster)")
    systems = sorted({r["system"] for r in times} - {"netc"})
    ax.set_title("netc against the best of " + ", ".join(systems) + ", same run")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
