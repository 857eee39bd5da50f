"""The element-wise losses (registry.h FASTACT_LOSS_OPS: mse_loss, huber_loss, smooth_l1_loss,
binary_cross_entropy_with_logits): against float64 references on hostile inputs, against PyTorch (values and
autograd gradients, every reduction and weight layout), their reductions (compensated, the same bits for any
thread count and ISA), 16-bit types, out=, and their errors. The loops run over the registry: a new loss needs
its reference and PyTorch twin here, nothing else."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastact

from test_losses import BF16, needs_torch, torch

if torch is not None:
    import torch.nn.functional as F

LOSSES = [o for o in fastact.ops() if o["kind"] == "loss"]
NAMES = [o["name"] for o in LOSSES]
TINY = 2.0 ** -126  # errors are relative to max(|value|, the smallest normal float32)


# ------------------------------------------------------------------------------------------ references
def _sigmoid(x):
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def reference(name, x, t, w=None, pw=None, **params):
    """float64 (loss, gradient, the gradient's scale: the size of its largest term, for relative bounds)."""
    x, t = np.asarray(x, np.float64), np.asarray(t, np.float64)
    d = x - t
    a = np.abs(d)
    if name == "mse_loss":
        return d * d, 2 * d, 2 * a
    if name == "huber_loss":
        k = params.get("delta", 1.0)
        g = np.clip(d, -k, k)
        return np.where(a <= k, 0.5 * d * d, k * (a - 0.5 * k)), g, np.abs(g)
    if name == "smooth_l1_loss":
        b = params.get("beta", 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(a < b, d / b, np.sign(d))
            return np.where(a < b, 0.5 * d * d / b, a - 0.5 * b), g, np.abs(g)
    if name == "binary_cross_entropy_with_logits":
        w = np.ones_like(x) if w is None else np.asarray(w, np.float64)
        pw = np.ones_like(x) if pw is None else np.asarray(pw, np.float64)
        ga, gb = (1 - t) * _sigmoid(x), pw * t * _sigmoid(-x)
        with np.errstate(invalid="ignore"):
            sp_neg = np.logaddexp(0, -x)
            sp_pos = np.logaddexp(0, x)
            la = np.where(pw * t == 0, 0.0, pw * t * sp_neg)
            lb = np.where(1 - t == 0, 0.0, (1 - t) * sp_pos)
        return w * (la + lb), w * (ga - gb), np.abs(w) * (np.abs(ga) + np.abs(gb))
    raise AssertionError(f"no reference for {name}: add it here")


def torch_loss(name, x, t, weight=None, pos_weight=None, reduction="mean", **params):
    if name == "binary_cross_entropy_with_logits":
        return F.binary_cross_entropy_with_logits(x, t, weight=weight, pos_weight=pos_weight, reduction=reduction)
    return getattr(F, name)(x, t, reduction=reduction, **params)


PARAMS = {"mse_loss": [{}], "huber_loss": [{}, {"delta": 0.37}, {"delta": 4.0}],
          "smooth_l1_loss": [{}, {"beta": 0.37}, {"beta": 0.0}], "binary_cross_entropy_with_logits": [{}]}
CASES = [pytest.param(n, p, id=f"{n}-{','.join(f'{k}={v}' for k, v in p.items()) or 'default'}")
         for n in NAMES for p in PARAMS[n]]


def test_every_loss_has_a_reference_and_cases():
    for n in NAMES:
        assert n in PARAMS
        reference(n, np.zeros(1), np.zeros(1), **PARAMS[n][0])


def _data(name, shape, rng, dtype=np.float32, scale=3.0):
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    if name == "binary_cross_entropy_with_logits":
        t = rng.uniform(0, 1, shape)
        t.reshape(-1)[::5] = 0.0
        t.reshape(-1)[1::5] = 1.0
        return x, t.astype(dtype)
    return x, (rng.standard_normal(shape) * scale).astype(dtype)


def _hostile(name, dtype=np.float32):
    """Inputs where the naive formulas fail: cancellation, huge and tiny values, the branch switch points."""
    rng = np.random.default_rng(5)
    n = 1 << 16
    if name == "binary_cross_entropy_with_logits":
        x = np.concatenate([rng.standard_normal(n) * s for s in (1, 10, 30, 100)] +
                           [np.array([100.0, -100.0, 1e30, -1e30, -20.0, 20.0, 0.0, -0.0, 87.0, -87.0, 104.0])])
        t = np.concatenate([rng.uniform(0, 1, 4 * n), np.array([0.3, 0.3, 0.3, 0.3, 0.0, 1.0, 0.5, 0.5, 1.0, 0.0, 1.0])])
        t[: 4 * n: 3] = np.round(t[: 4 * n: 3])
        return x.astype(dtype), t.astype(dtype)
    x = np.concatenate([rng.standard_normal(n) * s for s in (1e-3, 1, 30, 1e4, 1e18)])
    t = np.concatenate([x[: 2 * n] * (1 + rng.standard_normal(2 * n) * 1e-6),  # near-cancellation
                        rng.standard_normal(3 * n) * 30])
    return x.astype(dtype), t.astype(dtype)


def _switch_points(name, params, dtype=np.float32):
    """Inputs exactly at a Huber / smooth L1 branch switch (|d| = delta or beta) and one ulp on each side."""
    k = params.get("delta", params.get("beta", 1.0))
    t = np.array([0.0, 1.5, -2.25, 1e3], dtype)
    ds = [np.float32(k), np.nextafter(np.float32(k), np.float32(0)), np.nextafter(np.float32(k), np.float32(np.inf))]
    x = np.concatenate([t + s * d for d in ds for s in (1, -1)]).astype(dtype)
    return x, np.tile(t, 6)


# ------------------------------------------------------------------------------------------ accuracy
@pytest.mark.parametrize("name,params", CASES)
def test_float32_loss_and_gradient_within_1e_6_of_float64_on_hostile_inputs(name, params):
    inputs = [_hostile(name)] + ([_switch_points(name, params)] if name in ("huber_loss", "smooth_l1_loss") else [])
    for x, t in inputs:
        want, gwant, gscale = reference(name, x, t, **params)
        got = getattr(fastact, name)(x, t, reduction="none", **params).astype(np.float64)
        assert np.all(np.isfinite(got) == np.isfinite(want)), name
        fin = np.isfinite(want)
        err = np.abs(got[fin] - want[fin]) / np.maximum(np.abs(want[fin]), TINY)
        assert err.max() <= 1e-6, (name, params, x[fin][np.argmax(err)], t[fin][np.argmax(err)], err.max())
        g = getattr(fastact, name + "_backward")(np.ones_like(x), x, t, reduction="none", **params).astype(np.float64)
        fin = np.isfinite(gwant)
        gerr = np.abs(g[fin] - gwant[fin]) / np.maximum(gscale[fin], TINY)
        assert gerr.max() <= 1e-6, (name, params, x[fin][np.argmax(gerr)], gerr.max())


def test_bce_keeps_tiny_losses_and_never_overflows():
    x = np.array([-20.0, 20.0, 100.0, -100.0, 1e30, -1e30, np.inf, -np.inf], np.float32)
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.3, 0.3, 1.0, 0.0], np.float32)
    got = fastact.binary_cross_entropy_with_logits(x, t, reduction="none").astype(np.float64)
    sp20 = math.log1p(math.exp(-20.0))
    assert got[0] == pytest.approx(sp20, rel=1e-6) and got[1] == pytest.approx(sp20, rel=1e-6)
    assert got[2] == got[3] and abs(got[2] - math.exp(-100.0)) <= 2.0 ** -150  # subnormal in float32, not 0
    assert got[4] == pytest.approx(0.7e30, rel=1e-6) and got[5] == pytest.approx(0.3e30, rel=1e-6)
    assert got[6] == 0 and got[7] == 0  # a confident, right, infinite logit: no inf * 0
    g = fastact.binary_cross_entropy_with_logits_backward(np.ones_like(x), x, t, reduction="none")
    assert np.all(np.isfinite(g))
    assert g[0] == pytest.approx(1 / (1 + math.exp(20.0)), rel=1e-6)  # sigmoid(-20), not 0
    assert g[1] == pytest.approx(-1 / (1 + math.exp(20.0)), rel=1e-6)  # -(1 - sigmoid(20)) without cancellation


