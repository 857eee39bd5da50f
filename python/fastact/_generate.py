"""Builds the public functions from the registry the compiled core exports.

Each function is generated as real Python source (so ``inspect.signature`` and ``help`` show the
true parameters) that does the least work possible per call: it maps choice strings to their index
and calls the generic compiled entry point, which does every check in C++.
"""
from __future__ import annotations

from . import _core

_DTYPES = _core._dtype_list  # "float32, float64, float16 or bfloat16": the core's dtype table

_FROM_TEXT = {
    "x": "x (the forward input)",
    "y": "y (the forward output)",
    "x|y": "x (the forward input) or y (the forward output)",
    "x|y+": "x (the forward input), or y (the forward output) when {p} > 0",
}


def _choice(fn, name, value, choices):
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


def _param_src(p):
    """A parameter in a generated signature: name=default, or the bare name of a required one."""
    if p["required"]:
        return p["name"]
    return f"{p['name']}={_default_src(p)}"


def _default_src(p):
    if p["choices"]:
        return repr(p["choices"].split("|")[int(p["default"])])
    return repr(p["default"])


class _BiasActs:
    """bias_act's activations: name -> (op id, the parameters' names, their defaults as the entry point
    takes them, their choice maps), resolved once; a call with no parameters is one dict lookup."""

    def __init__(self, ops):
        self.ops = {}
        for o in ops:
            if o["kind"] == "broadcast" and o["activation"]:
                choices = {p["name"]: {c: i for i, c in enumerate(p["choices"].split("|"))} for p in o["params"]
                           if p["choices"]}
                defaults = tuple(int(p["default"]) if p["choices"] else p["default"] for p in o["params"])
                required = [p["name"] for p in o["params"] if p["required"]]
                self.ops[o["activation"]] = (o["id"], [p["name"] for p in o["params"]], defaults, choices, required)

    def resolve(self, fn, activation, params):
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


def _bias_act_functions(ns, bias_acts):
    acts = sorted(bias_acts.ops)
    ns["_bias_acts"] = bias_acts
    src = (
        "def bias_act(x, bias, /, activation='gelu', *, out=None, stream=None, **params):\n"
        "    op, p = _bias_acts.resolve('bias_act', activation, params)\n"
        "    return _bc(op, 0, x, bias, None, out, p, -1, stream)\n"
        "def bias_act_backward(grad_output, x, bias, /, activation='gelu', *, out=None, stream=None, **params):\n"
        "    op, p = _bias_acts.resolve('bias_act_backward', activation, params)\n"
        "    return _bc(op, 1, x, bias, grad_output, out, p, -1, stream)\n"
    )
    exec(compile(src, "<fastact.bias_act>", "exec"), ns)
    fwd, bwd = ns["bias_act"], ns["bias_act_backward"]
    fwd.__doc__ = (
        "act(x + bias) in one pass: the epilogue of a dense layer, bias broadcast along x's last axis.\n\n"
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
        " the compute type (float32 for 16-bit types, so no rounding to 16 bits in between).")
    bwd.__doc__ = (
        "Gradient of bias_act: returns (grad_x, grad_bias), grad_x = grad_output * act'(x + bias) and grad_bias its"
        " sum over every axis but the last (of bias's shape).\n\n"
        "grad_bias is summed in a fixed order (by chunks of 4,096, 32 compensated lanes each: the same bits for any"
        " thread count and ISA), in float32 for 16-bit types from grad_x before its rounding. out=: a tuple"
        " (grad_x, grad_bias), each an array or None; grad_x may be grad_output or x, grad_bias may be bias. The"
        " other arguments (activation, its parameters, stream=) are bias_act's.")
    for f in (fwd, bwd):
        f.__module__ = "fastact"
    return {"bias_act": fwd, "bias_act_backward": bwd}


