"""Property tests (hypothesis): every registry op, direction and dtype on random shapes, layouts (negative,
zero, Fortran-order, gapped, misaligned and self-overlapping strides), values (specials included),
parameters in and out of their domain, and out= that is fresh, the input itself, a view overlapping an
input, or one whose own elements overlap. Each call gives exactly what the op gives on contiguous copies
of its arguments, or a clear exception naming the argument at fault; never a crash or another answer.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastact
from conftest import OPS, backward_modes, full_params

try:
    import ml_dtypes

    DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)]
except ImportError:  # pragma: no cover - ml_dtypes is a test extra
    DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)]

SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -3e-39, 1e-310, 3.4e38, -1e30, 88.7, -103.9, 1e300]
EXAMPLES = settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def offsets_of(shape, steps):
    off = np.zeros(1, np.int64)
    for n, s in zip(shape, steps):
        off = (off[:, None] + np.arange(n) * s).ravel()
    return off


@st.composite
def layouts(draw, shape, dtype, values, writable, kind=None):
    """A view of `shape` holding `values` (C order) in a random layout (or the one named); returns (view,
    kind)."""
    kind = kind or draw(st.sampled_from(["contiguous", "fortran", "strided", "misaligned", "overlapping"]))
    n = int(np.prod(shape)) if shape else 1
    if kind == "contiguous":
        return values.astype(dtype).reshape(shape), kind
    if kind == "fortran":
        return np.array(values.astype(dtype).reshape(shape), order="F"), kind
    isz = dtype.itemsize
    if kind == "misaligned":  # an address off by one byte: readable (copied), never an out=
        raw = np.zeros(n * isz + 1, np.uint8)
        v = np.ndarray(shape, dtype, buffer=raw, offset=1)
        v[...] = values.astype(dtype).reshape(shape)
        return v, kind
    steps = [draw(st.sampled_from([-3, -2, -1, 1, 2, 3, 5] + ([0] if kind == "overlapping" else [])))
             for _ in shape]
    if kind == "strided":  # gaps and negative steps, nested so that no two indices meet
        size = 1
        for i in reversed(range(len(shape))):
            steps[i] = (1 if steps[i] > 0 else -1) * size * draw(st.sampled_from([1, 2]))
            size = abs(steps[i]) * max(shape[i], 1) + 1
    off = offsets_of(shape, steps) if shape else np.zeros(1, np.int64)
    lo = int(off.min()) if off.size else 0
    span = (int(off.max()) - lo + 1) if off.size else 1
    buf = np.zeros(span + 2, dtype)
    from numpy.lib.stride_tricks import as_strided

    v = as_strided(buf[-lo + 1:], shape=shape, strides=[s * isz for s in steps], writeable=True)
    if kind == "strided" or len(np.unique(off)) == off.size:
        v[...] = values.astype(dtype).reshape(shape)  # distinct elements: the values as drawn
    else:
        flat = values.astype(dtype).reshape(-1)
        buf[-lo + 1 + off] = flat  # shared elements: the last write wins, as the view then reads
    if not writable:
        v.flags.writeable = False
    return v, kind


def param_kwargs(draw, op, dtype):
    """(kwargs, expected error or None) for the op's parameters."""
    kwargs, error, read_error = {}, None, None
    for p in op["params"]:
        choice = draw(st.sampled_from(["default", "valid", "valid", "invalid"]))
        if choice == "default" and p["required"]:
            choice = "valid"
        if choice == "default":
            continue
        if p["choices"]:
            opts = p["choices"].split("|")
            if choice == "valid":
                kwargs[p["name"]] = draw(st.sampled_from(opts))
            else:
                kwargs[p["name"]] = draw(st.sampled_from(["nope", 1, None]))
                error = error or ((ValueError,), p["name"])
            continue
        if choice == "valid":
            lo = 1e-3 if p["check"] == "positive" else 0.0 if p["check"] == "nonnegative" else -5.0
            kwargs[p["name"]] = draw(st.floats(lo, 5.0))
            continue
        bad = draw(st.sampled_from(["nan", "inf", "huge", "str", "complex", "array", "bool", "hugeint"]))
        value = {"nan": np.nan, "inf": -np.inf, "huge": 1e39, "str": "1", "complex": 1 + 1j, "array": np.ones(2),
                 "bool": True, "hugeint": 10 ** 400}[bad]
        if (bad == "huge" and dtype == np.float64) or (bad in ("inf", "huge") and p["check"] == "extended"):
            kwargs[p["name"]] = value  # fits float64 / may be infinite (or round to it): valid there
            continue
        kwargs[p["name"]] = value
        if bad in ("str", "complex", "array", "bool", "hugeint"):  # found as the parameters are read
            read_error = read_error or ((TypeError,) if bad != "hugeint" else (ValueError,), p["name"])
        else:  # found as their values are checked, after every parameter is read
            error = error or ((ValueError,), p["name"])
    error = read_error or error
    if op["param_rule"] and error is None:  # "a <= b" on the values as the kernels see them
        a, b = op["param_rule"].split(" <= ")
        full = full_params(op, kwargs, np.float32 if dtype != np.float64 else np.float64)
        if not full[a] <= full[b]:
            error = ((ValueError,), a)
    return kwargs, error


