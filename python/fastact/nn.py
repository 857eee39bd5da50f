"""Layers and losses as objects, for NumPy training loops: ``y = layer(x)`` runs the forward and keeps what
the backward needs (the output where the gradient can be had from it, else the input), then
``dx = layer.backward(grad)`` gives the gradient with respect to the input.

Every op of the registry has its layer, named as PyTorch names it (``ReLU``, ``LeakyReLU``, ``GELU``, ``SiLU``,
``Softmax``, ``LogSoftmax``, ``GLU``, ``SwiGLU``, ``PReLU`` ...), with the op's parameters as keyword (or
positional) arguments: ``GELU(approximate="tanh")``, ``Softmax(axis=-1)``. ``PReLU`` and ``BiasAct`` hold
their weight or bias and add each backward's gradient to ``weight_grad`` / ``bias_grad`` (``zero_grad()``
clears it). The losses are objects too: ``loss = CrossEntropyLoss()(logits, target)``, then
``dlogits = loss_fn.backward()`` (grad_output 1 by default). A backward before any forward, or with a
gradient whose shape is not the forward's output's, is an error that says so. The layers are made from the
registry when fastact is imported, so an op added later has its layer here with no edit.
"""
from __future__ import annotations

import inspect

import numpy as np

from . import _core, losses as _losses

# PyTorch's spellings; an op missing here gets its words capitalised (quick_gelu -> QuickGelu).
_TORCH_NAMES = {
    "relu": "ReLU", "leaky_relu": "LeakyReLU", "elu": "ELU", "gelu": "GELU", "silu": "SiLU", "sigmoid": "Sigmoid",
    "tanh": "Tanh", "selu": "SELU", "celu": "CELU", "quick_gelu": "QuickGELU", "relu6": "ReLU6",
    "hardtanh": "Hardtanh", "hardsigmoid": "Hardsigmoid", "hardswish": "Hardswish", "softshrink": "Softshrink",
    "hardshrink": "Hardshrink", "softsign": "Softsign", "softplus": "Softplus", "logsigmoid": "LogSigmoid",
    "mish": "Mish", "tanhshrink": "Tanhshrink", "softmax": "Softmax", "log_softmax": "LogSoftmax", "glu": "GLU",
    "swiglu": "SwiGLU", "geglu": "GeGLU", "reglu": "ReGLU", "prelu": "PReLU", "bias_act": "BiasAct",
    "mse_loss": "MSELoss", "huber_loss": "HuberLoss", "smooth_l1_loss": "SmoothL1Loss",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss", "cross_entropy": "CrossEntropyLoss",
    "nll_loss": "NLLLoss",
}


def _class_name(op: str) -> str:
    return _TORCH_NAMES.get(op) or "".join(w.capitalize() for w in op.split("_"))


class Module:
    """A layer: ``__call__`` / ``forward`` runs the op and keeps what ``backward`` needs."""

    _saved = None

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _take(self, grad):
        if self._saved is None:
            raise RuntimeError(f"fastact.nn.{type(self).__name__}.backward: call the layer (its forward) first")
        shape = np.shape(grad)
        if shape != self._out_shape:
            raise ValueError(f"fastact.nn.{type(self).__name__}.backward: grad has shape {shape}; expected the "
                             f"forward output's shape {self._out_shape}")
        return self._saved

    def _keep(self, saved, out):
        self._saved, self._out_shape = saved, tuple(np.shape(out))
        return out

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in getattr(self, "params", {}).items())
        return f"{type(self).__name__}({args})"


def _bind(cls, args, kwargs, names, defaults):
    if len(args) > len(names):
        raise TypeError(f"fastact.nn.{cls}() takes at most {len(names)} arguments ({', '.join(names) or 'none'}), got "
                        f"{len(args)}")
    params = dict(zip(names, defaults))
    for n, v in zip(names, args):
        params[n] = v
    for n, v in kwargs.items():
        if n not in params:
            raise TypeError(f"fastact.nn.{cls}() got an unexpected argument {n!r} (its parameters: "
                            f"{', '.join(names) or 'none'})")
        if n in names[:len(args)]:
            raise TypeError(f"fastact.nn.{cls}() got {n!r} twice")
        params[n] = v
    missing = [n for n, v in params.items() if v is _REQUIRED]
    if missing:
        raise TypeError(f"fastact.nn.{cls}() missing required argument{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(repr(n) for n in missing)}")
    return params


_REQUIRED = inspect.Parameter.empty


def _params_of(f, skip):
    """The parameters of a generated function besides its arrays, with their defaults (choices as their
    names; _REQUIRED for one without a default)."""
    ps = [p for p in inspect.signature(f).parameters.values()
          if p.name not in skip and p.kind != p.VAR_KEYWORD and p.name != "grad_output"
          and (p.kind == p.KEYWORD_ONLY or p.default is not inspect.Parameter.empty)]
    return [p.name for p in ps], [p.default for p in ps]