def _loss_functions(ns, op, params, kwsig, ptuple, ptuple_b, pdoc):
    """An element-wise loss and its backward (registry.h FASTACT_LOSS_OPS), through losses._pointwise, with
    SPEC 2.3's signature: (pred or logits, target, weights..., parameters..., reduction)."""
    from . import losses
    ns["_pointwise"] = losses._pointwise
    name, oid = op["name"], op["id"]
    names = op["operand"].split()  # the input's name, target, then the weights
    first, extra = names[0], names[2:]
    pos = losses._pos(first)
    wsig = "".join(f", {w}=None" for w in extra)
    args = "(" + "".join(f"{n}, " for n in names) + ")"
    src = (
        f"def {name}({first}, target{wsig}{kwsig}, reduction='mean', *, out=None, stream=None):\n"
        f"    return _pointwise({name!r}, {oid}, 0, None, {args}, {tuple(names)!r}, reduction, {ptuple}, out, stream)\n"
        f"def {name}_backward(grad_output, {first}, target{wsig}{kwsig}, reduction='mean', *, out=None, stream=None):\n"
        f"    return _pointwise({name + '_backward'!r}, {oid}, 1, grad_output, {args}, {tuple(names)!r}, reduction,"
        f" {ptuple_b}, out, stream)\n"
    )
    exec(compile(src, f"<fastact.{name}>", "exec"), ns)
    fwd, bwd = ns[name], ns[f"{name}_backward"]
    wdoc = "".join(f"    {w}: optional array of {pos} dtype (or a number, or a list) that broadcasts to {pos}"
                   " shape, as in PyTorch (None: 1)\n" for w in extra)
    fwd.__doc__ = (
        f"{op['doc']}, element by element, as PyTorch's F.{name}.\n\nArgs:\n"
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
        " sums (the same bits for any thread count and ISA). float16 and bfloat16 are computed in float32.")
    bwd.__doc__ = (
        f"Gradient of {name} in {first}: grad_output * d{name}/d{first}.\n\n"
        "grad_output: a scalar (a number or a 0-d array) for reduction 'mean' or 'sum', an array of"
        f" {pos} shape and dtype for 'none'. The other arguments (weights, parameters, stream=) are {name}'s;"
        f" out= ({pos} shape and dtype) may be {first}, target or grad_output. Returns the gradient (out when"
        " given).")
    for f in (fwd, bwd):
        f.__module__ = "fastact"
    return {name: fwd, f"{name}_backward": bwd}


