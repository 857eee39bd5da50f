"""Pictures of the activations: each op of the registry and its derivative on a grid of panels.

    python -m fastact plot --out activations.png [--ops gelu,silu] [--range -5,5]

or ``fastact.plot.plot_activations("activations.png")``. Needs matplotlib (``pip install fastact[plot]``).
Every element-wise op is drawn with its default parameters (one without a default takes 1.0), softmax and
log_softmax as the first entry of a row (x, 0), and the gated ops as act(x) * 1 for the half they act on;
the derivative is fastact's own backward with a gradient of ones, so the picture shows what the library
computes, not a formula drawn beside it.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from . import _core

_REQUIRED_VALUE = 1.0  # the value a parameter with no default takes in a panel (softcap's cap, threshold's)


def _curves(op: dict[str, Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """The op's values and derivative at x, and the panel's title."""
    import fastact

    name = op["name"]
    f, fb = getattr(fastact, name), getattr(fastact, name + "_backward")
    kw = {p["name"]: _REQUIRED_VALUE for p in op["params"] if p["required"]}
    title = name + "".join(f", {k}={v:g}" for k, v in kw.items())
    ones = np.ones_like(x)
    if op["kind"] == "elementwise":
        return f(x, **kw), fb(ones, x, **kw), title
    if op["kind"] == "row":  # the first entry of the row (x, 0): softmax is sigmoid(x) there
        rows = np.stack([x, np.zeros_like(x)], axis=-1)
        y = f(rows)
        seed = np.zeros_like(rows)
        seed[:, 0] = 1.0
        return y[:, 0], fb(seed, y=y)[:, 0], f"{name}(x, 0)[0]"
    if op["kind"] == "gated":  # the gated half varies, the other is 1
        first = op["gate"] == "first"
        a, b = (x, ones) if first else (ones, x)
        da, db = fb(ones, a, b)
        return f(a, b), (da if first else db), f"{name}: {'act(x) * 1' if first else '1 * act(x)'}"
    raise ValueError(f"fastact.plot: {name} is not an activation (kind {op['kind']!r})")


def activations() -> list[dict[str, Any]]:
    """The ops a picture draws: every element-wise, row and gated op of the registry, in its order."""
    return [o for o in _core.ops() if o["kind"] in ("elementwise", "row", "gated")]


def plot_activations(path: str, ops: Sequence[str] | None = None, x_range: tuple[float, float] = (-5.0, 5.0),
                     columns: int = 6, dpi: int = 80) -> list[str]:
    """Draws each op (all of activations() by default) and its derivative, one panel each, into path (the
    format from its suffix: .png, .svg, .pdf); returns the ops drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("fastact.plot needs matplotlib: pip install fastact[plot] (or matplotlib)") from None
    every = {o["name"]: o for o in activations()}
    names = list(every) if ops is None else list(ops)
    unknown = [n for n in names if n not in every]
    if unknown or not names:
        raise ValueError(f"fastact.plot: ops must name activations ({', '.join(every)}), got {unknown or names}")
    lo, hi = (float(v) for v in x_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"fastact.plot: x_range must be two finite numbers lo < hi, got {x_range!r}")
    x = np.linspace(lo, hi, 801)
    cols = max(1, min(columns, len(names)))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        y, dy, title = _curves(every[name], x)
        ax.axhline(0, color="0.8", lw=0.6)
        ax.axvline(0, color="0.8", lw=0.6)
        ax.plot(x, y, lw=1.6, label="f(x)")
        ax.plot(x, dy, lw=1.1, ls="--", label="f'(x)")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("fastact: each activation (solid) and its derivative from fastact's backward (dashed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return names


def main(argv: Sequence[str], prog: str = "python -m fastact plot") -> int:
    import argparse

    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="the image to write (.png, .svg, .pdf)")
    ap.add_argument("--ops", help="comma-separated ops (default: every activation)")
    ap.add_argument("--range", default="-5,5", help="x from,to (default -5,5)")
    ap.add_argument("--columns", type=int, default=6)
    args = ap.parse_args(list(argv))
    try:
        lo, hi = (float(v) for v in args.range.split(","))
    except ValueError:
        ap.error(f"--range takes two numbers, as -5,5; got {args.range!r}")
    import os

    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        ap.error(f"--out: the folder {folder} does not exist")
    suffix = os.path.splitext(args.out)[1].lower().lstrip(".")
    if suffix not in ("png", "svg", "pdf", "jpg", "jpeg"):
        ap.error(f"--out must end in .png, .svg, .pdf or .jpg (the image format), got {args.out!r}")
    ops = [o.strip() for o in args.ops.split(",") if o.strip()] if args.ops else None
    try:
        drawn = plot_activations(args.out, ops, (lo, hi), args.columns)
    except (ValueError, ImportError) as e:
        ap.error(str(e))
    print(f"wrote {args.out}: {len(drawn)} activations")
    return 0

