"""fastact over Dask arrays: every op of the registry, block by block, on a cluster.

``fastact.dask.<op>`` takes Dask arrays where ``fastact.<op>`` takes arrays, with the same parameters, and
returns a lazy Dask array (or a tuple of them): ``fastact.dask.gelu(x)``, ``fastact.dask.softmax(x, axis=1)``,
``fastact.dask.mse_loss(pred, target)``. Each block runs ``fastact.<op>`` on a worker, so the blocks
may be NumPy arrays (CPU workers) or CuPy arrays (GPU workers), and the results are the bits the
single-machine call gives for that block.

- Element-wise ops, their backwards and the element-wise losses with ``reduction='none'`` map block by block.
- Row ops (softmax, log_softmax) and the one-array gated form (split along ``axis``) need each row whole:
  an array chunked along that axis is rechunked to one chunk there (``rechunk=True``, the default), or
  refused with a ValueError that says so (``rechunk=False``).
- prelu needs its channel axis whole and bias_act its last axis; their backwards give the parameter's
  gradient as the blocks' gradients added in block order.
- 'mean' / 'sum' losses add the blocks' sums in block order (each block's own sum is fastact's fixed-order
  compensated sum), so the result is deterministic for a chunking but may differ in the last bits from
  one call over the whole array. A loss's backward gives each block the single call's scale, so its
  gradient has the single call's bits.
- cross_entropy, nll_loss and logsumexp are not here: their 'mean' divides by the counted targets' weights
  over the whole array. Per row, the class axis in one chunk: ``da.blockwise(lambda l, t:
  fastact.cross_entropy(l, t, reduction='none'), 'i', logits, 'ij', target, 'i', dtype='float32',
  concatenate=True)``.

Each function has fastact.<op>'s signature (without out= and stream=; with rechunk= where an axis must be
whole): its arguments are bound, and its parameters and dtypes checked (on an empty block), when the graph
is built, so a misspelled or out-of-range parameter is the single call's error at once, not at compute. A
weight or bias may be a NumPy or a Dask array (each block gets all of it). The functions are made from the
registry when this module is imported: an op added later is here with no edit (its types in dask.pyi come
from tools/gen_api.py). They pickle by reference (``fastact.dask.gelu`` on the workers is the same
function), so any ``distributed`` cluster whose workers can import fastact runs them.
"""
from __future__ import annotations

import functools
import inspect
import operator
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as e:  # pragma: no cover - exercised without dask
    raise ImportError("fastact.dask needs Dask: pip install 'dask[array]' (and 'distributed' for a cluster)") from e

import fastact

from . import _core

__all__: list[str] = []


# -------------------------------------------------------------------------------------------- on a block
def _run(name: str, *blocks: Any, **kw: Any) -> Any:
    """fastact.<name> on one block (runs on a worker)."""
    return getattr(fastact, name)(*blocks, **kw)


def _run_y(name: str, g: Any, y: Any, **kw: Any) -> Any:
    return getattr(fastact, name)(g, y=y, **kw)


def _run_param(name: str, i: int | None, *blocks: Any, param: Any, **kw: Any) -> Any:
    """fastact.<name>(*blocks, param, ...) on one block, param (a weight or bias) whole; item i of a tuple."""
    r = getattr(fastact, name)(*blocks, param, **kw)
    return r if i is None else r[i]


def _item(name: str, i: int, *blocks: Any, **kw: Any) -> Any:
    return getattr(fastact, name)(*blocks, **kw)[i]


def _block_sum(name: str, *blocks: Any, keep: int, **kw: Any) -> Any:
    """A loss's 'sum' over one block, as a block of one element per dimension."""
    r = np.asarray(getattr(fastact, name)(*blocks, reduction="sum", **kw), dtype=np.float64)
    return r.reshape((1,) * keep)


def _in_order(parts: list[Any], dtype: Any) -> Any:
    total = functools.reduce(operator.add, [np.asarray(p, dtype=np.float64) for p in parts])
    return np.asarray(total, dtype=dtype)


# ------------------------------------------------------------------------------------------------ checks
def _array(x: Any, fn: str, name: str) -> Any:
    if not isinstance(x, da.Array):
        raise TypeError(f"fastact.dask.{fn}: {name} must be a dask.array.Array, got {type(x).__name__} "
                        f"(for other arrays call fastact.{fn})")
    return x


