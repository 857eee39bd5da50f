#!/usr/bin/env python3
"""Accuracy of the alternatives that bench/compare.py times, on the same footing as fastact's.

    python bench/alt_accuracy.py                    # every element-wise op, float32
    python bench/alt_accuracy.py --ops sigmoid,silu --stride 65 --markdown

The speed table says how fast each library is; this says what it computes. Every implementation of
compare.py (NumPy, PyTorch, JAX, ONNX Runtime, numexpr, each optional) runs on every --stride-th float32
bit pattern (default 257: 16.7M inputs from every binade, tails and subnormals included), and its result
is measured in ulps against the float64 reference of the test suite (tests/reference.py). Prints, per op
and library, the largest error and where it occurs, and the share of inputs beyond 2 ulp (fastact's
bound, which bench/accuracy.py checks on all 2^32 inputs). softmax / log_softmax: rows of 1024 drawn
N(0, 3^2) and N(0, 30^2) (large spreads reach exp's tail), in relative error (log_softmax: relative to
max(1, |y|); softmax's results below float32's normal range: relative to 2^-126).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fastact  # noqa: E402
import reference as R  # noqa: E402
from conftest import full_params  # noqa: E402
from compare import (ALTERNATIVES, example_params, jax_impls, numexpr_impls, numpy_impls, op_fn, ort_impls,  # noqa: E402
                     torch_impls)


def as_numpy(r):
    """A library's result as a float64 NumPy array."""
    if isinstance(r, list):  # ONNX Runtime: a list of outputs
        r = r[0]
    if hasattr(r, "detach"):  # torch
        r = r.detach().numpy()
    return np.asarray(r).astype(np.float64).reshape(-1)


def forward_impls(x, rows, threads):
    """(op, variant) -> {library: callable} for the forward, as compare.py builds them."""
    out = {}
    g = np.ones_like(x)
    maps = {"numpy": numpy_impls(x, rows), "torch": (torch_impls(x, rows, g, {}) or (None, None))[0],
            "jax": jax_impls(x, rows), "ort": ort_impls(x, rows, threads), "numexpr": numexpr_impls(x, threads)}
    for lib, m in maps.items():
        for k, f in (m or {}).items():
            out.setdefault(k, {})[lib] = f
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", default=",".join(o["name"] for o in fastact.ops() if o["kind"] != "gated"))
    ap.add_argument("--stride", type=int, default=257, help="every STRIDE-th float32 bit pattern (default 257)")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    a = ap.parse_args()
    bits = np.arange(0, 1 << 32, a.stride, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[np.isfinite(x)]
    with np.errstate(invalid="ignore"):
        x64 = x.astype(np.float64)
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.standard_normal((64, 1024)) * 3, rng.standard_normal((64, 1024)) * 30]).astype(np.float32)
    impls = forward_impls(x, rows, fastact.get_num_threads())
    print(f"{x.size:,} float32 inputs (every {a.stride}th bit pattern, finite); max ulp error (at x) and the "
          "share of inputs beyond 2 ulp")
    table = []
    for o in fastact.ops():
        name = o["name"]
        if name not in a.ops.split(","):
            continue
        for variant in [""] + (["tanh"] if name == "gelu" else []):
            kw = {"approximate": variant} if variant else {}
            label = name + (f"({variant})" if variant else "")
            cells = {}
            if o["kind"] == "row":
                ref = (R.softmax if name == "softmax" else R.log_softmax)(rows.astype(np.float64), axis=-1).reshape(-1)
                # relative error; softmax's results below the normal range are measured against it
                den = np.maximum(np.abs(ref), 2.0 ** -126) if name == "softmax" else np.maximum(1.0, np.abs(ref))
                runs = {"fastact": lambda: getattr(fastact, name)(rows)} | impls.get((name, ""), {})
                for lib, f in runs.items():
                    got = as_numpy(f())
                    with np.errstate(all="ignore"):
                        err = np.abs(got - ref) / den
                    err = np.where(np.isnan(err), np.inf, err)
                    cells[lib] = f"{float(err.max()):.1e} rel"
            else:
                # the parameters without a default take compare.py's examples, as its alternatives do
                ref = R.forward(name, x64, **full_params(o, {**example_params(o), **kw}, np.float32))
                runs = {"fastact": lambda: op_fn(o)(x, **kw)} | impls.get((name, variant), {})
                for lib, f in runs.items():
                    try:
                        got = as_numpy(f())
                    except Exception as e:  # noqa: BLE001  an alternative that fails on some input
                        cells[lib] = f"error: {type(e).__name__}"
                        continue
                    err = R.ulp_error(got, ref, np.float32)
                    i = int(np.argmax(err))
                    beyond = np.count_nonzero(err > 2) / err.size
                    worst = "inf" if not np.isfinite(err[i]) else f"{err[i]:.3g}"
                    cells[lib] = f"{worst} ulp at {x[i]:.4g}, {beyond:.2%} > 2"
            for lib, c in cells.items():
                print(f"{label:14s} {lib:8s} {c}")
            table.append((label, cells))
    if a.markdown:
        libs = ["fastact"] + list(ALTERNATIVES)
        print("\n| op | " + " | ".join(libs) + " |")
        print("|---|" + "---|" * len(libs))
        for label, cells in table:
            print(f"| {label} | " + " | ".join(cells.get(lib, "-") for lib in libs) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
