"""Bad input gets a clear exception that names the argument (SPEC 2.4), never a crash."""
from __future__ import annotations

import numpy as np
import pytest

import fastact
from conftest import ELEMENTWISE, ROW, op_fn

X = np.linspace(-1, 1, 8, dtype=np.float32)


@pytest.mark.parametrize("op", ELEMENTWISE + ROW, ids=lambda o: o["name"])
@pytest.mark.parametrize("bad", [np.int32, np.int64, np.bool_, np.complex64, np.uint8, object])
def test_bad_dtype_is_a_type_error_naming_x(op, bad):
    with pytest.raises(TypeError, match=r"x has dtype .*expected float32, float64, float16 or bfloat16"):
        op_fn(op)(np.zeros(4, dtype=bad))


@pytest.mark.parametrize("op", ELEMENTWISE, ids=lambda o: o["name"])
def test_out_errors(op):
    f = op_fn(op)
    with pytest.raises(ValueError, match="out must have the shape"):
        f(X, out=np.empty(9, np.float32))
    with pytest.raises(TypeError, match="out has dtype float64; expected float32"):
        f(X, out=np.empty(8, np.float64))
    ro = np.empty(8, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        f(X, out=ro)
    with pytest.raises(TypeError, match="out must be a NumPy array"):
        f(X, out=[0.0] * 8)


@pytest.mark.parametrize("op", ELEMENTWISE, ids=lambda o: o["name"])
def test_backward_argument_errors(op):
    b = op_fn(op, "_backward")
    with pytest.raises(ValueError, match="needs x"):
        b(X)
    with pytest.raises(ValueError, match="not both"):
        b(X, X, y=X)
    with pytest.raises(TypeError, match="dtype"):
        b(X, X.astype(np.float64))
    with pytest.raises(ValueError, match="shape"):
        b(X, X[:4])


def test_backward_from_y_where_it_cannot_be_used():
    with pytest.raises(ValueError, match="gelu_backward needs x"):
        fastact.gelu_backward(X, y=X)
    with pytest.raises(ValueError, match="negative_slope > 0"):
        fastact.leaky_relu_backward(X, y=X, negative_slope=-0.1)
    with pytest.raises(ValueError, match="alpha > 0"):
        fastact.elu_backward(X, y=X, alpha=0.0)
    with pytest.raises(ValueError, match="needs y"):
        fastact.softmax_backward(X, X)


@pytest.mark.parametrize("op", [o for o in ELEMENTWISE if o["params"]], ids=lambda o: o["name"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), "abc", None])
def test_bad_parameter_names_it(op, value):
    p = op["params"][0]
    with pytest.raises((ValueError, TypeError), match=p["name"]):
        op_fn(op)(X, **{p["name"]: value})


def test_row_op_errors():
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        fastact.softmax(np.zeros((2, 2), np.float32), axis=2)
    with pytest.raises(TypeError, match="axis must be an int"):
        fastact.softmax(X, axis=0.5)
    with pytest.raises(ValueError, match="at least one dimension"):
        fastact.log_softmax(np.float32(1.0))


def test_conversions_and_other_inputs():
    assert fastact.relu([1, -2, 3]).dtype == np.float64  # Python ints promote as in NumPy
    np.testing.assert_array_equal(fastact.relu([1.0, -2.0]), [1.0, 0.0])
    assert fastact.sigmoid(0.0) == 0.5 and isinstance(fastact.sigmoid(0.0), np.ndarray)
    with pytest.raises(TypeError, match="x is required"):
        fastact.relu(None)
    with pytest.raises(TypeError):
        fastact.relu("abc")
    with pytest.raises(TypeError, match="dtype"):
        fastact.relu(np.zeros(3, np.int16))


def test_configuration_errors():
    for bad in (0, -1, 4097, 10**6):
        with pytest.raises(ValueError, match="n must be from 1 to 4096"):
            fastact.set_num_threads(bad)
    for bad in (2.0, True, "2", None):
        with pytest.raises(TypeError, match="n must be an int"):
            fastact.set_num_threads(bad)
    with pytest.raises(ValueError, match="not available"):
        fastact.set_isa("bogus")
    with pytest.raises(ValueError, match="approximate must be one of"):
        fastact.gelu(X, approximate="fast")
