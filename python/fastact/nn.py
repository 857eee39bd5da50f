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
    """A layer: ``__call__`` / ``forward`` runs the op and keeps what ``backward`` needs.

    A layer called several times before its backward (one object used at two places of a network) keeps
    each call's state, and each backward takes the latest one not yet taken: the order backpropagation runs
    in. ``eval()`` stops the keeping (inference: nothing held between calls), ``train()`` resumes it. What
    is kept is the array itself, not a copy: change neither the input nor the output in place between a
    forward and its backward."""

    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def train(self, mode: bool = True):
        self.training = bool(mode)
        if not self.training:
            self.__dict__.pop("_stack", None)
        return self

    def eval(self):
        return self.train(False)

    def _take(self, grad, check_shape=True):
        stack = self.__dict__.get("_stack")
        if not stack:
            what = "the loss" if isinstance(self, _Loss) else "the layer"
            raise RuntimeError(f"fastact.nn.{type(self).__name__}.backward: call {what} (its forward) first, in "
                               "training mode (each forward's state is taken by one backward)")
        saved, out_shape = stack[-1]
        shape = np.shape(grad)
        if check_shape and shape != out_shape:
            raise ValueError(f"fastact.nn.{type(self).__name__}.backward: grad has shape {shape}; expected the "
                             f"forward output's shape {out_shape}")
        stack.pop()
        return saved

    def _keep(self, saved, out):
        if self.training:
            self.__dict__.setdefault("_stack", []).append((saved, tuple(np.shape(out))))
        return out

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in getattr(self, "params", {}).items())
        return f"{type(self).__name__}({args})"


def _bind(cls, args, kwargs, names, defaults, positional=True):
    if args and not positional:
        raise TypeError(f"fastact.nn.{cls}() takes keyword arguments only ({', '.join(names)})")
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


def _check(layer, call):
    """The constructor's parameters checked now, by the op itself on an empty float64 array (the widest
    compute type: a value only float32 cannot hold is left to the call that has float32), not at the first
    forward; the axis is the input's business."""
    params = {k: v for k, v in layer.params.items() if k != "axis"}
    try:
        call(params)
    except (TypeError, ValueError) as e:
        raise type(e)(f"fastact.nn.{type(layer).__name__}(): {e}") from None


def _params_of(f, skip):
    """The parameters of a generated function besides its arrays, with their defaults (choices as their
    names; _REQUIRED for one without a default)."""
    ps = [p for p in inspect.signature(f).parameters.values()
          if p.name not in skip and p.kind != p.VAR_KEYWORD and p.name != "grad_output"
          and (p.kind == p.KEYWORD_ONLY or p.default is not inspect.Parameter.empty)]
    return [p.name for p in ps], [p.default for p in ps]


_NOT_PARAMS = ("x", "up", "out", "stream", "axis", "channel_axis")


class _Unary(Module):
    """A layer of an element-wise or row op (the class attributes: the op's functions, where its backward
    starts from)."""

    _names: tuple = ()
    _defaults: tuple = ()

    def __init__(self, *args, **kwargs):
        self.params = _bind(type(self).__name__, args, kwargs, self._names, self._defaults)
        _check(self, lambda p: self._fn(np.empty((0, 2)), **p))

    def forward(self, x):
        y = self._fn(x, **self.params)
        # the output where the registry says any parameters allow the gradient from it, as PyTorch's modules
        # keep it ('x|y+' ops, such as ELU, whose y-form loses digits far below 0: the input)
        return self._keep(("y", y) if self._from in ("x|y", "y") else ("x", x), y)

    def backward(self, grad):
        kind, v = self._take(grad)
        return self._bwd(grad, y=v, **self.params) if kind == "y" else self._bwd(grad, v, **self.params)


