"""float16 and bfloat16 (SPEC 2.4, issue 4): computed in float32 and rounded once on store, so every
result is bit for bit the float32 result (of the exactly widened input) rounded to the half type. Half
types have only 65,536 bit patterns: every op is checked on all of them, forward and backward, on every
ISA path."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fastact
from conftest import BACKWARD_X_VARIANTS, BACKWARD_Y_VARIANTS, ELEMENTWISE_VARIANTS, ROW, op_fn

HALF_TYPES = [pytest.param(np.float16, id="float16")]
try:
    import ml_dtypes

    HALF_TYPES.append(pytest.param(ml_dtypes.bfloat16, id="bfloat16"))
except ImportError:  # pragma: no cover - ml_dtypes is in the test extras
    HALF_TYPES.append(pytest.param(None, id="bfloat16", marks=pytest.mark.skip(reason="ml_dtypes not installed")))


def all_patterns(ht):
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(ht)


# Calls of fewer elements than the tables' threshold compute; whole arrays of all 65,536 patterns use the
# lookup tables of the ops that have them (csrc/cpu/tables16.h). Both paths are checked everywhere.
TABLE_MIN = fastact._core.HALF_TABLE_MIN_ELEMENTS
PATHS = ["whole", "chunked"]


def call(f, path, *arrays, **kw):
    if path == "whole":
        return f(*arrays, **kw)
    step = TABLE_MIN // 2
    return np.concatenate([f(*(a[i:i + step] for a in arrays), **kw) for i in range(0, arrays[0].size, step)])


def assert_rounded_equal(got, want32, ht, msg=""):
    """got (a half array) == want32 (float32) rounded to ht, bit for bit; NaN where NaN."""
    with np.errstate(invalid="ignore", over="ignore"):
        want = want32.astype(ht)
    assert got.dtype == want.dtype, msg
    gn = np.isnan(got.astype(np.float32))
    wn = np.isnan(want.astype(np.float32))
    assert np.array_equal(gn, wn), msg
    bad = np.flatnonzero((got.view(np.uint16) != want.view(np.uint16)) & ~gn)
    assert bad.size == 0, f"{msg}: {bad.size} differ, first {got[bad[0]]!r} vs {want[bad[0]]!r}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("ht", HALF_TYPES)
@pytest.mark.parametrize("op,kw", ELEMENTWISE_VARIANTS)
def test_forward_is_the_float32_result_rounded(op, kw, ht, isa, path):
    x = all_patterns(ht)
    f = op_fn(op)
    got = call(f, path, x, **kw)
    assert_rounded_equal(got, f(x.astype(np.float32), **kw), ht, f"{op['name']} {kw} {isa} {path}")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("ht", HALF_TYPES)
@pytest.mark.parametrize("op,kw", BACKWARD_X_VARIANTS)
def test_backward_from_x_is_the_float32_result_rounded(op, kw, ht, path):
    x = all_patterns(ht)
    rng = np.random.default_rng(0)
    g = rng.uniform(-3, 3, x.size).astype(ht)
    g[::97] = rng.choice(np.array([0, -0.0, np.inf, -np.inf, np.nan, 6e-8, 65504], np.float32), g[::97].size)
    b = op_fn(op, "_backward")
    want = b(g.astype(np.float32), x.astype(np.float32), **kw)
    assert_rounded_equal(call(b, path, g, x, **kw), want, ht, f"{op['name']} {path}")


def test_large_calls_of_costly_ops_use_the_tables():
    # in a process of its own: the cache is bounded (16 MiB), and this suite's other calls may have filled it
    code = f"""
import io, numpy as np, fastact
before = fastact._core.half_tables()
assert before == (True, 0, 0), before
x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
fastact.silu(x, beta=0.731)
fastact.silu_backward(x, x, beta=0.731)
after = fastact._core.half_tables()
assert after == (True, 2, (1 << 16) * (2 + 4)), after
fastact.silu(x[:{TABLE_MIN} - 1], beta=0.732)  # small calls compute, and build nothing
assert fastact._core.half_tables() == after
buf = io.StringIO()
fastact.show_config(file=buf)
assert "2 built" in buf.getvalue(), buf.getvalue()
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()


