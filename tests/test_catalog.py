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


@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus_threshold_edge_is_pytorchs(dtype):
    # PyTorch takes x where beta x, rounded to the dtype, exceeds threshold; a small threshold makes the
    # branch visible (softplus(0.5) / 3 = 0.3246 against x = 0.1667)
    torch = pytest.importorskip("torch")
    beta, threshold = 3.0, 0.5
    edge = dtype(threshold / beta)
    x = [edge]
    for _ in range(6):
        x = [np.nextafter(x[0], dtype(-1))] + x + [np.nextafter(x[-1], dtype(1))]
    x = np.array(x, dtype)
    t = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.softplus(t, beta, threshold)
    want.sum().backward()
    y = fastact.softplus(x, beta=beta, threshold=threshold)
    took_x = y == x
    np.testing.assert_array_equal(took_x, want.detach().numpy() == x)
    assert took_x.any() and not took_x.all()
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=4 * np.finfo(dtype).eps)
    g = fastact.softplus_backward(np.ones_like(x), x, beta=beta, threshold=threshold)
    np.testing.assert_array_equal(g == 1, t.grad.numpy() == 1)
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=8 * np.finfo(dtype).eps)


# far tails against mpmath (float64) and the float64 reference (float32): subnormal results, x^3/3 near 0
TAILS = [
    ("mish", {}, [-1.0, -40.0, -100.0, -600.0, -700.0, -740.0, -744.0, -745.1, 1e-300, -1e-300, 1e-8, 30.0, 1e10]),
    ("logsigmoid", {}, [-1e10, -40.0, 1.0, 40.0, 100.0, 700.0, 740.0, 745.1]),
    ("softplus", {"beta": 1.0, "threshold": np.inf}, [-745.1, -740.0, -700.0, -100.0, -40.0, 1e-300, 40.0, 700.0]),
    ("softplus", {"beta": 1e-3, "threshold": np.inf}, [-7.4e5, -1e5, -3e4, 3e4, 1e5]),
    ("softplus", {"beta": 1e3, "threshold": np.inf}, [-0.745, -0.7, -0.1, 1e-300, 0.7]),
    ("tanhshrink", {}, [1e-300, -1e-150, 1e-100, 1e-20, 1e-8, -3e-4, 0.1, 0.2499, -0.25, 0.2501, 1.0, 9.0, 20.0]),
]


@pytest.mark.parametrize("op,params,xs", TAILS, ids=[f"{t[0]}{t[1].get('beta', '')}" for t in TAILS])
def test_tails_of_the_log1p_exp_family(op, params, xs):
    x = np.array(xs, np.float64)
    y = getattr(fastact, op)(x, **params)
    ref = np.array([float(R.forward_mp(op, v, **params)) for v in x])
    err = R.ulp_error(y, ref, np.float64)
    assert err.max() <= 4, (op, x[np.argmax(err)], y[np.argmax(err)], ref[np.argmax(err)])
    assert np.all(np.signbit(y) == np.signbit(ref)), (op, y, ref)
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    x32 = x32[np.isfinite(x32)]
    p32 = {k: float(np.float32(v)) for k, v in params.items()}
    y32 = getattr(fastact, op)(x32, **params)
    ref32 = R.forward(op, x32.astype(np.float64), **p32)
    assert R.ulp_error(y32, ref32, np.float32).max() <= 2, (op, x32, y32, ref32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_limits_and_signs_of_zero(dtype):
    inf = np.inf
    x = np.array([-inf, inf, -0.0, 0.0], dtype)
    one = np.ones_like(x)
    mish, dmish = fastact.mish(x), fastact.mish_backward(one, x)
    np.testing.assert_array_equal(mish, [0, inf, 0, 0])
    np.testing.assert_array_equal(np.signbit(mish), [True, False, True, False])  # x tanh(softplus(x)) -> -0
    np.testing.assert_array_equal(dmish, [0, 1, 0.6, 0.6] if dtype == np.float64 else dtype([0, 1, 0.6, 0.6]))
    assert np.signbit(dmish[0])  # e^x (1 + x): negative all the way to -inf
    ls = fastact.logsigmoid(x)
    np.testing.assert_array_equal(ls, [-inf, 0, -np.log(dtype(2)), -np.log(dtype(2))])
    assert np.signbit(ls[1])  # -exp(-x)
    np.testing.assert_array_equal(fastact.logsigmoid_backward(one, x), [1, 0, 0.5, 0.5])
    np.testing.assert_array_equal(fastact.softplus(x, threshold=inf), [0, inf, np.log(dtype(2)), np.log(dtype(2))])
    np.testing.assert_array_equal(fastact.softplus_backward(one, x, threshold=inf), [0, 1, 0.5, 0.5])
    ts = fastact.tanhshrink(x)
    np.testing.assert_array_equal(ts, [-inf, inf, 0, 0])
    np.testing.assert_array_equal(np.signbit(ts), [True, False, True, False])  # odd: x^3 / 3 near 0
    np.testing.assert_array_equal(fastact.tanhshrink_backward(one, x), [1, 1, 0, 0])
    assert np.all(np.isnan(fastact.mish_backward(one[:1], np.array([np.nan], dtype))))


def test_readme_rows_where_pytorch_is_off():
    # the README's table: PyTorch 2.13's float32 mish gives -1.44e-43 at -103 (24% off), its tanhshrink
    # 3.49e-10 at 1e-3 (x - tanh(x) cancels) and 0 at 1e-10
    for op, x in [("mish", -103.0), ("tanhshrink", 1e-3), ("tanhshrink", 1e-10)]:
        x32 = np.float32([x])
        want = float(R.forward_mp(op, float(x32[0])))
        got = getattr(fastact, op)(x32)
        assert R.ulp_error(got, np.float64([want]), np.float32)[0] <= 1.0, (op, x, got, want)
    torch = pytest.importorskip("torch")
    if not torch.__version__.startswith("2.13"):
        pytest.skip("the README's PyTorch column is PyTorch 2.13's")
    F = torch.nn.functional
    t = torch.tensor
    assert abs(F.mish(t([-103.0])).item() / -1.907680273e-43 - 1) > 0.2
    assert abs(F.tanhshrink(t([1e-3])).item() / 3.333332475e-10 - 1) > 0.04
    assert F.tanhshrink(t([1e-10])).item() == 0.0
