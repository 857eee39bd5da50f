"""logsumexp and cross-entropy: against float64 references with stable formulas (mpmath where float64 is
not enough), against PyTorch (values and autograd gradients, every option), on hostile inputs, with their
errors, and bit-identical over thread counts and ISAs."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastact

try:
    import torch
except ImportError:  # pragma: no cover - the CI installs it
    torch = None

try:
    import ml_dtypes
    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover
    BF16 = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the oracle here")
DTYPES = [np.float32, np.float64, np.float16] + ([BF16] if BF16 is not None else [])


# ------------------------------------------------------------------------------------------ references
def ref_lse(x, axis=-1):
    """float64 logsumexp with the max shift; rows of -inf give -inf, +inf gives +inf."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(under="ignore", over="ignore", invalid="ignore"):
        s = np.sum(np.exp(x - m_safe), axis=axis, keepdims=True)
        r = m_safe + np.log(s)
    r = np.where(np.isfinite(m), r, m)
    return np.squeeze(r, axis=axis)


def ref_ce_rows(x, t, w=None, eps=0.0, z=0.0):
    """Per-row cross-entropy in float64 with the cancellation-free form: (m - x_t) + log1p(sum of the
    others' exp(x - m)); label smoothing and z-loss as PyTorch / PaLM define them. x: (n, k) float64."""
    x = np.asarray(x, dtype=np.float64)
    n, k = x.shape
    w = np.ones(k) if w is None else np.asarray(w, dtype=np.float64)
    out = np.zeros(n)
    for r in range(n):
        if t[r] < 0:
            continue
        row = x[r]
        j = int(np.argmax(row))
        m = row[j]
        others = np.delete(row, j)
        d = others - m  # x - m is rounded: its error e (two-sum) costs |x - m| ulps of exp, restored by (1 + e)
        bb = d - others
        e = (others - (d - bb)) + (-m - bb)
        with np.errstate(invalid="ignore"):
            rest = np.exp(d) * np.where(np.isfinite(e), 1 + e, 1)
        L = math.log1p(math.fsum(rest))
        lse = m + L
        nll = (m - row[t[r]]) + L
        smooth = math.fsum(w * ((m - row) + L))
        out[r] = (1 - eps) * w[t[r]] * nll + eps / k * smooth + z * lse * lse
    return out


def mp_ce(row, t):
    import mpmath
    mpmath.mp.dps = 60
    s = mpmath.fsum(mpmath.exp(mpmath.mpf(float(v))) for v in row)
    return float(mpmath.log(s) - mpmath.mpf(float(row[t])))


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b) / np.maximum(np.abs(b), np.finfo(np.float64).tiny)


# ------------------------------------------------------------------------------------------ logsumexp
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,axis", [((7,), -1), ((5, 33), -1), ((5, 33), 0), ((3, 4, 50), 1), ((3, 4, 5), (0, 2)),
                                        ((3, 4, 5), None), ((2, 5000), -1), ((1, 70000), 1)])
def test_logsumexp_matches_reference(dtype, shape, axis):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 30).astype(dtype)
    got = fastact.logsumexp(x, axis=axis)
    assert got.dtype == x.dtype
    xf = x.astype(np.float64)
    if axis is None:
        ref = ref_lse(xf.reshape(-1))
    elif isinstance(axis, tuple):
        ref = ref_lse(np.moveaxis(xf, axis, (-2, -1)).reshape(xf.shape[1], -1))
    else:
        ref = ref_lse(xf, axis)
    tol = {np.dtype(np.float32): 2e-7, np.dtype(np.float64): 4e-16}.get(np.dtype(dtype), 1e-2)
    np.testing.assert_allclose(got.astype(np.float64), ref, rtol=tol, atol=0)
    kd = fastact.logsumexp(x, axis=axis, keepdims=True)
    np.testing.assert_array_equal(kd.astype(np.float64).reshape(-1), got.astype(np.float64).reshape(-1))
    if torch is not None and np.dtype(dtype) in (np.float32, np.float64):
        dims = tuple(range(x.ndim)) if axis is None else axis
        t = torch.logsumexp(torch.from_numpy(x), dim=dims, keepdim=True)
        assert kd.shape == tuple(t.shape)