@st.composite
def calls(draw):
    op = draw(st.sampled_from([o for o in OPS if o["kind"] in ("elementwise", "row")]))  # gated: test_gated.py
    dtype = draw(st.sampled_from(DTYPES))
    row = op["kind"] == "row"
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=1 if row else 0, max_size=4)))
    kwargs, error = param_kwargs(draw, op, dtype) if not row else ({}, None)
    if row:
        kwargs["axis"] = draw(st.integers(-len(shape), len(shape) - 1))
    modes = ["forward"] + (["y"] if row else backward_modes(op, {k: v for k, v in kwargs.items()
                                                                   if isinstance(v, float) and v == v}))
    if not row and "y" in modes and op["backward_from"] == "x|y+" and error is None:
        first = op["params"][0]["name"]
        if not (isinstance(kwargs.get(first, 1.0), float) and kwargs.get(first, 1.0) > 0):
            modes.remove("y")
    if not row and "x" in backward_modes(op, {}):
        modes.append("x")
    direction = draw(st.sampled_from(sorted(set(modes))))
    n = int(np.prod(shape)) if shape else 1
    vals = st.one_of(st.sampled_from(SPECIALS), st.floats(-30, 30, allow_nan=False))
    a_vals = np.array(draw(st.lists(vals, min_size=n, max_size=n)), np.float64)
    b_vals = np.array(draw(st.lists(vals, min_size=n, max_size=n)), np.float64)
    with np.errstate(all="ignore"):
        a, a_kind = draw(layouts(shape, dtype, a_vals, writable=True))
        b, b_kind = draw(layouts(shape, dtype, b_vals, writable=False)) if direction != "forward" else (None, None)
    out_kind = draw(st.sampled_from(["none", "fresh", "alias", "shifted", "self-overlapping", "misaligned"]))
    return op, dtype, shape, kwargs, error, direction, a, a_kind, b, out_kind


def contiguous(v):
    return None if v is None else np.array(v, copy=True, order="C")


def invoke(op, direction, a, b, kwargs, out=None):
    name = op["name"]
    extra = {} if out is None else {"out": out}
    if direction == "forward":
        return getattr(fastact, name)(a, **kwargs, **extra)
    f = getattr(fastact, name + "_backward")  # kwargs hold every required parameter (param_kwargs)
    return f(a, b, **kwargs, **extra) if direction == "x" else f(a, y=b, **kwargs, **extra)


@EXAMPLES
@given(calls(), st.data())
def test_every_call_is_the_contiguous_call_or_a_clear_error(case, data):
    op, dtype, shape, kwargs, error, direction, a, a_kind, b, out_kind = case
    fn = op["name"] + ("" if direction == "forward" else "_backward")
    a0, b0 = contiguous(a), contiguous(b)
    if error is not None:
        kinds, pname = error
        with pytest.raises(kinds, match=pname):
            invoke(op, direction, a, b, kwargs)
        return
    with np.errstate(all="ignore"):
        want = invoke(op, direction, a0, b0, kwargs)
    assert want.dtype == dtype and want.shape == shape
    np.testing.assert_array_equal(invoke(op, direction, a, b, kwargs), want, err_msg=f"{fn} {a_kind}")
    n = want.size
    if out_kind == "none":
        return
    if out_kind == "alias":  # in place on the first input (its own overlaps, if any, are refused)
        out, expect_error = a, None
        if a_kind == "overlapping" and n and len(np.unique(offsets_of(shape, [s // dtype.itemsize for s in a.strides]))) < n:
            expect_error = "out has elements that share memory"
        elif a_kind == "misaligned":
            expect_error = "aligned"
    elif out_kind == "shifted" and n > 1:  # a view that overlaps the first input, one element along
        raw = np.zeros(2 * n + 1, dtype)
        raw[:n] = a0.reshape(-1)
        src = raw[:n].reshape(shape)
        out = raw[1:n + 1].reshape(shape)
        a, expect_error = src, None
    else:
        forced = {"self-overlapping": "overlapping", "misaligned": "misaligned"}.get(out_kind)
        out, kind = data.draw(layouts(shape, dtype, np.zeros(max(n, 1))[:n], writable=True, kind=forced))
        expect_error = None
        if out_kind == "self-overlapping" or kind == "overlapping":
            steps = [s // dtype.itemsize for s in out.strides]
            if n and len(np.unique(offsets_of(shape, steps))) < n:
                expect_error = "out has elements that share memory"
        if kind == "misaligned":
            expect_error = "out must be aligned"
    if expect_error:
        with pytest.raises(ValueError, match=expect_error):
            invoke(op, direction, a, b, kwargs, out=out)
        return
    r = invoke(op, direction, a, b, kwargs, out=out)
    assert r is out
    np.testing.assert_array_equal(out, want, err_msg=f"{fn} out={out_kind}")