@needs_torch
def test_pytorch_loses_what_fastact_keeps():
    """The comparison the README quotes: PyTorch's BCE-with-logits formula cancels where the loss is small."""
    x = np.array([-20.0, -30.0, 25.0], np.float32)
    t = np.array([0.0, 0.0, 1.0], np.float32)
    want = reference("binary_cross_entropy_with_logits", x, t)[0]
    got = fastact.binary_cross_entropy_with_logits(x, t, reduction="none").astype(np.float64)
    theirs = torch_loss("binary_cross_entropy_with_logits", torch.tensor(x), torch.tensor(t), reduction="none").numpy()
    assert np.all(np.abs(got - want) <= 1e-6 * want)
    assert np.any(np.abs(theirs - want) > 0.5 * want)


# ------------------------------------------------------------------------------------------ PyTorch
BCE_WEIGHTS = [(None, None), ("full", None), (None, "classes"), ("rows", "classes"), ("scalar", "full")]


def _weights(kind, shape, rng, dtype):
    if kind is None:
        return None
    s = {"full": shape, "classes": shape[-1:], "rows": shape[:-1] + (1,), "scalar": ()}[kind]
    return rng.uniform(0.1, 2.0, s).astype(dtype)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(37,), (6, 11), (2, 3, 65)], ids=str)
