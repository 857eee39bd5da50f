"""The bad-input matrix: every registry op and direction x every class of bad input. Each gets the
exception type SPEC 2.4 names (TypeError for what is of the wrong kind, ValueError for a wrong value or
layout, RuntimeError for a GPU array where no GPU can be used) with a message that names the function and
the argument at fault. Generated from the registry: a new op is in the matrix with no edit here."""
from __future__ import annotations

import re

import numpy as np
import pytest

import fastact
from conftest import FORMS, OPS, backward_modes, op_fn
from dlpack_producer import Producer


def names(fn, arg):
    return re.compile(rf"{re.escape(fn)}\b.*\b{re.escape(arg)}\b", re.S)


class FakeGpuArray:
    __cuda_array_interface__ = {"shape": (8,), "typestr": "<f4", "data": (1 << 40, False), "version": 3}


class NotACapsule:
    def __dlpack__(self, **kw):
        return 5

    def __dlpack_device__(self):
        return (1, 0)


BAD_ARRAYS = [  # (id, value factory, exception, what the message says besides the names)
    ("None", lambda: None, TypeError, "is required"),
    ("str", lambda: "abc", TypeError, ""),
    ("dict", lambda: {"a": 1}, TypeError, ""),
    ("int32", lambda: np.zeros(8, np.int32), TypeError, "has dtype int32"),
    ("complex", lambda: np.zeros(8, np.complex64), TypeError, "has dtype complex64"),
    ("object", lambda: np.zeros(8, object), TypeError, "has dtype object"),
    ("bool", lambda: np.zeros(8, bool), TypeError, "has dtype bool"),
    ("ragged list", lambda: [[1.0], [1.0, 2.0]], TypeError, "could not be converted"),
    ("gpu without cuda", lambda: FakeGpuArray(), RuntimeError, "is a GPU array"),
    ("dlpack non-capsule", lambda: NotACapsule(), TypeError, "not a DLPack capsule"),
    ("dlpack int32", lambda: Producer(np.zeros(8, np.int32), (8,), "int32"), TypeError, "DLPack dtype"),
]


@pytest.mark.parametrize("form", FORMS, ids=repr)
@pytest.mark.parametrize("bad", BAD_ARRAYS, ids=[b[0] for b in BAD_ARRAYS])
def test_bad_array_arguments(form, bad):
    _, make, exc, says = bad
    fn = form.fn
    if bad[0] == "gpu without cuda" and fastact.cuda.is_available():
        pytest.skip("a GPU is usable here: the fake pointer would reach the driver")
    for i, arg in enumerate(form.names):
        args = form.good()
        args[i] = make()
        if bad[0] == "gpu without cuda":  # all on the "GPU" (mixing devices is an error of its own)
            args = [make() for _ in form.names]
            if i:
                continue
        if args[i] is None and i == len(form.names) - 1 and form.fn.endswith("_backward") and len(form.names) == 2 \
                and form.op["kind"] != "gated":  # a backward's x / y left out: it says which it needs
            with pytest.raises(ValueError, match=rf"{fn} needs {arg}|{fn} needs x"):
                form(args)
            continue
        if args[i] is None and arg == "up":  # up=None is the one-array form: a gate of 8 is split in halves
            continue
        if args[i] is None and form.op["kind"] == "loss" and arg in form.op["operand"].split()[2:]:
            continue  # a loss's weight left out is 1
        with pytest.raises(exc) as e:
            form(args)
        assert names(fn, arg).search(str(e.value)) and says in str(e.value), (arg, str(e.value))


MULTI = [f for f in FORMS if len(f.names) > 1]


@pytest.mark.parametrize("form", MULTI, ids=repr)
def test_other_arrays_of_another_dtype_or_shape(form):
    for i in range(1, len(form.names)):
        args = form.good()
        args[i] = args[i].astype(np.float64)
        with pytest.raises(TypeError, match=names(form.fn, form.names[i])):
            form(args)
        args = form.good()
        args[i] = args[i][:2]
        with pytest.raises(ValueError, match=names(form.fn, form.names[i])):
            form(args)


def _read_only(n):
    ro = np.zeros(n, np.float32)
    ro.flags.writeable = False
    return ro


def _misaligned(n):
    return np.ndarray((n,), np.float32, buffer=np.zeros(n * 4 + 1, np.uint8), offset=1)


OUT_CASES = [  # (id, factory of a bad out= for a result of n elements, exception, what the message says)
    ("shape", lambda n: np.zeros(n + 1, np.float32), ValueError, "out must have the shape"),
    ("dtype", lambda n: np.zeros(n, np.float64), TypeError, "out has dtype float64"),
    ("read-only", _read_only, ValueError, "out is read-only"),
    ("list", lambda n: [0.0] * n, TypeError, "out must be a NumPy array or a DLPack tensor"),
    ("byte order", lambda n: np.zeros(n, ">f4"), TypeError, "out must be in the machine's byte order"),
    ("misaligned", _misaligned, ValueError, "out must be aligned"),
    ("self-overlap", lambda n: np.lib.stride_tricks.as_strided(np.zeros(2, np.float32), (n,), (0,)), ValueError,
     "out has elements that share memory"),
    ("legacy dlpack", lambda n: Producer(np.zeros(n, np.float32), (n,), versioned=False), ValueError,
     "out is read-only"),
]


