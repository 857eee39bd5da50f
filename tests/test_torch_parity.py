"""Parity with torch.nn.functional and PyTorch's backward kernels, where torch is importable (a test-only
oracle: CI installs the CPU wheel). Compared on the range where torch itself is accurate; in the tails
fastact is held to the float64 references instead (test_accuracy.py)."""
from __future__ import annotations

import numpy as np
import pytest

import fastact
import reference as R
from conftest import ELEMENTWISE_VARIANTS, backward_modes, op_fn

torch = pytest.importorskip("torch")
F = torch.nn.functional

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op,kw", ELEMENTWISE_VARIANTS)
def test_forward_and_backward_match_torch(op, kw, dtype):
    torch_fwd = R.torch_forward(op["name"])  # every op brings its torch counterpart with its references
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-8, 8, 20000), np.linspace(-3, 3, 601)]).astype(dtype)
    g = rng.standard_normal(x.size).astype(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = torch_fwd(tx, kw)
    ty.backward(torch.from_numpy(g))
    # torch's own rounding is about eps * |x| in absolute terms (its gelu forms 1 + erf and 1 + tanh,
    # which cancel in the negative tail), so agreement is asked to that, plus a few relative ulps.
    eps = float(np.finfo(dtype).eps)
    y = op_fn(op)(x, **kw)
    close(y, ty.detach().numpy(), 4 * eps, 4 * eps * np.maximum(1, np.abs(x)))
    for m in backward_modes(op, kw):
        dx = op_fn(op, "_backward")(g, **{m: x if m == "x" else y}, **kw)
        close(dx, tx.grad.numpy(), 16 * eps, 16 * eps * np.abs(g) * np.maximum(1, np.abs(x)), f"from {m}")


def close(a, b, rtol, atol, msg=""):
    bad = ~(np.abs(a.astype(np.float64) - b) <= rtol * np.abs(b) + atol)
    assert not bad.any(), f"{msg} {bad.sum()} differ; first: {a[bad][:3]} vs torch {b[bad][:3]}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_family_matches_torch(name, axis, dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((64, 1024)) * 4).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = getattr(torch, name)(tx, dim=axis)
    ty.backward(torch.from_numpy(g))
    y = getattr(fastact, name)(x, axis=axis)
    eps = float(np.finfo(dtype).eps)
    ref = ty.detach().numpy()
    # torch rounds x - max before exp: a relative error of |x - max| * eps, which fastact avoids
    shift = np.abs(x - x.max(axis=axis, keepdims=True)).astype(np.float64)
    rtol = eps * (8 + shift)
    close(y, ref, rtol, 8 * eps * (np.maximum(1, np.abs(ref)) if name == "log_softmax" else 1e-30))
    dx = getattr(fastact, name + "_backward")(g, y=y, axis=axis)
    p = np.exp(y.astype(np.float64)) if name == "log_softmax" else y.astype(np.float64)
    close(dx, tx.grad.numpy(), 8 * rtol, 64 * eps * np.abs(g).max() * np.maximum(p, eps))


def test_torch_backward_kernels_directly():
    x = torch.linspace(-6, 6, 4097)
    g = torch.randn(4097, generator=torch.Generator().manual_seed(0))
    a = torch.ops.aten
    xn, gn = x.numpy(), g.numpy()
    eps = float(np.finfo(np.float32).eps)
    tol = 16 * eps * np.abs(gn) * np.maximum(1, np.abs(xn))
    close(fastact.gelu_backward(gn, xn), a.gelu_backward(g, x).numpy(), 16 * eps, tol)
    close(fastact.silu_backward(gn, xn), a.silu_backward(g, x).numpy(), 16 * eps, tol)
    np.testing.assert_array_equal(fastact.relu_backward(gn, xn), a.threshold_backward(g, x, 0).numpy())
    s, t = torch.sigmoid(x), torch.tanh(x)
    close(fastact.sigmoid_backward(gn, y=s.numpy()), a.sigmoid_backward(g, s).numpy(), 4 * eps, tol)
    close(fastact.tanh_backward(gn, y=t.numpy()), a.tanh_backward(g, t).numpy(), 4 * eps, tol)
    close(fastact.elu_backward(gn, xn), a.elu_backward(g, 1.0, 1, 1.0, False, x).numpy(), 16 * eps, tol)


def test_torch_cpu_tensors_are_accepted_through_dlpack():
    t = torch.linspace(-3, 3, 101)
    np.testing.assert_array_equal(fastact.gelu(t), fastact.gelu(t.numpy()))
    np.testing.assert_array_equal(fastact.sigmoid_backward(torch.ones(101), y=t), fastact.sigmoid_backward(
        np.ones(101, np.float32), y=t.numpy()))