def _known(x: Any, fn: str, name: str) -> None:
    if any(np.isnan(c) for cs in x.chunks for c in cs):
        raise ValueError(f"fastact.dask.{fn}: {name} has chunks of unknown size (after a boolean index, say): "
                         f"call {name}.compute_chunk_sizes() first")


def _whole(x: Any, axis: Any, rechunk: bool, fn: str, name: str = "x") -> tuple[Any, int]:
    """x with the axis in one chunk (rechunked, or refused), and the axis as a non-negative index."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"fastact.dask.{fn}: axis must be an int, got {type(axis).__name__}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"fastact.dask.{fn}: axis {axis} is out of range for {name} of {x.ndim} dimensions")
    ax = int(axis) % x.ndim
    if len(x.chunks[ax]) > 1:
        if not rechunk:
            raise ValueError(f"fastact.dask.{fn}: {name} is chunked along axis {ax} ({len(x.chunks[ax])} chunks); "
                             f"{fn} needs each row whole along it: pass rechunk=True, or {name}.rechunk({{{ax}: -1}})")
        x = x.rechunk({ax: -1})
    return x, ax


def _like(a: Any, ref: Any, fn: str, name: str) -> Any:
    """a chunked as ref (same shape), so the blocks line up."""
    a = _array(a, fn, name)
    _known(a, fn, name)
    if a.shape != ref.shape:
        raise ValueError(f"fastact.dask.{fn}: {name} has shape {a.shape}; expected {ref.shape}")
    return a if a.chunks == ref.chunks else a.rechunk(ref.chunks)


def _meta(x: Any) -> Any:
    return x._meta if hasattr(x, "_meta") else np.empty((0,) * x.ndim, x.dtype)


def _empty(x: Any, shape: tuple | None = None) -> Any:
    """An empty NumPy block of x's dtype: the single call checks the parameters and dtypes on it."""
    return np.empty(shape if shape is not None else (0,), dtype=x.dtype)


def _param(w: Any) -> Any:
    """A weight or bias, whole: a Dask one in one chunk (map_blocks gives each block all of it)."""
    return w.rechunk(-1) if isinstance(w, da.Array) else w


# ---------------------------------------------------------------------------------------------- builders
# Each builder's functions take the bound arguments (name -> value, defaults applied) of fastact.<op>'s
# signature, plus rechunk.

def _elementwise(name: str) -> dict[str, Any]:
    def fwd(a: dict[str, Any]) -> Any:
        x = _array(a.pop("x"), name, "x")
        getattr(fastact, name)(_empty(x), **a)
        return da.map_blocks(functools.partial(_run, name, **a), x, dtype=x.dtype, meta=_meta(x))

    def bwd(a: dict[str, Any]) -> Any:
        fn = name + "_backward"
        g = _array(a.pop("grad_output"), fn, "grad_output")
        _known(g, fn, "grad_output")
        x, y = a.pop("x"), a.pop("y")
        if y is not None and x is None:
            getattr(fastact, fn)(_empty(g), y=_empty(g), **a)
            return da.map_blocks(functools.partial(_run_y, fn, **a), g, _like(y, g, fn, "y"), dtype=g.dtype,
                                 meta=_meta(g))
        getattr(fastact, fn)(_empty(g), None if x is None else _empty(g), y=None if y is None else _empty(g), **a)
        return da.map_blocks(functools.partial(_run, fn, **a), g, _like(x, g, fn, "x"), dtype=g.dtype, meta=_meta(g))

    return {name: fwd, name + "_backward": bwd}


def _row(name: str) -> dict[str, Any]:
    def fwd(a: dict[str, Any]) -> Any:
        x, ax = _whole(_array(a["x"], name, "x"), a["axis"], a["rechunk"], name)
        getattr(fastact, name)(_empty(x, (1,)))  # the dtype
        return da.map_blocks(functools.partial(_run, name, axis=ax), x, dtype=x.dtype, meta=_meta(x))

    def bwd(a: dict[str, Any]) -> Any:
        fn = name + "_backward"
        if a["y"] is None or a["x"] is not None:  # the single call's error
            getattr(fastact, fn)(np.empty(1), None if a["x"] is None else np.empty(1),
                                 y=None if a["y"] is None else np.empty(1))
        y, ax = _whole(_array(a["y"], fn, "y"), a["axis"], a["rechunk"], fn, "y")
        g = _like(a["grad_output"], y, fn, "grad_output")
        return da.map_blocks(functools.partial(_run_y, fn, axis=ax), g, y, dtype=y.dtype, meta=_meta(y))

    return {name: fwd, name + "_backward": bwd}


