"""The bad-input matrix: every registry op and direction x every class of bad input. Each gets the
exception type SPEC 2.4 names (TypeError for what is of the wrong kind, ValueError for a wrong value or
layout, RuntimeError for a GPU array where no GPU can be used) with a message that names the function and
the argument at fault. Generated from the registry: a new op is in the matrix with no edit here."""
from __future__ import annotations

import re

import numpy as np
import pytest

import fastact
from conftest import OPS, backward_modes
from dlpack_producer import Producer

GOOD = np.linspace(-2, 2, 8, dtype=np.float32)


def calls():
    """(id, function name, callable(**overrides), the names of its array arguments, op)."""
    out = []
    for op in OPS:
        name, row = op["name"], op["kind"] == "row"
        out.append((name, name, ("x",), op))
        for m in (["y"] if row else backward_modes(op, {})):
            out.append((f"{name}_backward[{m}]", name + "_backward", ("grad_output", m), op))
    return out


CALLS = calls()


def invoke(fn, arg_names, args, **kw):
    f = getattr(fastact, fn)
    if len(arg_names) == 1:
        return f(args[0], **kw)
    if arg_names[1] == "x":
        return f(args[0], args[1], **kw)
    return f(args[0], y=args[1], **kw)


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


@pytest.mark.parametrize("case", CALLS, ids=[c[0] for c in CALLS])
@pytest.mark.parametrize("bad", BAD_ARRAYS, ids=[b[0] for b in BAD_ARRAYS])
def test_bad_array_arguments(case, bad):
    _, fn, arg_names, _ = case
    _, make, exc, says = bad
    if bad[0] == "gpu without cuda" and fastact.cuda.is_available():
        pytest.skip("a GPU is usable here: the fake pointer would reach the driver")
    for i, arg in enumerate(arg_names):
        args = [GOOD, GOOD][: len(arg_names)]
        args[i] = make()
        if bad[0] == "gpu without cuda":  # all on the "GPU" (mixing devices is an error of its own)
            args = [make() for _ in arg_names]
            if i:
                continue
        if i == 1 and args[i] is None:  # a backward's x / y left out: it says which it needs
            with pytest.raises(ValueError, match=rf"{fn} needs {arg}|{fn} needs x"):
                invoke(fn, arg_names, args)
            continue
        with pytest.raises(exc) as e:
            invoke(fn, arg_names, args)
        assert names(fn, arg).search(str(e.value)) and says in str(e.value), (arg, str(e.value))


@pytest.mark.parametrize("case", [c for c in CALLS if len(c[2]) == 2], ids=[c[0] for c in CALLS if len(c[2]) == 2])
def test_second_array_of_another_dtype_or_shape(case):
    _, fn, arg_names, _ = case
    with pytest.raises(TypeError, match=names(fn, arg_names[1])):
        invoke(fn, arg_names, [GOOD, GOOD.astype(np.float64)])
    with pytest.raises(ValueError, match=names(fn, arg_names[1])):
        invoke(fn, arg_names, [GOOD, GOOD[:4]])


def _out_cases():
    ro = np.zeros(8, np.float32)
    ro.flags.writeable = False
    raw = np.zeros(8 * 4 + 1, np.uint8)
    from numpy.lib.stride_tricks import as_strided

    return [
        ("shape", lambda: np.zeros(9, np.float32), ValueError, "out must have the shape"),
        ("dtype", lambda: np.zeros(8, np.float64), TypeError, "out has dtype float64"),
        ("read-only", lambda: ro, ValueError, "out is read-only"),
        ("list", lambda: [0.0] * 8, TypeError, "out must be a NumPy array or a DLPack tensor"),
        ("byte order", lambda: np.zeros(8, ">f4"), TypeError, "out must be in the machine's byte order"),
        ("misaligned", lambda: np.ndarray((8,), np.float32, buffer=raw, offset=1), ValueError, "out must be aligned"),
        ("self-overlap", lambda: as_strided(np.zeros(2, np.float32), (8,), (0,)), ValueError,
         "out has elements that share memory"),
        ("legacy dlpack", lambda: Producer(np.zeros(8, np.float32), (8,), versioned=False), ValueError,
         "out is read-only"),
    ]


OUT_CASES = _out_cases()


@pytest.mark.parametrize("case", CALLS, ids=[c[0] for c in CALLS])
@pytest.mark.parametrize("bad", OUT_CASES, ids=[b[0] for b in OUT_CASES])
def test_bad_out(case, bad):
    _, fn, arg_names, _ = case
    _, make, exc, says = bad
    with pytest.raises(exc, match=re.escape(says)) as e:
        invoke(fn, arg_names, [GOOD, GOOD][: len(arg_names)], out=make())
    assert fn in str(e.value)


BAD_PARAMS = [("nan", np.nan, ValueError), ("inf", np.inf, ValueError), ("str", "0.5", TypeError),
              ("complex", 0.5j, TypeError), ("array", np.ones(3), TypeError), ("bool", False, TypeError),
              ("None", None, TypeError), ("hugeint", 10 ** 400, ValueError), ("float32 overflow", 1e39, ValueError)]
PARAM_CALLS = [(c, p) for c in CALLS for p in c[3]["params"]]


@pytest.mark.parametrize("case,param", PARAM_CALLS, ids=[f"{c[0]}-{p['name']}" for c, p in PARAM_CALLS])
@pytest.mark.parametrize("bad", BAD_PARAMS, ids=[b[0] for b in BAD_PARAMS])
def test_bad_parameters(case, param, bad):
    _, fn, arg_names, _ = case
    _, value, exc = bad
    if param["choices"]:
        exc = ValueError  # a choice is looked up by value: anything else is "not one of the choices"
    with pytest.raises(exc, match=names(fn, param["name"])):
        invoke(fn, arg_names, [GOOD, GOOD][: len(arg_names)], **{param["name"]: value})


ROW_CALLS = [c for c in CALLS if c[3]["kind"] == "row"]


@pytest.mark.parametrize("case", ROW_CALLS, ids=[c[0] for c in ROW_CALLS])
def test_bad_axis(case):
    _, fn, arg_names, _ = case
    args = [GOOD.reshape(2, 4)] * len(arg_names)
    for bad in (True, 1.5, "0", None, np.float32(0)):
        with pytest.raises(TypeError, match=names(fn, "axis")):
            invoke(fn, arg_names, args, axis=bad)
    for bad in (2, -3, 10 ** 30):
        with pytest.raises(ValueError, match=names(fn, "axis")):
            invoke(fn, arg_names, args, axis=bad)
    with pytest.raises(ValueError, match=names(fn, arg_names[0])):
        invoke(fn, arg_names, [np.float32(1)] * len(arg_names))


@pytest.mark.parametrize("case", CALLS, ids=[c[0] for c in CALLS])
def test_stream_with_cpu_arrays(case):
    _, fn, arg_names, _ = case
    with pytest.raises(ValueError, match=rf"{fn}: stream= is for GPU arrays"):
        invoke(fn, arg_names, [GOOD, GOOD][: len(arg_names)], stream=0)


@pytest.mark.parametrize("op", OPS, ids=[o["name"] for o in OPS])
def test_backward_without_the_input_it_needs(op):
    b = getattr(fastact, op["name"] + "_backward")
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
