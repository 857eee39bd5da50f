#!/usr/bin/env python3
"""The element-wise losses at 16M elements: fastact against PyTorch eager and NumPy, as ratios in one run.

    python bench/pointwise_losses.py                       # 16M float32, every loss, 5 runs (medians)
    python bench/pointwise_losses.py --n 1000000 --dtypes float32,bfloat16 --runs 7

For each loss (the registry's element-wise losses): the forward with reduction "mean" and the forward +
backward (fastact: the loss, then its _backward into a preallocated gradient; PyTorch: the loss and
autograd's backward; NumPy: the textbook formulas, stable where they need to be). Same thread count for
fastact and PyTorch (fastact's). Prints ms (median of --runs after a warm-up) and alternative / fastact.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fastact


def numpy_loss(name, x, t, grad):
    """The NumPy way, in float32 temporaries (what a NumPy training loop writes)."""
    d = x - t
    if name == "mse_loss":
        return (2.0 / d.size) * d if grad else np.mean(d * d)
    if name == "huber_loss":
        a = np.abs(d)
        return np.clip(d, -1, 1) / d.size if grad else np.mean(np.where(a <= 1, 0.5 * d * d, a - 0.5))
    if name == "smooth_l1_loss":
        a = np.abs(d)
        return np.where(a < 1, d, np.sign(d)) / d.size if grad else np.mean(np.where(a < 1, 0.5 * d * d, a - 0.5))
    # BCE with logits: max(x, 0) - x t + log1p(exp(-|x|))
    if grad:
        return (1 / (1 + np.exp(-x)) - t) / x.size
    return np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))))


def median_ms(f, runs):
    f()
    times = []
    for _ in range(runs):
        a = time.perf_counter()
        f()
        times.append((time.perf_counter() - a) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1 << 24)
    ap.add_argument("--dtypes", default="float32")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(fastact.get_num_threads())
    except ImportError:
        torch = None
    names = [o["name"] for o in fastact.ops() if o["kind"] == "loss"]
    rng = np.random.default_rng(0)
    print(f"n = {a.n}, threads = {fastact.get_num_threads()}, ISA = {fastact.get_isa()}, medians of {a.runs} (ms)")
    print("| loss | dtype | direction | fastact | PyTorch | NumPy | PyTorch / fastact | NumPy / fastact |")
    print("|---|---|---|---|---|---|---|---|")
    for dtype in a.dtypes.split(","):
        if dtype == "bfloat16":
            import ml_dtypes
            dt = np.dtype(ml_dtypes.bfloat16)
        else:
            dt = np.dtype(dtype)
        x = (rng.standard_normal(a.n, dtype=np.float32) * 3).astype(dt)
        for name in names:
            bce = name == "binary_cross_entropy_with_logits"
            t = (rng.random(a.n, dtype=np.float32) if bce else rng.standard_normal(a.n, dtype=np.float32) * 3).astype(dt)
            f, b = getattr(fastact, name), getattr(fastact, name + "_backward")
            g = np.empty_like(x)
            ours = {"fwd": lambda: f(x, t), "fwd+bwd": lambda: (f(x, t), b(1.0, x, t, out=g))}
            theirs = {}
            if torch is not None:
                xt = torch.from_numpy(x.view(np.uint16)).view(torch.bfloat16) if dtype == "bfloat16" else torch.from_numpy(x)
                tt = torch.from_numpy(t.view(np.uint16)).view(torch.bfloat16) if dtype == "bfloat16" else torch.from_numpy(t)
                tf = getattr(F, name)

                def both(tf=tf, xt=xt, tt=tt):
                    v = xt.detach().requires_grad_(True)
                    tf(v, tt).backward()
                    return v.grad
                theirs["torch"] = {"fwd": lambda tf=tf, xt=xt, tt=tt: tf(xt, tt), "fwd+bwd": both}
            if dtype != "bfloat16":
                theirs["numpy"] = {"fwd": lambda n=name: numpy_loss(n, x, t, False),
                                   "fwd+bwd": lambda n=name: (numpy_loss(n, x, t, False), numpy_loss(n, x, t, True))}
            for direction in ("fwd", "fwd+bwd"):
                m = median_ms(ours[direction], a.runs)
                cols = [median_ms(theirs[k][direction], a.runs) if k in theirs else None for k in ("torch", "numpy")]
                fmt = lambda v: "—" if v is None else f"{v:.1f}"
                ratio = lambda v: "—" if v is None else f"{v / m:.2f}x"
                print(f"| {name} | {dtype} | {direction} | {m:.1f} | {fmt(cols[0])} | {fmt(cols[1])} | "
                      f"{ratio(cols[0])} | {ratio(cols[1])} |", flush=True)


if __name__ == "__main__":
    main()
