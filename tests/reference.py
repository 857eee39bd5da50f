"""The references an op brings: float64 (numerically stable formulas), mpmath, and its PyTorch counterpart.

Each takes a float64 array (the exact float32 or float64 inputs) and the op's parameters, already
rounded to the array's dtype as fastact rounds them, and returns the float64 result. Accurate in the
tails: erfc instead of 1 + erf, expm1 instead of exp - 1, sigmoid evaluated on the side where exp does
not overflow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

try:  # vectorized and accurate (Cephes); math.erfc otherwise, the same accuracy, slower
    from scipy.special import erfc as _scipy_erfc
except ImportError:  # pragma: no cover - depends on the environment
    _scipy_erfc = None
_erfc = np.frompyfunc(math.erfc, 1, 1)


def erfc(x):
    x = np.asarray(x, dtype=np.float64)
    if _scipy_erfc is not None:
        return _scipy_erfc(x)
    return _erfc(x).astype(np.float64)


def _sigmoid(w):
    w = np.asarray(w, dtype=np.float64)
    out = np.empty_like(w)
    pos = w >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-w[pos]))
    e = np.exp(w[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _x_sigmoid(x, w):
    # x * sigmoid(w) without forming a subnormal sigmoid first: x * exp(w) / (1 + exp(w)) for w < 0
    out = np.empty_like(x)
    pos = w >= 0
    out[pos] = x[pos] / (1.0 + np.exp(-w[pos]))
    wn = w[~pos]
    with np.errstate(over="ignore", invalid="ignore"):
        out[~pos] = np.where(np.isinf(x[~pos]) & np.isinf(wn), np.copysign(0.0, x[~pos]),
                             x[~pos] * np.exp(wn) / (1.0 + np.exp(wn)))
    return out


def _gelu_tanh_w(x):
    k = 2.0 * math.sqrt(2.0 / math.pi)
    with np.errstate(over="ignore", invalid="ignore"):
        return k * (x + 0.044715 * x * x * x)


# ---- One record per op: its float64 forward and derivative, the derivative's scale (the magnitude of its
# largest term, for an absolute tolerance near its zeros; |derivative| unless given), the derivative from
# the forward output y (ops whose backward accepts y), mpmath's forward and derivative (50 digits, on
# an mpf; away from kinks), and its PyTorch counterpart f(tensor, params). x: a float64 array; p: the
# op's parameters, rounded to the array's dtype as fastact rounds them.
@dataclass(frozen=True)
class Ref:
    forward: Callable
    derivative: Callable
    mp_forward: Callable
    mp_derivative: Callable
    torch: Callable
    derivative_scale: Optional[Callable] = None
    from_y: Optional[Callable] = None


def _nan_or(x, v):
    return np.where(np.isnan(x), x, v)


def _mp_sigmoid(w):
    import mpmath as mp

    return 1 / (1 + mp.exp(-w))


def _gelu_forward(x, **p):
    if p.get("approximate", "none") == "tanh":
        return _x_sigmoid(x, _gelu_tanh_w(x))
    r = 0.5 * x * erfc(-x / math.sqrt(2.0))
    return np.where(x == -np.inf, -0.0, _nan_or(x, r))


def _gelu_derivative(x, **p):
    if p.get("approximate", "none") == "tanh":
        w = _gelu_tanh_w(x)
        s = _sigmoid(w)
        k = 2.0 * math.sqrt(2.0 / math.pi)
        wp = k * (1 + 3 * 0.044715 * x * x)
        z = np.exp(-np.abs(w))
        sp = z / (1 + z) ** 2  # s * (1 - s) without cancellation
        return s + np.where(sp == 0, 0.0, x * wp * sp)  # the limits at +-inf: 1 and 0
    phi = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return 0.5 * erfc(-x / math.sqrt(2.0)) + np.where(phi == 0, 0.0, x * phi)


def _gelu_scale(x, **p):
    if p.get("approximate", "none") == "tanh":
        w = _gelu_tanh_w(x)
        k = 2.0 * math.sqrt(2.0 / math.pi)
        z = np.exp(-np.abs(w))
        return np.maximum(_sigmoid(w), np.abs(x * k * (1 + 3 * 0.044715 * x * x)) * z / (1 + z) ** 2)
    phi = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return np.maximum(0.5 * erfc(-x / math.sqrt(2.0)), np.abs(x) * phi)


def _gelu_mp(x, **p):
    import mpmath as mp

    if p.get("approximate", "none") == "tanh":
        w = 2 * mp.sqrt(2 / mp.pi) * (x + mp.mpf("0.044715") * x ** 3)
        return x / (1 + mp.exp(-w))
    return x * mp.ncdf(x)


def _gelu_mp_derivative(x, **p):
    import mpmath as mp

    if p.get("approximate", "none") == "tanh":
        k = 2 * mp.sqrt(2 / mp.pi)
        c = mp.mpf("0.044715")
        w = k * (x + c * x ** 3)
        s = _mp_sigmoid(w)
        return s + x * k * (1 + 3 * c * x * x) * s * (1 - s)
    return mp.ncdf(x) + x * mp.npdf(x)


def _silu_derivative(x, **p):
    b = p["beta"]
    w = b * x
    z = np.exp(-np.abs(w))
    return _sigmoid(w) + np.where(z == 0, 0.0, x * b * z / (1 + z) ** 2)


def _silu_scale(x, **p):
    w = p["beta"] * x
    z = np.exp(-np.abs(w))
    return np.maximum(_sigmoid(w), np.abs(w) * z / (1 + z) ** 2)


def _silu_mp_derivative(x, **p):
    import mpmath as mp

    b = mp.mpf(p["beta"])
    s = _mp_sigmoid(b * x)
    return s + x * b * s * (1 - s)


def _tanh_grad(u):
    z = np.exp(-2 * np.abs(u))
    return 4 * z / (1 + z) ** 2  # 1 - tanh(u)^2 without cancellation


_QUICK_GELU = 1.702


def _softcap_from_y(y, cap):
    # 1 - (y/cap)^2 = (cap - y)(cap + y) / cap^2, in long double: cap +- y exact, no cancellation left
    y, cap = y.astype(np.longdouble), np.longdouble(cap)
    return ((cap - y) * (cap + y) / (cap * cap)).astype(np.float64)


def _mp_clip(x, lo, hi):
    return min(max(x, _mp().mpf(lo)), _mp().mpf(hi))


def _mp_step(inside):
    return _mp().mpf(1) if inside else _mp().mpf(0)


def _shrink(x, lambd, bias):
    return np.where(x > lambd, x - bias, np.where(x < -lambd, x + bias, _nan_or(x, 0.0)))


def _shrink_derivative(x, lambd):
    return np.where(np.abs(x) > lambd, 1.0, _nan_or(x, 0.0))


def _mp_shrink(x, lambd, bias):
    return x - bias if x > lambd else x + bias if x < -lambd else _mp().mpf(0)


def _hardswish_forward(x, **p):
    return np.where(x <= -3, _nan_or(x, -0.0), np.where(x >= 3, x, x * (x + 3) / 6))


def _hardsigmoid_t(x, alpha, beta):
    # PyTorch's defaults (1/6 as the dtype rounds it, 1/2) are exactly x / 6 + 1/2 (fastact: (x + 3) / 6)
    if beta == 0.5 and alpha in (1 / 6, float(np.float32(1 / 6))):
        return x / 6 + 0.5
    return alpha * x + beta


def _mp_hardsigmoid_t(x, alpha, beta):
    mp = _mp()
    if beta == 0.5 and alpha in (1 / 6, float(np.float32(1 / 6))):
        return x / 6 + mp.mpf(0.5)
    return mp.mpf(alpha) * x + mp.mpf(beta)


def _hardswish_derivative(x, **p):
    return np.where(x <= -3, _nan_or(x, 0.0), np.where(x >= 3, 1.0, (2 * x + 3) / 6))


def _torch_celu(t, p):
    torch, F = _torch()
    a = p.get("alpha", 1.0)
    if t.dtype == torch.float32:
        return F.celu(t, a)
    # PyTorch's float64 celu gradient is only float32-accurate (about 1e-8 off): its composition instead
    return torch.where(t > 0, t, a * torch.expm1(torch.clamp(t, max=0) / a))


def _torch_hardsigmoid(t, p):
    torch, F = _torch()
    if not p and t.dtype == torch.float32:
        return F.hardsigmoid(t)
    # PyTorch's float64 hardsigmoid gradient is float32's 1/6; other alpha and beta are not PyTorch's op. The
    # composition with fastact's rounded parameters, alpha x + beta exact in float64 (fastact's one fma),
    # gradient 0 at the bounds as F.hardsigmoid's
    alpha = float(torch.tensor(p.get("alpha", 1 / 6), dtype=t.dtype))
    beta = float(torch.tensor(p.get("beta", 0.5), dtype=t.dtype))
    u = alpha * t.double() + beta
    return torch.where(u <= 0, 0 * u, torch.where(u >= 1, 0 * u + 1, u)).to(t.dtype)


def _torch_shrink(t, p):
    torch = _torch()[0]
    lambd, bias = p.get("lambd", 0.5), p.get("bias", 0.0)
    return torch.where(t > lambd, t - bias, torch.where(t < -lambd, t + bias, torch.zeros_like(t)))


def _softplus(w):
    with np.errstate(over="ignore"):
        return np.maximum(w, 0.0) + np.log1p(np.exp(-np.abs(w)))


def _softplus_forward(x, **p):
    w = p["beta"] * x  # exact in float64 for float32 x and beta
    return np.where(w > p["threshold"], x, _softplus(w) / p["beta"])


def _mp_softplus(x, **p):
    mp = _mp()
    b = mp.mpf(p["beta"])
    return x if b * x > p["threshold"] else mp.log1p(mp.exp(b * x)) / b


def _mish_parts(x):
    # tanh(softplus(x)) and x sigmoid(x) sech(softplus(x))^2: the derivative's two terms
    sp = _softplus(x)
    with np.errstate(over="ignore", invalid="ignore"):
        sech2 = 1.0 / np.cosh(sp) ** 2
        return np.tanh(sp), np.where(np.isinf(x), 0.0, _x_sigmoid(x, x) * sech2)


def _mp_mish_derivative(x, **p):
    mp = _mp()
    sp = mp.log1p(mp.exp(x))
    return mp.tanh(sp) + x * _mp_sigmoid(x) * mp.sech(sp) ** 2


def _tanh_series():
    """x - tanh(x) = sum c_k x^(2k+1), k >= 1: c_k = -2^(2n) (2^(2n) - 1) B_2n / (2n)!, n = k + 1, from exact
    Bernoulli numbers (Akiyama-Tanigawa)."""
    from fractions import Fraction

    b, a = [], []
    for m in range(30):
        a.append(Fraction(1, m + 1))
        for j in range(m, 0, -1):
            a[j - 1] = j * (a[j - 1] - a[j])
        b.append(a[0])  # B_m (B_1 = +1/2)
    out = []
    for n in range(2, 14):
        c = -Fraction(2 ** (2 * n) * (2 ** (2 * n) - 1)) * b[2 * n] / math.factorial(2 * n)
        out.append(float(c))
    return out


_TANHSHRINK_SERIES = _tanh_series()


def _tanhshrink(x):
    # |x| < 1/4: the series (terms fall by (2x/pi)^2 < 1/39); beyond, x - tanh(x) in long double, which
    # cancels at most 6 of its 64 bits there
    x2 = x * x
    s = np.zeros_like(x)
    for c in reversed(_TANHSHRINK_SERIES):
        s = s * x2 + c
    small = x * x2 * s
    xl = x.astype(np.longdouble)
    with np.errstate(invalid="ignore"):
        large = (xl - np.tanh(xl)).astype(np.float64)
    return np.where(np.abs(x) < 0.25, small, large)


def _mp_tanhshrink(x, **p):
    mp = _mp()
    if x == 0:
        return x
    with mp.workdps(mp.mp.dps + int(-2 * mp.log10(abs(x))) + 10 if abs(x) < 1 else mp.mp.dps):
        return +(x - mp.tanh(x))


def _torch():
    import torch
    import torch.nn.functional as F

    return torch, F


def _mp():
    import mpmath as mp

    return mp


REFS = {
    "relu": Ref(
        forward=lambda x, **p: np.where(x > 0, x, _nan_or(x, 0.0)),
        derivative=lambda x, **p: np.where(x > 0, 1.0, _nan_or(x, 0.0)),
        from_y=lambda y, **p: np.where(y > 0, 1.0, _nan_or(y, 0.0)),
        mp_forward=lambda x, **p: x if x > 0 else _mp().mpf(0),
        mp_derivative=lambda x, **p: _mp().mpf(1) if x > 0 else _mp().mpf(0),
        torch=lambda t, p: _torch()[1].relu(t)),
    "leaky_relu": Ref(
        forward=lambda x, **p: np.where(x > 0, x, x * p["negative_slope"]),
        derivative=lambda x, **p: np.where(x > 0, 1.0, _nan_or(x, p["negative_slope"])),
        from_y=lambda y, **p: np.where(y > 0, 1.0, _nan_or(y, p["negative_slope"])),
        mp_forward=lambda x, **p: x if x > 0 else x * _mp().mpf(p["negative_slope"]),
        mp_derivative=lambda x, **p: _mp().mpf(1) if x > 0 else _mp().mpf(p["negative_slope"]),
        torch=lambda t, p: _torch()[1].leaky_relu(t, p.get("negative_slope", 0.01))),
    "elu": Ref(
        forward=lambda x, **p: np.where(x > 0, x, p["alpha"] * np.expm1(x)),
        derivative=lambda x, **p: np.where(x > 0, 1.0, p["alpha"] * np.exp(np.minimum(x, 0))),
        from_y=lambda y, **p: np.where(y > 0, 1.0, y + p["alpha"]),
        mp_forward=lambda x, **p: x if x > 0 else _mp().mpf(p["alpha"]) * _mp().expm1(x),
        mp_derivative=lambda x, **p: _mp().mpf(1) if x > 0 else _mp().mpf(p["alpha"]) * _mp().exp(x),
        torch=lambda t, p: _torch()[1].elu(t, p.get("alpha", 1.0))),
    "gelu": Ref(
        forward=_gelu_forward, derivative=_gelu_derivative, derivative_scale=_gelu_scale,
        mp_forward=_gelu_mp, mp_derivative=_gelu_mp_derivative,
        torch=lambda t, p: _torch()[1].gelu(t, approximate=p.get("approximate", "none"))),
    "silu": Ref(
        forward=lambda x, **p: _x_sigmoid(x, p["beta"] * x),
        derivative=_silu_derivative, derivative_scale=_silu_scale,
        mp_forward=lambda x, **p: x / (1 + _mp().exp(-_mp().mpf(p["beta"]) * x)),
        mp_derivative=_silu_mp_derivative,
        # silu(x, beta) = x * sigmoid(beta x) = silu(beta x) / beta
        torch=lambda t, p: _torch()[1].silu(t * p["beta"]) / p["beta"] if "beta" in p else _torch()[1].silu(t)),
    "sigmoid": Ref(
        forward=lambda x, **p: _sigmoid(x),
        derivative=lambda x, **p: np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))) ** 2,
        from_y=lambda y, **p: y * (1 - y),
        mp_forward=lambda x, **p: _mp_sigmoid(x),
        mp_derivative=lambda x, **p: _mp_sigmoid(x) * (1 - _mp_sigmoid(x)),
        torch=lambda t, p: _torch()[0].sigmoid(t)),
    "tanh": Ref(
        forward=lambda x, **p: np.tanh(x),
        derivative=lambda x, **p: 4 * np.exp(-2 * np.abs(x)) / (1 + np.exp(-2 * np.abs(x))) ** 2,
        from_y=lambda y, **p: (1 - y) * (1 + y),  # 1 - y*y would cancel near |y| = 1
        mp_forward=lambda x, **p: _mp().tanh(x),
        mp_derivative=lambda x, **p: 1 - _mp().tanh(x) ** 2,
        torch=lambda t, p: _torch()[0].tanh(t)),
    "selu": Ref(
        forward=lambda x, **p: np.where(x > 0, p["scale"] * x, p["scale"] * p["alpha"] * np.expm1(x)),
        derivative=lambda x, **p: np.where(x > 0, p["scale"], p["scale"] * p["alpha"] * np.exp(np.minimum(x, 0))),
        mp_forward=lambda x, **p: _mp().mpf(p["scale"]) * (x if x > 0 else _mp().mpf(p["alpha"]) * _mp().expm1(x)),
        mp_derivative=lambda x, **p: _mp().mpf(p["scale"]) * (1 if x > 0 else _mp().mpf(p["alpha"]) * _mp().exp(x)),
        torch=lambda t, p: (_torch()[1].selu(t) if not p else
                            p.get("scale", 1.0507009873554805) * _torch()[1].elu(t, p.get("alpha", 1.6732632423543772)))),
    "celu": Ref(
        # x itself where |x| is tiny: x / alpha may be subnormal there, its bits lost
        forward=lambda x, **p: np.where((x > 0) | (np.abs(x) < 1e-300), x, p["alpha"] * np.expm1(x / p["alpha"])),
        derivative=lambda x, **p: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0) / p["alpha"])),
        mp_forward=lambda x, **p: x if x > 0 else _mp().mpf(p["alpha"]) * _mp().expm1(x / _mp().mpf(p["alpha"])),
        mp_derivative=lambda x, **p: _mp().mpf(1) if x > 0 else _mp().exp(x / _mp().mpf(p["alpha"])),
        torch=_torch_celu),
    "quick_gelu": Ref(
        forward=lambda x, **p: _x_sigmoid(x, _QUICK_GELU * x),
        derivative=lambda x, **p: _silu_derivative(x, beta=_QUICK_GELU),
        derivative_scale=lambda x, **p: _silu_scale(x, beta=_QUICK_GELU),
        mp_forward=lambda x, **p: x / (1 + _mp().exp(-_mp().mpf("1.702") * x)),
        mp_derivative=lambda x, **p: _silu_mp_derivative(x, beta=_mp().mpf("1.702")),
        torch=lambda t, p: t * _torch()[0].sigmoid(1.702 * t)),
    "softcap": Ref(
        # x itself where |x| is tiny: x / cap may be subnormal there, its bits lost
        forward=lambda x, **p: np.where(np.abs(x) < 1e-300, x, p["cap"] * np.tanh(x / p["cap"])),
        # x / cap in long double: its rounding would cost 2|u| ulp of exp(-2|u|) in float64
        derivative=lambda x, **p: _tanh_grad(x.astype(np.longdouble) / np.longdouble(p["cap"])).astype(np.float64),
        from_y=lambda y, **p: _softcap_from_y(y, p["cap"]),
        mp_forward=lambda x, **p: _mp().mpf(p["cap"]) * _mp().tanh(x / _mp().mpf(p["cap"])),
        mp_derivative=lambda x, **p: 1 - _mp().tanh(x / _mp().mpf(p["cap"])) ** 2,
        torch=lambda t, p: p["cap"] * _torch()[0].tanh(t / p["cap"])),
    "hardtanh": Ref(
        forward=lambda x, **p: np.clip(x, p["min_val"], p["max_val"]),
        derivative=lambda x, **p: np.where((x > p["min_val"]) & (x < p["max_val"]), 1.0, _nan_or(x, 0.0)),
        mp_forward=lambda x, **p: _mp_clip(x, p["min_val"], p["max_val"]),
        mp_derivative=lambda x, **p: _mp_step(p["min_val"] < x < p["max_val"]),
        torch=lambda t, p: _torch()[1].hardtanh(t, p.get("min_val", -1.0), p.get("max_val", 1.0))),
    "relu6": Ref(
        forward=lambda x, **p: np.where(x <= 0, 0.0, np.minimum(x, 6.0)),
        derivative=lambda x, **p: np.where((x > 0) & (x < 6), 1.0, _nan_or(x, 0.0)),
        mp_forward=lambda x, **p: _mp_clip(x, 0, 6),
        mp_derivative=lambda x, **p: _mp_step(0 < x < 6),
        torch=lambda t, p: _torch()[1].relu6(t)),
    "hardsigmoid": Ref(
        forward=lambda x, **p: np.where(np.isnan(x), x, np.clip(np.where(np.isinf(x) & (p["alpha"] == 0), p["beta"],
                                                                         _hardsigmoid_t(x, p["alpha"], p["beta"])),
                                                                0.0, 1.0)),
        derivative=lambda x, **p: np.where((_hardsigmoid_t(x, p["alpha"], p["beta"]) > 0)
                                           & (_hardsigmoid_t(x, p["alpha"], p["beta"]) < 1), p["alpha"], _nan_or(x, 0.0)),
        mp_forward=lambda x, **p: _mp_clip(_mp_hardsigmoid_t(x, p["alpha"], p["beta"]), 0, 1),
        mp_derivative=lambda x, **p: _mp().mpf(p["alpha"]) * _mp_step(0 < _mp_hardsigmoid_t(x, p["alpha"], p["beta"]) < 1),
        torch=_torch_hardsigmoid),
    "hardswish": Ref(
        forward=_hardswish_forward, derivative=_hardswish_derivative,
        derivative_scale=lambda x, **p: np.where((x > -3) & (x < 3), np.maximum(np.abs(x) / 3, 0.5),
                                                 np.abs(_hardswish_derivative(x))),
        mp_forward=lambda x, **p: _mp().mpf(0) if x <= -3 else x if x >= 3 else x * (x + 3) / 6,  # -0: float64 ref
        mp_derivative=lambda x, **p: _mp().mpf(0) if x <= -3 else _mp().mpf(1) if x >= 3 else (2 * x + 3) / 6,
        torch=lambda t, p: _torch()[1].hardswish(t)),
    "softshrink": Ref(
        forward=lambda x, **p: _shrink(x, p["lambd"], p["lambd"]),
        derivative=lambda x, **p: _shrink_derivative(x, p["lambd"]),
        mp_forward=lambda x, **p: _mp_shrink(x, p["lambd"], p["lambd"]),
        mp_derivative=lambda x, **p: _mp_step(abs(x) > p["lambd"]),
        torch=lambda t, p: _torch()[1].softshrink(t, p.get("lambd", 0.5))),
    "hardshrink": Ref(
        forward=lambda x, **p: _shrink(x, p["lambd"], 0.0),
        derivative=lambda x, **p: _shrink_derivative(x, p["lambd"]),
        mp_forward=lambda x, **p: _mp_shrink(x, p["lambd"], 0),
        mp_derivative=lambda x, **p: _mp_step(abs(x) > p["lambd"]),
        torch=lambda t, p: _torch()[1].hardshrink(t, p.get("lambd", 0.5))),
    "shrink": Ref(
        forward=lambda x, **p: _shrink(x, p["lambd"], p["bias"]),
        derivative=lambda x, **p: _shrink_derivative(x, p["lambd"]),
        mp_forward=lambda x, **p: _mp_shrink(x, p["lambd"], p["bias"]),
        mp_derivative=lambda x, **p: _mp_step(abs(x) > p["lambd"]),
        torch=_torch_shrink),
    "threshold": Ref(
        forward=lambda x, **p: np.where(x > p["threshold"], x, _nan_or(x, p["value"])),
        derivative=lambda x, **p: np.where(x > p["threshold"], 1.0, _nan_or(x, 0.0)),
        mp_forward=lambda x, **p: x if x > p["threshold"] else _mp().mpf(p["value"]),
        mp_derivative=lambda x, **p: _mp_step(x > p["threshold"]),
        torch=lambda t, p: _torch()[1].threshold(t, p["threshold"], p["value"])),
    "softsign": Ref(
        forward=lambda x, **p: np.where(np.isinf(x), np.sign(x), x / (1 + np.abs(x))),
        derivative=lambda x, **p: 1 / (1 + np.abs(x)) ** 2,
        mp_forward=lambda x, **p: x / (1 + abs(x)),
        mp_derivative=lambda x, **p: 1 / (1 + abs(x)) ** 2,
        torch=lambda t, p: _torch()[1].softsign(t)),
    "softplus": Ref(
        forward=_softplus_forward,
        derivative=lambda x, **p: np.where(p["beta"] * x > p["threshold"], 1.0, _nan_or(x, _sigmoid(p["beta"] * x))),
        mp_forward=_mp_softplus,
        mp_derivative=lambda x, **p: (_mp().mpf(1) if p["beta"] * x > p["threshold"]
                                      else _mp_sigmoid(_mp().mpf(p["beta"]) * x)),
        torch=lambda t, p: _torch()[1].softplus(t, p.get("beta", 1.0), p.get("threshold", 20.0))),
    "logsigmoid": Ref(
        # -0 where -log1p(exp(-x)) is a negative number too small for float64 (as the kernels round it)
        forward=lambda x, **p: np.where(x > 745, -0.0, -_softplus(-x)),
        derivative=lambda x, **p: _sigmoid(-x),
        mp_forward=lambda x, **p: -_mp().log1p(_mp().exp(-x)),
        mp_derivative=lambda x, **p: _mp_sigmoid(-x),
        torch=lambda t, p: _torch()[1].logsigmoid(t)),
    "mish": Ref(
        forward=lambda x, **p: np.where(x == -np.inf, -0.0, x * _mish_parts(x)[0]),
        derivative=lambda x, **p: _nan_or(x, np.sum(_mish_parts(x), axis=0)),
        derivative_scale=lambda x, **p: np.maximum(*np.abs(_mish_parts(x))),
        mp_forward=lambda x, **p: x * _mp().tanh(_mp().log1p(_mp().exp(x))),
        mp_derivative=_mp_mish_derivative,
        torch=lambda t, p: _torch()[1].mish(t)),
    "tanhshrink": Ref(
        forward=lambda x, **p: _tanhshrink(x),
        derivative=lambda x, **p: np.tanh(x) ** 2,
        mp_forward=_mp_tanhshrink,
        mp_derivative=lambda x, **p: _mp().tanh(x) ** 2,
        torch=lambda t, p: _torch()[1].tanhshrink(t)),
}


def forward(op, x, **p):
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        return REFS[op].forward(x, **p)


def derivative(op, x, **p):
    """d op / dx at x (float64)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        return REFS[op].derivative(x, **p)