class _Gated(Module):
    """A layer of a gated op: forward(x) splits x in halves along axis, forward(gate, up) takes two arrays;
    backward gives grad_x, or (grad_gate, grad_up)."""

    _names: tuple = ()
    _defaults: tuple = ()

    def __init__(self, *args, **kwargs):
        self.params = _bind(type(self).__name__, args, kwargs, self._names, self._defaults)
        _check(self, lambda p: self._fn(np.empty((0, 2)), **p))

    def forward(self, x, up=None):
        y = self._fn(x, up, **self.params)
        return self._keep((x, up), y)

    def backward(self, grad):
        x, up = self._take(grad)
        return self._bwd(grad, x, up, **self.params)


def _layer(op, fns, base, names, defaults, doc, kind=inspect.Parameter.POSITIONAL_OR_KEYWORD, weights=()):
    name = op["name"]
    P = inspect.Parameter
    sig = inspect.Signature([P(w, P.KEYWORD_ONLY, default=None) for w in weights] +
                            [P(n, kind) if d is _REQUIRED else P(n, kind, default=d) for n, d in zip(names, defaults)])
    return type(_class_name(name), (base,), {
        "_fn": staticmethod(fns[name]), "_bwd": staticmethod(fns[name + "_backward"]), "_op": op,
        "_from": op["backward_from"], "_names": tuple(names), "_defaults": tuple(defaults), "_weights": tuple(weights),
        "__doc__": doc, "__module__": __name__, "__signature__": sig})


def _elementwise_layer(op, fns):
    names, defaults = _params_of(fns[op["name"]], _NOT_PARAMS)
    doc = (f"fastact.{op['name']} as a layer "
           f"({', '.join(f'{n}={d!r}' for n, d in zip(names, defaults)) or 'no parameters'}).")
    return _layer(op, fns, _Unary, names, defaults, doc)


def _row_layer(op, fns):
    return _layer(op, fns, _Unary, ["axis"], [-1], f"fastact.{op['name']} along axis as a layer (backward from y).")


def _gated_layer(op, fns):
    names, defaults = _params_of(fns[op["name"]], _NOT_PARAMS)
    doc = (f"fastact.{op['name']} as a layer: forward(x) splits x in halves along axis, forward(gate, up) takes two "
           "arrays; backward gives grad_x, or (grad_gate, grad_up).")
    return _layer(op, fns, _Gated, ["axis"] + names, [-1] + defaults, doc)


class PReLU(Module):
    """fastact.prelu as a layer holding its weight (PyTorch's PReLU: num_parameters slopes, one per channel
    along channel_axis, or one shared; init 0.25). backward(grad) returns grad_x and adds the weight's
    gradient to weight_grad."""

    def __init__(self, num_parameters=1, init=0.25, channel_axis=1, *, dtype=np.float32):
        if isinstance(num_parameters, bool) or not isinstance(num_parameters, int) or num_parameters < 1:
            raise ValueError(f"fastact.nn.PReLU: num_parameters must be a positive int, got {num_parameters!r}")
        self.weight = np.full(num_parameters, init, dtype=_float_dtype(dtype, "PReLU"))
        self.weight_grad = np.zeros_like(self.weight)
        self.params = {"num_parameters": num_parameters, "init": init, "channel_axis": channel_axis}
        self.channel_axis = channel_axis

    def _w(self, dtype):
        w = self.weight if self.weight.size > 1 else self.weight.reshape(())
        return w if w.dtype == dtype else w.astype(dtype)

    def forward(self, x):
        y = _core_fns["prelu"](x, self._w(np.asarray(x).dtype), self.channel_axis)
        return self._keep(x, y)

    def backward(self, grad):
        x = self._take(grad)
        xs, gs, dt = _widened(x, grad)  # a 16-bit input's weight gradient summed and kept in float32
        dx, dw = _core_fns["prelu_backward"](gs, xs, self._w(dt), self.channel_axis)
        self.weight_grad += np.asarray(dw, dtype=self.weight.dtype).reshape(self.weight_grad.shape)
        return _narrowed(dx, x)

    def zero_grad(self):
        self.weight_grad[...] = 0


