"""What the catalog's ops promise beyond the registry-wide suites: PyTorch's kink conventions, parameters
over their whole range (softcap's tiny and huge caps, celu's large alpha, hardtanh's infinite bounds), the
cross-parameter rule, and required parameters."""
from __future__ import annotations

import numpy as np
import pytest

import fastact
import reference as R

DTYPES = [np.float32, np.float64]

# (op, params, x, the gradient there): PyTorch's value at each kink (SPEC 2.1)
KINKS = [
    ("hardswish", {}, -3.0, 0.0), ("hardswish", {}, 3.0, 1.0),
    ("hardsigmoid", {}, -3.0, 0.0), ("hardsigmoid", {}, 3.0, 0.0),
    ("relu6", {}, 0.0, 0.0), ("relu6", {}, 6.0, 0.0),
    ("hardtanh", {}, -1.0, 0.0), ("hardtanh", {}, 1.0, 0.0),
    ("hardtanh", {"min_val": -np.inf, "max_val": 2.0}, 2.0, 0.0),
    ("softshrink", {}, 0.5, 0.0), ("softshrink", {}, -0.5, 0.0),
    ("hardshrink", {}, 0.5, 0.0), ("shrink", {"lambd": 1.0, "bias": 0.3}, -1.0, 0.0),
    ("threshold", {"threshold": 0.25, "value": 7.0}, 0.25, 0.0),
    ("selu", {}, 0.0, 1.6732632423543772 * 1.0507009873554805), ("celu", {}, 0.0, 1.0),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op,params,x,want", KINKS, ids=[f"{k[0]}@{k[2]}" for k in KINKS])
def test_gradient_at_kinks_is_pytorchs(op, params, x, want, dtype):
    got = getattr(fastact, op + "_backward")(np.ones(1, dtype), np.array([x], dtype), **params)[0]
    assert got == dtype(want), (op, x, got)


def test_against_torch_at_the_kinks():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for name, f, xs in [("hardswish", F.hardswish, [-3.0, 3.0]), ("hardsigmoid", F.hardsigmoid, [-3.0, 3.0]),
                        ("relu6", F.relu6, [0.0, 6.0]), ("hardtanh", F.hardtanh, [-1.0, 1.0]),
                        ("softshrink", F.softshrink, [-0.5, 0.5]), ("hardshrink", F.hardshrink, [-0.5, 0.5])]:
        for dtype, tdtype in [(np.float32, torch.float32), (np.float64, torch.float64)]:
            t = torch.tensor(xs, dtype=tdtype, requires_grad=True)
            f(t).sum().backward()
            got = getattr(fastact, name + "_backward")(np.ones(len(xs), dtype), np.array(xs, dtype))
            np.testing.assert_array_equal(got, t.grad.numpy(), err_msg=name)


@pytest.mark.parametrize("cap", [1e-30, 1e-6, 0.3, 30.0, 1e6, 1e30, 3e38])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softcap_for_any_cap(cap, dtype):
    rng = np.random.default_rng(7)
    x = np.concatenate([cap * rng.uniform(-30, 30, 20000), cap * np.logspace(-30, 1, 2000),
                        -cap * np.logspace(-30, 1, 2000), rng.uniform(-100, 100, 2000)])
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
    x = x[np.isfinite(x)]
    cap_r = float(dtype(cap))
    y = fastact.softcap(x, cap=cap)
    err = R.ulp_error(y, R.forward("softcap", x.astype(np.float64), cap=cap_r), dtype)
    bound = 2 if dtype == np.float32 else 4
    assert err.max() <= bound, (cap, float(x[np.argmax(err)]), float(err.max()))
    g = fastact.softcap_backward(np.ones_like(x), x, cap=cap)
    ref = R.derivative("softcap", x.astype(np.float64), cap=cap_r)
    assert (R.ulp_error(g, ref, dtype) <= 8).all()


@pytest.mark.parametrize("alpha", [1e-3, 0.37, 1.7, 1e3, 1e6])
def test_celu_for_any_alpha(alpha):
    rng = np.random.default_rng(8)
    x = np.concatenate([-alpha * rng.uniform(0, 40, 20000), -np.logspace(-44, 2, 3000)]).astype(np.float32)
    a = float(np.float32(alpha))
    y = fastact.celu(x, alpha=alpha)
    err = R.ulp_error(y, R.forward("celu", x.astype(np.float64), alpha=a), np.float32)
    assert err.max() <= 2, (alpha, float(x[np.argmax(err)]), float(err.max()))
    # the gradient exp(x / alpha) keeps x / alpha's remainder down to exp's underflow (it was dropped below
    # -60: 64 ulp at alpha = 1e-3, x = -0.0735)
    for dtype in DTYPES:
        xd = x.astype(dtype)
        g = fastact.celu_backward(np.ones_like(xd), xd, alpha=alpha)
        ref = R.derivative("celu", xd.astype(np.float64), alpha=float(dtype(alpha)))
        if dtype == np.float64:  # x / alpha's rounding in the float64 reference: mpmath on a sample
            idx = np.arange(0, xd.size, 97)
            xd, g = xd[idx], g[idx]
            ref = np.array([float(R.derivative_mp("celu", v, alpha=alpha)) for v in xd])
        err = R.ulp_error(g, ref, dtype)
        assert err.max() <= 8, (alpha, dtype, float(xd[np.argmax(err)]), float(err.max()))


def test_selu_where_scale_times_alpha_overflows():
    x = np.array([-1e-30, -1.0, -np.inf, 2.0], np.float32)
    np.testing.assert_array_equal(fastact.selu(x, alpha=3e38, scale=2.0),
                                  np.float32([-6e8, -np.inf, -np.inf, 4.0]))
    g = fastact.selu_backward(np.ones(1, np.float32), np.float32([-10.0]), alpha=3e38, scale=2.0)[0]
    assert abs(g / (2 * np.float64(np.float32(3e38)) * np.exp(-10.0)) - 1) < 3e-7
    assert fastact.selu(np.array([-1e-300]), alpha=1e200, scale=1e200)[0] == -1e100


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params", [{}, {"alpha": 0.2, "beta": 0.5}, {"alpha": 1 / 7, "beta": 0.3}, {"alpha": -0.4}])
def test_hardsigmoid_gradient_window_is_the_forwards(params, dtype):
    # the gradient is alpha exactly where the forward is strictly between 0 and 1 (was: a twice-rounded
    # window, 0 one ulp inside the bounds)
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.uniform(-8, 8, 100000), np.float32([2.4999998, -2.1, 2.9999998, -2.9999998, 3, -3])])
    x = np.concatenate([x, np.nextafter(x, np.inf), np.nextafter(x, -np.inf)]).astype(dtype)
    y = fastact.hardsigmoid(x, **params)
    g = fastact.hardsigmoid_backward(np.ones_like(x), x, **params)
    alpha = dtype(params.get("alpha", 1 / 6))
    np.testing.assert_array_equal(g, np.where((y > 0) & (y < 1), alpha, dtype(0)))