@pytest.mark.parametrize("form", FORMS, ids=repr)
@pytest.mark.parametrize("bad", OUT_CASES, ids=[b[0] for b in OUT_CASES])
def test_bad_out(form, bad):
    _, make, exc, says = bad
    args = form.good()
    n = form(args).size if not form.tuple_out else args[0].size  # the result's size (outputs are 1-d here)
    out = make(n)
    if form.tuple_out:
        out = (out, None)
    with pytest.raises(exc, match=re.escape(says)) as e:
        form(args, out=out)
    assert form.fn in str(e.value)


BAD_PARAMS = [("nan", np.nan, ValueError), ("inf", np.inf, ValueError), ("str", "0.5", TypeError),
              ("complex", 0.5j, TypeError), ("array", np.ones(3), TypeError), ("bool", False, TypeError),
              ("None", None, TypeError), ("hugeint", 10 ** 400, ValueError), ("float32 overflow", 1e39, ValueError)]
PARAM_FORMS = [(f, p) for f in FORMS for p in f.op["params"]]


@pytest.mark.parametrize("form,param", PARAM_FORMS, ids=[f"{f!r}-{p['name']}" for f, p in PARAM_FORMS])
@pytest.mark.parametrize("bad", BAD_PARAMS, ids=[b[0] for b in BAD_PARAMS])
def test_bad_parameters(form, param, bad):
    _, value, exc = bad
    if param["choices"]:
        exc = ValueError  # a choice is looked up by value: anything else is "not one of the choices"
    if param["check"] == "extended" and bad[0] in ("inf", "float32 overflow"):
        # +-inf are values here (hardtanh's bounds: ONNX Clip), and so are values that round to them
        for v in (value, -value):
            kw = {param["name"]: v}
            rule = form.op["param_rule"]
            if rule:
                a, b = rule.split(" <= ")
                full = {p["name"]: kw.get(p["name"], p["default"]) for p in form.op["params"]}
                if not full[a] <= full[b]:
                    with pytest.raises(ValueError, match=names(form.fn, a)) as e:
                        form(form.good(), **kw)
                    assert f"{a} must be <= {b}" in str(e.value)
                    continue
            form(form.good(), **kw)
        return
    with pytest.raises(exc, match=names(form.fn, param["name"])):
        form(form.good(), **{param["name"]: value})


AXIS_FORMS = [f for f in FORMS if f.op["kind"] == "row" or (f.op["kind"] == "gated" and not f.tuple_out
                                                                and "gate" not in f.names)]


@pytest.mark.parametrize("form", AXIS_FORMS, ids=repr)
def test_bad_axis(form):
    fn = form.fn
    args = [a.reshape(2, -1) if a.size == 8 else a.reshape(2, -1) for a in form.good()]
    if form.op["kind"] == "gated" and fn.endswith("_backward"):
        args = [args[0].reshape(2, 2), args[1]]
    for bad in (True, 1.5, "0", None, np.float32(0)):
        with pytest.raises(TypeError, match=names(fn, "axis")):
            form(args, axis=bad)
    for bad in (2, -3, 10 ** 30):
        with pytest.raises(ValueError, match=names(fn, "axis")):
            form(args, axis=bad)
    with pytest.raises(ValueError, match=names(fn, form.names[-1] if form.op["kind"] == "gated" else form.names[0])):
        form([np.float32(1)] * len(form.names))


@pytest.mark.parametrize("form", FORMS, ids=repr)
def test_stream_with_cpu_arrays(form):
    with pytest.raises(ValueError, match=rf"{form.fn}: stream= is for GPU arrays"):
        form(form.good(), stream=0)


@pytest.mark.parametrize("op", [o for o in OPS if o["kind"] in ("elementwise", "row")], ids=lambda o: o["name"])
def test_backward_without_the_input_it_needs(op):
    b = op_fn(op, "_backward")
    GOOD = np.linspace(-2, 2, 8, dtype=np.float32)
    with pytest.raises(ValueError, match=rf"{op['name']}_backward.*needs"):
        b(GOOD)
    with pytest.raises(ValueError, match=rf"{op['name']}_backward"):
        b(GOOD, GOOD, y=GOOD)
    if "x" not in backward_modes(op, {}):
        with pytest.raises(ValueError, match=rf"{op['name']}_backward needs y"):
            b(GOOD, GOOD)
    if "y" not in backward_modes(op, {}):
        with pytest.raises(ValueError, match=rf"{op['name']}_backward needs x"):
            b(GOOD, y=GOOD)