def test_logsumexp_keeps_the_digits_of_a_dominant_max():
    # x = [1e4, 1e4 - 30]: lse = 1e4 + log1p(e^-30); float32's m + L rounds to 1e4, float64 keeps it
    x = np.array([[1e4, 1e4 - 30, -1e4]], dtype=np.float64)
    got = fastact.logsumexp(x)[0]
    assert got == 1e4 + math.log1p(math.exp(-30.0))
    x32 = np.array([[0.0, -20.0]], dtype=np.float32)
    assert fastact.logsumexp(x32)[0] == np.float32(math.log1p(math.exp(-20.0)))


def test_logsumexp_limits():
    inf, nan = np.inf, np.nan
    x = np.array([[-inf, -inf], [inf, 1.0], [nan, 1.0], [inf, -inf], [1.0, 1.0], [-inf, 0.0]], dtype=np.float32)
    got = fastact.logsumexp(x)
    np.testing.assert_array_equal(got, np.array([-inf, inf, nan, inf, 1 + math.log(2), 0.0], dtype=np.float32))
    assert fastact.logsumexp(np.zeros((3, 0), np.float32)).tolist() == [-inf] * 3
    assert fastact.logsumexp(np.zeros((0, 4), np.float32)).shape == (0,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("axis", [-1, 0, (0, 1)])
def test_logsumexp_backward_is_grad_times_softmax(dtype, axis):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((6, 37)) * 5).astype(dtype)
    lse = fastact.logsumexp(x, axis=axis, keepdims=True)
    g = rng.standard_normal(lse.shape).astype(dtype)
    got = fastact.logsumexp_backward(g, x, axis=axis, keepdims=True)
    ref = g.astype(np.float64) * np.exp(x.astype(np.float64) - ref_lse(x.astype(np.float64), axis=axis if axis != (0, 1) else None).reshape(lse.shape)) if axis != (0, 1) else \
        g.astype(np.float64) * np.exp(x.astype(np.float64) - ref_lse(x.astype(np.float64).reshape(-1)))
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max())
    got2 = fastact.logsumexp_backward(g.reshape(fastact.logsumexp(x, axis=axis).shape), x, axis=axis)
    np.testing.assert_array_equal(got, got2)
    y = x.copy()
    assert fastact.logsumexp_backward(g, y, axis=axis, keepdims=True, out=y) is y
    np.testing.assert_array_equal(y, got)


# ------------------------------------------------------------------------------------------ cross-entropy
def torch_ce(x, t, **kw):
    xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
    w = kw.pop("weight", None)
    z = kw.pop("z_loss", 0.0)
    axis = kw.pop("axis", -1)
    red = kw.get("reduction", "mean")
    xm = xt.movedim(axis, 1) if xt.ndim > 1 else xt
    loss = torch.nn.functional.cross_entropy(xm, torch.from_numpy(t.astype(np.int64)),
                                             weight=None if w is None else torch.from_numpy(w), **kw)
    return xt, loss, red


def class_case(rng, dtype, shape, axis, case):
    """Logits of shape, class targets (every third ignored where case has ignore_index) and case's keywords
    (weight=True: random class weights)."""
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    k = shape[axis]
    tshape = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    t = rng.integers(0, k, size=tshape)
    kw = dict(case)
    if "ignore_index" in kw and t.size:
        t.reshape(-1)[::3] = kw["ignore_index"]
    if kw.get("weight"):
        kw["weight"] = rng.uniform(0.2, 2.0, k).astype(dtype)
    return x, t, kw


CE_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(weight=True),
    dict(weight=True, reduction="sum"),
    dict(weight=True, reduction="none"),
    dict(ignore_index=3),
    dict(ignore_index=3, weight=True),
    dict(label_smoothing=0.1),
    dict(label_smoothing=0.3, weight=True),
    dict(label_smoothing=0.2, weight=True, ignore_index=3),
    dict(label_smoothing=0.2, weight=True, ignore_index=3, reduction="sum"),
    dict(label_smoothing=0.2, weight=True, ignore_index=3, reduction="none"),
    dict(label_smoothing=1.0),
]


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CE_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("shape,axis", [((37, 11), -1), ((4, 11, 5), 1), ((11,), 0), ((3, 5, 11), -1)])
def test_cross_entropy_matches_pytorch(dtype, case, shape, axis):
    rng = np.random.default_rng(3)
    x, t, kw = class_case(rng, dtype, shape, axis, case)
    got = fastact.cross_entropy(x, t, axis=axis, **kw)
    xt, loss, red = torch_ce(x, t, axis=axis, **dict(kw))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, loss.detach().numpy(), rtol=tol, atol=tol)
    assert got.dtype == x.dtype and got.shape == tuple(loss.shape)
    g = rng.standard_normal(loss.shape) if red == "none" else np.array(1.7)
    loss.backward(torch.from_numpy(np.asarray(g, dtype=dtype)))
    dx = fastact.cross_entropy_backward(g.astype(dtype) if red == "none" else 1.7, x, t, axis=axis, **kw)
    ref = xt.grad.numpy()
    np.testing.assert_allclose(dx, ref, rtol=tol * 10, atol=tol * np.abs(ref).max())
    y = x.copy()
    assert fastact.cross_entropy_backward(g.astype(dtype) if red == "none" else 1.7, y, t, axis=axis, out=y, **kw) is y
    np.testing.assert_array_equal(y, dx)