_NOT_PARAMS = ("x", "up", "out", "stream", "axis", "channel_axis")


def _elementwise_layer(op, fns):
    name, f, fb = op["name"], fns[op["name"]], fns[op["name"] + "_backward"]
    names, defaults = _params_of(f, _NOT_PARAMS)
    frm = op["backward_from"]

    def __init__(self, *args, **kwargs):
        self.params = _bind(type(self).__name__, args, kwargs, names, defaults)

    def forward(self, x):
        y = f(x, **self.params)
        # the output where the gradient can be had from it (for 'x|y+', when every parameter is positive)
        from_y = frm == "x|y" or (frm == "x|y+" and all(isinstance(v, (int, float)) and v > 0
                                                         for v in self.params.values()))
        return self._keep(("y", y) if from_y else ("x", x), y)

    def backward(self, grad):
        kind, v = self._take(grad)
        return fb(grad, y=v, **self.params) if kind == "y" else fb(grad, v, **self.params)

    doc = f"fastact.{name} as a layer ({', '.join(f'{n}={d!r}' for n, d in zip(names, defaults)) or 'no parameters'})."
    return type(_class_name(name), (Module,), {"__init__": __init__, "forward": forward, "backward": backward,
                                               "__doc__": doc, "__module__": __name__})


def _row_layer(op, fns):
    name, f, fb = op["name"], fns[op["name"]], fns[op["name"] + "_backward"]

    def __init__(self, axis=-1):
        self.params = {"axis": axis}

    def forward(self, x):
        y = f(x, **self.params)
        return self._keep(y, y)

    def backward(self, grad):
        return fb(grad, y=self._take(grad), **self.params)

    return type(_class_name(name), (Module,), {"__init__": __init__, "forward": forward, "backward": backward,
                                               "__doc__": f"fastact.{name} along axis as a layer (backward from y).",
                                               "__module__": __name__})


def _gated_layer(op, fns):
    name, f, fb = op["name"], fns[op["name"]], fns[op["name"] + "_backward"]
    names, defaults = _params_of(f, _NOT_PARAMS)
    names, defaults = ["axis"] + names, [-1] + defaults

    def __init__(self, *args, **kwargs):
        self.params = _bind(type(self).__name__, args, kwargs, names, defaults)

    def forward(self, x, up=None):
        y = f(x, up, **self.params)
        return self._keep((x, up), y)

    def backward(self, grad):
        x, up = self._take(grad)
        return fb(grad, x, up, **self.params)

    doc = (f"fastact.{name} as a layer: forward(x) splits x in halves along axis, forward(gate, up) takes two "
           "arrays; backward gives grad_x, or (grad_gate, grad_up).")
    return type(_class_name(name), (Module,), {"__init__": __init__, "forward": forward, "backward": backward,
                                               "__doc__": doc, "__module__": __name__})


class PReLU(Module):
    """fastact.prelu as a layer holding its weight (PyTorch's PReLU: num_parameters slopes, one per channel
    along channel_axis, or one shared; init 0.25). backward(grad) returns grad_x and adds the weight's
    gradient to weight_grad."""

    def __init__(self, num_parameters=1, init=0.25, channel_axis=1, dtype=np.float32):
        self.weight = np.full(num_parameters, init, dtype=dtype)
        self.weight_grad = np.zeros_like(self.weight)
        self.params = {"num_parameters": num_parameters, "init": init, "channel_axis": channel_axis}
        self.channel_axis = channel_axis

    def _w(self, x):
        w = self.weight if self.weight.size > 1 else self.weight.reshape(())
        return w if np.dtype(w.dtype) == np.asarray(x).dtype else w.astype(np.asarray(x).dtype)

    def forward(self, x):
        y = _core_fns["prelu"](x, self._w(x), self.channel_axis)
        return self._keep(x, y)

    def backward(self, grad):
        x = self._take(grad)
        dx, dw = _core_fns["prelu_backward"](grad, x, self._w(x), self.channel_axis)
        self.weight_grad += np.asarray(dw, dtype=self.weight.dtype).reshape(self.weight_grad.shape)
        return dx

    def zero_grad(self):
        self.weight_grad[...] = 0