@pytest.mark.parametrize("name,params", CASES)
def test_matches_pytorch_values_and_autograd(name, params, shape, reduction, dtype):
    rng = np.random.default_rng(len(shape) + len(name))
    x, t = _data(name, shape, rng, dtype)
    layouts = BCE_WEIGHTS if name == "binary_cross_entropy_with_logits" else [(None, None)]
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    for wk, pk in layouts:
        kw = {}
        w, pw = _weights(wk, shape, rng, dtype), _weights(pk, shape, rng, dtype)
        if name == "binary_cross_entropy_with_logits":
            kw = dict(weight=w, pos_weight=pw)
        tk = {k: (None if v is None else torch.tensor(v)) for k, v in kw.items()}
        xt = torch.tensor(x, requires_grad=True)
        ref = torch_loss(name, xt, torch.tensor(t), reduction=reduction, **tk, **params)
        got = getattr(fastact, name)(x, t, reduction=reduction, **kw, **params)
        assert got.dtype == x.dtype and got.shape == tuple(ref.shape)
        # absolute part: PyTorch's BCE is (1 - t) x + (1 + (pw - 1) t) softplus(-x), which cancels where the loss
        # is small next to |x|; fastact's own accuracy is held to the float64 reference right after
        np.testing.assert_allclose(got, ref.detach().numpy(), rtol=rtol, atol=rtol * np.abs(ref.detach().numpy()).max())
        if reduction == "none":
            want = reference(name, x, t, *(np.broadcast_to(v, shape) if v is not None else None for v in (w, pw)),
                             **params)[0]
            np.testing.assert_allclose(got, want, rtol=rtol, atol=0 if dtype == np.float64 else TINY)
        go = rng.standard_normal(shape).astype(dtype) if reduction == "none" else np.asarray(1.7, dtype)
        ref.backward(torch.tensor(go))
        g = getattr(fastact, name + "_backward")(go, x, t, reduction=reduction, **kw, **params)
        # absolute part: PyTorch's own gradient of BCE is sigmoid(x) - t, which cancels to within an ulp of 1
        # near its zeros (fastact's against float64 is the strict test above)
        np.testing.assert_allclose(g, xt.grad.numpy(), rtol=rtol, atol=rtol * np.abs(xt.grad.numpy()).max())


# ------------------------------------------------------------------------------------------ reductions
@pytest.mark.parametrize("name,params", CASES)
def test_reductions_over_millions_are_compensated_and_thread_and_isa_independent(name, params):
    rng = np.random.default_rng(3)
    x, t = _data(name, (1 << 21) + 77, rng)
    per = reference(name, x, t, **params)[0]
    exact_sum = math.fsum(per)
    before, isa = fastact.get_num_threads(), fastact.get_isa()
    seen = set()
    try:
        for s in fastact.supported_isas():
            fastact.set_isa(s)
            for n in (1, 2, 3):
                fastact.set_num_threads(n)
                total = getattr(fastact, name)(x, t, reduction="sum", **params)
                mean = getattr(fastact, name)(x, t, reduction="mean", **params)
                seen.add((total.tobytes(), mean.tobytes()))
    finally:
        fastact.set_num_threads(before)
        fastact.set_isa(isa)
    assert len(seen) == 1
    assert abs(float(total) - exact_sum) <= 1e-6 * abs(exact_sum)
    assert abs(float(mean) - exact_sum / x.size) <= 1e-6 * abs(exact_sum / x.size)