@needs_torch
@pytest.mark.parametrize("case", [dict(z_loss=0.0), dict(z_loss=1e-4), dict(z_loss=0.01, weight=True, ignore_index=0),
                                  dict(z_loss=0.01, reduction="none", label_smoothing=0.1)])
def test_cross_entropy_z_loss(case):
    # z_loss: z * lse^2 per counted row, its mean over the counted rows: checked with PyTorch's autograd
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((40, 13)) * 6).astype(np.float64)
    t = rng.integers(0, 13, size=40)
    kw = dict(case)
    if kw.get("weight"):
        kw["weight"] = rng.uniform(0.2, 2.0, 13)
    if "ignore_index" in kw:
        t[::4] = kw["ignore_index"]
    z = kw.pop("z_loss")
    red = kw.get("reduction", "mean")
    xt = torch.from_numpy(x).requires_grad_(True)
    tw = None if kw.get("weight") is None else torch.from_numpy(kw["weight"])
    ce = torch.nn.functional.cross_entropy(xt, torch.from_numpy(t), weight=tw, **{k: v for k, v in kw.items() if k != "weight"})
    counted = torch.from_numpy(t != kw.get("ignore_index", -100))
    zrow = z * torch.logsumexp(xt, 1) ** 2 * counted
    ref = ce + (zrow if red == "none" else zrow.sum() / counted.sum() if red == "mean" else zrow.sum())
    got = fastact.cross_entropy(x, t, z_loss=z, **kw)
    np.testing.assert_allclose(got, ref.detach().numpy(), rtol=1e-13, atol=1e-15)
    g = np.linspace(-1, 2, 40) if red == "none" else 0.7
    ref.backward(torch.as_tensor(g, dtype=torch.float64))
    dx = fastact.cross_entropy_backward(g, x, t, z_loss=z, **kw)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_cross_entropy_hostile_rows(dtype):
    """Logits of +-1e4 and mixes of huge and tiny, rows of 1 to 256K classes, targets at the row's minimum and
    confident targets: per-row relative error against float64 (the reference is exact to ~1e-15 for float32
    inputs), 1e-6 in float32."""
    rng = np.random.default_rng(5)
    rows = []
    for k in (1, 2, 31, 32, 33, 1000, 4097, 262144):
        for kind in ("huge", "mixed", "normal", "confident"):
            if kind == "huge":
                r = rng.choice([-1e4, 1e4], size=k) + rng.standard_normal(k)
            elif kind == "mixed":
                r = rng.standard_normal(k) * np.where(rng.random(k) < 0.1, 1e4, 1e-3)
            elif kind == "confident":
                r = rng.standard_normal(k)
                r[0] = 30 if dtype == np.float32 else 300
            else:
                r = rng.standard_normal(k) * 3
            r = r.astype(dtype)
            for t in (int(np.argmin(r)), int(np.argmax(r)), int(rng.integers(0, k))):
                rows.append((r, t))
    for r, t in rows:
        got = fastact.cross_entropy(r[None, :], np.array([t]), reduction="none")[0]
        ref = ref_ce_rows(r[None, :].astype(np.float64), [t])[0]
        assert np.isfinite(got)
        tol = 1e-6 if dtype == np.float32 else 4e-15
        tiny = np.finfo(dtype).tiny  # a loss below the dtype's normal range is held to its absolute error
        assert abs(float(got) - ref) <= tol * max(ref, tiny), (len(r), t, got, ref)