class BiasAct(Module):
    """fastact.bias_act as a layer holding its bias: act(x + bias) along x's last axis, in one pass (a dense
    layer's epilogue). backward(grad) returns grad_x and adds the bias's gradient to bias_grad."""

    def __init__(self, num_features, activation="gelu", dtype=np.float32, **params):
        self.bias = np.zeros(num_features, dtype=dtype)
        self.bias_grad = np.zeros_like(self.bias)
        self.activation, self.act_params = activation, params
        self.params = {"num_features": num_features, "activation": activation, **params}

    def _b(self, x):
        return self.bias if self.bias.dtype == np.asarray(x).dtype else self.bias.astype(np.asarray(x).dtype)

    def forward(self, x):
        y = _core_fns["bias_act"](x, self._b(x), self.activation, **self.act_params)
        return self._keep(x, y)

    def backward(self, grad):
        x = self._take(grad)
        dx, db = _core_fns["bias_act_backward"](grad, x, self._b(x), self.activation, **self.act_params)
        self.bias_grad += np.asarray(db, dtype=self.bias.dtype)
        return dx

    def zero_grad(self):
        self.bias_grad[...] = 0


# ------------------------------------------------------------------------------------------------ losses
class _Loss(Module):
    def backward(self, grad=1.0, *, out=None):
        """The gradient with respect to the first input (grad: grad_output, a scalar for 'mean' / 'sum'); out=
        may be that input itself (its memory reused)."""
        saved = self._saved
        if saved is None:
            raise RuntimeError(f"fastact.nn.{type(self).__name__}.backward: call the loss (its forward) first")
        if self.params["reduction"] == "none" and np.shape(grad) != self._out_shape:
            raise ValueError(f"fastact.nn.{type(self).__name__}.backward: grad has shape {np.shape(grad)}; expected "
                             f"the loss's shape {self._out_shape} (reduction 'none')")
        return self._grad(grad, *saved, out=out)


def _pointwise_loss(op, fns):
    name, f, fb = op["name"], fns[op["name"]], fns[op["name"] + "_backward"]
    operands = op["operand"].split()
    weights = operands[2:]
    names, defaults = _params_of(f, tuple(operands) + ("out", "stream"))

    def __init__(self, *args, **kwargs):
        held = {w: kwargs.pop(w, None) for w in weights}  # BCE's weight and pos_weight, as PyTorch holds them
        self.params = _bind(type(self).__name__, args, kwargs, names, defaults)
        self.held = held

    def forward(self, input, target):
        r = f(input, target, **self.held, **self.params)
        return self._keep((input, target), r)

    def _grad(self, grad, input, target, out=None):
        return fb(grad, input, target, **self.held, **self.params, out=out)

    doc = (f"fastact.{name} as a loss object ({', '.join(weights + names)}): loss = obj(input, target), then "
           "obj.backward(grad_output=1.0) gives the gradient in input.")
    return type(_class_name(name), (_Loss,), {"__init__": __init__, "forward": forward, "_grad": _grad,
                                              "__doc__": doc, "__module__": __name__})


class CrossEntropyLoss(_Loss):
    """fastact.cross_entropy as a loss object (PyTorch's CrossEntropyLoss; the class axis is ``axis``):
    loss = obj(logits, target) with class indices or probabilities, then obj.backward(grad_output=1.0) gives
    dlogits (``backward(out=logits)`` writes it over the logits: no second logits-sized buffer)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0, z_loss=0.0, axis=-1):
        self.params = {"weight": weight, "ignore_index": ignore_index, "reduction": reduction,
                       "label_smoothing": label_smoothing, "z_loss": z_loss, "axis": axis}

    def forward(self, logits, target):
        return self._keep((logits, target), _losses.cross_entropy(logits, target, **self.params))

    def _grad(self, grad, logits, target, out=None):
        return _losses.cross_entropy_backward(grad, logits, target, out=out, **self.params)


class NLLLoss(_Loss):
    """fastact.nll_loss as a loss object (PyTorch's NLLLoss): loss = obj(log_probs, target)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", axis=-1):
        self.params = {"weight": weight, "ignore_index": ignore_index, "reduction": reduction, "axis": axis}

    def forward(self, log_probs, target):
        return self._keep((log_probs, target), _losses.nll_loss(log_probs, target, **self.params))

    def _grad(self, grad, log_probs, target, out=None):
        return _losses.nll_loss_backward(grad, log_probs, target, out=out, **self.params)


_core_fns = {}
__all__ = ["Module", "PReLU", "BiasAct", "CrossEntropyLoss", "NLLLoss"]


def _build(fns):
    """The layers of the registry's ops (called once by fastact's __init__ with its functions)."""
    _core_fns.update(fns)
    made = {}
    for op in _core.ops():
        name = op["name"]
        cls = _class_name(name)
        if cls in globals() or cls in made:
            continue
        if op["kind"] == "elementwise":
            made[cls] = _elementwise_layer(op, fns)
        elif op["kind"] == "row":
            made[cls] = _row_layer(op, fns)
        elif op["kind"] == "gated":
            made[cls] = _gated_layer(op, fns)
        elif op["kind"] == "loss":
            made[cls] = _pointwise_loss(op, fns)
    globals().update(made)
    __all__.extend(sorted(made))