def test_empty_input_sums_to_zero_and_means_nan_as_pytorch():
    e = np.zeros(0, np.float32)
    for n in NAMES:
        assert getattr(fastact, n)(e, e, reduction="sum") == 0
        assert np.isnan(getattr(fastact, n)(e, e, reduction="mean"))
        assert getattr(fastact, n)(e, e, reduction="none").shape == (0,)


# ------------------------------------------------------------------------------------------ 16-bit
@pytest.mark.parametrize("dtype", [np.float16] + ([BF16] if BF16 is not None else []), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,params", CASES)
def test_16_bit_losses_are_the_float32_results_rounded_once(name, params, dtype):
    rng = np.random.default_rng(8)
    x, t = _data(name, (4097,), rng, dtype, scale=2.0)
    x32, t32 = x.astype(np.float32), t.astype(np.float32)
    got = getattr(fastact, name)(x, t, reduction="none", **params)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got.astype(np.float32),
                                  getattr(fastact, name)(x32, t32, reduction="none", **params).astype(dtype).astype(np.float32))
    go = rng.standard_normal(4097).astype(dtype)
    g = getattr(fastact, name + "_backward")(go, x, t, reduction="none", **params)
    want = (go.astype(np.float32) * getattr(fastact, name + "_backward")(np.ones_like(x32), x32, t32, reduction="none",
                                                                          **params))
    # dy * grad in float32 then one rounding: the same as the float32 kernel's product, rounded
    np.testing.assert_array_equal(g.astype(np.float32), want.astype(dtype).astype(np.float32))
    mean = float(getattr(fastact, name)(x, t, reduction="mean", **params))
    exact = math.fsum(reference(name, x32, t32, **params)[0]) / x.size
    assert abs(mean - exact) <= 2.0 ** -(8 if dtype == BF16 else 11) * abs(exact)  # one rounding to 16 bits


# ------------------------------------------------------------------------------------------ out= and errors
def test_out_may_be_the_input_or_the_target():
    rng = np.random.default_rng(2)
    x, t = _data("huber_loss", (3, 50), rng)
    want = fastact.huber_loss(x, t, reduction="none")
    xc = x.copy()
    r = fastact.huber_loss(xc, t, reduction="none", out=xc)
    assert r is xc and np.array_equal(xc, want)
    gw = fastact.mse_loss_backward(np.ones_like(x), x, t, reduction="none")
    tc = t.copy()
    fastact.mse_loss_backward(np.ones_like(x), x, tc, reduction="none", out=tc)
    assert np.array_equal(tc, gw)
    # a partial overlap goes through a temporary: still the right answer
    buf = np.concatenate([x.reshape(-1), [0.0]]).astype(np.float32)
    fastact.mse_loss(buf[:-1], t.reshape(-1), reduction="none", out=buf[1:])
    assert np.array_equal(buf[1:], fastact.mse_loss(x.reshape(-1), t.reshape(-1), reduction="none"))


def test_strided_and_broadcast_views():
    rng = np.random.default_rng(4)
    x, t = _data("binary_cross_entropy_with_logits", (8, 40), rng)
    pw = rng.uniform(0.5, 2, 40).astype(np.float32)
    a = fastact.binary_cross_entropy_with_logits(x[:, ::2], t[:, ::2], pos_weight=pw[::2], reduction="none")
    b = fastact.binary_cross_entropy_with_logits(np.ascontiguousarray(x[:, ::2]), np.ascontiguousarray(t[:, ::2]),
                                                 pos_weight=np.ascontiguousarray(pw[::2]), reduction="none")
    assert np.array_equal(a, b)
    s1 = fastact.mse_loss(x.T, t.T, reduction="sum")
    s2 = fastact.mse_loss(np.ascontiguousarray(x.T), np.ascontiguousarray(t.T), reduction="sum")
    assert s1 == s2


def test_signatures_are_the_spec_s():
    import inspect
    sig = lambda f: list(inspect.signature(f).parameters)  # noqa: E731
    assert sig(fastact.mse_loss) == ["pred", "target", "reduction", "out", "stream"]
    assert sig(fastact.huber_loss) == ["pred", "target", "delta", "reduction", "out", "stream"]
    assert sig(fastact.smooth_l1_loss) == ["pred", "target", "beta", "reduction", "out", "stream"]
    assert sig(fastact.binary_cross_entropy_with_logits) == ["logits", "target", "weight", "pos_weight", "reduction",
                                                            "out", "stream"]
    assert sig(fastact.huber_loss_backward)[:5] == ["grad_output", "pred", "target", "delta", "reduction"]
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    assert fastact.huber_loss(x, 0 * x, 0.5) == fastact.huber_loss(x, 0 * x, delta=0.5)  # SPEC's positional order


