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