def test_cross_entropy_confident_row_keeps_the_loss():
    # target the max by 30: the loss is about e^-30 = 9.4e-14, which PyTorch's log_softmax rounds to 0 in float32
    x = np.array([[30.0, 0.0, -1.0, -2.0]], dtype=np.float32)
    got = fastact.cross_entropy(x, np.array([0]))
    ref = mp_ce(x[0], 0)
    assert rel_err(got, ref) < 2e-7, (got, ref)
    if torch is not None:
        pt = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.tensor([0])).item()
        assert pt == 0.0  # what the README reports
    dx = fastact.cross_entropy_backward(1.0, x, np.array([0]))
    ref_dx = -math.expm1(-ref)  # d/dx_t = p_t - 1 = expm1(-loss)
    assert rel_err(-dx[0, 0], ref_dx) < 4e-7
    for j in range(1, 4):
        pj = math.exp(float(x[0, j]) - 30.0 - ref)
        assert rel_err(dx[0, j], pj) < 4e-7


def test_cross_entropy_target_at_the_minimum_of_huge_logits():
    x = np.array([[1e4, -1e4, 0.0]], dtype=np.float32)
    got = fastact.cross_entropy(x, np.array([1]))
    assert got == np.float32(2e4)
    dx = fastact.cross_entropy_backward(1.0, x, np.array([1]))
    np.testing.assert_array_equal(dx, np.array([[1.0, -1.0, 0.0]], dtype=np.float32))


def test_cross_entropy_reductions_over_a_million_rows_are_compensated_and_thread_independent():
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((1 << 20, 3)) * 3).astype(np.float32)
    t = rng.integers(0, 3, size=1 << 20)
    per_row = ref_ce_rows_vectorized(x, t)
    ref_sum = math.fsum(per_row)
    n0 = fastact.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3, 8):
            fastact.set_num_threads(n)
            results.append((fastact.cross_entropy(x, t, reduction="sum").item(), fastact.cross_entropy(x, t).item()))
    finally:
        fastact.set_num_threads(n0)
    assert len(set(results)) == 1
    s, m = results[0]
    assert s == np.float32(ref_sum)
    assert m == np.float32(ref_sum / (1 << 20))


def ref_ce_rows_vectorized(x, t):
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return (m[:, 0] - x[np.arange(len(t)), t]) + np.log(np.exp(x - m).sum(axis=1))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cross_entropy_every_isa_and_thread_count_gives_the_same_bits(dtype):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((300, 517)) * 8).astype(dtype)
    t = rng.integers(0, 517, size=300)
    t[::7] = -100
    w = rng.uniform(0.5, 2, 517)
    isa0, n0 = fastact.get_isa(), fastact.get_num_threads()
    seen = []
    try:
        for isa in fastact.supported_isas():
            for n in (1, 3):
                fastact.set_isa(isa)
                fastact.set_num_threads(n)
                kw = dict(weight=w, label_smoothing=0.1, z_loss=1e-3)
                seen.append((fastact.cross_entropy(x, t, reduction="none", **kw).tobytes(),
                             fastact.cross_entropy_backward(1.0, x, t, **kw).tobytes(),
                             fastact.logsumexp(x).tobytes()))
    finally:
        fastact.set_isa(isa0)
        fastact.set_num_threads(n0)
    assert all(s == seen[0] for s in seen)


@pytest.mark.parametrize("dtype", [np.float16] + ([BF16] if BF16 is not None else []), ids=lambda d: np.dtype(d).name)
def test_cross_entropy_16_bit_logits_are_computed_in_float32(dtype):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((20, 300)) * 4).astype(dtype)
    t = rng.integers(0, 300, size=20)
    got = fastact.cross_entropy(x, t, reduction="none")
    ref = ref_ce_rows(x.astype(np.float64), t)
    np.testing.assert_array_equal(got, ref.astype(dtype))  # rounded once from a float32-accurate value
    dx = fastact.cross_entropy_backward(1.0, x, t, reduction="sum")
    ref_dx = np.exp(x.astype(np.float64) - ref_lse(x.astype(np.float64))[:, None])
    ref_dx[np.arange(20), t] -= 1
    np.testing.assert_allclose(dx.astype(np.float64), ref_dx, rtol=1e-2, atol=1e-3)


