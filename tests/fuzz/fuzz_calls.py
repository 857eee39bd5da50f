"""Coverage-guided fuzzing of fastact's Python entry points and the compiled argument checks (atheris).

Each input is decoded into one call: an op of the registry and a direction; arrays of a dtype (the four,
and ones fastact refuses), a shape, a layout (contiguous, Fortran, gapped, negative, zero and
self-overlapping strides, misaligned); Python scalars, lists, None, CPU DLPack producers whose tensors
lie in the ways producers can (ndim, negative sizes, vector lanes, dtype codes, DLPack versions, read-only
flags, devices); parameters of every Python type; out= that is fresh, the input, a shifted view of it, or
one whose own elements overlap; axis values; stream=. The call must either give what the op gives on
contiguous copies (bit for bit, NaN where NaN) or raise TypeError / ValueError / RuntimeError /
MemoryError; anything else, a wrong answer or a crash is a finding (atheris stops and prints the input).

    python tests/fuzz/fuzz_calls.py -max_total_time=60            # CI's budget
    python tests/fuzz/fuzz_calls.py -runs=100000 -rss_limit_mb=4096

A crash found becomes a regression test in tests/test_hardening.py or tests/test_bad_inputs.py.
"""
from __future__ import annotations

import os
import sys

import atheris

import numpy as np

with atheris.instrument_imports():  # fastact's Python layer; the harness below is instrumented too
    import fastact

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dlpack_producer import KINDS, Producer  # noqa: E402

OPS = fastact.ops()
try:
    import ml_dtypes

    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover
    BF16 = None
DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)] + ([BF16] if BF16 is not None else [])
REFUSED = [np.dtype(np.int32), np.dtype(np.complex64), np.dtype(bool), np.dtype(">f4")]
EXPECTED = (TypeError, ValueError, RuntimeError, MemoryError)
SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 1e-310, 3.4e38, 1e39, -88.7, 1e300, 0.5]


class Finding(Exception):
    pass


@atheris.instrument_func
def draw_values(fdp, n):
    out = np.empty(n)
    for i in range(n):
        if fdp.ConsumeBool():
            out[i] = SPECIALS[fdp.ConsumeIntInRange(0, len(SPECIALS) - 1)]
        else:
            out[i] = fdp.ConsumeFloatInRange(-40.0, 40.0)
    return out


@atheris.instrument_func
def draw_array(fdp, shape, dtype, writable=True):
    """(array, whether its elements are distinct) of shape and dtype in a drawn layout."""
    n = int(np.prod(shape)) if shape else 1
    vals = draw_values(fdp, n)
    with np.errstate(all="ignore"):
        base = vals.astype(dtype).reshape(shape)
    kind = fdp.ConsumeIntInRange(0, 4)
    if kind == 0:
        return base, True
    if kind == 1:
        return np.array(base, order="F"), True
    if kind == 2:  # misaligned
        raw = np.zeros(n * dtype.itemsize + 1, np.uint8)
        v = np.ndarray(shape, dtype, buffer=raw, offset=1)
        v[...] = base
        return v, False
    steps = [fdp.ConsumeIntInRange(-4, 4) for _ in shape]
    from numpy.lib.stride_tricks import as_strided

    off = np.zeros(1, np.int64)
    for d, s in zip(shape, steps):
        off = (off[:, None] + np.arange(d) * s).ravel()
    lo = int(off.min()) if off.size else 0
    hi = int(off.max()) if off.size else 0
    buf = np.zeros(hi - lo + 2, dtype)
    v = as_strided(buf[-lo:], shape=shape, strides=[s * dtype.itemsize for s in steps], writeable=writable)
    if off.size:
        buf[off - lo] = base.reshape(-1)
    return v, len(np.unique(off)) == off.size


@atheris.instrument_func
def draw_producer(fdp, dtype_name):
    n = fdp.ConsumeIntInRange(0, 6)
    vals = draw_values(fdp, n).astype(np.float32)
    buf = np.zeros(max(n, 1), np.float64)  # room for any of the dtypes
    kw = dict(versioned=fdp.ConsumeBool(), read_only=fdp.ConsumeBool())
    if fdp.ConsumeIntInRange(0, 7) == 0:  # a lie about the tensor (the buffer is never read for these)
        lie = fdp.ConsumeIntInRange(0, 3)
        kw.update([dict(lanes=2), dict(major=2), dict(device=fdp.ConsumeIntInRange(2, 20)), dict(dtype="int32")][lie])
        return Producer(buf, (n,), kw.pop("dtype", dtype_name), **kw)
    if dtype_name == "bfloat16":
        buf.view(np.uint16)[:n] = (vals.view(np.uint32) >> 16).astype(np.uint16)
    elif dtype_name in KINDS:
        buf.view(np.dtype(dtype_name))[:n] = vals.astype(dtype_name)
    strides = None if fdp.ConsumeBool() else (1,)
    return Producer(buf, (n,), dtype_name, strides=strides, **kw)


