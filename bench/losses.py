#!/usr/bin/env python3
"""Cross-entropy at LLM shapes: time and peak memory, fastact against PyTorch eager F.cross_entropy.

    python bench/losses.py                                  # 8192 x 32000 and 8192 x 128000, float32 and bfloat16
    python bench/losses.py --rows 2048 --classes 32000 --dtypes float32 --runs 5

Each (library, shape, dtype) runs in a fresh child process: the logits and targets are made and touched,
then the forward ("mean"), and the forward + backward (fastact: cross_entropy then cross_entropy_backward
with out=logits, the in-place form a training step uses; PyTorch: the loss and autograd's backward, which
returns a new gradient), each timed `--runs` times (median). The peak resident set's growth over the first
call of each is the memory the call needed besides its inputs (getrusage ru_maxrss; the gradient PyTorch
returns is counted: it is what that form costs). Same threads for both (fastact's count).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
import fastact
lib, rows, classes, dtype, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
rng = np.random.default_rng(0)
if dtype == "bfloat16":
    import ml_dtypes
    dt = np.dtype(ml_dtypes.bfloat16)
else:
    dt = np.dtype(dtype)
x = np.empty((rows, classes), dt)
for r in range(0, rows, 256):  # by blocks: no temporary of the logits' size raises the peak before the calls
    x[r:r + 256] = rng.random((min(256, rows - r), classes), dtype=np.float32) * 8
t = rng.integers(0, classes, rows)
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
if lib == "torch":
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(fastact.get_num_threads())
    xt = torch.from_numpy(x.view(np.uint16)).view(torch.bfloat16) if dtype == "bfloat16" else torch.from_numpy(x)
    tt = torch.from_numpy(t)
    del x
    fwd = lambda: F.cross_entropy(xt, tt)
    def both():
        a = xt.detach().requires_grad_(True)
        F.cross_entropy(a, tt).backward()
        return a.grad
else:
    fwd = lambda: fastact.cross_entropy(x, t)
    def both():
        fastact.cross_entropy(x, t)
        return fastact.cross_entropy_backward(1.0, x, t, out=x)  # the logits become the gradient
res = {}
for name, f in (("fwd", fwd), ("fwd+bwd", both)):
    base = rss()
    times = []
    for i in range(runs):
        a = time.perf_counter()
        r = f()
        times.append(time.perf_counter() - a)
        if i == 0:
            res[name + " peak MiB"] = rss() - base
        del r
    res[name + " s"] = float(np.median(times))
print(json.dumps(res))
"""


def run(lib, rows, classes, dtype, runs):
    p = subprocess.run([sys.executable, "-c", CHILD, lib, str(rows), str(classes), dtype, str(runs)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{lib} {rows}x{classes} {dtype} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--classes", default="32000,128000")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    print("| shape | dtype | fwd fastact / PyTorch (ratio) | fwd+bwd fastact / PyTorch (ratio) | peak MiB fwd, fwd+bwd: fastact / PyTorch |")
    print("|---|---|---|---|---|")
    for k in (int(v) for v in a.classes.split(",")):
        for dt in a.dtypes.split(","):
            f = run("fastact", a.rows, k, dt, a.runs)
            t = run("torch", a.rows, k, dt, a.runs)
            print(f"| {a.rows} x {k} | {dt} | {f['fwd s'] * 1e3:.0f} / {t['fwd s'] * 1e3:.0f} ms "
                  f"({t['fwd s'] / f['fwd s']:.2f}x) | {f['fwd+bwd s'] * 1e3:.0f} / {t['fwd+bwd s'] * 1e3:.0f} ms "
                  f"({t['fwd+bwd s'] / f['fwd+bwd s']:.2f}x) | {f['fwd peak MiB']:.1f}, {f['fwd+bwd peak MiB']:.1f} / "
                  f"{t['fwd peak MiB']:.0f}, {t['fwd+bwd peak MiB']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