def test_hardsigmoid_defaults_are_pytorchs_exactly():
    # x / 6 + 1/2 with 1/6 exact: 0 at -3 and 1 at 3 in float64 too (the rounded 1/6 gave 2.8e-17 at -3)
    assert fastact.hardsigmoid(np.array([-3.0, 3.0])).tolist() == [0.0, 1.0]
    x = np.float32([-2.9999998])
    assert fastact.hardsigmoid(x)[0] == np.float32((np.float64(x[0]) + 3) / 6)
    torch = pytest.importorskip("torch")
    for dtype, tdtype in [(np.float32, torch.float32), (np.float64, torch.float64)]:
        xs = np.array([-3.0, np.nextafter(-3.0, 0), 2.9999998, 3.0], dtype)
        t = torch.tensor(xs, requires_grad=True)
        torch.nn.functional.hardsigmoid(t).sum().backward()
        want = (t.grad.numpy() != 0) * dtype(1 / 6)  # torch's float64 gradient carries float32's 1/6
        np.testing.assert_array_equal(fastact.hardsigmoid_backward(np.ones_like(xs), xs), want)
    # alpha = 0: beta everywhere, the infinities included (0 * inf would be NaN)
    np.testing.assert_array_equal(fastact.hardsigmoid(np.float32([np.inf, -np.inf, 1.0]), alpha=0.0, beta=0.3),
                                  np.float32([0.3, 0.3, 0.3]))