# ------------------------------------------------------------------------------------------ errors
def test_cross_entropy_errors():
    x = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"target 5 at index \(2,\) is not a class in \[0, 5\)"):
        fastact.cross_entropy(x, np.array([0, 1, 5, 9]))
    with pytest.raises(ValueError, match=r"target -3 at index \(1,\)"):
        fastact.cross_entropy(x, np.array([0, -3, 1, 1], dtype=np.int8))
    assert np.isfinite(fastact.cross_entropy(x, np.array([0, 7, 1, 1]), ignore_index=7))
    with pytest.raises(ValueError, match=r"target has shape \(3,\); expected \(4,\)"):
        fastact.cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        fastact.cross_entropy(x, np.array([0, 1, 2, 3]), axis=2)
    with pytest.raises(TypeError, match=r"target \(class probabilities\) has dtype float64; expected the logits' "
                                        "dtype float32"):
        fastact.cross_entropy(x, np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"target \(class probabilities\) has shape \(4, 4\); expected the logits' "
                                         r"shape \(4, 5\)"):
        fastact.cross_entropy(x, np.zeros((4, 4), np.float32))
    with pytest.raises(TypeError, match="nll_loss: target must be class indices"):
        fastact.nll_loss(x, np.zeros((4, 5), np.float32))
    with pytest.raises(TypeError, match="target must be class indices"):
        fastact.cross_entropy(x, np.array(["a", "b", "c", "d"]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        fastact.cross_entropy(x, np.array([0, 1, 2, 3]), reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be a finite number in \[0.0, 1.0\]"):
        fastact.cross_entropy(x, np.array([0, 1, 2, 3]), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"weight has shape \(4,\); expected \(5,\)"):
        fastact.cross_entropy(x, np.array([0, 1, 2, 3]), weight=np.ones(4))
    with pytest.raises(TypeError, match="logits has dtype int64"):
        fastact.cross_entropy(np.zeros((4, 5), np.int64), np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="grad_output must be a scalar"):
        fastact.cross_entropy_backward(np.ones(4), x, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"grad_output must have the shape \(4,\)"):
        fastact.cross_entropy_backward(np.ones(3), x, np.array([0, 1, 2, 3]), reduction="none")
    with pytest.raises(ValueError, match="out must have the shape"):
        fastact.cross_entropy_backward(1.0, x, np.array([0, 1, 2, 3]), out=np.zeros((4, 5), np.float64))
    with pytest.raises(ValueError, match="out overlaps x without being x"):
        big = np.zeros((5, 5), np.float32)
        fastact.cross_entropy_backward(1.0, big[:4], np.array([0, 1, 2, 3]), out=big[1:])


def test_uint64_targets_beyond_int64_are_refused_not_wrapped():
    x = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match="is not a class"):
        fastact.cross_entropy(x, np.array([1, 2**63 + 1], dtype=np.uint64))


def test_mean_over_only_ignored_targets_is_nan_as_pytorch():
    x = np.zeros((2, 5), np.float32)
    assert np.isnan(fastact.cross_entropy(x, np.array([-100, -100])))
    assert fastact.cross_entropy(x, np.array([-100, -100]), reduction="sum") == 0
    dx = fastact.cross_entropy_backward(1.0, x, np.array([-100, -100]), reduction="sum")
    assert not dx.any()


# ------------------------------------------------------------------------------------------ nll_loss
@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", [dict(), dict(reduction="sum"), dict(reduction="none"), dict(weight=True),
                                  dict(weight=True, ignore_index=2), dict(weight=True, ignore_index=2, reduction="none")],
                         ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("shape,axis", [((37, 11), -1), ((4, 11, 5), 1), ((11,), 0)])
def test_nll_loss_matches_pytorch(dtype, case, shape, axis):
    rng = np.random.default_rng(9)
    x, t, kw = class_case(rng, dtype, shape, axis, case)
    got = fastact.nll_loss(x, t, axis=axis, **kw)
    xt = torch.from_numpy(x).requires_grad_(True)
    tw = None if kw.get("weight") is None else torch.from_numpy(kw["weight"])
    xm = xt.movedim(axis, 1) if x.ndim > 1 else xt
    loss = torch.nn.functional.nll_loss(xm, torch.from_numpy(t), weight=tw,
                                        **{k2: v for k2, v in kw.items() if k2 != "weight"})
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(got, loss.detach().numpy(), rtol=tol, atol=tol)
    assert got.dtype == x.dtype and got.shape == tuple(loss.shape)
    red = kw.get("reduction", "mean")
    g = rng.standard_normal(loss.shape) if red == "none" else np.array(0.6)
    loss.backward(torch.from_numpy(np.asarray(g, dtype=dtype)))
    dx = fastact.nll_loss_backward(g.astype(dtype) if red == "none" else 0.6, x, t, axis=axis, **kw)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
    y = x.copy()
    assert fastact.nll_loss_backward(g.astype(dtype) if red == "none" else 0.6, y, t, axis=axis, out=y, **kw) is y
    np.testing.assert_array_equal(y, dx)


def test_nll_loss_of_log_softmax_is_cross_entropy():
    rng = np.random.default_rng(10)
    x = (rng.standard_normal((50, 40)) * 3).astype(np.float64)
    t = rng.integers(0, 40, 50)
    np.testing.assert_allclose(fastact.nll_loss(fastact.log_softmax(x), t), fastact.cross_entropy(x, t), rtol=1e-15)
    with pytest.raises(ValueError, match=r"nll_loss: target 40 at index \(3,\)"):
        t[3] = 40
        fastact.nll_loss(x, t)
    with pytest.raises(TypeError, match="log_probs has dtype int32"):
        fastact.nll_loss(np.zeros((2, 3), np.int32), np.array([0, 1]))


# ------------------------------------------------------------------------------------------ review findings
def test_unsigned_targets_with_their_own_ignore_index():
    # the segmentation convention: uint8 labels with 255 ignored (np.where once cast -1 to 255: a real class)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    for dt, ign in ((np.uint8, 255), (np.uint16, 65535), (np.uint32, 2**32 - 1)):
        t = np.array([1, ign, 7], dt)
        got = fastact.cross_entropy(x, t, ignore_index=ign, reduction="none")
        assert got[1] == 0
        np.testing.assert_array_equal(got[[0, 2]], fastact.cross_entropy(x[[0, 2]], np.array([1, 7]), reduction="none"))
        assert fastact.cross_entropy(x, t, ignore_index=ign) == fastact.cross_entropy(x[[0, 2]], np.array([1, 7]))


@needs_torch
def test_label_smoothing_with_a_masked_logit_is_inf_as_pytorch():
    for k in (3, 40):  # the row's tail block, and a whole block
        x = np.zeros((1, k), np.float32)
        x[0, 1] = -np.inf
        got = fastact.cross_entropy(x, [0], label_smoothing=0.1)
        want = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.tensor([0]), label_smoothing=0.1).item()
        assert got == want == np.inf


