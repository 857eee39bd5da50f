"""ONNX's activation and loss operators as fastact calls: one call per operator, every attribute mapped.

    from fastact import onnx
    y = onnx.run("HardSigmoid", x, alpha=0.2, beta=0.5)   # = fastact.hardsigmoid(x, alpha=0.2, beta=0.5)
    y = onnx.run("Clip", x, min=0.0)                       # = fastact.hardtanh(x, min_val=0.0, max_val=inf)
    onnx.OPS["Selu"]                                       # how the mapping reads
    loss = onnx.run("SoftmaxCrossEntropyLoss", scores, labels, weights, ignore_index=0)  # cross_entropy(axis=1)

ONNX's defaults are applied where they differ from fastact's (HardSigmoid's alpha 0.2, ThresholdedRelu's
alpha 1.0, Clip's unbounded min and max; Clip's min > max gives max everywhere, as ONNX has it). Operators
whose extra operands are inputs rather than attributes (Clip's min and max, PRelu's slope, the losses'
labels and weights) take them as keywords or positionally after x. The README's ONNX table
is generated from OPS, and tests/test_onnx.py runs every entry against ONNX Runtime where it is installed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Tuple

__all__ = ["OPS", "Mapping", "run"]


@dataclass(frozen=True)
class Mapping:
    """An ONNX operator as a fastact function: op (its name in fastact), attrs (ONNX attribute or input name
    -> fastact keyword), defaults (ONNX's defaults, as fastact keywords), fixed (keywords the operator
    implies), inputs (the ONNX inputs after X that are fastact keywords or arguments, in order)."""

    op: str
    attrs: Dict[str, str] = field(default_factory=dict)
    defaults: Dict[str, Any] = field(default_factory=dict)
    fixed: Dict[str, Any] = field(default_factory=dict)
    inputs: Tuple[str, ...] = ()
    note: str = ""


# ONNX's Selu constants are float32 values (1.67326319217681884765625, 1.05070102214813232421875).
OPS: Dict[str, Mapping] = {
    "Relu": Mapping("relu"),
    "LeakyRelu": Mapping("leaky_relu", {"alpha": "negative_slope"}, {"negative_slope": 0.01}),
    "PRelu": Mapping("prelu", inputs=("slope",), fixed={"channel_axis": None},
                     note="slope broadcast to X by NumPy's rules"),
    "Elu": Mapping("elu", {"alpha": "alpha"}, {"alpha": 1.0}),
    "Selu": Mapping("selu", {"alpha": "alpha", "gamma": "scale"},
                    {"alpha": 1.67326319217681884765625, "scale": 1.05070102214813232421875}),
    "Celu": Mapping("celu", {"alpha": "alpha"}, {"alpha": 1.0}),
    "Gelu": Mapping("gelu", {"approximate": "approximate"}, {"approximate": "none"}),
    "Sigmoid": Mapping("sigmoid"),
    "HardSigmoid": Mapping("hardsigmoid", {"alpha": "alpha", "beta": "beta"}, {"alpha": 0.2, "beta": 0.5}),
    "HardSwish": Mapping("hardswish"),
    "Swish": Mapping("silu", {"alpha": "beta"}, {"beta": 1.0}),
    "Tanh": Mapping("tanh"),
    "Softsign": Mapping("softsign"),
    "Softplus": Mapping("softplus", fixed={"beta": 1.0, "threshold": math.inf},
                        note="ln(exp(x) + 1) with no linear cut-off"),
    "Mish": Mapping("mish"),
    "Shrink": Mapping("shrink", {"lambd": "lambd", "bias": "bias"}, {"lambd": 0.5, "bias": 0.0}),
    "ThresholdedRelu": Mapping("threshold", {"alpha": "threshold"}, {"threshold": 1.0}, {"value": 0.0}),
    "Clip": Mapping("hardtanh", {"min": "min_val", "max": "max_val"}, {"min_val": -math.inf, "max_val": math.inf},
                    inputs=("min", "max"), note="min and max are inputs (opset 11 on): scalars"),
    "Softmax": Mapping("softmax", {"axis": "axis"}, {"axis": -1}),
    "LogSoftmax": Mapping("log_softmax", {"axis": "axis"}, {"axis": -1}),
    "SoftmaxCrossEntropyLoss": Mapping(
        "cross_entropy", {"weights": "weight", "reduction": "reduction", "ignore_index": "ignore_index"},
        {"reduction": "mean"}, {"axis": 1}, inputs=("labels", "weights"),
        note="scores (N, C, d1, ...), labels (N, d1, ...); the loss only (not the optional log_prob output)"),
    "NegativeLogLikelihoodLoss": Mapping(
        "nll_loss", {"weight": "weight", "reduction": "reduction", "ignore_index": "ignore_index"},
        {"reduction": "mean"}, {"axis": 1}, inputs=("target", "weight"),
        note="input (N, C, d1, ...) of log-probabilities, target (N, d1, ...)"),
}


def _function(name: str) -> Callable:
    import fastact

    return getattr(fastact, name)


def run(op_type: str, x, *inputs, **attributes):
    """Run the ONNX operator op_type on x with its attributes (and its extra inputs: Clip's min and max,
    PRelu's slope, the losses' labels and weights) through its one fastact call. Raises ValueError for an operator not in OPS, TypeError
    for an attribute the operator does not have."""
    try:
        m = OPS[op_type]
    except KeyError:
        raise ValueError(f"fastact.onnx.run: op_type must be one of {sorted(OPS)!r}, got {op_type!r}") from None
    if len(inputs) > len(m.inputs):
        raise TypeError(f"fastact.onnx.run: {op_type} takes {len(m.inputs)} input(s) after X, got {len(inputs)}")
    given = dict(zip(m.inputs, inputs))
    for k, v in attributes.items():
        if k not in m.attrs and k not in m.inputs:
            raise TypeError(f"fastact.onnx.run: {op_type} has no attribute {k!r} (it has: "
                            f"{', '.join(sorted(set(m.attrs) | set(m.inputs))) or 'none'})")
        if k in given:
            raise TypeError(f"fastact.onnx.run: {op_type}'s {k} given twice")
        given[k] = v
    kwargs = dict(m.defaults)
    args = []
    for k, v in given.items():
        if v is None:  # an omitted optional input
            continue
        if k in m.attrs:
            kwargs[m.attrs[k]] = float(v) if op_type == "Clip" else v
        else:
            args.append(v)  # PRelu's slope: positional
    kwargs.update(m.fixed)
    if op_type == "Clip" and kwargs["min_val"] > kwargs["max_val"]:
        kwargs["min_val"] = kwargs["max_val"]  # ONNX: every output is max when min > max
    return _function(m.op)(x, *args, **kwargs)
