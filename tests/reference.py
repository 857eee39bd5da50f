"""The references an op brings: float64 (numerically stable formulas), mpmath, and its PyTorch counterpart.

Each takes a float64 array (the exact float32 or float64 inputs) and the op's parameters, already
rounded to the array's dtype as fastact rounds them, and returns the float64 result. Accurate in the
tails: erfc instead of 1 + erf, expm1 instead of exp - 1, sigmoid evaluated on the side where exp does
not overflow.
"""
from __future__ import annotations

import math

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


def forward(op, x, **p):
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        if op == "relu":
            return np.where(x > 0, x, np.where(np.isnan(x), x, 0.0))
        if op == "leaky_relu":
            return np.where(x > 0, x, x * p["negative_slope"])
        if op == "elu":
            return np.where(x > 0, x, p["alpha"] * np.expm1(x))
        if op == "gelu":
            if p.get("approximate", "none") == "tanh":
                return _x_sigmoid(x, _gelu_tanh_w(x))
            r = 0.5 * x * erfc(-x / math.sqrt(2.0))
            return np.where(x == -np.inf, -0.0, np.where(np.isnan(x), x, r))
        if op == "silu":
            return _x_sigmoid(x, p["beta"] * x)
        if op == "sigmoid":
            return _sigmoid(x)
        if op == "tanh":
            return np.tanh(x)
    raise KeyError(op)


def derivative(op, x, **p):
    """d op / dx at x (float64)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        if op == "relu":
            return np.where(x > 0, 1.0, np.where(np.isnan(x), x, 0.0))
        if op == "leaky_relu":
            return np.where(x > 0, 1.0, np.where(np.isnan(x), x, p["negative_slope"]))
        if op == "elu":
            return np.where(x > 0, 1.0, p["alpha"] * np.exp(np.minimum(x, 0)))
        if op == "gelu":
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
        if op == "silu":
            b = p["beta"]
            w = b * x
            s = _sigmoid(w)
            z = np.exp(-np.abs(w))
            return s + np.where(z == 0, 0.0, x * b * z / (1 + z) ** 2)
        if op == "sigmoid":
            z = np.exp(-np.abs(x))
            return z / (1 + z) ** 2
        if op == "tanh":
            z = np.exp(-2 * np.abs(x))
            return 4 * z / (1 + z) ** 2
    raise KeyError(op)


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
    d = np.abs(derivative(op, x, **p))
    with np.errstate(all="ignore"):
        if op == "gelu":
            if p.get("approximate", "none") == "tanh":
                w = _gelu_tanh_w(x)
                k = 2.0 * math.sqrt(2.0 / math.pi)
                z = np.exp(-np.abs(w))
                return np.maximum(_sigmoid(w), np.abs(x * k * (1 + 3 * 0.044715 * x * x)) * z / (1 + z) ** 2)
            phi = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
            return np.maximum(0.5 * erfc(-x / math.sqrt(2.0)), np.abs(x) * phi)
        if op == "silu":
            w = p["beta"] * x
            z = np.exp(-np.abs(w))
            return np.maximum(_sigmoid(w), np.abs(w) * z / (1 + z) ** 2)
    return d


def derivative_from_y(op, y, **p):
    """d op / dx as a function of the forward output y (float64), for ops whose backward accepts y."""
    y = np.asarray(y, dtype=np.float64)
    if op == "relu":
        return np.where(y > 0, 1.0, np.where(np.isnan(y), y, 0.0))
    if op == "leaky_relu":
        return np.where(y > 0, 1.0, np.where(np.isnan(y), y, p["negative_slope"]))
    if op == "elu":
        return np.where(y > 0, 1.0, y + p["alpha"])
    if op == "sigmoid":
        return y * (1 - y)
    if op == "tanh":
        return (1 - y) * (1 + y)  # 1 - y*y would cancel near |y| = 1
    raise KeyError(op)


def forward_mp(op, x, **p):
    """mpmath reference (50 digits) for one float64 input."""
    import mpmath as mp

    mp.mp.dps = 50
    x = mp.mpf(float(x))
    if op == "relu":
        return x if x > 0 else mp.mpf(0)
    if op == "leaky_relu":
        return x if x > 0 else x * mp.mpf(p["negative_slope"])
    if op == "elu":
        return x if x > 0 else mp.mpf(p["alpha"]) * mp.expm1(x)
    if op == "gelu":
        if p.get("approximate", "none") == "tanh":
            w = 2 * mp.sqrt(2 / mp.pi) * (x + mp.mpf("0.044715") * x ** 3)
            return x / (1 + mp.exp(-w))
        return x * mp.ncdf(x)
    if op == "silu":
        return x / (1 + mp.exp(-mp.mpf(p["beta"]) * x))
    if op == "sigmoid":
        return 1 / (1 + mp.exp(-x))
    if op == "tanh":
        return mp.tanh(x)
    raise KeyError(op)


def derivative_mp(op, x, **p):
    """mpmath reference (50 digits) of d op / dx at one float64 input (away from kinks)."""
    import mpmath as mp

    mp.mp.dps = 50
    x = mp.mpf(float(x))

    def sig(w):
        return 1 / (1 + mp.exp(-w))

    if op == "relu":
        return mp.mpf(1) if x > 0 else mp.mpf(0)
    if op == "leaky_relu":
        return mp.mpf(1) if x > 0 else mp.mpf(p["negative_slope"])
    if op == "elu":
        return mp.mpf(1) if x > 0 else mp.mpf(p["alpha"]) * mp.exp(x)
    if op == "gelu":
        if p.get("approximate", "none") == "tanh":
            k = 2 * mp.sqrt(2 / mp.pi)
            c = mp.mpf("0.044715")
            w = k * (x + c * x ** 3)
            s = sig(w)
            return s + x * k * (1 + 3 * c * x * x) * s * (1 - s)
        return mp.ncdf(x) + x * mp.npdf(x)
    if op == "silu":
        b = mp.mpf(p["beta"])
        s = sig(b * x)
        return s + x * b * s * (1 - s)
    if op == "sigmoid":
        s = sig(x)
        return s * (1 - s)
    if op == "tanh":
        return 1 - mp.tanh(x) ** 2
    raise KeyError(op)


def torch_forward(op):
    """The op's torch.nn.functional counterpart, as f(tensor, kwargs) (the parity tests' oracle)."""
    import torch
    import torch.nn.functional as F

    table = {
        "relu": lambda t, p: F.relu(t),
        "leaky_relu": lambda t, p: F.leaky_relu(t, p.get("negative_slope", 0.01)),
        "elu": lambda t, p: F.elu(t, p.get("alpha", 1.0)),
        "gelu": lambda t, p: F.gelu(t, approximate=p.get("approximate", "none")),
        # silu(x, beta) = x * sigmoid(beta x) = silu(beta x) / beta
        "silu": lambda t, p: F.silu(t * p["beta"]) / p["beta"] if "beta" in p else F.silu(t),
        "sigmoid": lambda t, p: torch.sigmoid(t),
        "tanh": lambda t, p: torch.tanh(t),
    }
    return table[op]