@atheris.instrument_func
def draw_param(fdp, p):
    k = fdp.ConsumeIntInRange(0, 9)
    if p["choices"] and k < 4:
        opts = p["choices"].split("|")
        return opts[fdp.ConsumeIntInRange(0, len(opts) - 1)]
    return [lambda: fdp.ConsumeFloatInRange(-4.0, 4.0), lambda: SPECIALS[fdp.ConsumeIntInRange(0, len(SPECIALS) - 1)],
            lambda: fdp.ConsumeInt(8), lambda: np.float32(fdp.ConsumeFloatInRange(0.0, 3.0)),
            lambda: np.array(fdp.ConsumeFloatInRange(0.1, 3.0)), lambda: np.ones(fdp.ConsumeIntInRange(0, 3)),
            lambda: complex(1, fdp.ConsumeFloat()), lambda: fdp.ConsumeBool(), lambda: None,
            lambda: fdp.ConsumeUnicode(3)][k]()


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    with np.errstate(all="ignore"):
        na, nb = np.isnan(a.astype(np.float64)), np.isnan(b.astype(np.float64))
    u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return np.array_equal(na, nb) and np.array_equal(np.where(na, 0, a.view(u)), np.where(nb, 0, b.view(u)))


@atheris.instrument_func
def gated_input(fdp, op):
    """A GLU-family call: one array split along an axis, or two; forward or backward; out= of its kind."""
    direction = fdp.ConsumeIntInRange(0, 1)
    split = fdp.ConsumeBool()
    fn = getattr(fastact, op["name"] + ("_backward" if direction else ""))
    ndim = fdp.ConsumeIntInRange(0, 3)
    shape = [fdp.ConsumeIntInRange(0, 4) for _ in range(ndim)]
    dtype = DTYPES[fdp.ConsumeIntInRange(0, len(DTYPES) - 1)]
    kwargs = {p["name"]: draw_param(fdp, p) for p in op["params"] if fdp.ConsumeBool()}
    if split and ndim:
        axis = fdp.ConsumeIntInRange(-ndim, ndim - 1)
        kwargs["axis"] = axis
        if fdp.ConsumeIntInRange(0, 7):
            shape[axis] *= 2  # mostly even: the odd ones are errors
    x, _ = draw_array(fdp, tuple(shape), dtype)
    half = list(shape)
    if split and ndim:
        half[kwargs["axis"]] //= 2
    arrays = [x] if split else [x, draw_array(fdp, tuple(shape), dtype)[0]]
    if direction:
        arrays.insert(0, draw_array(fdp, tuple(half if split else shape), dtype)[0])
    out = None
    k = fdp.ConsumeIntInRange(0, 3)
    if k == 1:
        out = draw_array(fdp, tuple(shape if (direction and split) else half if split else shape), dtype)[0]
    elif k == 2 and direction and not split:
        out = (arrays[1], arrays[2]) if fdp.ConsumeBool() else (None, draw_array(fdp, tuple(shape), dtype)[0])
    elif k == 3:
        out = arrays[-1]  # in place (or a wrong one: an error)
    check_against_copies(fn, arrays, kwargs, out)


def check_against_copies(fn, arrays, kwargs, out):
    """fn on arrays (out= as given) must give what it gives on contiguous copies, or an expected error."""
    try:
        with np.errstate(all="ignore"):
            want = fn(*[np.array(a, order="C") for a in arrays], **kwargs)
    except EXPECTED:
        want = None
    try:
        with np.errstate(all="ignore"):
            got = fn(*arrays, **kwargs, **({} if out is None else {"out": out}))
    except EXPECTED:
        return
    if want is not None:
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            if not same(g, w):
                raise Finding(f"{fn.__name__}: a layout gave another answer than contiguous copies")


@atheris.instrument_func
def broadcast_input(fdp, op):
    """prelu or bias_act: a weight / bias of every form (one value, per channel along any axis, NumPy
    broadcasting, or wrong), forward or backward; out= of its kind, in place, or over an input."""
    direction = fdp.ConsumeIntInRange(0, 1)
    name = "bias_act" if op["activation"] else op["name"]
    fn = getattr(fastact, name + ("_backward" if direction else ""))
    ndim = fdp.ConsumeIntInRange(0, 4)
    shape = tuple(fdp.ConsumeIntInRange(0, 5) for _ in range(ndim))
    dtype = DTYPES[fdp.ConsumeIntInRange(0, len(DTYPES) - 1)]
    kwargs = {p["name"]: draw_param(fdp, p) for p in op["params"] if fdp.ConsumeBool()}
    if op["activation"]:
        kwargs["activation"] = op["activation"]
    form = fdp.ConsumeIntInRange(0, 4)
    axis = fdp.ConsumeIntInRange(-5, 5)
    if form == 0:  # one value
        wshape = [(), (1,)][fdp.ConsumeIntInRange(0, 1)]
    elif form == 1 and ndim:  # along an axis (bias_act: the last)
        wshape = (shape[axis % ndim if not op["activation"] else -1],)
        axis = axis % ndim
    elif form == 2:  # NumPy broadcasting
        k = fdp.ConsumeIntInRange(0, ndim)
        wshape = tuple(n if fdp.ConsumeBool() else 1 for n in shape[ndim - k:])
        axis = None
    else:  # any shape: mostly an error
        wshape = tuple(fdp.ConsumeIntInRange(0, 5) for _ in range(fdp.ConsumeIntInRange(0, 2)))
    if not op["activation"]:
        kwargs["channel_axis"] = axis
    x, _ = draw_array(fdp, shape, dtype)
    w, _ = draw_array(fdp, wshape, dtype)
    arrays = [x, w]
    if direction:
        arrays.insert(0, draw_array(fdp, shape, dtype)[0])
    out = None
    k = fdp.ConsumeIntInRange(0, 4)
    if k == 1:
        out = draw_array(fdp, shape, dtype)[0] if not direction else (draw_array(fdp, shape, dtype)[0], None)
    elif k == 2 and direction:
        out = (arrays[1], arrays[2]) if fdp.ConsumeBool() else (None, draw_array(fdp, wshape, dtype)[0])
    elif k == 3:
        out = arrays[-2] if not direction else (arrays[0], None)  # in place over x / grad_output
    elif k == 4 and direction:
        out = (None, arrays[1].reshape(-1)[: w.size].reshape(wshape) if arrays[1].size >= w.size else None)
    check_against_copies(fn, arrays, kwargs, out)