def test_hardswish_below_minus_three_is_negative_zero():
    y = fastact.hardswish(np.float32([-4.0, -3.0, -np.inf]))
    assert np.all(y == 0) and np.all(np.signbit(y))


def test_hardtanh_is_onnx_clip_with_infinite_bounds():
    x = np.array([-np.inf, -1e30, -2.0, 0.5, 2.0, 1e30, np.inf, np.nan], np.float32)
    np.testing.assert_array_equal(fastact.hardtanh(x, min_val=-np.inf, max_val=np.inf), x)
    np.testing.assert_array_equal(fastact.hardtanh(x, min_val=0.0, max_val=np.inf),
                                  np.array([0, 0, 0, 0.5, 2, 1e30, np.inf, np.nan], np.float32))
    g = fastact.hardtanh_backward(np.ones_like(x), x, min_val=-np.inf, max_val=1.0)
    np.testing.assert_array_equal(g, np.array([0, 1, 1, 1, 0, 0, 0, np.nan], np.float32))


def test_parameter_rules_and_required_parameters():
    x = np.linspace(-2, 2, 9, dtype=np.float32)
    with pytest.raises(ValueError, match=r"hardtanh: min_val must be <= max_val, got min_val=2 and max_val=1"):
        fastact.hardtanh(x, min_val=2.0, max_val=1.0)
    with pytest.raises(ValueError, match="hardtanh_backward: min_val must be <= max_val"):
        fastact.hardtanh_backward(x, x, min_val=np.inf)
    # equal bounds are allowed: a constant
    assert np.all(fastact.hardtanh(x, min_val=0.5, max_val=0.5) == 0.5)
    with pytest.raises(ValueError, match="softcap: cap must be > 0"):
        fastact.softcap(x, cap=0.0)
    with pytest.raises(ValueError, match=r"softcap: cap must be > 0 and a normal float32"):
        fastact.softcap(x, cap=1e-40)  # subnormal: x / cap's remainder is no longer exact
    with pytest.raises(ValueError, match=r"celu: alpha must be > 0 and normal"):
        fastact.celu(x.astype(np.float64), alpha=1e-310)
    # an infinite bound may also be one that rounds to inf in float32
    np.testing.assert_array_equal(fastact.hardtanh(x, min_val=-1e39, max_val=0.5),
                                  fastact.hardtanh(x, min_val=-np.inf, max_val=0.5))
    with pytest.raises(ValueError, match="softshrink: lambd must be >= 0"):
        fastact.softshrink(x, lambd=-0.1)
    with pytest.raises(ValueError, match="celu: alpha must be > 0"):
        fastact.celu(x, alpha=-1.0)
    with pytest.raises(ValueError, match="threshold: value must be a finite number"):
        fastact.threshold(x, threshold=0.0, value=np.nan)
    with pytest.raises(TypeError, match="cap"):
        fastact.softcap(x)
    with pytest.raises(TypeError, match="needs the parameters threshold, value"):
        fastact.bias_act(x, np.float32(0), "threshold")
    # shrink's parameter named bias beside bias_act's bias array (x and bias are positional-only)
    got = fastact.bias_act(x, np.float32(0.5), "shrink", lambd=1.0, bias=0.25)
    np.testing.assert_array_equal(got, fastact.shrink(x + np.float32(0.5), lambd=1.0, bias=0.25))


@pytest.mark.parametrize("beta", [1e-35, 1e-3, 0.37, 3.0, 1e3, 1e30])
def test_softplus_for_any_beta_with_no_threshold(beta):
    # beta x overflowing gives x (not inf); a tail divided by a small beta still rounds from exp(beta x)
    g = np.geomspace(1e-30, 3e38, 4001)
    x = np.concatenate([g, -g]).astype(np.float32)
    y = fastact.softplus(x, beta=beta, threshold=float("inf"))
    beta32 = float(np.float32(beta))  # the kernel's parameter, rounded to the array's dtype
    ref = R.forward("softplus", x.astype(np.float64), beta=beta32, threshold=float("inf"))
    assert R.ulp_error(y, ref, np.float32).max() <= 2.0