@needs_torch
def test_a_row_with_plus_inf_has_a_nan_loss_as_pytorch():
    x = np.float32([[np.inf, 0, 1]])
    want = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.tensor([1]), reduction="none").numpy()
    got = fastact.cross_entropy(x, [1], reduction="none")
    assert np.isnan(want[0]) and np.isnan(got[0])
    assert fastact.logsumexp(x)[0] == np.inf


def test_logsumexp_backward_over_axes_that_do_not_merge():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((5, 3, 4)).astype(np.float32)
    for axis, xs in (((0, 2), x), (None, x.T), ((0, 1), np.asfortranarray(x))):
        g = rng.standard_normal(fastact.logsumexp(xs, axis=axis).shape).astype(np.float32)
        got = fastact.logsumexp_backward(g, xs, axis=axis)
        ax = tuple(range(xs.ndim)) if axis is None else axis
        ref = np.expand_dims(g.astype(np.float64), ax) * np.exp(
            xs.astype(np.float64) - np.expand_dims(fastact.logsumexp(xs.astype(np.float64), axis=axis), ax))
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)


@needs_torch
def test_targets_weights_and_grads_as_torch_tensors():
    x = torch.randn(4, 5, dtype=torch.float64)
    t = torch.tensor([1, 0, 4, 2])
    w = torch.arange(1, 6)
    got = fastact.cross_entropy(x, t, weight=w)
    want = torch.nn.functional.cross_entropy(x, t, weight=w.double()).item()
    assert abs(float(got) - want) < 1e-14
    fastact.cross_entropy_backward(torch.tensor(1.0), x, t, weight=w)


def test_big_endian_logits_have_a_native_gradient():
    x = np.linspace(-2, 2, 20).reshape(4, 5).astype(">f4")
    t = np.array([1, 0, 4, 2])
    np.testing.assert_array_equal(fastact.cross_entropy_backward(1.0, x, t),
                                  fastact.cross_entropy_backward(1.0, x.astype("<f4"), t))
    np.testing.assert_array_equal(fastact.logsumexp_backward(np.ones(4), x), fastact.logsumexp_backward(np.ones(4), x.astype("<f4")))


