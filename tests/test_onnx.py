"""ONNX's activation operators through fastact.onnx: each one call, every attribute mapped, against ONNX
Runtime (an independent implementation) where onnx and onnxruntime are installed (CI installs both)."""
from __future__ import annotations

import numpy as np
import pytest

import fastact
from fastact import onnx as fonnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

# attribute values to run each operator with besides its defaults
CASES = {
    "LeakyRelu": [{"alpha": 0.2}], "Elu": [{"alpha": 0.5}], "Selu": [{"alpha": 1.5, "gamma": 2.0}],
    "Celu": [{"alpha": 1.7}], "Gelu": [{"approximate": "tanh"}], "HardSigmoid": [{"alpha": 1 / 6, "beta": 0.4}],
    "Swish": [{"alpha": 1.702}], "Shrink": [{"lambd": 1.0, "bias": 0.25}, {"lambd": 0.7, "bias": 0.7}],
    "ThresholdedRelu": [{"alpha": -0.5}],
    "Clip": [{"min": -2.0}, {"max": 0.5}, {"min": -1.0, "max": 3.0}, {"min": 2.0, "max": 1.0}],
    "Softmax": [{"axis": 0}], "LogSoftmax": [{"axis": 0}],
}
OPSET = 24  # ONNX Runtime 1.2x runs it; Gelu (20) and Swish (24) need that recent an opset


def _model(op_type, attrs, x, extra):
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape))]
    names, inits = ["X"], []
    for k, v in extra.items():  # Clip's min / max, PRelu's slope: initializers
        names.append(k)
        inits.append(onnx.numpy_helper.from_array(np.asarray(v, np.float32), k))
    if op_type == "Clip" and "min" not in extra and "max" in extra:
        names.insert(1, "")  # an omitted optional input
    node = helper.make_node(op_type, names, ["Y"], **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def _ort(op_type, attrs, x, extra):
    model = _model(op_type, attrs, x, extra)
    try:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - this ONNX Runtime lacks the operator at that opset
        pytest.skip(f"onnxruntime {ort.__version__} cannot run {op_type}: {str(e)[:120]}")
    return sess.run(None, {"X": x})[0]


LOSSES = ("SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss")  # two inputs and labels: their own test below


def _cases():
    for op_type in (o for o in fonnx.OPS if o not in LOSSES):
        yield pytest.param(op_type, {}, id=op_type)
        for i, c in enumerate(CASES.get(op_type, [])):
            yield pytest.param(op_type, c, id=f"{op_type}-{i}")


@pytest.mark.parametrize("op_type,attrs", list(_cases()))
def test_operator_is_one_fastact_call(op_type, attrs):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-8, 8, 97 * 40), np.linspace(-3, 3, 97)]).astype(np.float32).reshape(-1, 97)
    extra = {k: v for k, v in attrs.items() if k in fonnx.OPS[op_type].inputs}
    onnx_attrs = {k: v for k, v in attrs.items() if k not in extra}
    if op_type == "PRelu":
        extra = {"slope": rng.uniform(-1, 1, 97).astype(np.float32)}
    want = _ort(op_type, onnx_attrs, x, extra)
    got = fonnx.run(op_type, x, **onnx_attrs, **extra)
    assert got.dtype == np.float32 and got.shape == want.shape
    # ONNX Runtime's own float32 math (erf, tanh, exp approximations) is a few ulp off: agreement to that
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6 * np.maximum(1, np.abs(x)).max())


def test_every_attribute_of_every_operator_is_mapped():
    for op_type, m in fonnx.OPS.items():
        schema = onnx.defs.get_schema(op_type, OPSET)
        names = set(schema.attributes) | {i.name for i in schema.inputs[1:]}
        assert names == set(m.attrs) | set(m.inputs), (op_type, names)
        assert hasattr(fastact, m.op), m.op
        for k, v in m.defaults.items():  # ONNX's defaults, where it has them as attributes
            onnx_name = next((a for a, b in m.attrs.items() if b == k), None)
            if onnx_name in schema.attributes and schema.attributes[onnx_name].default_value.type:
                d = helper.get_attribute_value(schema.attributes[onnx_name].default_value)
                d = d.decode() if isinstance(d, bytes) else d
                assert d == v or (isinstance(v, float) and np.float32(d) == np.float32(v)), (op_type, k, d, v)


def test_bad_operator_and_attribute():
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="op_type must be one of"):
        fonnx.run("Nope", x)
    with pytest.raises(TypeError, match="HardSigmoid has no attribute 'gamma'"):
        fonnx.run("HardSigmoid", x, gamma=1.0)
    assert np.array_equal(fonnx.run("Clip", np.float32([-5, 0.5, 5]), np.float32(-1), np.float32(1)),
                          np.float32([-1, 0.5, 1]))


@pytest.mark.parametrize("op_type", LOSSES)
@pytest.mark.parametrize("shape", [(13, 7), (5, 7, 3, 2)])
@pytest.mark.parametrize("attrs", [{}, {"reduction": "sum"}, {"reduction": "none"}, {"ignore_index": 2},
                                   {"weights": True}, {"weights": True, "ignore_index": 2, "reduction": "mean"},
                                   {"weights": True, "reduction": "none"}],
                         ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()) or "default")
def test_loss_operator_is_one_fastact_call(op_type, shape, attrs):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    labels = rng.integers(0, shape[1], (shape[0],) + shape[2:]).astype(np.int64)
    if "ignore_index" in attrs:
        labels.reshape(-1)[::4] = attrs["ignore_index"]
    wname = "weights" if op_type == "SoftmaxCrossEntropyLoss" else "weight"
    weights = rng.uniform(0.3, 2, shape[1]).astype(np.float32) if attrs.get("weights") else None
    onnx_attrs = {k: v for k, v in attrs.items() if k != "weights"}
    names = ["X", "L"] + (["W"] if weights is not None else [])
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(shape)),
              helper.make_tensor_value_info("L", TensorProto.INT64, list(labels.shape))]
    inits = [onnx.numpy_helper.from_array(weights, "W")] if weights is not None else []
    node = helper.make_node(op_type, names, ["Y"], **onnx_attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"X": x, "L": labels})[0]
    extra = {wname: weights} if weights is not None else {}
    got = fonnx.run(op_type, x, labels, **onnx_attrs, **extra)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)