@atheris.instrument_func
def one_input(data: bytes):
    fdp = atheris.FuzzedDataProvider(data)
    op = OPS[fdp.ConsumeIntInRange(0, len(OPS) - 1)]
    if op["kind"] == "gated":
        return gated_input(fdp, op)
    if op["kind"] == "broadcast":
        return broadcast_input(fdp, op)
    row = op["kind"] == "row"
    direction = fdp.ConsumeIntInRange(0, 2)  # forward, backward from x, backward from y
    fn = getattr(fastact, op["name"] + ("_backward" if direction else ""))
    ndim = fdp.ConsumeIntInRange(0, 4)
    shape = tuple(fdp.ConsumeIntInRange(0, 5) for _ in range(ndim))
    refused = fdp.ConsumeIntInRange(0, 15) == 0
    dtype = REFUSED[fdp.ConsumeIntInRange(0, 3)] if refused else DTYPES[fdp.ConsumeIntInRange(0, len(DTYPES) - 1)]
    kind = fdp.ConsumeIntInRange(0, 9)
    if kind == 0:  # not an array
        a = [None, "x", {}, 1.5, [1.0, -2.0], [[1.0], [2.0, 3.0]], object()][fdp.ConsumeIntInRange(0, 6)]
    elif kind == 1:
        a = draw_producer(fdp, ["float32", "float64", "float16", "bfloat16"][fdp.ConsumeIntInRange(0, 3)])
    else:
        a, _ = draw_array(fdp, shape, dtype, writable=True)
    b = None
    if direction:
        b, _ = draw_array(fdp, shape, dtype, writable=False)
    kwargs = {}
    if row:
        if fdp.ConsumeBool():
            kwargs["axis"] = [fdp.ConsumeIntInRange(-5, 5), np.int64(fdp.ConsumeIntInRange(-2, 2)), 1.0, True, None,
                              "0"][fdp.ConsumeIntInRange(0, 5)]
    else:
        for p in op["params"]:
            if fdp.ConsumeBool():
                kwargs[p["name"]] = draw_param(fdp, p)
    out_kind = fdp.ConsumeIntInRange(0, 5)
    out = None
    if out_kind == 1 and isinstance(a, np.ndarray):
        out = a  # in place
    elif out_kind == 2 and isinstance(a, np.ndarray):
        out, _ = draw_array(fdp, a.shape, a.dtype, writable=True)
    elif out_kind == 3 and isinstance(a, np.ndarray) and a.size > 1 and a.dtype in DTYPES:
        raw = np.zeros(a.size + 1, a.dtype)
        raw[: a.size] = a.reshape(-1)
        a, out = raw[: a.size].reshape(a.shape), raw[1:].reshape(a.shape)  # overlaps a, shifted by one
    elif out_kind == 4:
        out = [np.zeros(3, np.float32), [0.0], "out"][fdp.ConsumeIntInRange(0, 2)]
    stream = 0 if fdp.ConsumeIntInRange(0, 20) == 0 else None

    def call(x, y, o):
        extra = dict(kwargs)
        if o is not None:
            extra["out"] = o
        if stream is not None:
            extra["stream"] = stream
        if direction == 0:
            return fn(x, **extra)
        return fn(x, y, **extra) if direction == 1 else fn(x, y=y, **extra)

    reference = None
    if isinstance(a, np.ndarray):
        try:
            with np.errstate(all="ignore"):
                reference = call(np.array(a, order="C"), None if b is None else np.array(b, order="C"), None)
        except EXPECTED:
            reference = None
    try:
        with np.errstate(all="ignore"):
            r = call(a, b, out)
    except EXPECTED:
        return
    if out is not None and r is not out:
        raise Finding(f"{fn.__name__} returned a new array instead of out")
    if reference is not None and not same(r, reference):
        raise Finding(f"{fn.__name__}: a layout gave another answer than contiguous copies\n{a!r}\n{r!r}\n{reference!r}")


def main():
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