class BiasAct(Module):
    """fastact.bias_act as a layer holding its bias: act(x + bias) along x's last axis, in one pass (a dense
    layer's epilogue). backward(grad) returns grad_x and adds the bias's gradient to bias_grad."""

    def __init__(self, num_features, activation="gelu", *, dtype=np.float32, **params):
        acts = sorted({o["activation"] for o in _core.ops() if o["name"] == "bias_act"})
        if activation not in acts:
            raise ValueError(f"fastact.nn.BiasAct: activation must be one of {acts}, got {activation!r}")
        self.bias = np.zeros(num_features, dtype=_float_dtype(dtype, "BiasAct"))
        self.bias_grad = np.zeros_like(self.bias)
        self.activation, self.act_params = activation, params
        self.params = {"num_features": num_features, "activation": activation, **params}

    def _b(self, dtype):
        return self.bias if self.bias.dtype == dtype else self.bias.astype(dtype)

    def forward(self, x):
        y = _core_fns["bias_act"](x, self._b(np.asarray(x).dtype), self.activation, **self.act_params)
        return self._keep(x, y)

    def backward(self, grad):
        x = self._take(grad)
        xs, gs, dt = _widened(x, grad)  # a 16-bit input's bias gradient summed and kept in float32
        dx, db = _core_fns["bias_act_backward"](gs, xs, self._b(dt), self.activation, **self.act_params)
        self.bias_grad += np.asarray(db, dtype=self.bias.dtype)
        return _narrowed(dx, x)

    def zero_grad(self):
        self.bias_grad[...] = 0


def _float_dtype(dtype, cls):
    dt = np.dtype(dtype)
    if dt.kind != "f" and str(dt) != "bfloat16":
        raise TypeError(f"fastact.nn.{cls}: dtype must be a floating-point dtype, got {dt}")
    return dt


def _widened(x, grad):
    """x and grad in float32 where x is 16-bit (the parameter's gradient then sums and stays in float32;
    the input's gradient is the 16-bit call's own bits once rounded back), and the dtype they are in."""
    x = np.asarray(x)
    if x.dtype.itemsize == 2:
        return x.astype(np.float32), np.asarray(grad).astype(np.float32), np.dtype(np.float32)
    return x, grad, x.dtype


def _narrowed(dx, x):
    x = np.asarray(x)
    return dx.astype(x.dtype) if dx.dtype != x.dtype else dx


# ------------------------------------------------------------------------------------------------ losses
class _Loss(Module):
    def backward(self, grad=1.0, *, out=None):
        """The gradient with respect to the first input (grad: grad_output, a scalar for 'mean' / 'sum'); out=
        may be that input itself (its memory reused)."""
        saved = self._take(grad, check_shape=self.params["reduction"] == "none")
        return self._grad(grad, *saved, out=out)


class _PointwiseLoss(_Loss):
    """An element-wise loss as an object: its weights (BCE's weight and pos_weight, as PyTorch holds them)
    and parameters keyword-only (PyTorch's positional order, reduction then delta, is not the functions')."""

    _weights: tuple = ()
    _names: tuple = ()
    _defaults: tuple = ()

    def __init__(self, *args, **kwargs):
        held = {w: kwargs.pop(w, None) for w in self._weights}
        self.params = _bind(type(self).__name__, args, kwargs, self._names, self._defaults, positional=False)
        self.held = held
        _check(self, lambda p: self._fn(np.empty(0), np.empty(0), **p))

    def forward(self, input, target):
        r = self._fn(input, target, **self.held, **self.params)
        return self._keep((input, target), r)

    def _grad(self, grad, input, target, out=None):
        return self._bwd(grad, input, target, **self.held, **self.params, out=out)