def test_non_numeric_weights_and_grads_are_type_errors_naming_them():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="weight must hold real numbers"):
        fastact.cross_entropy(x, [0, 1], weight=["a", "b", "c"])
    with pytest.raises(TypeError, match="weight must hold real numbers"):
        fastact.cross_entropy(x, [0, 1], weight=np.ones(3, complex))
    with pytest.raises(TypeError, match="grad_output must hold real numbers"):
        fastact.cross_entropy_backward(["a", "b"], x, [0, 1], reduction="none")
    with pytest.raises(TypeError, match="grad_output must hold real numbers"):
        fastact.logsumexp_backward(np.array(["1", "2"]), x)


def test_an_infinite_row_loss_sums_to_inf_not_nan():
    x = np.zeros((3, 4), np.float32)
    x[1, 0] = -np.inf
    t = np.array([0, 0, 1])
    assert fastact.cross_entropy(x, t, reduction="none")[1] == np.inf
    assert fastact.cross_entropy(x, t, reduction="sum") == np.inf
    assert fastact.cross_entropy(x, t) == np.inf


# ------------------------------------------------------------------------------------------ probability targets
def ref_ce_probs(x, p, w=None, eps=0.0, z=0.0):
    """Per-row cross-entropy with probability targets in float64: sum_j v_j (m - x_j) + L sum_j v_j + z lse^2,
    v = w ((1 - eps) p + eps / K), L from the cancellation-free lse; a term with v_j = 0 is 0. x, p: (n, k)."""
    x, p = np.asarray(x, np.float64), np.asarray(p, np.float64)
    n, k = x.shape
    w = np.ones(k) if w is None else np.asarray(w, np.float64)
    out = np.zeros(n)
    for r in range(n):
        v = w * ((1 - eps) * p[r] + eps / k)
        j = int(np.argmax(x[r]))
        m = x[r, j]
        L = math.log1p(math.fsum(np.exp(np.delete(x[r], j) - m)))  # lse - m, its digits kept when tiny
        with np.errstate(invalid="ignore"):
            terms = np.where(v == 0, 0.0, v * (m - x[r]))
        out[r] = math.fsum(terms) + L * math.fsum(v) + z * (m + L) ** 2
    return out


def _soft_targets(rng, shape, axis, dtype, zeros=True):
    p = rng.random(shape) ** 3
    if zeros:
        p[rng.random(shape) < 0.3] = 0.0
    p = p / np.maximum(p.sum(axis=axis, keepdims=True), 1e-30)
    return p.astype(dtype)


PROB_CASES = [dict(), dict(reduction="sum"), dict(reduction="none"), dict(weight=True), dict(label_smoothing=0.2),
              dict(weight=True, label_smoothing=0.1, reduction="sum"), dict(weight=True, reduction="none")]


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", PROB_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("shape,axis", [((37, 11), -1), ((4, 11, 5), 1), ((11,), 0)])
def test_cross_entropy_probability_targets_match_pytorch(dtype, case, shape, axis):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    p = _soft_targets(rng, shape, axis, dtype)
    kw = dict(case)
    k = shape[axis]
    if kw.pop("weight", False):
        kw["weight"] = rng.uniform(0.2, 2.0, k)
    reduction = kw.get("reduction", "mean")
    tkw = {**kw, "weight": torch.tensor(kw["weight"], dtype=torch.float64 if dtype == np.float64 else torch.float32)} \
        if "weight" in kw else kw
    xt = torch.tensor(np.moveaxis(x, axis, 1) if len(shape) > 1 else x, requires_grad=True)
    pt = torch.tensor(np.moveaxis(p, axis, 1) if len(shape) > 1 else p)
    ref = torch.nn.functional.cross_entropy(xt, pt, **tkw)
    got = fastact.cross_entropy(x, p, axis=axis, **kw)
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    want = ref.detach().numpy()
    if reduction == "none" and len(shape) > 2:
        want = np.moveaxis(want, 1, axis) if want.ndim > 1 else want
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())
    go = rng.standard_normal(got.shape).astype(dtype) if reduction == "none" else np.asarray(1.3, dtype)
    gt = torch.tensor(np.moveaxis(go, axis if axis < go.ndim else -1, 1) if reduction == "none" and go.ndim > 1 else go)
    ref.backward(gt)
    g = fastact.cross_entropy_backward(go, x, p, axis=axis, **kw)
    gw = xt.grad.numpy()
    gw = np.moveaxis(gw, 1, axis) if len(shape) > 1 else gw
    np.testing.assert_allclose(g, gw, rtol=rtol, atol=rtol * np.abs(gw).max())


