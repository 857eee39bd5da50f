#!/usr/bin/env python3
"""Speed of every registry op against the alternatives, measured in one process.

    python bench/compare.py                                  # all ops, sizes 1K, 64K, 16M, float32
    python bench/compare.py --ops gelu,silu --sizes 65536 --dtype float64 --threads 1 --isa avx2
    python bench/compare.py --dtype bfloat16          # 16-bit types against PyTorch's half kernels

For each op, size and direction (forward; backward), each implementation is timed in interleaved rounds
(fastact, then each alternative, repeated), and the median per-call time is reported as ns/element,
for allocating calls and with out= (fastact and NumPy; PyTorch with out= where it has one).
Ratios are best-alternative / fastact (> 1: fastact is faster). The memory-copy roof (np.copyto of the
same bytes) is measured in the same run. Alternatives that are not installed are skipped with a note.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import fastact


def timer(fn, budget=0.02):
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(budget / one))

    def run():
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        return (time.perf_counter() - t) / inner

    return run


def numpy_impls(x, rows):
    with np.errstate(all="ignore"):
        k = np.sqrt(2 / np.pi)

        def np_softmax(a):
            e = np.exp(a - a.max(-1, keepdims=True))
            return e / e.sum(-1, keepdims=True)

        def np_log_softmax(a):
            s = a - a.max(-1, keepdims=True)
            return s - np.log(np.exp(s).sum(-1, keepdims=True))

        return {
            ("relu", ""): lambda: np.maximum(x, 0),
            ("leaky_relu", ""): lambda: np.where(x > 0, x, x * np.float32(0.01)),
            ("elu", ""): lambda: np.where(x > 0, x, np.expm1(x)),
            ("gelu", "tanh"): lambda: 0.5 * x * (1 + np.tanh(k * (x + 0.044715 * x * x * x))),
            ("silu", ""): lambda: x / (1 + np.exp(-x)),
            ("sigmoid", ""): lambda: 1 / (1 + np.exp(-x)),
            ("tanh", ""): lambda: np.tanh(x),
            ("softmax", ""): lambda: np_softmax(rows),
            ("log_softmax", ""): lambda: np_log_softmax(rows),
        }


def torch_impls(x, rows, g, y):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None, None
    tdtype = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
              "bfloat16": torch.bfloat16}[x.dtype.name]

    def tt(a):  # same values, same dtype, as a torch tensor
        return torch.from_numpy(np.ascontiguousarray(a).astype(np.float32)).to(tdtype) \
            if x.dtype.itemsize == 2 else torch.from_numpy(a)

    tx, tr, tg = tt(x), tt(rows), tt(g)
    ty = {k: tt(v) for k, v in y.items()}
    a = torch.ops.aten
    fwd = {
        ("relu", ""): lambda: torch.relu(tx), ("leaky_relu", ""): lambda: F.leaky_relu(tx),
        ("elu", ""): lambda: F.elu(tx), ("gelu", ""): lambda: F.gelu(tx),
        ("gelu", "tanh"): lambda: F.gelu(tx, approximate="tanh"), ("silu", ""): lambda: F.silu(tx),
        ("sigmoid", ""): lambda: torch.sigmoid(tx), ("tanh", ""): lambda: torch.tanh(tx),
        ("softmax", ""): lambda: torch.softmax(tr, -1), ("log_softmax", ""): lambda: torch.log_softmax(tr, -1),
    }
    bwd = {
        ("relu", ""): lambda: a.threshold_backward(tg, tx, 0),
        ("leaky_relu", ""): lambda: a.leaky_relu_backward(tg, tx, 0.01, False),
        ("elu", ""): lambda: a.elu_backward(tg, 1.0, 1, 1.0, False, tx),
        ("gelu", ""): lambda: a.gelu_backward(tg, tx), ("gelu", "tanh"): lambda: a.gelu_backward(tg, tx, approximate="tanh"),
        ("silu", ""): lambda: a.silu_backward(tg, tx), ("sigmoid", ""): lambda: a.sigmoid_backward(tg, ty["sigmoid"]),
        ("tanh", ""): lambda: a.tanh_backward(tg, ty["tanh"]),
        ("softmax", ""): lambda: a._softmax_backward_data(tg.view(tr.shape), ty["softmax"], -1, tr.dtype),
        ("log_softmax", ""): lambda: a._log_softmax_backward_data(tg.view(tr.shape), ty["log_softmax"], -1, tr.dtype),
    }
    return fwd, bwd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", default=",".join(o["name"] for o in fastact.ops()))
    ap.add_argument("--sizes", default="1024,65536,16777216")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    ap.add_argument("--threads", type=int, default=fastact.get_num_threads())
    ap.add_argument("--isa", default=fastact.get_isa())
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    fastact.set_num_threads(a.threads)
    fastact.set_isa(a.isa)
    try:
        import torch

        torch.set_num_threads(a.threads)
    except ImportError:
        print("note: PyTorch not installed: skipped (pip install torch)")
    for mod in ("jax", "onnxruntime", "numexpr"):
        try:
            __import__(mod)
        except ImportError:
            print(f"note: {mod} not installed: skipped")
    if a.dtype == "bfloat16":
        import ml_dtypes  # the NumPy bfloat16 type (pip install ml_dtypes)

        dt = np.dtype(ml_dtypes.bfloat16)
    else:
        dt = np.dtype(a.dtype)
    ops = [o for o in fastact.ops() if o["name"] in a.ops.split(",")]
    print(f"fastact {fastact.__version__}, ISA {fastact.get_isa()}, {a.threads} threads, {a.dtype}; "
          "median ns/element; ratio = best alternative / fastact")
    for n in (int(s) for s in a.sizes.split(",")):
        rng = np.random.default_rng(0)
        x = (rng.standard_normal(n) * 3).astype(dt)
        g = rng.standard_normal(n).astype(dt)
        cols = 1024 if n >= 1024 else n
        rows = x.reshape(-1, cols)
        out = np.empty_like(x)
        copy_t = statistics.median(timer(lambda: np.copyto(out, x))() for _ in range(a.rounds))
        print(f"\nsize {n:,}: copy of the same bytes {copy_t / n * 1e9:.3f} ns/element")
        print(f"{'op':22s} {'dir':4s} {'fastact':>9s} {'fa out=':>9s} {'numpy':>9s} {'torch':>9s}  {'ratio':>6s}")
        ys = {o["name"]: getattr(fastact, o["name"])(rows if o["kind"] == "row" else x) for o in ops}
        ys = {k: v.reshape(-1) if v.ndim > 1 else v for k, v in ys.items()}
        npi = numpy_impls(x, rows) if a.dtype != "bfloat16" else {}  # NumPy has no bfloat16 kernels
        tf, tb = torch_impls(x, rows, g, {k: v.reshape(rows.shape) if k in ("softmax", "log_softmax") else v
                                          for k, v in ys.items()})
        for o in ops:
            name = o["name"]
            for variant in ([""] + (["tanh"] if name == "gelu" else [])):
                kw = {"approximate": variant} if variant else {}
                arr = rows if o["kind"] == "row" else x
                f = getattr(fastact, name)
                fb = getattr(fastact, name + "_backward")
                from_x = "x" in o["backward_from"]
                garr = g.reshape(arr.shape)
                yarr = ys[name].reshape(arr.shape)
                o_out = np.empty_like(arr)
                impls = {
                    ("fwd", "fastact"): lambda: f(arr, **kw),
                    ("fwd", "fa out="): lambda: f(arr, **kw, out=o_out),
                    ("bwd", "fastact"): (lambda: fb(garr, arr, **kw)) if from_x else (lambda: fb(garr, y=yarr, **kw)),
                    ("bwd", "fa out="): (lambda: fb(garr, arr, **kw, out=o_out)) if from_x else
                    (lambda: fb(garr, y=yarr, **kw, out=o_out)),
                }
                if (name, variant) in npi:
                    impls[("fwd", "numpy")] = npi[(name, variant)]
                if tf and (name, variant) in tf:
                    impls[("fwd", "torch")] = tf[(name, variant)]
                if tb and (name, variant) in tb:
                    impls[("bwd", "torch")] = tb[(name, variant)]
                runners = {k: timer(v) for k, v in impls.items()}
                times = {k: [] for k in runners}
                for _ in range(a.rounds):  # interleaved
                    for k, r in runners.items():
                        times[k].append(r())
                med = {k: statistics.median(v) / n * 1e9 for k, v in times.items()}
                label = name + (f"({variant})" if variant else "")
                for d in ("fwd", "bwd"):
                    cells = [med.get((d, c)) for c in ("fastact", "fa out=", "numpy", "torch")]
                    alts = [c for c in cells[2:] if c is not None]
                    ratio = f"{min(alts) / cells[0]:6.2f}" if alts else "     -"
                    print(f"{label:22s} {d:4s} " + " ".join(f"{c:9.3f}" if c is not None else f"{'-':>9s}"
                                                          for c in cells) + f"  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
