"""Writes the public functions' source from the registry the compiled core exports.

``render(ops)`` gives the text of ``fastact/_ops.py``: one real, typed Python function per op and
direction (so tracebacks, ``inspect``, ``help``, editors and type checkers see true signatures), each doing
the least work possible per call: it maps choice strings to their index and calls the generic compiled
entry point, which does every check in C++. ``tools/gen_api.py`` writes the file (and a test checks it is
current); fastact's ``__init__`` uses it when its registry digest is this build's, else (an op added and the
file not yet regenerated) it compiles the same text in memory.
"""
from __future__ import annotations

import hashlib
import math
from typing import Any

from . import _core

_DTYPES = _core._dtype_list  # "float32, float64, float16 or bfloat16": the core's dtype table

_FROM_TEXT = {
    "x": "x (the forward input)",
    "y": "y (the forward output)",
    "x|y": "x (the forward input) or y (the forward output)",
    "x|y+": "x (the forward input), or y (the forward output) when {p} > 0",
}

# How each backward_from lets the backward be called, for the docstrings.
_FROM_CALLS = {
    "x": "{n}_backward(grad_output, x)",
    "y": "{n}_backward(grad_output, y=y)",
    "x|y": "{n}_backward(grad_output, x) or {n}_backward(grad_output, y=y)",
    "x|y+": "{n}_backward(grad_output, x), or {n}_backward(grad_output, y=y) when {p} > 0",
}

# The values a docstring's example gives a parameter that has no default.
_EXAMPLE_REQUIRED = 1.0
_EXAMPLE_X = "np.array([-2.0, -0.5, 0.5, 2.0])"


def _choice(fn: str, name: str, value: Any, choices: dict[str, int]) -> int:
    try:
        return choices[value]
    except (KeyError, TypeError):
        raise ValueError(f"fastact.{fn}: {name} must be one of {sorted(choices)!r}, got {value!r}") from None


def _param_doc(p):
    if p["choices"]:
        opts = p["choices"].split("|")
        return f"    {p['name']}: one of {opts}, default {opts[int(p['default'])]!r}"
    cond = {"positive": " (> 0)", "nonnegative": " (>= 0)", "extended": " (+-inf allowed)"}.get(p["check"], "")
    if p["required"]:
        return f"    {p['name']}: float{cond}, required"
    return f"    {p['name']}: float{cond}, default {p['default']!r}"


def _float_src(v):
    if math.isnan(v):
        return "float('nan')"
    if math.isinf(v):
        return "float('inf')" if v > 0 else "-float('inf')"
    return repr(float(v))


def _default_src(p):
    if p["choices"]:
        return repr(p["choices"].split("|")[int(p["default"])])
    return _float_src(p["default"])


def _param_type(p):
    if p["choices"]:
        return "Literal[" + ", ".join(repr(c) for c in p["choices"].split("|")) + "]"
    return "float | np.floating[Any]"  # NumPy scalars too, as at run time


def _typed_params(params):
    """', name: type = default' for each parameter (no default for a required one)."""
    return "".join(f", {p['name']}: {_param_type(p)}" + ("" if p["required"] else f" = {_default_src(p)}")
                   for p in params)


class _BiasActs:
    """bias_act's activations: name -> (op id, the parameters' names, their defaults as the entry point
    takes them, their choice maps), resolved once; a call with no parameters is one dict lookup."""

    def __init__(self, ops: list[dict[str, Any]]) -> None:
        self.ops: dict[str, Any] = {}
        for o in ops:
            if o["kind"] == "broadcast" and o["activation"]:
                choices = {p["name"]: {c: i for i, c in enumerate(p["choices"].split("|"))} for p in o["params"]
                           if p["choices"]}
                defaults = tuple(int(p["default"]) if p["choices"] else p["default"] for p in o["params"])
                required = [p["name"] for p in o["params"] if p["required"]]
                self.ops[o["activation"]] = (o["id"], [p["name"] for p in o["params"]], defaults, choices, required)

    def resolve(self, fn: str, activation: Any, params: dict[str, Any]) -> tuple[int, tuple[Any, ...]]:
        try:
            oid, names, defaults, choices, required = self.ops[activation]
        except (KeyError, TypeError):
            raise ValueError(f"fastact.{fn}: activation must be one of {sorted(self.ops)!r}, got "
                             f"{activation!r}") from None
        if not params and not required:
            return oid, defaults
        missing = [name for name in required if name not in params]
        if missing:
            raise TypeError(f"fastact.{fn}: activation {activation!r} needs the parameter"
                            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)} (no default)")
        for k in params:
            if k not in names:
                raise TypeError(f"fastact.{fn}: {activation} takes no parameter {k!r} (its parameters: "
                                f"{', '.join(sorted(names)) or 'none'})")
        vals = list(defaults)
        for i, name in enumerate(names):
            if name in params:
                v = params[name]
                vals[i] = _choice(fn, name, v, choices[name]) if name in choices else v
        return oid, tuple(vals)