def _pointwise_loss(op, fns):
    operands = op["operand"].split()
    weights = operands[2:]
    names, defaults = _params_of(fns[op["name"]], tuple(operands) + ("out", "stream"))
    doc = (f"fastact.{op['name']} as a loss object ({', '.join(weights + names)}): loss = obj(input, target), then "
           "obj.backward(grad_output=1.0) gives the gradient in input.")
    return _layer(op, fns, _PointwiseLoss, names, defaults, doc, inspect.Parameter.KEYWORD_ONLY, weights)


def _class_axis(params, x, cls):
    """The class axis: ``axis`` when given; for 1-d and 2-d inputs the last (PyTorch's dim 1 of (N, C));
    inputs of more dimensions must say it (PyTorch's class dim is 1, fastact's functions' default the last)."""
    if params["axis"] is not None:
        return params
    nd = np.ndim(x) if not hasattr(x, "shape") else len(x.shape)
    if nd > 2:
        raise ValueError(f"fastact.nn.{cls}: an input of {nd} dimensions needs axis= (PyTorch's class dimension is 1, "
                         "as in axis=1; fastact.cross_entropy's default is the last, axis=-1)")
    return {**params, "axis": -1}


class CrossEntropyLoss(_Loss):
    """fastact.cross_entropy as a loss object (PyTorch's CrossEntropyLoss): loss = obj(logits, target) with
    class indices or probabilities, then obj.backward(grad_output=1.0) gives dlogits
    (``backward(out=logits)`` writes it over the logits: no second logits-sized buffer). The class axis: the
    last for (N, C) logits; ``axis=`` is required for more dimensions (PyTorch's is 1)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0, z_loss=0.0, *,
                 axis=None):
        self.params = {"weight": weight, "ignore_index": ignore_index, "reduction": reduction,
                       "label_smoothing": label_smoothing, "z_loss": z_loss, "axis": axis}

    def forward(self, logits, target):
        params = _class_axis(self.params, logits, "CrossEntropyLoss")
        return self._keep((logits, target, params), _losses.cross_entropy(logits, target, **params))

    def _grad(self, grad, logits, target, params, out=None):
        return _losses.cross_entropy_backward(grad, logits, target, out=out, **params)


class NLLLoss(_Loss):
    """fastact.nll_loss as a loss object (PyTorch's NLLLoss): loss = obj(log_probs, target); the class axis as
    CrossEntropyLoss's."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", *, axis=None):
        self.params = {"weight": weight, "ignore_index": ignore_index, "reduction": reduction, "axis": axis}

    def forward(self, log_probs, target):
        params = _class_axis(self.params, log_probs, "NLLLoss")
        return self._keep((log_probs, target, params), _losses.nll_loss(log_probs, target, **params))

    def _grad(self, grad, log_probs, target, params, out=None):
        return _losses.nll_loss_backward(grad, log_probs, target, out=out, **params)


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


# ------------------------------------------------------------------------------------------------ typing
_STUB_HEAD = '''\
# Generated by tools/gen_api.py from fastact.nn and the op registry; do not edit by hand.
from __future__ import annotations

from typing import Any, Literal, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

_S = TypeVar("_S", bound=np.generic)
_M = TypeVar("_M", bound="Module")

__all__: list[str]
def _build(fns: dict[str, Any]) -> None: ...
def _stub() -> str: ...

class Module:
    training: bool
    params: dict[str, Any]
    def train(self: _M, mode: bool = True) -> _M: ...
    def eval(self: _M) -> _M: ...

class _Unary(Module):
    @overload
    def __call__(self, x: NDArray[_S]) -> NDArray[_S]: ...
    @overload
    def __call__(self, x: Any) -> Any: ...
    @overload
    def forward(self, x: NDArray[_S]) -> NDArray[_S]: ...
    @overload
    def forward(self, x: Any) -> Any: ...
    @overload
    def backward(self, grad: NDArray[_S]) -> NDArray[_S]: ...
    @overload
    def backward(self, grad: Any) -> Any: ...

class _Gated(Module):
    @overload
    def __call__(self, x: NDArray[_S], up: NDArray[_S] | None = None) -> NDArray[_S]: ...
    @overload
    def __call__(self, x: Any, up: Any = None) -> Any: ...
    @overload
    def forward(self, x: NDArray[_S], up: NDArray[_S] | None = None) -> NDArray[_S]: ...
    @overload
    def forward(self, x: Any, up: Any = None) -> Any: ...
    def backward(self, grad: Any) -> Any: ...

class PReLU(Module):
    weight: NDArray[Any]
    weight_grad: NDArray[Any]
    channel_axis: int | None
    def __init__(self, num_parameters: int = 1, init: float = 0.25, channel_axis: int | None = 1, *,
                 dtype: DTypeLike = np.float32) -> None: ...
    def __call__(self, x: NDArray[_S]) -> NDArray[_S]: ...
    def forward(self, x: NDArray[_S]) -> NDArray[_S]: ...
    def backward(self, grad: NDArray[_S]) -> NDArray[_S]: ...
    def zero_grad(self) -> None: ...

class BiasAct(Module):
    bias: NDArray[Any]
    bias_grad: NDArray[Any]
    activation: str
    act_params: dict[str, Any]
    def __init__(self, num_features: int, activation: str = "gelu", *, dtype: DTypeLike = np.float32,
                 **params: float | str) -> None: ...
    def __call__(self, x: NDArray[_S]) -> NDArray[_S]: ...
    def forward(self, x: NDArray[_S]) -> NDArray[_S]: ...
    def backward(self, grad: NDArray[_S]) -> NDArray[_S]: ...
    def zero_grad(self) -> None: ...

class _Loss(Module):
    @overload
    def __call__(self, input: NDArray[_S], target: ArrayLike) -> NDArray[_S]: ...
    @overload
    def __call__(self, input: Any, target: Any) -> Any: ...
    @overload
    def forward(self, input: NDArray[_S], target: ArrayLike) -> NDArray[_S]: ...
    @overload
    def forward(self, input: Any, target: Any) -> Any: ...
    def backward(self, grad: ArrayLike = 1.0, *, out: Any = None) -> Any: ...

class _PointwiseLoss(_Loss): ...

class CrossEntropyLoss(_Loss):
    def __init__(self, weight: ArrayLike | None = None, ignore_index: int = -100,
                 reduction: Literal["mean", "sum", "none"] = "mean", label_smoothing: float = 0.0,
                 z_loss: float = 0.0, *, axis: int | None = None) -> None: ...

class NLLLoss(_Loss):
    def __init__(self, weight: ArrayLike | None = None, ignore_index: int = -100,
                 reduction: Literal["mean", "sum", "none"] = "mean", *, axis: int | None = None) -> None: ...
'''


def _stub() -> str:
    """The text of nn.pyi: the fixed classes above, then each registry layer's constructor (its parameters,
    their types and defaults from the registry)."""
    from ._generate import _default_src, _param_type

    parts = [_STUB_HEAD]
    for cls_name in __all__:
        cls = globals()[cls_name]
        op = cls.__dict__.get("_op")
        if op is None:
            continue
        by_name = {p["name"]: p for p in op["params"]}
        args = []
        for n, d in zip(cls._names, cls._defaults):
            p = by_name.get(n)
            if n == "reduction":
                args.append(f"{n}: Literal['mean', 'sum', 'none'] = {d!r}")
            elif p is None:  # axis
                args.append(f"{n}: int = {d!r}")
            elif p["required"]:
                args.append(f"{n}: {_param_type(p)}")
            else:
                args.append(f"{n}: {_param_type(p)} = {_default_src(p)}")
        if issubclass(cls, _PointwiseLoss):
            sig = ", ".join(["self", "*"] + [f"{w}: ArrayLike | None = None" for w in cls._weights] + args)
        else:
            sig = ", ".join(["self"] + args)
        parts.append(f"class {cls_name}({cls.__bases__[0].__name__}):\n"
                     f"    def __init__({sig}) -> None: ...\n")
    return "\n".join(parts)