def test_tables_can_be_turned_off():
    code = ("import fastact, numpy as np; x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16); "
            "y = fastact.gelu(x); assert fastact._core.half_tables() == (False, 0, 0); "
            "import sys; sys.stdout.buffer.write(y.tobytes())")
    env = dict(os.environ, FASTACT_HALF_TABLES="0")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    x = all_patterns(np.float16)
    got = np.frombuffer(r.stdout, np.float16)
    want = fastact.gelu(x)
    same = (got.view(np.uint16) == want.view(np.uint16)) | (np.isnan(got) & np.isnan(want))
    assert same.all()


@pytest.mark.parametrize("ht", HALF_TYPES)
@pytest.mark.parametrize("op,kw", BACKWARD_Y_VARIANTS)
def test_backward_from_y_is_the_float32_result_rounded(op, kw, ht):
    y = op_fn(op)(all_patterns(ht), **kw)
    g = np.random.default_rng(1).uniform(-3, 3, y.size).astype(ht)
    b = op_fn(op, "_backward")
    want = b(g.astype(np.float32), y=y.astype(np.float32), **kw)
    assert_rounded_equal(b(g, y=y, **kw), want, ht, op["name"])


@pytest.mark.parametrize("ht", HALF_TYPES)
@pytest.mark.parametrize("op", ROW, ids=lambda o: o["name"])
@pytest.mark.parametrize("axis", [0, -1])
def test_row_ops_accumulate_in_float32(op, ht, axis):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((7, 1031)) * 4).astype(ht)
    f = op_fn(op)
    y = f(x, axis=axis)
    assert_rounded_equal(y, f(x.astype(np.float32), axis=axis), ht, op["name"])
    g = rng.standard_normal(x.shape).astype(ht)
    b = op_fn(op, "_backward")
    assert_rounded_equal(b(g, y=y, axis=axis), b(g.astype(np.float32), y=y.astype(np.float32), axis=axis), ht)
    if op["name"] == "softmax":  # float32 accumulation: a long half row still sums to 1
        long = rng.standard_normal((1, 100000)).astype(ht)
        assert abs(f(long).astype(np.float64).sum() - 1) < 2e-3


@pytest.mark.parametrize("ht", HALF_TYPES)
def test_half_layouts_overflow_and_subnormals(ht):
    x = np.linspace(-6, 6, 301).astype(ht)
    want = fastact.gelu(x)
    np.testing.assert_array_equal(fastact.gelu(x[::-1])[::-1].view(np.uint16), want.view(np.uint16))
    big = np.zeros(602, ht)
    big[::2] = x
    np.testing.assert_array_equal(fastact.gelu(big[::2]).view(np.uint16), want.view(np.uint16))
    out = np.empty_like(x)
    assert fastact.gelu(x, out=out) is out
    np.testing.assert_array_equal(out.view(np.uint16), want.view(np.uint16))
    y = x.copy()
    fastact.gelu(y, out=y)
    np.testing.assert_array_equal(y.view(np.uint16), want.view(np.uint16))
    with pytest.raises(TypeError, match="dtype"):
        fastact.gelu(x, out=np.empty(x.shape, np.float32))
    with pytest.raises(TypeError, match="one dtype"):
        fastact.gelu_backward(x, x.astype(np.float32))
    if ht is np.float16:
        # overflow of the half type: a finite float32 result beyond 65504 rounds to inf
        g = np.array([65504.0], np.float16)
        assert np.isinf(fastact.gelu_backward(g, np.array([1.5], np.float16)))[0]
        # subnormal halves in and out
        tiny = np.array([6e-8, -6e-8, 3e-5], np.float16)
        np.testing.assert_array_equal(fastact.relu(tiny), np.maximum(tiny, 0))
        assert fastact.gelu(np.array([1e-7], np.float16))[0] == np.float16(5e-8)