def digest(ops) -> str:
    """A digest of the registry as the core exports it: _ops.py records the one it was written from."""
    return hashlib.sha256(repr(ops).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- source
class _Writer:
    """Collects the module's source: each function as its typed overloads (NumPy in, NumPy of the same
    dtype out; anything else, such as GPU arrays, Any) and one implementation with the docstring."""

    def __init__(self):
        self.parts, self.names, self.choice_maps, self.examples = [], [], {}, {}

    def choice_map(self, op_name, p):
        key = f"_C_{op_name}_{p['name']}"
        self.choice_maps[key] = {c: i for i, c in enumerate(p["choices"].split("|"))}
        return key

    def function(self, name, overloads, body, doc):
        lines = []
        for sig, ret in overloads:
            lines += ["@overload", f"def {name}({sig}) -> {ret}: ..."]
        lines.append(f"def {name}({overloads[-1][0]}) -> Any:")  # the catch-all's: arrays Any, the rest typed
        lines.append(_docstring(doc))
        lines += ["    " + b for b in body]
        self.parts.append("\n".join(lines))
        self.names.append(name)


def _docstring(doc):
    text = doc.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    out = []
    for i, line in enumerate(text.split("\n")):
        out.append(("    " if line else "") + line if i else '    """' + line)
    return "\n".join(out) + '\n    """'


def _param_tuple(w, op_name, params, fn):
    """The parameters as the entry point takes them; a choice's error names fn."""
    vals = []
    for p in params:
        if p["choices"]:
            vals.append(f"_choice({fn!r}, {p['name']!r}, {p['name']}, {w.choice_map(op_name, p)})")
        else:
            vals.append(p["name"])
    return "(" + "".join(v + ", " for v in vals) + ")"


_ARR = "NDArray[_S]"
_OPT = "NDArray[_S] | None"
_CPU = "out: NDArray[_S] | None = None, stream: None = None"
_ANY = "out: Any = None, stream: Any = None"


def _math(op):
    """The op's range and derivative (its functor's texts), as docstring lines."""
    lines = ""
    if op.get("range"):
        lines += f"Range: {op['range']}.\n"
    if op.get("derivative"):
        lines += f"Derivative: {op['derivative']}.\n"
    return lines


def _example_kwargs(params):
    return "".join(f", {p['name']}={_EXAMPLE_REQUIRED!r}" for p in params if p["required"])


def _elementwise(w, op, ex):
    name, oid, params = op["name"], op["id"], op["params"]
    tp = _typed_params(params)
    first = params[0]["name"] if params else ""
    from_text = _FROM_TEXT[op["backward_from"]].format(p=first)
    pdoc = "\n".join(_param_doc(p) for p in params)
    kw = _example_kwargs(params)
    x_src = f"fastact.{name}(x{kw})"
    w.examples[name] = [("x = " + _EXAMPLE_X, None), (f"{x_src}.round(4).tolist()", f"{x_src}.round(4).tolist()"),
                        (f"fastact.{name}_backward(np.ones(4), x{kw}).round(4).tolist()",
                         f"fastact.{name}_backward(np.ones(4), x{kw}).round(4).tolist()")]
    doc = (f"{op['doc']}, element-wise.\n\nArgs:\n    x: array of {_DTYPES} (any shape and"
           " strides): NumPy or any CPU DLPack tensor (runs on the CPU), or a GPU array -- CuPy,"
           " __cuda_array_interface__ or CUDA DLPack (runs on its GPU; see fastact.cuda)\n"
           f"{pdoc + chr(10) if pdoc else ''}    out: optional array (or writable DLPack tensor) of x's shape and"
           " dtype to write into (may be x itself)\n"
           "    stream: GPU arrays only: the CUDA stream to run on (default: the producer's current stream)\n\n"
           "Returns the result (out when given): for CPU input a NumPy array of x's dtype; for GPU input an array"
           " of x's library where it can hold it, else a fastact.cuda.DeviceArray. float16 and bfloat16 are"
           " computed in float32 and rounded once.\n\n"
           f"{_math(op)}Backward: {_FROM_CALLS[op['backward_from']].format(n=name, p=first)}.\n{ex(name)}")
    w.function(name, [(f"x: {_ARR}, *{tp}, {_CPU}", _ARR), (f"x: Any, *{tp}, {_ANY}", "Any")],
               [f"return _ew({oid}, 0, x, None, out, {_param_tuple(w, name, params, name)}, stream)"], doc)
    pt = _param_tuple(w, name, params, name + "_backward")
    bdoc = (f"Gradient of {name}: grad_output * d{name}/dx.\n\nNeeds {from_text}; the other"
            f" arguments (parameters, out=, stream=) are {name}'s.\nReturns grad_input (out when given),"
            " on the inputs' device.")
    w.function(f"{name}_backward",
               [(f"grad_output: {_ARR}, x: {_OPT} = None, *, y: {_OPT} = None{tp}, {_CPU}", _ARR),
                (f"grad_output: Any, x: Any = None, *, y: Any = None{tp}, {_ANY}", "Any")],
               ["if y is None:",
                "    if x is None:",
                f"        raise ValueError('fastact.{name}_backward needs {from_text}')",
                f"    return _ew({oid}, 1, grad_output, x, out, {pt}, stream)",
                "if x is not None:",
                f"    raise ValueError('fastact.{name}_backward: pass x or y, not both')",
                f"return _ew({oid}, 2, grad_output, y, out, {pt}, stream)"], bdoc)


def _gated(w, op, ex):
    name, oid, params = op["name"], op["id"], op["params"]
    tp = _typed_params(params)
    pdoc = "\n".join(_param_doc(p) for p in params)
    halves = "a * act(b), act on the second half" if op["gate"] == "second" else "act(a) * b, act on the first half"
    w.examples[name] = [("x = np.array([[1.0, -1.0, 2.0, 0.5]])", None),
                        (f"fastact.{name}(x).round(4).tolist()", f"fastact.{name}(x).round(4).tolist()"),
                        (f"fastact.{name}_backward(np.ones((1, 2)), x).round(4).tolist()",
                         f"fastact.{name}_backward(np.ones((1, 2)), x).round(4).tolist()")]
    doc = (f"{op['doc']}.\n\nTwo forms: {name}(x, axis=-1) splits x into halves a (first) and b (second) along"
           f" axis (its length must be even); {name}(gate, up) takes a = gate and b = up, two arrays of one"
           f" shape. ({halves}.)\n\nArgs:\n"
           f"    x: array of {_DTYPES}, CPU or GPU (as for every fastact op)\n"
           "    up: the second array of the two-array form (None: split x)\n"
           "    axis: the axis x is split along (one-array form)\n"
           f"{pdoc + chr(10) if pdoc else ''}    out: optional array of the result's shape and dtype\n"
           "    stream: GPU arrays only: the CUDA stream to run on\n\n"
           "Returns a new array (out when given) of x's shape with axis halved, or of gate's shape. One pass"
           " over memory; the bits of the unfused composition, rounded once to the storage type.\n\n"
           f"Backward: {name}_backward(grad_output, x) gives grad_x; {name}_backward(grad_output, gate, up) gives"
           f" (grad_gate, grad_up).\n{ex(name)}")
    w.function(name, [(f"x: {_ARR}, up: {_OPT} = None, *, axis: int = -1{tp}, {_CPU}", _ARR),
                      (f"x: Any, up: Any = None, *, axis: int = -1{tp}, {_ANY}", "Any")],
               [f"return _gated({oid}, 0, x, up, None, out, {_param_tuple(w, name, params, name)}, axis, stream)"],
               doc)
    pair = f"tuple[{_ARR}, {_ARR}]"
    bdoc = (f"Gradient of {name}, in the forward's form: {name}_backward(grad_output, x, axis=-1) returns"
            f" grad_x (x's shape, its halves the gradients of a and b); {name}_backward(grad_output,"
            " gate, up) returns (grad_gate, grad_up). out=: grad_x's array, or a tuple of two (each an"
            " array or None); an output may be its own input (in place). The other arguments"
            f" (parameters, axis, stream=) are {name}'s.")
    w.function(f"{name}_backward",
               [(f"grad_output: {_ARR}, x: {_ARR}, up: None = None, *, axis: int = -1{tp}, {_CPU}", _ARR),
                (f"grad_output: {_ARR}, x: {_ARR}, up: {_ARR}, *, axis: int = -1{tp}, "
                 f"out: tuple[{_OPT}, {_OPT}] | None = None, stream: None = None", pair),
                (f"grad_output: Any, x: Any, up: Any = None, *, axis: int = -1{tp}, {_ANY}", "Any")],
               [f"return _gated({oid}, 1, x, up, grad_output, out, {_param_tuple(w, name, params, name + '_backward')}"
                ", axis, stream)"], bdoc)


def _broadcast(w, op, ex):
    name, oid, params = op["name"], op["id"], op["params"]
    tp = _typed_params(params)
    pdoc = "\n".join(_param_doc(p) for p in params)
    o = op["operand"]
    w.examples[name] = [("x = " + _EXAMPLE_X, None),
                        (f"fastact.{name}(x, 0.25).tolist()", f"fastact.{name}(x, 0.25).tolist()"),
                        (f"[g.tolist() for g in fastact.{name}_backward(np.ones(4), x, 0.25)]",
                         f"[g.tolist() for g in fastact.{name}_backward(np.ones(4), x, 0.25)]")]
    doc = (f"{op['doc']}, element-wise.\n\nArgs:\n"
           f"    x: array of {_DTYPES} (any shape and strides)\n"
           f"    {o}: array of x's dtype (a Python number takes x's dtype): one value, or 1-d with one per"
           " channel along channel_axis"
           f" (PyTorch), or with channel_axis=None any shape that broadcasts to x's (ONNX PRelu)\n"
           "    channel_axis: the axis of x the channels lie along (default 1, PyTorch's NCHW; -1 for"
           " channels last), or None\n"
           f"{pdoc + chr(10) if pdoc else ''}    out: optional array of x's shape and dtype (may be x itself)\n"
           "    stream: GPU arrays only: the CUDA stream to run on (default: the producer's current stream)\n\n"
           "Returns a new array (out when given), on x's device (see fastact.cuda for GPU arrays).\n\n"
           f"Backward: {name}_backward(grad_output, x, {o}) gives (grad_x, grad_{o}).\n{ex(name)}")
    w.function(name, [(f"x: {_ARR}, {o}: ArrayLike, channel_axis: int | None = 1, *{tp}, {_CPU}", _ARR),
                      (f"x: Any, {o}: Any, channel_axis: int | None = 1, *{tp}, {_ANY}", "Any")],
               [f"return _bc({oid}, 0, x, {o}, None, out, {_param_tuple(w, name, params, name)}, channel_axis, "
                "stream)"], doc)
    bdoc = (f"Gradient of {name}: returns (grad_x, grad_{o}), grad_{o} of {o}'s shape: the sum of the"
            f" contributions of the elements each value of {o} applies to (dy * x where x <= 0), in a"
            " fixed order (by chunks of 4,096, 32 compensated lanes each: the same bits for any thread"
            " count and ISA; float32 for 16-bit types).\n\nout=: a tuple (grad_x, grad_{o}), each an"
            f" array or None; grad_x may be grad_output or x, grad_{o} may be {o}. The other arguments"
            f" (channel_axis, out=, stream=) are {name}'s.")
    w.function(f"{name}_backward",
               [(f"grad_output: {_ARR}, x: {_ARR}, {o}: ArrayLike, channel_axis: int | None = 1, *{tp}, "
                 f"out: tuple[{_OPT}, {_OPT}] | None = None, stream: None = None", f"tuple[{_ARR}, {_ARR}]"),
                (f"grad_output: Any, x: Any, {o}: Any, channel_axis: int | None = 1, *{tp}, {_ANY}", "Any")],
               [f"return _bc({oid}, 1, x, {o}, grad_output, out, {_param_tuple(w, name, params, name + '_backward')}"
                ", channel_axis, stream)"], bdoc)


def _bias_act(w, bias_acts, ex):
    acts = sorted(bias_acts.ops)
    lit = "Literal[" + ", ".join(repr(a) for a in acts) + "]"
    w.examples["bias_act"] = [("x = np.array([[-1.0, 0.5], [2.0, -3.0]])", None),
                              ("fastact.bias_act(x, np.array([0.5, 1.0]), 'relu').tolist()",
                               "fastact.bias_act(x, np.array([0.5, 1.0]), 'relu').tolist()")]
    doc = ("act(x + bias) in one pass: the epilogue of a dense layer, bias broadcast along x's last axis.\n\n"
           "Args:\n"
           f"    x: array of {_DTYPES}, at least 1-d (any strides)\n"
           "    bias: array of x's dtype, 1-d of x's last dimension, or one value (a Python number takes x's dtype);"
           " x and bias are positional-only, so that an activation's parameter may be named bias (shrink's)\n"
           f"    activation: one of {acts}, default 'gelu'\n"
           "    out: optional array of x's shape and dtype (may be x itself)\n"
           "    stream: GPU arrays only: the CUDA stream to run on (default: the producer's current stream)\n"
           "    **params: the activation's parameters (e.g. approximate='tanh' for gelu, negative_slope=0.1 for"
           " leaky_relu), with its defaults; those without a default (softcap's cap, threshold's threshold and"
           " value) must be given\n\n"
           "Returns a new array (out when given). The bits of fastact.<activation>(x + bias) with x + bias rounded to"
           " the compute type (float32 for 16-bit types, so no rounding to 16 bits in between).\n\n"
           "Backward: bias_act_backward(grad_output, x, bias, activation) gives (grad_x, grad_bias).\n"
           f"{ex('bias_act')}")
    w.function("bias_act",
               [(f"x: {_ARR}, bias: ArrayLike, /, activation: {lit} = 'gelu', *, {_CPU}, **params: float | str",
                 _ARR),
                (f"x: Any, bias: Any, /, activation: {lit} = 'gelu', *, out: Any = None, stream: Any = None, "
                 "**params: float | str", "Any")],
               ["op, p = _bias_acts.resolve('bias_act', activation, params)",
                "return _bc(op, 0, x, bias, None, out, p, -1, stream)"], doc)
    bdoc = ("Gradient of bias_act: returns (grad_x, grad_bias), grad_x = grad_output * act'(x + bias) and grad_bias its"
            " sum over every axis but the last (of bias's shape).\n\n"
            "grad_bias is summed in a fixed order (by chunks of 4,096, 32 compensated lanes each: the same bits for any"
            " thread count and ISA), in float32 for 16-bit types from grad_x before its rounding. out=: a tuple"
            " (grad_x, grad_bias), each an array or None; grad_x may be grad_output or x, grad_bias may be bias. The"
            " other arguments (activation, its parameters, stream=) are bias_act's.")
    w.function("bias_act_backward",
               [(f"grad_output: {_ARR}, x: {_ARR}, bias: ArrayLike, /, activation: {lit} = 'gelu', *, "
                 f"out: tuple[{_OPT}, {_OPT}] | None = None, stream: None = None, **params: float | str",
                 f"tuple[{_ARR}, {_ARR}]"),
                (f"grad_output: Any, x: Any, bias: Any, /, activation: {lit} = 'gelu', *, out: Any = None, "
                 "stream: Any = None, **params: float | str", "Any")],
               ["op, p = _bias_acts.resolve('bias_act_backward', activation, params)",
                "return _bc(op, 1, x, bias, grad_output, out, p, -1, stream)"], bdoc)


def _loss(w, op, ex):
    """An element-wise loss and its backward (registry.h FASTACT_LOSS_OPS), through losses._pointwise, with
    SPEC 2.3's signature: (pred or logits, target, weights..., parameters..., reduction)."""
    from . import losses
    name, oid, params = op["name"], op["id"], op["params"]
    names = op["operand"].split()  # the input's name, target, then the weights
    first, extra = names[0], names[2:]
    pos = losses._pos(first)
    tp = "".join(f", {p['name']}: {_param_type(p)}" + ("" if p["required"] else f" = {_default_src(p)}")
                 for p in params)
    wsig_t = "".join(f", {x}: ArrayLike | None = None" for x in extra)
    wsig_a = "".join(f", {x}: Any = None" for x in extra)
    red = "reduction: Literal['mean', 'sum', 'none'] = 'mean'"
    args = "(" + "".join(f"{n}, " for n in names) + ")"
    pdoc = "\n".join(_param_doc(p) for p in params)
    w.examples[name] = [(f"{first}, target = np.array([0.5, -1.0, 3.0]), np.array([1.0, 0.0, 1.0])", None),
                        (f"round(float(fastact.{name}({first}, target)), 6)",
                         f"round(float(fastact.{name}({first}, target)), 6)"),
                        (f"fastact.{name}_backward(1.0, {first}, target).round(4).tolist()",
                         f"fastact.{name}_backward(1.0, {first}, target).round(4).tolist()")]
    wdoc = "".join(f"    {x}: optional array of {pos} dtype (or a number, or a list) that broadcasts to {pos}"
                   " shape, as in PyTorch (None: 1)\n" for x in extra)
    doc = (f"{op['doc']}, element by element, as PyTorch's F.{name}.\n\nArgs:\n"
           f"    {first}: array of {_DTYPES} (any shape and strides; a CPU DLPack tensor is read in place), or a GPU"
           " array (CuPy, a PyTorch CUDA tensor, any CUDA array-interface or DLPack producer: the call runs there, with"
           " the CPU's bits, and returns an array of its library)\n"
           f"    target: array of {pos} dtype and shape\n"
           f"{wdoc}"
           f"{pdoc + chr(10) if pdoc else ''}"
           "    reduction: 'mean' (over every element), 'sum', or 'none' (one loss per element)\n"
           f"    out: reduction 'none' only: an array of {pos} shape and dtype to write into (may be {first} or target)\n"
           "    stream: GPU arrays only: the CUDA stream to run on (default: the producer's current stream)\n\n"
           f"Returns a 0-d array of {pos} dtype ('mean', 'sum'), or the losses (out when given). One pass over the"
           " operands, nothing stored between: 'mean' and 'sum' add the losses in a fixed order with compensated"
           " sums (the same bits for any thread count and ISA). float16 and bfloat16 are computed in float32.\n\n"
           f"Backward: {name}_backward(grad_output, {first}, target, ...) gives the gradient in {first}.\n{ex(name)}")
    w.function(name,
               [(f"{first}: {_ARR}, target: ArrayLike{wsig_t}{tp}, {red}, *, {_CPU}", _ARR),
                (f"{first}: Any, target: Any{wsig_a}{tp}, {red}, *, {_ANY}", "Any")],
               [f"return _pointwise({name!r}, {oid}, 0, None, {args}, {tuple(names)!r}, reduction, "
                f"{_param_tuple(w, name, params, name)}, out, stream)"], doc)
    bdoc = (f"Gradient of {name} in {first}: grad_output * d{name}/d{first}.\n\n"
            "grad_output: a scalar (a number or a 0-d array) for reduction 'mean' or 'sum', an array of"
            f" {pos} shape and dtype for 'none'. The other arguments (weights, parameters, stream=) are {name}'s;"
            f" out= ({pos} shape and dtype) may be {first}, target or grad_output. Returns the gradient (out when"
            " given).")
    w.function(f"{name}_backward",
               [(f"grad_output: ArrayLike, {first}: {_ARR}, target: ArrayLike{wsig_t}{tp}, {red}, *, {_CPU}", _ARR),
                (f"grad_output: Any, {first}: Any, target: Any{wsig_a}{tp}, {red}, *, {_ANY}",
                 "Any")],
               [f"return _pointwise({name + '_backward'!r}, {oid}, 1, grad_output, {args}, {tuple(names)!r}, reduction,"
                f" {_param_tuple(w, name, params, name + '_backward')}, out, stream)"], bdoc)


def _row(w, op, ex):
    name, oid = op["name"], op["id"]
    from_text = _FROM_TEXT[op["backward_from"]]
    w.examples[name] = [("x = np.array([1.0, 2.0, 3.0])", None),
                        (f"fastact.{name}(x).round(4).tolist()", f"fastact.{name}(x).round(4).tolist()"),
                        (f"fastact.{name}_backward(np.array([1.0, 0.0, 0.0]), y=fastact.{name}(x)).round(4).tolist()",
                         f"fastact.{name}_backward(np.array([1.0, 0.0, 0.0]), y=fastact.{name}(x)).round(4).tolist()")]
    doc = (f"{op['doc']}.\n\nArgs:\n    x: array of {_DTYPES}, at least 1-d"
           " (16-bit types accumulate in float32)\n"
           "    axis: the axis to reduce along (default -1, the fast path)\n"
           "    out: optional array of x's shape and dtype to write into (may be x itself)\n"
           "    stream: GPU arrays only: the CUDA stream to run on (default: the producer's current stream)\n\n"
           "Returns the result (out when given), on x's device (see fastact.cuda for GPU arrays). A row that is"
           " all -inf gives NaN.\n\n"
           f"{_math(op)}Backward: {_FROM_CALLS[op['backward_from']].format(n=name, p='')} (from the forward's output).\n"
           f"{ex(name)}")
    w.function(name, [(f"x: {_ARR}, axis: int = -1, *, {_CPU}", _ARR), (f"x: Any, axis: int = -1, *, {_ANY}", "Any")],
               [f"return _row({oid}, 0, x, None, out, axis, stream)"], doc)
    bdoc = (f"Gradient of {name}: grad_output * d{name}/dx.\n\nNeeds {from_text}; the other"
            f" arguments (axis, out=, stream=) are {name}'s.\nReturns grad_input (out when given),"
            " on the inputs' device.")
    w.function(f"{name}_backward",
               [(f"grad_output: {_ARR}, x: None = None, *, y: {_ARR}, axis: int = -1, {_CPU}", _ARR),
                (f"grad_output: Any, x: Any = None, *, y: Any = None, axis: int = -1, {_ANY}", "Any")],
               ["if y is None:",
                f"    raise ValueError('fastact.{name}_backward needs {from_text}'"
                " + ('; x cannot be used' if x is not None else ''))",
                "if x is not None:",
                f"    raise ValueError('fastact.{name}_backward: pass y only (the forward output)')",
                f"return _row({oid}, 1, grad_output, y, out, axis, stream)"], bdoc)


_HEADER = '''\
# Generated by tools/gen_api.py from the op registry (fastact._core.ops()); do not edit by hand.
"""fastact's functions, one per registry op and direction, re-exported by ``fastact``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from . import _core
from ._core import _broadcast as _bc, _elementwise as _ew, _gated, _rowwise as _row
from ._generate import _BiasActs, _choice
from .losses import _pointwise

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

_S = TypeVar("_S", bound="np.generic")

'''


def render(ops, examples=None) -> str:
    """The source of fastact/_ops.py for this registry. examples: {op: the doctest lines' outputs}, from
    running the functions once (tools/gen_api.py); without them the docstrings carry no example."""
    w = _Writer()

    def ex(name):
        got = (examples or {}).get(name)
        if not got:
            return ""
        lines = ["", "Example::", "", "    >>> import numpy as np, fastact"]
        for (src, _), result in zip(w.examples[name], got):
            lines.append(f"    >>> {src}")
            if result is not None:
                lines.append(f"    {result}")
        return "\n".join(lines) + "\n"

    bias_acts = _BiasActs(ops)
    if bias_acts.ops:
        _bias_act(w, bias_acts, ex)
    kinds = {"elementwise": _elementwise, "gated": _gated, "broadcast": _broadcast, "loss": _loss, "row": _row}
    for op in ops:
        if op["kind"] == "broadcast" and op["activation"]:
            continue  # bias_act, above
        kinds[op["kind"]](w, op, ex)
    maps = "".join(f"{k} = {v!r}\n" for k, v in w.choice_maps.items())
    names = "".join(f"    {n!r},\n" for n in w.names)
    return (_HEADER + f"REGISTRY_DIGEST = {digest(ops)!r}\n"
            "_bias_acts = _BiasActs(_core.ops())\n" + maps + "\n\n" + "\n\n\n".join(w.parts) +
            f"\n\n\n__all__ = [\n{names}]\n")


def example_calls(ops):
    """{op: [(doctest source, expression to evaluate or None)]}: what each docstring's example runs."""
    w = _Writer()
    bias_acts = _BiasActs(ops)
    if bias_acts.ops:
        _bias_act(w, bias_acts, lambda n: "")
    kinds = {"elementwise": _elementwise, "gated": _gated, "broadcast": _broadcast, "loss": _loss, "row": _row}
    for op in ops:
        if not (op["kind"] == "broadcast" and op["activation"]):
            kinds[op["kind"]](w, op, lambda n: "")
    return w.examples


def load(ops, filename):
    """The functions compiled from render(ops) in memory (used when _ops.py is not this registry's)."""
    import types

    mod = types.ModuleType("fastact._ops")
    mod.__package__ = "fastact"
    exec(compile(render(ops), filename, "exec"), mod.__dict__)
    return mod