def build_functions(ops, core):
    ns = {"_ew": core._elementwise, "_row": core._rowwise, "_gated": core._gated, "_bc": core._broadcast,
          "_choice": _choice}
    funcs = {}
    bias_acts = _BiasActs(ops)
    if bias_acts.ops:
        funcs.update(_bias_act_functions(ns, bias_acts))
    for op in ops:
        if op["kind"] == "broadcast" and op["activation"]:
            continue  # bias_act, above
        name, oid, params = op["name"], op["id"], op["params"]
        kwsig = "".join(f", {_param_src(p)}" for p in params)
        def param_tuple(fn):  # the parameters as the entry point takes them; choice errors name fn
            vals = []
            for p in params:
                if p["choices"]:
                    ns[f"_choices_{name}_{p['name']}"] = {c: i for i, c in enumerate(p["choices"].split("|"))}
                    vals.append(f"_choice({fn!r}, {p['name']!r}, {p['name']}, _choices_{name}_{p['name']})")
                else:
                    vals.append(p["name"])
            return "(" + "".join(v + ", " for v in vals) + ")"

        ptuple, ptuple_b = param_tuple(name), param_tuple(name + "_backward")
        pdoc = "\n".join(_param_doc(p) for p in params)
        first = params[0]["name"] if params else ""
        from_text = _FROM_TEXT[op["backward_from"]].format(p=first)
        if op["kind"] == "loss":
            funcs.update(_loss_functions(ns, op, params, kwsig, ptuple, ptuple_b, pdoc))
            continue
        if op["kind"] == "elementwise":
            src = (
                f"def {name}(x, *{kwsig}, out=None, stream=None):\n"
                f"    return _ew({oid}, 0, x, None, out, {ptuple}, stream)\n"
                f"def {name}_backward(grad_output, x=None, *, y=None{kwsig}, out=None, stream=None):\n"
                f"    if y is None:\n"
                f"        if x is None:\n"
                f"            raise ValueError('fastact.{name}_backward needs {from_text}')\n"
                f"        return _ew({oid}, 1, grad_output, x, out, {ptuple_b}, stream)\n"
                f"    if x is not None:\n"
                f"        raise ValueError('fastact.{name}_backward: pass x or y, not both')\n"
                f"    return _ew({oid}, 2, grad_output, y, out, {ptuple_b}, stream)\n"
            )
            fdoc = (f"{op['doc']}, element-wise.\n\nArgs:\n    x: array of {_DTYPES} (any shape and"
                    " strides): NumPy or any CPU DLPack tensor (runs on the CPU), or a GPU array -- CuPy,"
                    " __cuda_array_interface__ or CUDA DLPack (runs on its GPU; see fastact.cuda)\n"
                    f"{pdoc + chr(10) if pdoc else ''}    out: optional array (or writable DLPack tensor) of x's shape and"
                    " dtype to write into (may be x itself)\n"
                    "    stream: GPU arrays only: the CUDA stream to run on (default: the producer's current stream)\n\n"
                    "Returns the result (out when given): for CPU input a NumPy array of x's dtype; for GPU input an array"
                    " of x's library where it can hold it, else a fastact.cuda.DeviceArray. float16 and bfloat16 are"
                    " computed in float32 and rounded once.")
        elif op["kind"] == "gated":
            src = (
                f"def {name}(x, up=None, *, axis=-1{kwsig}, out=None, stream=None):\n"
                f"    return _gated({oid}, 0, x, up, None, out, {ptuple}, axis, stream)\n"
                f"def {name}_backward(grad_output, x, up=None, *, axis=-1{kwsig}, out=None, stream=None):\n"
                f"    return _gated({oid}, 1, x, up, grad_output, out, {ptuple_b}, axis, stream)\n"
            )
            halves = ("a * act(b), act on the second half" if op["gate"] == "second" else
                      "act(a) * b, act on the first half")
            fdoc = (f"{op['doc']}.\n\nTwo forms: {name}(x, axis=-1) splits x into halves a (first) and b (second) along"
                    f" axis (its length must be even); {name}(gate, up) takes a = gate and b = up, two arrays of one"
                    f" shape. ({halves}.)\n\nArgs:\n"
                    f"    x: array of {_DTYPES}, CPU or GPU (as for every fastact op)\n"
                    "    up: the second array of the two-array form (None: split x)\n"
                    "    axis: the axis x is split along (one-array form)\n"
                    f"{pdoc + chr(10) if pdoc else ''}    out: optional array of the result's shape and dtype\n"
                    "    stream: GPU arrays only: the CUDA stream to run on\n\n"
                    "Returns a new array (out when given) of x's shape with axis halved, or of gate's shape. One pass"
                    " over memory; the bits of the unfused composition, rounded once to the storage type.")
        elif op["kind"] == "broadcast":
            w = op["operand"]
            src = (
                f"def {name}(x, {w}, channel_axis=1, *{kwsig}, out=None, stream=None):\n"
                f"    return _bc({oid}, 0, x, {w}, None, out, {ptuple}, channel_axis, stream)\n"
                f"def {name}_backward(grad_output, x, {w}, channel_axis=1, *{kwsig}, out=None, stream=None):\n"
                f"    return _bc({oid}, 1, x, {w}, grad_output, out, {ptuple_b}, channel_axis, stream)\n"
            )
            fdoc = (f"{op['doc']}, element-wise.\n\nArgs:\n"
                    f"    x: array of {_DTYPES} (any shape and strides)\n"
                    f"    {w}: array of x's dtype (a Python number takes x's dtype): one value, or 1-d with one per"
                    " channel along channel_axis"
                    f" (PyTorch), or with channel_axis=None any shape that broadcasts to x's (ONNX PRelu)\n"
                    "    channel_axis: the axis of x the channels lie along (default 1, PyTorch's NCHW; -1 for"
                    " channels last), or None\n"
                    f"{pdoc + chr(10) if pdoc else ''}    out: optional array of x's shape and dtype (may be x itself)\n"
                    "    stream: GPU arrays only: the CUDA stream to run on (default: the producer's current stream)\n\n"
                    "Returns a new array (out when given), on x's device (see fastact.cuda for GPU arrays).")
        else:
            src = (
                f"def {name}(x, axis=-1, *, out=None, stream=None):\n"
                f"    return _row({oid}, 0, x, None, out, axis, stream)\n"
                f"def {name}_backward(grad_output, x=None, *, y=None, axis=-1, out=None, stream=None):\n"
                f"    if y is None:\n"
                f"        raise ValueError('fastact.{name}_backward needs {from_text}'"
                f" + ('; x cannot be used' if x is not None else ''))\n"
                f"    if x is not None:\n"
                f"        raise ValueError('fastact.{name}_backward: pass y only (the forward output)')\n"
                f"    return _row({oid}, 1, grad_output, y, out, axis, stream)\n"
            )
            fdoc = (f"{op['doc']}.\n\nArgs:\n    x: array of {_DTYPES}, at least 1-d"
                    " (16-bit types accumulate in float32)\n"
                    "    axis: the axis to reduce along (default -1, the fast path)\n"
                    "    out: optional array of x's shape and dtype to write into (may be x itself)\n"
                    "    stream: GPU arrays only: the CUDA stream to run on (default: the producer's current stream)\n\n"
                    "Returns the result (out when given), on x's device (see fastact.cuda for GPU arrays). A row that is"
                    " all -inf gives NaN.")
        exec(compile(src, f"<fastact.{name}>", "exec"), ns)
        fwd, bwd = ns[name], ns[f"{name}_backward"]
        fwd.__doc__ = fdoc
        if op["kind"] == "broadcast":
            w = op["operand"]
            bwd.__doc__ = (f"Gradient of {name}: returns (grad_x, grad_{w}), grad_{w} of {w}'s shape: the sum of the"
                           f" contributions of the elements each value of {w} applies to (dy * x where x <= 0), in a"
                           " fixed order (by chunks of 4,096, 32 compensated lanes each: the same bits for any thread"
                           " count and ISA; float32 for 16-bit types).\n\nout=: a tuple (grad_x, grad_{w}), each an"
                           f" array or None; grad_x may be grad_output or x, grad_{w} may be {w}. The other arguments"
                           f" (channel_axis, out=, stream=) are {name}'s.")
        elif op["kind"] == "gated":
            bwd.__doc__ = (f"Gradient of {name}, in the forward's form: {name}_backward(grad_output, x, axis=-1) returns"
                           f" grad_x (x's shape, its halves the gradients of a and b); {name}_backward(grad_output,"
                           " gate, up) returns (grad_gate, grad_up). out=: grad_x's array, or a tuple of two (each an"
                           " array or None); an output may be its own input (in place). The other arguments"
                           f" (parameters, axis, stream=) are {name}'s.")
        else:
            bwd.__doc__ = (f"Gradient of {name}: grad_output * d{name}/dx.\n\nNeeds {from_text}; the other"
                           f" arguments (parameters, out=, stream=) are {name}'s.\nReturns grad_input (out when given),"
                           " on the inputs' device.")
        for f in (fwd, bwd):
            f.__module__ = "fastact"
        funcs[name] = fwd
        funcs[f"{name}_backward"] = bwd
    return funcs