# x - max costs |x - max| ulps in exp: evaluate in long double where it is wider than double
# (x86-64: 64-bit mantissa; AArch64: quad), which keeps the float64 reference within a few ulps.
_WIDE = np.longdouble


def softmax(x, axis=-1):
    x = np.asarray(x, dtype=_WIDE)
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float64)


def log_softmax(x, axis=-1):
    x = np.asarray(x, dtype=_WIDE)
    m = np.max(x, axis=axis, keepdims=True)
    return ((x - m) - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).astype(np.float64)


def ulp_error(got, ref, dtype):
    """|got - ref| in units of the last place of ref in dtype; 0 where both are the same special."""
    with np.errstate(invalid="ignore"):  # signalling NaN bit patterns warn when widened
        got = np.asarray(got, dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
    fi = np.finfo(dtype)
    with np.errstate(all="ignore"):
        e = np.floor(np.log2(np.abs(ref)))
        e = np.maximum(np.where(np.isfinite(e), e, fi.minexp), fi.minexp)
        ulp = np.exp2(e - fi.nmant)
        err = np.abs(got - ref) / ulp
    same_nan = np.isnan(got) & np.isnan(ref)
    overflow_ok = np.isinf(got) & (np.abs(ref) > float(fi.max)) & (np.sign(got) == np.sign(ref))
    same_inf = np.isinf(got) & np.isinf(ref) & (got == ref)
    err = np.where(same_nan | overflow_ok | same_inf, 0.0, err)
    return np.where(np.isnan(err), np.inf, err)


def derivative_scale(op, x, **p):
    """Magnitude of the largest term of the derivative (for the absolute tolerance near its zeros)."""
    x = np.asarray(x, dtype=np.float64)
    scale = REFS[op].derivative_scale
    if scale is None:
        return np.abs(derivative(op, x, **p))
    with np.errstate(all="ignore"):
        return scale(x, **p)


def derivative_from_y(op, y, **p):
    """d op / dx as a function of the forward output y (float64), for ops whose backward accepts y."""
    y = np.asarray(y, dtype=np.float64)
    from_y = REFS[op].from_y
    if from_y is None:
        raise KeyError(op)
    with np.errstate(all="ignore"):
        return from_y(y, **p)


def forward_mp(op, x, **p):
    """mpmath reference (50 digits) for one float64 input."""
    import mpmath as mp

    mp.mp.dps = 50
    return REFS[op].mp_forward(mp.mpf(float(x)), **p)


def derivative_mp(op, x, **p):
    """mpmath reference (50 digits) of d op / dx at one float64 input (away from kinks)."""
    import mpmath as mp

    mp.mp.dps = 50
    return REFS[op].mp_derivative(mp.mpf(float(x)), **p)


def torch_forward(op):
    """The op's torch.nn.functional counterpart, as f(tensor, kwargs) (the parity tests' oracle)."""
    return REFS[op].torch
