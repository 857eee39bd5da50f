"""Accuracy against float64 references accurate in the tails (SPEC section 4), on every ISA path, and
the bit-identity of all paths."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import fastact
import reference as R
from conftest import (BACKWARD_X_VARIANTS, BACKWARD_Y_VARIANTS, ELEMENTWISE, ELEMENTWISE_VARIANTS, backward_modes,
                      bit_patterns_f32, full_params, op_fn)

X32 = bit_patterns_f32()
# a dense sweep of the region where the functions bend, on top of the spread-out bit patterns
X32_DENSE = np.linspace(-120, 120, 1 << 18, dtype=np.float32)


@functools.lru_cache(maxsize=None)
def _ref32(name, key):
    p = dict(key)
    with np.errstate(invalid="ignore"):  # signalling-NaN bit patterns warn when widened
        x = np.concatenate([X32, X32_DENSE]).astype(np.float64)
    return R.forward(name, x, **p)


@pytest.mark.parametrize("op,kw", ELEMENTWISE_VARIANTS)
def test_float32_forward_within_2ulp_every_isa(op, kw, isa):
    x = np.concatenate([X32, X32_DENSE])
    y = op_fn(op)(x, **kw)
    ref = _ref32(op["name"], tuple(sorted(full_params(op, kw, np.float32).items())))
    err = R.ulp_error(y, ref, np.float32)
    i = int(np.argmax(err))
    assert err[i] <= 2.0, f"{op['name']} {kw} on {isa}: {err[i]:.3f} ulp at x={x[i]!r}: got {y[i]!r}, want {ref[i]!r}"


# silu takes a lean form for beta >= 1 (|x| <= |beta x|) and the general one below: both sides of the
# edge and far beyond, on every ISA.
@pytest.mark.parametrize("beta", [1e-30, 0.999, 1.0, 1.001, 2.0, 65536.0, 65537.0, 1e30, -1.0])
def test_silu_beta_edges_within_2ulp_every_isa(beta, isa):
    x = np.concatenate([X32, X32_DENSE])
    y = fastact.silu(x, beta=beta)
    with np.errstate(invalid="ignore"):
        ref = R.forward("silu", x.astype(np.float64), beta=float(np.float32(beta)))
    err = R.ulp_error(y, ref, np.float32)
    i = int(np.argmax(err))
    assert err[i] <= 2.0, f"silu beta={beta} on {isa}: {err[i]:.3f} ulp at x={x[i]!r}: got {y[i]!r}, want {ref[i]!r}"


@pytest.mark.parametrize("op,kw", ELEMENTWISE_VARIANTS)
def test_all_isas_bit_identical(op, kw):
    x = np.concatenate([X32, X32_DENSE])
    g = np.random.default_rng(0).standard_normal(x.size).astype(np.float32)
    before = fastact.get_isa()
    results = {}
    try:
        for isa in fastact.supported_isas():
            fastact.set_isa(isa)
            outs = [op_fn(op)(x, **kw)]
            for mode in backward_modes(op, kw):
                arg = x if mode == "x" else outs[0]
                outs.append(op_fn(op, "_backward")(g, **{mode: arg}, **kw))
            with np.errstate(over="ignore", invalid="ignore"):
                x64 = x.astype(np.float64) * 1.0001
            outs.append(op_fn(op)(x64, **kw))
            results[isa] = outs
    finally:
        fastact.set_isa(before)
    base = results["scalar"]
    for isa, outs in results.items():
        for a, b in zip(base, outs):
            assert_same_bits(a, b, f"{op['name']} {kw}: {isa} differs from scalar")


def assert_same_bits(a, b, msg):
    """Identical bits for every non-NaN value (so -0.0 != 0.0), NaN exactly where NaN (NaN payloads
    are not part of the contract)."""
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    assert np.array_equal(nan_a, nan_b), msg
    ia = a.view(np.uint32 if a.dtype == np.float32 else np.uint64)
    ib = b.view(np.uint32 if b.dtype == np.float32 else np.uint64)
    bad = np.flatnonzero((ia != ib) & ~nan_a)
    assert bad.size == 0, f"{msg}: {bad.size} values, first at {bad[0]}: {a[bad[0]]!r} vs {b[bad[0]]!r}"


@pytest.mark.parametrize("op,kw", ELEMENTWISE_VARIANTS)
def test_float64_forward_within_4ulp_of_mpmath(op, kw):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-40, 40, 300), rng.standard_normal(300) * 2,
                        -np.exp(rng.uniform(-40, 6, 150)), np.exp(rng.uniform(-40, 6, 150))])
    p = full_params(op, kw, np.float64)
    y = op_fn(op)(x, **kw)
    ref = np.array([float(R.forward_mp(op["name"], v, **p)) for v in x])
    err = R.ulp_error(y, ref, np.float64)
    i = int(np.argmax(err))
    assert err[i] <= 4.0, f"{op['name']} {kw}: {err[i]:.2f} ulp at x={x[i]!r}: got {y[i]!r}, want {ref[i]!r}"


@pytest.mark.parametrize("op,kw", ELEMENTWISE_VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values_follow_the_function(op, kw, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, np.finfo(dtype).smallest_subnormal,
                  -np.finfo(dtype).smallest_subnormal, np.finfo(dtype).max, -np.finfo(dtype).max], dtype=dtype)
    y = op_fn(op)(x, **kw)
    ref = R.forward(op["name"], x.astype(np.float64), **full_params(op, kw, dtype)).astype(dtype)
    assert np.isnan(y[0]), "NaN must propagate"
    for xi, yi, ri in zip(x[1:], y[1:], ref[1:]):
        if np.isnan(ri):
            assert np.isnan(yi), f"{op['name']}({xi!r}) = {yi!r}, want NaN"
        else:
            assert yi == ri and np.signbit(yi) == np.signbit(ri), f"{op['name']}({xi!r}) = {yi!r}, want {ri!r}"


def test_documented_limits():
    f32 = np.float32
    assert fastact.gelu(f32(-np.inf)) == 0 and np.signbit(fastact.gelu(f32(-np.inf)))
    assert fastact.gelu(f32(np.inf)) == np.inf
    assert fastact.sigmoid(f32(-np.inf)) == 0 and fastact.sigmoid(f32(np.inf)) == 1
    assert fastact.silu(f32(-np.inf)) == 0 and np.signbit(fastact.silu(f32(-np.inf)))
    assert np.isnan(fastact.relu(f32(np.nan)))
    assert fastact.tanh(f32(-np.inf)) == -1
    assert fastact.elu(f32(-np.inf), alpha=2.0) == -2.0
    # tails that others get wrong: values that are tiny but not zero
    assert fastact.gelu(f32(-10)) < 0 and abs(fastact.gelu(f32(-10)) / -7.6198530241604696e-23 - 1) < 2e-7
    assert fastact.sigmoid(f32(-100)) > 0  # 3.7e-44, a subnormal, not flushed
    assert fastact.elu(f32(-1e-30)) == f32(-1e-30)  # expm1, not exp - 1


def _check_backward(op, kw, x, g, dx, ref, dtype):
    p = full_params(op, kw, dtype)
    err = R.ulp_error(dx, ref, dtype)
    # near the derivative's zeros: 1e-7 (float32) of its largest term, absolute
    scale = np.abs(g.astype(np.float64)) * R.derivative_scale(op["name"], x.astype(np.float64), **p)
    eps = 1e-7 if dtype == np.float32 else 2e-16
    ok = (err <= 8) | (np.abs(dx.astype(np.float64) - ref) <= eps * scale)
    i = int(np.argmax(~ok))
    assert ok.all(), f"{op['name']} {kw}: {err[i]:.1f} ulp at x={x[i]!r}: got {dx[i]!r}, want {ref[i]!r}"


@pytest.mark.parametrize("op,kw", BACKWARD_X_VARIANTS)
def test_float32_backward_from_x_within_8ulp(op, kw):
    rng = np.random.default_rng(3)
    dtype = np.float32
    x = np.concatenate([rng.uniform(-30, 30, 100000), rng.standard_normal(100000) * 2,
                        np.array([0.0, -0.0, np.inf, -np.inf])]).astype(dtype)
    g = rng.uniform(-2, 2, x.size).astype(dtype)
    dx = op_fn(op, "_backward")(g, x, **kw)
    ref = g.astype(np.float64) * R.derivative(op["name"], x.astype(np.float64), **full_params(op, kw, dtype))
    _check_backward(op, kw, x, g, dx, ref, dtype)


@pytest.mark.parametrize("op,kw", BACKWARD_X_VARIANTS)
def test_float64_backward_from_x_within_8ulp_of_mpmath(op, kw):
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.uniform(-38, 38, 250), rng.standard_normal(250) * 2])
    g = rng.uniform(-2, 2, x.size)
    p = full_params(op, kw, np.float64)
    dx = op_fn(op, "_backward")(g, x, **kw)
    ref = np.array([float(gi * R.derivative_mp(op["name"], xi, **p)) for gi, xi in zip(g, x)])
    _check_backward(op, kw, x, g, dx, ref, np.float64)


@pytest.mark.parametrize("op,kw", BACKWARD_Y_VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_from_y_exact_to_what_y_holds(op, kw, dtype):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(-30, 30, 50000), rng.standard_normal(50000)]).astype(dtype)
    g = rng.uniform(-2, 2, x.size).astype(dtype)
    y = op_fn(op)(x, **kw)
    dx = op_fn(op, "_backward")(g, y=y, **kw)
    ref = g.astype(np.float64) * R.derivative_from_y(op["name"], y.astype(np.float64), **full_params(op, kw, dtype))
    err = R.ulp_error(dx, ref, dtype)
    i = int(np.argmax(err))
    assert err[i] <= 2, f"{op['name']} {kw}: {err[i]:.2f} ulp at y={y[i]!r}"
    # tanh' from y is 0 once y has rounded to +-1, whatever x was
    if op["name"] == "tanh":
        assert fastact.tanh_backward(np.ones(1, dtype), y=np.ones(1, dtype))[0] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cols", [1, 7, 31, 32, 33, 1000, 1024, 4099, 8200, 140_001])  # long rows: by chunks
def test_softmax_accuracy(dtype, cols, isa):
    rng = np.random.default_rng(cols)
    x = (rng.standard_normal((9, cols)) * 30).astype(dtype)
    y = fastact.softmax(x)
    ref = R.softmax(x.astype(np.float64))
    tol = 1e-6 if dtype == np.float32 else 1e-14
    # relative error, where the value is representable (below that, the subnormal spacing)
    sub = 2 * np.finfo(dtype).smallest_subnormal
    bad = np.abs(y - ref) > tol * ref + sub
    assert not bad.any(), f"{np.abs(y - ref)[bad][:3]} at ref {ref[bad][:3]}"
    assert np.all(np.abs(y.astype(np.float64).sum(-1) - 1) <= tol)
    ly = fastact.log_softmax(x)
    lref = R.log_softmax(x.astype(np.float64))
    assert np.all(np.abs(ly - lref) <= tol * np.maximum(1, np.abs(lref)))


def test_softmax_long_rows_and_specials():
    x = np.random.default_rng(0).standard_normal((2, 1 << 20)).astype(np.float32)
    assert np.all(np.abs(fastact.softmax(x).astype(np.float64).sum(-1) - 1) <= 1e-6)
    neg = np.full((1, 5), -np.inf, np.float32)
    assert np.isnan(fastact.softmax(neg)).all() and np.isnan(fastact.log_softmax(neg)).all()
    with_nan = np.array([[1.0, np.nan, 2.0]], np.float32)
    assert np.isnan(fastact.softmax(with_nan)).all()
    some_inf = np.array([[-np.inf, 0.0, 1.0]], np.float32)
    y = fastact.softmax(some_inf)
    assert y[0, 0] == 0 and abs(y.sum() - 1) < 1e-6
    assert fastact.log_softmax(some_inf)[0, 0] == -np.inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_softmax_backward_any_axis(dtype, axis):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 37, 5)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    y = fastact.softmax(x, axis=axis)
    yd = R.softmax(x.astype(np.float64), axis=axis)
    np.testing.assert_allclose(y, yd, rtol=1e-6 if dtype == np.float32 else 1e-14)
    dx = fastact.softmax_backward(g, y=y, axis=axis)
    y64 = y.astype(np.float64)
    ref = y64 * (g - (g * y64).sum(axis=axis, keepdims=True))
    tol = 1e-6 if dtype == np.float32 else 1e-14
    assert np.all(np.abs(dx - ref) <= tol * (np.abs(g) + np.abs(ref) + 1e-30).max())
    ly = fastact.log_softmax(x, axis=axis)
    dl = fastact.log_softmax_backward(g, y=ly, axis=axis)
    ref = g - np.exp(ly.astype(np.float64)) * g.sum(axis=axis, keepdims=True)
    assert np.all(np.abs(dl - ref) <= tol * np.maximum(1, np.abs(ref)))


def test_every_elementwise_op_has_a_reference():
    for op in ELEMENTWISE:
        R.forward(op["name"], np.zeros(1), **full_params(op, {}, np.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_x_sigmoid_gradients_at_the_float_limits(dtype, isa):
    """silu's and gelu tanh's gradients at |x| near the largest float: 0 on the left, 1 on the right (the
    product of e^w and x*w' once overflowed to -inf near -max before it was scaled down)."""
    fmax = float(np.finfo(dtype).max)
    x = np.array([-fmax, -0.99 * fmax, -fmax / 3, -1e30, fmax / 3, fmax, -np.inf, np.inf], dtype)
    g = np.ones_like(x)
    want = np.array([0, 0, 0, 0, 1, 1, 0, 1], dtype)
    for kw in ({}, {"beta": 2.0}, {"beta": 0.5}):
        np.testing.assert_array_equal(fastact.silu_backward(g, x, **kw), want, err_msg=f"silu {kw}")
    np.testing.assert_array_equal(fastact.gelu_backward(g, x, approximate="tanh"), want)


def test_every_unary_op_has_one_reference_record():
    """Adding a unary op brings one record to tests/reference.py (float64 forward and derivative, mpmath,
    PyTorch; the derivative from y where the backward takes y), and nothing else there."""
    names = {op["name"] for op in ELEMENTWISE}
    assert names == set(R.REFS), f"registry ops without a record: {names - set(R.REFS)}; records without an op: " \
                                 f"{set(R.REFS) - names}"
    for op in ELEMENTWISE:
        ref = R.REFS[op["name"]]
        assert (ref.from_y is not None) == (op["backward_from"] != "x"), op["name"]