@pytest.mark.parametrize("name", NAMES)
def test_errors_name_the_argument(name):
    f, b = getattr(fastact, name), getattr(fastact, name + "_backward")
    first = "logits'" if name.startswith("binary") else "pred's"
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=rf"{name}: target has shape \(3,\); expected {first} shape \(4, 3\)"):
        f(x, np.zeros(3, np.float32))
    with pytest.raises(TypeError, match=rf"{name}: target has dtype float64; expected {first} dtype float32"):
        f(x, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=rf"{name}: reduction must be one of"):
        f(x, x, reduction="avg")
    with pytest.raises(ValueError, match=rf"{name}: out= is for reduction='none'"):
        f(x, x, out=x)
    with pytest.raises(ValueError, match=rf"{name}_backward: grad_output must be a scalar"):
        b(np.ones(4, np.float32), x, x)
    with pytest.raises(ValueError, match=rf"{name}_backward: grad_output has shape"):
        b(np.ones(4, np.float32), x, x, reduction="none")
    arg = "logits" if name.startswith("binary") else "pred"
    with pytest.raises(TypeError, match=rf"{name}: {arg} has dtype int64"):
        f(np.zeros((4, 3), np.int64), x)


def test_parameter_and_weight_errors():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="huber_loss: delta must be > 0"):
        fastact.huber_loss(x, x, delta=0.0)
    with pytest.raises(ValueError, match="smooth_l1_loss_backward: beta must be >= 0"):
        fastact.smooth_l1_loss_backward(1.0, x, x, beta=-1.0)
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: pos_weight has shape \(4,\), which does "
                                         r"not broadcast to logits' shape \(4, 3\)"):
        fastact.binary_cross_entropy_with_logits(x, x, pos_weight=np.ones(4, np.float32))
    with pytest.raises(TypeError, match="binary_cross_entropy_with_logits: weight has dtype float64"):
        fastact.binary_cross_entropy_with_logits(x, x, weight=np.ones(3))
    # numbers and lists take the input's dtype
    a = fastact.binary_cross_entropy_with_logits(x, x, weight=2.0, pos_weight=[1.0, 2.0, 3.0], reduction="none")
    b = fastact.binary_cross_entropy_with_logits(x, x, weight=np.float32(2.0) * np.ones_like(x),
                                                 pos_weight=np.array([1, 2, 3], np.float32), reduction="none")
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="weight holds a value too large for logits' dtype float16"):
        fastact.binary_cross_entropy_with_logits(x.astype(np.float16), x.astype(np.float16), weight=1e6)


def test_infinite_differences_square_to_inf_not_nan():
    for dt in (np.float32, np.float64):
        big = np.finfo(dt).max
        x = np.array([np.inf, -np.inf, big, 1.0], dt)
        t = np.array([0.0, 0.0, -big, 1.0], dt)
        assert np.array_equal(fastact.mse_loss(x, t, reduction="none"), np.array([np.inf, np.inf, np.inf, 0.0], dt))
        assert fastact.mse_loss(x, t) == np.inf


def test_byte_swapped_operands_are_the_same_dtype_and_give_native_results():
    rng = np.random.default_rng(6)
    x, t = _data("mse_loss", (50,), rng, np.float64)
    want = fastact.mse_loss(x, t, reduction="sum")
    got = fastact.mse_loss(x.astype(">f8"), t, reduction="sum")
    assert got == want and got.dtype == np.float64 and got.dtype.byteorder != ">"
    assert np.array_equal(fastact.mse_loss(x, t.astype(">f8"), reduction="none"), fastact.mse_loss(x, t, reduction="none"))


def test_a_16_bit_sum_that_overflows_is_inf_without_a_warning():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = fastact.mse_loss(np.full(10, 200, np.float16), np.zeros(10, np.float16), reduction="sum")
    assert r == np.inf and r.dtype == np.float16


def test_the_private_unary_entry_point_refuses_other_kinds():
    from fastact import _core
    for o in fastact.ops():
        if o["kind"] == "loss":
            with pytest.raises(ValueError, match="_elementwise: no such op"):
                _core._elementwise(o["id"], 1, np.ones(1000), np.ones(1000), None, (), None)
