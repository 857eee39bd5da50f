#!/usr/bin/env python3
"""Peak memory of the fused ops against the same computation written with PyTorch's separate calls.

    python bench/memory.py                 # 16M float32 elements per array (64 MiB)
    python bench/memory.py --n 4194304 --dtype bfloat16

Each case runs in a fresh child process: the inputs and the outputs are allocated and touched first, then
the call runs once (fastact with out=; PyTorch as users write it, the size of the results it returns then
subtracted), and the growth of the process's peak resident set (getrusage ru_maxrss) is what the call needed
besides its inputs and outputs: its temporaries. A fused op should need none of the input's size (SPEC 5: "no temporary of the input's size
beyond what the caller asked for").
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASES = {  # (fastact with out=, PyTorch as users write it: its results are subtracted from its growth)
    "swiglu fwd": ("fastact.swiglu(g, u, out=o)", "F.silu(tg) * tu"),
    "swiglu bwd": ("fastact.swiglu_backward(d, g, u, out=(o, o2))", "(A.silu_backward(td * tu, tg), td * F.silu(tg))"),
    "bias_act gelu fwd": ("fastact.bias_act(x, b, 'gelu', out=o)", "F.gelu(tx + tb)"),
    "bias_act gelu bwd": ("fastact.bias_act_backward(d, x, b, 'gelu', out=(o, ob))",
                          "(lambda gx: (gx, gx.sum(0)))(A.gelu_backward(td, tx + tb))"),
    "bias_act relu fwd": ("fastact.bias_act(x, b, 'relu', out=o)", "torch.relu(tx + tb)"),
    "prelu fwd": ("fastact.prelu(p, w, out=o)", "F.prelu(tp, tw)"),
    "prelu bwd": ("fastact.prelu_backward(d, p, w, out=(o, ow))",
                  "torch.autograd.grad(F.prelu(tp.requires_grad_(), tw.requires_grad_()), (tp, tw), td)"),
}

CHILD = r"""
import json, resource, sys
import numpy as np
import fastact
n, dtype, expr, lib, case = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
if dtype == "bfloat16":
    import ml_dtypes
    dt = np.dtype(ml_dtypes.bfloat16)
else:
    dt = np.dtype(dtype)
rng = np.random.default_rng(0)
mk = lambda *s: rng.standard_normal(s).astype(np.float32).astype(dt)
shape = {"bias_act": (n // 1024, 1024), "prelu": (n // 16384, 64, 256), "flat": (n,)}[case]
x, g, u, d = mk(*shape), mk(*shape), mk(*shape), mk(*shape)
p = x
b, w = mk(1024), (np.abs(mk(64)) * 0.1).astype(dt)
o, o2, ob, ow = np.empty_like(x), np.empty_like(x), np.empty_like(b), np.empty_like(w)
ns = dict(fastact=fastact, x=x, g=g, u=u, d=d, b=b, p=p, w=w, o=o, o2=o2, ob=ob, ow=ow, np=np)
if lib == "torch":
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(fastact.get_num_threads())
    T = torch.from_numpy
    conv = (lambda a: T(a.astype(np.float32)).to(torch.bfloat16)) if dt.itemsize == 2 and dt != np.float16 else T
    ns.update(torch=torch, F=F, A=torch.ops.aten, tx=conv(x), tg=conv(g), tu=conv(u), td=conv(d), tb=conv(b),
              tp=conv(p), tw=conv(w))
for v in (x, g, u, d, b, w, o, o2, ob, ow):
    v.reshape(-1)[:] = v.reshape(-1)  # touched: resident before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = eval(expr, ns)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
results = 0
if lib == "torch":
    for t in (r if isinstance(r, tuple) else (r,)):
        results += t.numel() * t.element_size()
print(json.dumps({"kib": after - before - results // 1024}))
"""


def run(n, dtype, stmt, lib, case):
    r = subprocess.run([sys.executable, "-c", CHILD, str(n), dtype, stmt, lib, case], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip().splitlines()[-1]
    return json.loads(r.stdout)["kib"], None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1 << 24, help="elements per array (a multiple of 16,384)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    a = ap.parse_args()
    size = {"float32": 4, "float64": 8}.get(a.dtype, 2) * a.n
    print(f"{a.n:,} elements of {a.dtype} per array ({size / 2**20:.0f} MiB); peak memory a call needed besides "
          "its inputs and outputs, MiB")
    print(f"{'case':22s} {'fastact':>9s} {'PyTorch':>9s}")
    for name, (fa, pt) in CASES.items():
        cells = []
        for stmt, lib in ((fa, "fastact"), (pt, "torch")):
            case = name.split()[0] if name.startswith(("bias_act", "prelu")) else "flat"
            kib, err = run(a.n, a.dtype, stmt, lib, case)
            cells.append(f"{kib / 1024:9.1f}" if kib is not None else f"{'-':>9s}")
            if err:
                print(f"  {name} ({lib}) failed: {err}")
        print(f"{name:22s} {cells[0]} {cells[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
