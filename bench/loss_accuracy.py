#!/usr/bin/env python3
"""Cross-entropy's accuracy on hostile float32 rows, fastact against PyTorch's F.cross_entropy, both against
a float64 reference that cannot cancel ((max - x_t) + log1p of the other terms' sum; tests/test_losses.py).

    python bench/loss_accuracy.py

Rows of 1 to 262,144 classes: logits of +-1e4, mixes of 1e4 and 1e-3, normal ones, and confident rows (the
max by 40 to 80); targets at the row's min, at its max and at random. Reports the largest per-row relative
error of the loss (and of the target's gradient p_t - 1), relative to max(value, 2^-126), and how many rows
whose loss is a normal float32 PyTorch returns as 0.
"""
import math
import sys

import numpy as np
import torch

import fastact
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tests"))
from test_losses import ref_ce_rows
rng = np.random.default_rng(5)
worst = {"fastact": 0, "torch": 0}; zero_t = 0; n = 0; inf_t = 0
gw = {"fastact": 0, "torch": 0}
for k in (1, 2, 31, 1000, 4097, 32000, 262144):
    for kind in ("huge", "mixed", "normal", "confident"):
        for rep in range(3):
            if kind == "huge": r = rng.choice([-1e4, 1e4], size=k) + rng.standard_normal(k)
            elif kind == "mixed": r = rng.standard_normal(k) * np.where(rng.random(k) < 0.1, 1e4, 1e-3)
            elif kind == "confident": r = rng.standard_normal(k); r[0] = 40 + rep * 20
            else: r = rng.standard_normal(k) * 3
            r = r.astype(np.float32)
            for t in (int(np.argmin(r)), int(np.argmax(r)), int(rng.integers(0, k))):
                ref = ref_ce_rows(r[None].astype(np.float64), [t])[0]
                f = float(fastact.cross_entropy(r[None], np.array([t]), reduction="none")[0])
                p = torch.nn.functional.cross_entropy(torch.from_numpy(r[None]), torch.tensor([t]), reduction="none").item()
                n += 1
                for name, v in (("fastact", f), ("torch", p)):
                    e = abs(v - ref) / max(ref, 2.0**-126)
                    worst[name] = max(worst[name], e)
                if ref >= 2.0**-126 and p == 0: zero_t += 1
                # gradient of the target element
                gref = -math.expm1(-ref)
                gf = -float(fastact.cross_entropy_backward(1.0, r[None], np.array([t]), reduction="sum")[0, t])
                xt = torch.from_numpy(r[None]).requires_grad_(True)
                torch.nn.functional.cross_entropy(xt, torch.tensor([t]), reduction="sum").backward()
                gp = -float(xt.grad[0, t])
                for name, v in (("fastact", gf), ("torch", gp)):
                    e = abs(v - gref) / max(gref, 2.0**-126)
                    gw[name] = max(gw[name], e)
print(f"{n} rows; max per-row relative error of the loss: fastact {worst['fastact']:.2e}, PyTorch {worst['torch']:.2e}; PyTorch returns 0 for {zero_t} rows whose loss is not 0")
print(f"target's gradient p_t - 1, max relative error: fastact {gw['fastact']:.2e}, PyTorch {gw['torch']:.2e}")

# Probability targets on the same kinds of rows (soft targets with zeros, and one-hot at the row's max and min).
from test_losses import _soft_targets, ref_ce_probs  # noqa: E402
pw_ = {"fastact": 0.0, "torch": 0.0}
for k in (2, 31, 1000, 32000):
    for kind in ("huge", "mixed", "confident"):
        if kind == "huge": r = rng.choice([-1e4, 1e4], size=k) + rng.standard_normal(k)
        elif kind == "mixed": r = rng.standard_normal(k) * np.where(rng.random(k) < 0.1, 1e4, 1e-3)
        else: r = rng.standard_normal(k); r[0] = 60
        x = r.astype(np.float32)[None]
        for p in (_soft_targets(rng, (1, k), -1, np.float32), np.eye(k, dtype=np.float32)[[int(np.argmax(x))]],
                  np.eye(k, dtype=np.float32)[[int(np.argmin(x))]]):
            ref = ref_ce_probs(x, p)[0]
            vals = {"fastact": float(fastact.cross_entropy(x, p, reduction="none")[0]),
                    "torch": torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(p), reduction="none").item()}
            for name, v in vals.items():
                pw_[name] = max(pw_[name], abs(v - ref) / max(ref, 2.0**-126))
print(f"probability targets, max per-row relative error: fastact {pw_['fastact']:.2e}, PyTorch {pw_['torch']:.2e}")

# The element-wise losses on tests/test_pointwise_losses.py's hostile inputs (near-cancelling differences,
# 1e-3 to 1e18, branch switch points; BCE logits to +-100 and +-1e30 with soft and hard targets): the
# largest error of the loss and of its gradient, relative to max(|value|, 2^-126) (the gradient's to its
# largest term: it cancels near its zeros for everyone).
from test_pointwise_losses import CASES, _hostile, _switch_points, reference, torch_loss  # noqa: E402

print("\n| loss | fastact loss | PyTorch loss | fastact gradient | PyTorch gradient |\n|---|---|---|---|---|")
for case in CASES:
    name, params = case.values
    ins = [_hostile(name)] + ([_switch_points(name, params)] if name in ("huber_loss", "smooth_l1_loss") else [])
    err = {"fastact": [0.0, 0.0], "torch": [0.0, 0.0]}
    for x, t in ins:
        want, gwant, gscale = reference(name, x, t, **params)
        xt = torch.from_numpy(x).requires_grad_(True)
        lt = torch_loss(name, xt, torch.from_numpy(t), reduction="none", **params)
        lt.sum().backward()
        got = {"fastact": (getattr(fastact, name)(x, t, reduction="none", **params),
                           getattr(fastact, name + "_backward")(np.ones_like(x), x, t, reduction="none", **params)),
               "torch": (lt.detach().numpy(), xt.grad.numpy())}
        ok, gok = np.isfinite(want), np.isfinite(gwant)
        for lib, (v, g) in got.items():
            with np.errstate(invalid="ignore"):
                e = np.abs(v.astype(np.float64)[ok] - want[ok]) / np.maximum(np.abs(want[ok]), 2.0**-126)
                ge = np.abs(g.astype(np.float64)[gok] - gwant[gok]) / np.maximum(gscale[gok], 2.0**-126)
            err[lib][0] = max(err[lib][0], float(np.nan_to_num(e, nan=np.inf).max()))
            err[lib][1] = max(err[lib][1], float(np.nan_to_num(ge, nan=np.inf).max()))
    label = name + "".join(f" {k}={v}" for k, v in params.items())
    print(f"| {label} | {err['fastact'][0]:.1e} | {err['torch'][0]:.1e} | {err['fastact'][1]:.1e} | {err['torch'][1]:.1e} |")