def test_cross_entropy_probability_targets_on_hostile_rows():
    rng = np.random.default_rng(12)
    rows = []
    for k in (1, 2, 33, 1000, 32000):
        rows.append((rng.choice([-1e4, 1e4], size=k) + rng.standard_normal(k)))
        rows.append(rng.standard_normal(k) * np.where(rng.random(k) < 0.1, 1e4, 1e-3))
        conf = rng.standard_normal(k)
        conf[0] = 60.0
        rows.append(conf)
    for row in rows:
        x = row.astype(np.float32)[None]
        k = x.shape[1]
        for p in (_soft_targets(rng, (1, k), -1, np.float32), np.eye(k, dtype=np.float32)[[int(np.argmax(x))]],
                  np.eye(k, dtype=np.float32)[[int(np.argmin(x))]]):
            for eps in (0.0, 0.1):
                want = ref_ce_probs(x, p, eps=eps)[0]
                got = float(fastact.cross_entropy(x, p, reduction="none", label_smoothing=eps)[0])
                assert abs(got - want) <= 1e-6 * max(abs(want), 2.0 ** -126), (k, eps, got, want)
    # a one-hot probability row is its class index's loss, to the bit in float64 terms of the same sums
    x = (rng.standard_normal((50, 17)) * 5).astype(np.float32)
    t = rng.integers(0, 17, 50)
    onehot = np.eye(17, dtype=np.float32)[t]
    np.testing.assert_allclose(fastact.cross_entropy(x, onehot, reduction="none"),
                               fastact.cross_entropy(x, t, reduction="none"), rtol=2e-7)
    np.testing.assert_allclose(fastact.cross_entropy_backward(1.0, x, onehot),
                               fastact.cross_entropy_backward(1.0, x, t), rtol=2e-6, atol=1e-9)


@needs_torch
def test_a_zero_probability_beside_a_masked_logit_adds_nothing_where_pytorch_gives_nan():
    x = np.array([[2.0, -np.inf, 0.5]], np.float32)
    p = np.array([[0.7, 0.0, 0.3]], np.float32)
    got = float(fastact.cross_entropy(x, p))
    want = ref_ce_probs(x, p)[0]
    assert np.isfinite(got) and abs(got - want) <= 1e-6 * want
    assert np.isnan(torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(p)).item())
    g = fastact.cross_entropy_backward(1.0, x, p)
    assert np.all(np.isfinite(g)) and g[0, 1] == 0


def test_probability_targets_are_thread_and_isa_independent_and_in_place():
    rng = np.random.default_rng(13)
    x = (rng.standard_normal((300, 4099)) * 3).astype(np.float32)
    p = _soft_targets(rng, x.shape, -1, np.float32)
    w = rng.uniform(0.5, 1.5, 4099)
    seen = set()
    before, isa = fastact.get_num_threads(), fastact.get_isa()
    try:
        for s in fastact.supported_isas():
            fastact.set_isa(s)
            for n in (1, 2, 3):
                fastact.set_num_threads(n)
                seen.add((fastact.cross_entropy(x, p, weight=w, z_loss=1e-3).tobytes(),
                          fastact.cross_entropy_backward(1.0, x, p, weight=w, z_loss=1e-3).tobytes()))
    finally:
        fastact.set_num_threads(before)
        fastact.set_isa(isa)
    assert len(seen) == 1
    want = fastact.cross_entropy_backward(1.0, x, p, weight=w)
    xc = x.copy()
    fastact.cross_entropy_backward(1.0, xc, p, weight=w, out=xc)
    assert np.array_equal(xc, want)
    with pytest.raises(ValueError, match="out overlaps target"):
        fastact.cross_entropy_backward(1.0, x, p, out=p)
    # z_loss: d/dx of z lse^2 is 2 z lse softmax
    z = fastact.cross_entropy(x[:3], p[:3], z_loss=0.5, reduction="sum") - fastact.cross_entropy(x[:3], p[:3],
                                                                                                   reduction="sum")
    lse = fastact.logsumexp(x[:3].astype(np.float64))
    assert float(z) == pytest.approx(0.5 * float(np.sum(lse ** 2)), rel=1e-5)
