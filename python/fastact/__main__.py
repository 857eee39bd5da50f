"""python -m fastact: print the configuration, then time a few ops against NumPy (and PyTorch)."""
from __future__ import annotations

import sys
import time


def _best_time(fn, reps=7, inner=None):
    # warm up, pick an inner count that takes ~2 ms, report the best per-call time
    fn()
    if inner is None:
        t0 = time.perf_counter()
        fn()
        one = max(time.perf_counter() - t0, 1e-7)
        inner = max(1, int(2e-3 / one))
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner)
    return best


def demo(n=1 << 16):
    import numpy as np

    import fastact

    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32)
    out = np.empty_like(x)
    xm = x.reshape(-1, 1024)
    outm = np.empty_like(xm)

    def np_softmax(a):
        e = np.exp(a - a.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    cases = [
        ("relu", lambda: fastact.relu(x, out=out), lambda: np.maximum(x, 0, out=out), "relu"),
        ("sigmoid", lambda: fastact.sigmoid(x, out=out), lambda: 1 / (1 + np.exp(-x)), "sigmoid"),
        ("tanh", lambda: fastact.tanh(x, out=out), lambda: np.tanh(x, out=out), "tanh"),
        ("gelu", lambda: fastact.gelu(x, out=out), None, "gelu"),
        ("silu", lambda: fastact.silu(x, out=out), lambda: x / (1 + np.exp(-x)), "silu"),
        ("softmax (rows of 1024)", lambda: fastact.softmax(xm, out=outm), lambda: np_softmax(xm), "softmax"),
    ]
    if torch is not None:
        tx = torch.from_numpy(x)
        tm = torch.from_numpy(xm)
        tfn = {"relu": lambda: torch.relu(tx), "sigmoid": lambda: torch.sigmoid(tx), "tanh": lambda: torch.tanh(tx),
               "gelu": lambda: F.gelu(tx), "silu": lambda: F.silu(tx), "softmax": lambda: torch.softmax(tm, -1)}
    print(f"\n{n:,} float32 elements, {fastact.get_num_threads()} threads, ISA {fastact.get_isa()}; "
          "ns per element (best of 7):")
    head = f"{'op':24s} {'fastact':>9s} {'numpy':>9s}" + (f" {'torch':>9s}" if torch is not None else "")
    print(head)
    print("-" * len(head))
    for name, f, g, key in cases:
        row = f"{name:24s} {_best_time(f) / n * 1e9:9.3f} "
        row += f"{_best_time(g) / n * 1e9:9.3f}" if g is not None else f"{'-':>9s}"
        if torch is not None:
            row += f" {_best_time(tfn[key]) / n * 1e9:9.3f}"
        print(row)


def main(argv=None):
    import fastact

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print("usage: python -m fastact                print the configuration and a short benchmark\n"
              "       python -m fastact --cmake-dir    print the folder of fastact's CMake package\n"
              "                                        (cmake -Dfastact_DIR=$(python -m fastact --cmake-dir))\n"
              "       python -m fastact plot --out F.png  draw every activation and its derivative (matplotlib;\n"
              "                                        --ops gelu,silu --range -5,5; see --help there)")
        return 0
    if argv and argv[0] == "--cmake-dir":
        from pathlib import Path

        d = Path(fastact.__file__).resolve().parent / "cmake"
        if not (d / "fastactConfig.cmake").exists():
            print("fastact: this installation has no CMake package", file=sys.stderr)
            return 1
        print(d)
        return 0
    if argv and argv[0] == "plot":
        from . import plot

        return plot.main(argv[1:])
    if argv:
        print(f"fastact: unknown argument {argv[0]!r}; see python -m fastact --help", file=sys.stderr)
        return 2
    fastact.show_config()
    demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