def _halved(chunks: tuple, ax: int, n: int) -> tuple:
    return tuple((n,) if i == ax else c for i, c in enumerate(chunks))


def _gated(name: str) -> dict[str, Any]:
    def fwd(a: dict[str, Any]) -> Any:
        x, up, axis, rechunk = _array(a.pop("x"), name, "x"), a.pop("up"), a.pop("axis"), a.pop("rechunk")
        getattr(fastact, name)(_empty(x, (0, 2)), **a)
        if up is not None:
            return da.map_blocks(functools.partial(_run, name, **a), x, _like(up, x, name, "up"), dtype=x.dtype,
                                 meta=_meta(x))
        x, ax = _whole(x, axis, rechunk, name)
        if x.shape[ax] % 2:
            raise ValueError(f"fastact.dask.{name}: x's axis {ax} has odd length {x.shape[ax]}; it must split in halves")
        return da.map_blocks(functools.partial(_run, name, axis=ax, **a), x, dtype=x.dtype,
                             chunks=_halved(x.chunks, ax, x.shape[ax] // 2), meta=_meta(x))

    def bwd(a: dict[str, Any]) -> Any:
        fn = name + "_backward"
        g, x = _array(a.pop("grad_output"), fn, "grad_output"), _array(a.pop("x"), fn, "x")
        up, axis, rechunk = a.pop("up"), a.pop("axis"), a.pop("rechunk")
        getattr(fastact, fn)(_empty(x, (0, 1)), _empty(x, (0, 2)), **a)
        _known(x, fn, "x")
        if up is not None:
            up = _like(up, x, fn, "up")
            g = _like(g, x, fn, "grad_output")
            return tuple(da.map_blocks(functools.partial(_item, fn, i, **a), g, x, up, dtype=x.dtype,
                                       meta=_meta(x)) for i in (0, 1))
        x, ax = _whole(x, axis, rechunk, fn)
        half = _halved(x.chunks, ax, x.shape[ax] // 2)
        if g.shape != tuple(sum(c) for c in half):
            raise ValueError(f"fastact.dask.{fn}: grad_output has shape {g.shape}; expected x's with axis {ax} "
                             f"halved, {tuple(sum(c) for c in half)}")
        g = g.rechunk(half)
        ind = tuple(range(x.ndim))
        return da.blockwise(functools.partial(_run, fn, axis=ax, **a), ind, g, ind, x, ind, dtype=x.dtype,
                            align_arrays=False, concatenate=True, meta=_meta(x))

    return {name: fwd, name + "_backward": bwd}


def _parameter_grad(fn: str, g: Any, x: Any, w: Any, kw: dict, shape: tuple, dtype: Any) -> Any:
    """The parameter's gradient: each block's, added in block order (one task)."""
    gb, xb = g.to_delayed().ravel(), x.to_delayed().ravel()
    parts = [dask.delayed(_run_param)(fn, 1, a, b, param=w, **kw) for a, b in zip(gb, xb)]
    return da.from_delayed(dask.delayed(_in_order)(parts, dtype), shape=shape, dtype=dtype)


def _param_axes_whole(x: Any, weight: Any, channel_axis: Any, rechunk: bool, fn: str) -> Any:
    """x with every axis the parameter varies along in one chunk, so each block gets all it needs."""
    if channel_axis is not None:
        if np.ndim(weight) == 1 and np.shape(weight)[0] > 1:
            x, _ = _whole(x, channel_axis, rechunk, fn)
        return x
    shape = np.shape(weight)
    if len(shape) > x.ndim:
        raise ValueError(f"fastact.dask.{fn}: weight has shape {shape}, more dimensions than x's {x.shape}")
    for i, s in enumerate((1,) * (x.ndim - len(shape)) + tuple(shape)):
        if s > 1:
            x, _ = _whole(x, i, rechunk, fn)
    return x


def _prelu(name: str) -> dict[str, Any]:
    def fwd(a: dict[str, Any]) -> Any:
        w, ca = _param(a["weight"]), a["channel_axis"]
        x = _param_axes_whole(_array(a["x"], name, "x"), w, ca, a["rechunk"], name)
        return da.map_blocks(functools.partial(_run_param, name, None, channel_axis=ca), x, param=w, dtype=x.dtype,
                             meta=_meta(x))

    def bwd(a: dict[str, Any]) -> Any:
        fn = name + "_backward"
        w, ca = _param(a["weight"]), a["channel_axis"]
        x = _param_axes_whole(_array(a["x"], fn, "x"), w, ca, a["rechunk"], fn)
        g = _like(a["grad_output"], x, fn, "grad_output")
        dx = da.map_blocks(functools.partial(_run_param, fn, 0, channel_axis=ca), g, x, param=w, dtype=x.dtype,
                           meta=_meta(x))
        return dx, _parameter_grad(fn, g, x, w, {"channel_axis": ca}, np.shape(w), x.dtype)

    return {name: fwd, name + "_backward": bwd}


def _bias_act() -> dict[str, Any]:
    def check(fn: str, x: Any, bias: Any, kw: dict[str, Any]) -> None:
        e = _empty(x, (0, x.shape[-1]))
        args = (e, e) if fn.endswith("_backward") else (e,)
        getattr(fastact, fn)(*args, np.zeros(np.shape(bias), x.dtype) if np.ndim(bias) else 0.0, **kw)

    def fwd(a: dict[str, Any]) -> Any:
        x, _ = _whole(_array(a["x"], "bias_act", "x"), -1, a["rechunk"], "bias_act")
        kw = dict(activation=a["activation"], **a["params"])
        check("bias_act", x, a["bias"], kw)
        return da.map_blocks(functools.partial(_run_param, "bias_act", None, **kw), x, param=_param(a["bias"]),
                             dtype=x.dtype, meta=_meta(x))

    def bwd(a: dict[str, Any]) -> Any:
        fn = "bias_act_backward"
        x, _ = _whole(_array(a["x"], fn, "x"), -1, a["rechunk"], fn)
        g = _like(a["grad_output"], x, fn, "grad_output")
        kw = dict(activation=a["activation"], **a["params"])
        check(fn, x, a["bias"], kw)
        b = _param(a["bias"])
        dx = da.map_blocks(functools.partial(_run_param, fn, 0, **kw), g, x, param=b, dtype=x.dtype, meta=_meta(x))
        return dx, _parameter_grad(fn, g, x, b, kw, np.shape(b), x.dtype)

    return {"bias_act": fwd, "bias_act_backward": bwd}


def _pointwise_loss(op: dict[str, Any]) -> dict[str, Any]:
    name = op["name"]
    names = op["operand"].split()
    first, weights = names[0], names[2:]

    def operands(fn: str, a: dict[str, Any]) -> list[Any]:
        x = _array(a.pop(first), fn, first)
        _known(x, fn, first)
        out = [x, _like(a.pop("target"), x, fn, "target")]
        for w in weights:  # broadcast to x's shape, as in the single call, and lined up with x's blocks
            v = a.pop(w)
            if v is None:
                v = np.ones((), x.dtype)
            elif not isinstance(v, da.Array):
                v = np.asarray(v)
                if v.dtype != x.dtype and not np.ndim(v) == 0:
                    raise TypeError(f"fastact.dask.{fn}: {w} has dtype {v.dtype}; expected {first}'s {x.dtype}")
                v = v.astype(x.dtype)
            try:
                out.append(_like(da.broadcast_to(da.asarray(v), x.shape), x, fn, w))
            except ValueError:
                raise ValueError(f"fastact.dask.{fn}: {w} has shape {np.shape(v)}, which does not broadcast to "
                                 f"{first}'s {x.shape}") from None
        return out

    def fwd(a: dict[str, Any]) -> Any:
        reduction = a.pop("reduction")
        arrs = operands(name, a)
        x = arrs[0]
        getattr(fastact, name)(_empty(x), _empty(x), reduction=reduction, **a)
        if reduction == "none":
            return da.map_blocks(functools.partial(_run, name, reduction="none", **a), *arrs, dtype=x.dtype,
                                 meta=_meta(x))
        parts = da.map_blocks(functools.partial(_block_sum, name, keep=x.ndim, **a), *arrs, dtype=np.float64,
                              chunks=tuple((1,) * len(c) for c in x.chunks), meta=np.empty((0,) * x.ndim))
        total = parts.sum(dtype=np.float64)  # each block's compensated sum, then the blocks' in order
        if reduction == "mean":
            total = total / x.size if x.size else da.full((), np.nan)
        return total.astype(x.dtype)

    def bwd(a: dict[str, Any]) -> Any:
        fn = name + "_backward"
        reduction, grad = a.pop("reduction"), a.pop("grad_output")
        arrs = operands(fn, a)
        x = arrs[0]
        if reduction == "none":
            getattr(fastact, fn)(_empty(x), _empty(x), _empty(x), reduction=reduction, **a)
            g = _like(grad, x, fn, "grad_output")
            return da.map_blocks(functools.partial(_run, fn, reduction="none", **a), g, *arrs, dtype=x.dtype,
                                 meta=_meta(x))
        getattr(fastact, fn)(grad, _empty(x), _empty(x), reduction=reduction, **a)
        g = float(grad)
        if reduction == "mean":  # the single call's scale, grad_output / N, given to each block as a 'sum'
            g = g / x.size if x.size else float("nan")
        return da.map_blocks(functools.partial(_run, fn, g, reduction="sum", **a), *arrs, dtype=x.dtype,
                             meta=_meta(x))

    return {name: fwd, name + "_backward": bwd}


# ------------------------------------------------------------------------------------------- signatures
_NEEDS_WHOLE = ("row", "gated", "broadcast")  # the kinds whose functions take rechunk=


def _signature(name: str, kind: str) -> inspect.Signature:
    """fastact.<name>'s signature without out= and stream=, with rechunk= where an axis must be whole."""
    P = inspect.Parameter
    ps = [p for p in inspect.signature(getattr(fastact, name)).parameters.values() if p.name not in ("out", "stream")]
    if kind in _NEEDS_WHOLE:
        var = [p for p in ps if p.kind == P.VAR_KEYWORD]
        ps = [p for p in ps if p.kind != P.VAR_KEYWORD] + [P("rechunk", P.KEYWORD_ONLY, default=True,
                                                             annotation="bool")] + var
    return inspect.Signature(ps, return_annotation="Any")


def _public(name: str, kind: str, impl: Any) -> Any:
    sig = _signature(name, kind)

    def f(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"fastact.dask.{name}: {e}") from None
        bound.apply_defaults()
        return impl(dict(bound.arguments))

    f.__name__ = f.__qualname__ = name
    f.__module__ = __name__
    f.__signature__ = sig  # type: ignore[attr-defined]
    f.__doc__ = (f"fastact.{name} over Dask arrays, block by block (see fastact.dask); the arguments are "
                 f"fastact.{name}'s, the arrays Dask arrays"
                 + (", rechunk=: rechunk an axis that must be whole (else a ValueError)" if kind in _NEEDS_WHOLE
                    else "") + f".\n\n{getattr(fastact, name).__doc__}")
    return f


def _build() -> dict[str, Any]:
    made: dict[str, Any] = {}
    for op in _core.ops():
        kind = op["kind"]
        if kind == "elementwise":
            fns = _elementwise(op["name"])
        elif kind == "row":
            fns = _row(op["name"])
        elif kind == "gated":
            fns = _gated(op["name"])
        elif kind == "broadcast":
            if "bias_act" in made:
                continue
            fns = _bias_act() if op["activation"] else _prelu(op["name"])
        elif kind == "loss":
            fns = _pointwise_loss(op)
        else:
            continue
        made.update({n: _public(n, kind, impl) for n, impl in fns.items()})
    made["swish"], made["swish_backward"] = made["silu"], made["silu_backward"]
    return made


globals().update(_build())
__all__ += sorted(n for n in globals() if not n.startswith("_") and n in fastact.__all__)
