"""Layouts (SPEC 2.4): any shape and strides, 0-d and empty, out= and in-place, overlap; contiguous
input is never copied. Every layout must give exactly the bits of the contiguous call."""
from __future__ import annotations

import numpy as np
import pytest

import fastact
from conftest import ELEMENTWISE, ROW, backward_modes, op_fn

DTYPES = [np.float32, np.float64]


def _fwd(op):
    return op_fn(op)


def _layouts(base):
    """(name, view) pairs of the same values in different memory layouts."""
    big = np.empty((base.shape[0] * 2, base.shape[1] * 3), base.dtype)
    big[::2, ::3] = base
    rev = base[::-1, ::-1].copy()
    fort = np.asfortranarray(base)
    return [
        ("contiguous", base),
        ("strided", big[::2, ::3]),
        ("negative strides", rev[::-1, ::-1]),
        ("fortran", fort),
        ("transposed", base.T.copy().T),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ELEMENTWISE, ids=lambda o: o["name"])
def test_every_layout_gives_the_contiguous_bits(op, dtype):
    rng = np.random.default_rng(0)
    base = (rng.standard_normal((37, 29)) * 4).astype(dtype)
    g = rng.standard_normal(base.shape).astype(dtype)
    want = _fwd(op)(base)
    want_b = {m: op_fn(op, "_backward")(g, **{m: base if m == "x" else want})
              for m in backward_modes(op, {})}
    for name, v in _layouts(base):
        got = _fwd(op)(v)
        assert got.shape == v.shape and got.dtype == v.dtype
        np.testing.assert_array_equal(got, want, err_msg=name)
        for m, wb in want_b.items():
            arg = v if m == "x" else _fwd(op)(v)
            for gname, gv in _layouts(g):
                np.testing.assert_array_equal(
                    op_fn(op, "_backward")(gv, **{m: arg}), wb, err_msg=f"{name}/{gname}")


@pytest.mark.parametrize("op", ELEMENTWISE, ids=lambda o: o["name"])
def test_broadcast_zero_strides_0d_and_empty(op):
    f = _fwd(op)
    row = np.linspace(-3, 3, 7, dtype=np.float32)
    b = np.broadcast_to(row, (5, 7))  # zero stride on axis 0
    np.testing.assert_array_equal(f(b), np.broadcast_to(f(row), (5, 7)))
    z = np.float32(0.7)
    r = f(np.array(z))
    assert r.shape == () and r == f(np.array([z]))[0]
    for shape in [(0,), (3, 0), (0, 4, 5)]:
        e = f(np.empty(shape, np.float32))
        assert e.shape == shape and e.dtype == np.float32


@pytest.mark.parametrize("op", ELEMENTWISE, ids=lambda o: o["name"])
@pytest.mark.parametrize("n", [0, 1, 7, 15, 16, 17, 31, 33, 63, 65, 1000, 70001])
def test_sizes_around_every_vector_width(op, n):
    x = np.linspace(-9, 9, n).astype(np.float32)
    y = _fwd(op)(x)
    for i in range(0, n, max(1, n // 13)):
        assert y[i] == _fwd(op)(x[i:i + 1])[0] or (np.isnan(y[i]) and np.isnan(_fwd(op)(x[i:i + 1])[0]))


@pytest.mark.parametrize("op", ELEMENTWISE, ids=lambda o: o["name"])
def test_out_and_in_place(op):
    f = _fwd(op)
    x = np.linspace(-5, 5, 1001, dtype=np.float64)
    want = f(x)
    out = np.empty_like(x)
    assert f(x, out=out) is out
    np.testing.assert_array_equal(out, want)
    y = x.copy()
    assert f(y, out=y) is y  # in place
    np.testing.assert_array_equal(y, want)
    # a strided out
    big = np.zeros(2002)
    assert f(x, out=big[::2]) is not None
    np.testing.assert_array_equal(big[::2], want)
    assert not big[1::2].any()
    # partial overlap: out is the input shifted by one element
    buf = np.concatenate([x, [0.0]])
    f(buf[:-1], out=buf[1:])
    np.testing.assert_array_equal(buf[1:], want)
    # backward in place over grad_output
    g = np.ones_like(x)
    m = backward_modes(op, {})[0]
    arg = x if m == "x" else want
    wb = op_fn(op, "_backward")(g, **{m: arg})
    assert op_fn(op, "_backward")(g, **{m: arg}, out=g) is g
    np.testing.assert_array_equal(g, wb)


def test_contiguous_input_is_not_copied_and_out_is_written_in_place():
    x = np.linspace(-1, 1, 1 << 16, dtype=np.float32)
    before = x.copy()
    fastact.relu(x, out=x)
    assert np.shares_memory(x, x) and (x == np.maximum(before, 0)).all()


@pytest.mark.parametrize("op", ROW, ids=lambda o: o["name"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_row_ops_any_axis_and_layout(op, dtype):
    f = _fwd(op)
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((4, 33, 6)) * 3).astype(dtype)
    for axis in (0, 1, 2, -1, -2):
        want = np.moveaxis(f(np.ascontiguousarray(np.moveaxis(x, axis, -1))), -1, axis)
        np.testing.assert_array_equal(f(x, axis=axis), want)
        # negative strides on an axis that is not reduced (reversing a row reorders its sum)
        other = 1 if axis % 3 != 1 else 0
        rev = [slice(None)] * 3
        rev[other] = slice(None, None, -1)
        np.testing.assert_array_equal(f(x[tuple(rev)], axis=axis)[tuple(rev)], want)
        out = np.empty_like(x)
        assert f(x, axis=axis, out=out) is out
        np.testing.assert_array_equal(out, want)
        y = x.copy()
        f(y, axis=axis, out=y)
        np.testing.assert_array_equal(y, want)
    g = rng.standard_normal(x.shape).astype(dtype)
    y = f(x, axis=1)
    want = op_fn(op, "_backward")(g, y=y, axis=1)
    np.testing.assert_array_equal(op_fn(op, "_backward")(g[::-1], y=y[::-1], axis=1)[::-1], want)
    e = f(np.empty((3, 0), dtype))
    assert e.shape == (3, 0)


@pytest.mark.parametrize("op", ELEMENTWISE, ids=lambda o: o["name"])
def test_byte_order_alignment_and_dtype_metadata(op):
    f = op_fn(op)
    x = np.linspace(-4, 4, 33, dtype=np.float32)
    want = f(x)
    # non-native byte order: converted, never read as garbage
    np.testing.assert_array_equal(f(x.astype(">f4")), want)
    np.testing.assert_array_equal(f(x.astype(">f8")), f(x.astype(np.float64)))
    with pytest.raises(TypeError, match="byte order"):
        f(x, out=np.empty(33, ">f4"))
    # an address that is not a multiple of the element size
    raw = bytearray(33 * 4 + 1)
    mis = np.ndarray((33,), np.float32, buffer=raw, offset=1)
    mis[:] = x
    np.testing.assert_array_equal(f(mis), want)
    # equal dtypes held as distinct objects (metadata) are one dtype
    meta = x.astype(np.dtype(np.float32, metadata={"unit": "V"}))
    np.testing.assert_array_equal(f(meta), want)
    m = backward_modes(op, {})[0]
    arg = x if m == "x" else want
    np.testing.assert_array_equal(op_fn(op, "_backward")(meta, **{m: arg}),
                                  op_fn(op, "_backward")(x, **{m: arg}))


def test_random_views_match_contiguous():
    """Random shapes (0-d to 4-d, empty dims) and strides (negative, zero, gaps) over one buffer, for
    every op: each result equals the contiguous call's, also through out=."""
    from numpy.lib.stride_tricks import as_strided

    rng = np.random.default_rng(123)
    ops = [o for o in fastact.ops() if o["kind"] in ("elementwise", "row")]  # the gated ops: tests/test_gated.py
    checked = 0
    while checked < 500:
        o = ops[rng.integers(len(ops))]
        dt = np.float32 if rng.random() < 0.5 else np.float64
        nd = int(rng.integers(1 if o["kind"] == "row" else 0, 5))
        shape = tuple(int(rng.integers(0, 6)) for _ in range(nd))
        base = (rng.standard_normal(400) * 5).astype(dt)
        steps = [int(rng.choice([-3, -1, 0, 1, 2, 5])) for _ in range(nd)]
        lo = sum(min(0, s * (d - 1)) for s, d in zip(steps, shape) if d > 0)
        hi = sum(max(0, s * (d - 1)) for s, d in zip(steps, shape) if d > 0)
        if 200 + lo < 0 or 200 + hi >= 400:
            continue
        v = as_strided(base[200:], shape=shape, strides=tuple(s * base.itemsize for s in steps), writeable=False)
        f = op_fn(o)
        kw = {"axis": int(rng.integers(-nd, nd))} if o["kind"] == "row" else {}
        want = f(np.array(v, copy=True, order="C"), **kw)
        np.testing.assert_array_equal(f(v, **kw), want, err_msg=f"{o['name']} {shape} {steps}")
        out = np.empty(shape, dt)
        f(v, out=out, **kw)
        np.testing.assert_array_equal(out, want)
        checked += 1


@pytest.mark.parametrize("op", ROW, ids=lambda o: o["name"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_rows_in_groups_give_the_bits_of_one_row_at_a_time(op, dtype, isa):
    """Short rows go several per kernel call, their sums combined side by side: every row must still get
    the bits of that row alone, whatever its place in a group (group sizes, tails, long rows, runs of
    rows broken by a strided outer dimension)."""
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dt = np.dtype(ml_dtypes.bfloat16)
    else:
        dt = np.dtype(dtype)
    f, fb = _fwd(op), op_fn(op, "_backward")
    rng = np.random.default_rng(7)
    for length in (1, 31, 33, 64, 100, 4096, 4097):
        for nrows in (1, 3, 4, 5, 9):
            x = (rng.standard_normal((nrows, length)) * 4).astype(dt)
            g = rng.standard_normal((nrows, length)).astype(dt)
            y = f(x)
            dx = fb(g, y=y)
            for r in range(nrows):
                np.testing.assert_array_equal(y[r].view(np.uint8), f(x[r]).view(np.uint8))
                np.testing.assert_array_equal(dx[r].view(np.uint8), fb(g[r], y=y[r]).view(np.uint8))
    x = (rng.standard_normal((3, 7, 50)) * 4).astype(dt)[:, ::2]  # runs of 4 rows, then a jump
    want = np.stack([np.stack([f(row) for row in plane]) for plane in x])
    np.testing.assert_array_equal(f(x).view(np.uint8), want.view(np.uint8))
