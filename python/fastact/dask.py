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

The functions are made from the registry when this module is imported: an op added later is here with no
edit. They pickle by reference (``fastact.dask.gelu`` on the workers is the same function), so any
``distributed`` cluster whose workers can import fastact runs them.
"""
from __future__ import annotations

import functools
import operator
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as e:  # pragma: no cover - exercised without dask
    raise ImportError("fastact.dask needs Dask: pip install 'dask[array]' (and 'distributed' for a cluster)") from e

import fastact

from . import _core, losses as _losses

__all__: list[str] = ["map_blocks"]


# -------------------------------------------------------------------------------------------- on a block
def _run(name: str, *blocks: Any, **kw: Any) -> Any:
    """fastact.<name> on one block (runs on a worker)."""
    return getattr(fastact, name)(*blocks, **kw)


def _run_y(name: str, g: Any, y: Any, **kw: Any) -> Any:
    return getattr(fastact, name)(g, y=y, **kw)


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


def _whole(x: Any, axis: int, rechunk: bool, fn: str, name: str = "x") -> tuple[Any, int]:
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
    if a.shape != ref.shape:
        raise ValueError(f"fastact.dask.{fn}: {name} has shape {a.shape}; expected {ref.shape}")
    return a if a.chunks == ref.chunks else a.rechunk(ref.chunks)


def _meta(x: Any) -> Any:
    return x._meta if hasattr(x, "_meta") else np.empty((0,) * x.ndim, x.dtype)


# ---------------------------------------------------------------------------------------------- builders
def _elementwise(name: str) -> dict[str, Any]:
    def fwd(x: Any, **params: Any) -> Any:
        x = _array(x, name, "x")
        return da.map_blocks(functools.partial(_run, name, **params), x, dtype=x.dtype, meta=_meta(x))

    def bwd(grad_output: Any, x: Any = None, *, y: Any = None, **params: Any) -> Any:
        fn = name + "_backward"
        g = _array(grad_output, fn, "grad_output")
        if (x is None) == (y is None):
            raise ValueError(f"fastact.dask.{fn}: pass x or y (as fastact.{fn} takes them)")
        if y is not None:
            return da.map_blocks(functools.partial(_run_y, fn, **params), g, _like(y, g, fn, "y"), dtype=g.dtype,
                                 meta=_meta(g))
        return da.map_blocks(functools.partial(_run, fn, **params), g, _like(x, g, fn, "x"), dtype=g.dtype,
                             meta=_meta(g))

    return {name: fwd, name + "_backward": bwd}


def _row(name: str) -> dict[str, Any]:
    def fwd(x: Any, axis: int = -1, *, rechunk: bool = True) -> Any:
        x, ax = _whole(_array(x, name, "x"), axis, rechunk, name)
        return da.map_blocks(functools.partial(_run, name, axis=ax), x, dtype=x.dtype, meta=_meta(x))

    def bwd(grad_output: Any, *, y: Any, axis: int = -1, rechunk: bool = True) -> Any:
        fn = name + "_backward"
        y, ax = _whole(_array(y, fn, "y"), axis, rechunk, fn, "y")
        g = _like(grad_output, y, fn, "grad_output")
        return da.map_blocks(functools.partial(_run_y, fn, axis=ax), g, y, dtype=y.dtype, meta=_meta(y))

    return {name: fwd, name + "_backward": bwd}


def _halved(chunks: tuple, ax: int, n: int) -> tuple:
    return tuple((n,) if i == ax else c for i, c in enumerate(chunks))


def _gated(name: str) -> dict[str, Any]:
    def fwd(x: Any, up: Any = None, *, axis: int = -1, rechunk: bool = True, **params: Any) -> Any:
        x = _array(x, name, "x")
        if up is not None:
            return da.map_blocks(functools.partial(_run, name, **params), x, _like(up, x, name, "up"),
                                 dtype=x.dtype, meta=_meta(x))
        x, ax = _whole(x, axis, rechunk, name)
        if x.shape[ax] % 2:
            raise ValueError(f"fastact.dask.{name}: x's axis {ax} has odd length {x.shape[ax]}; it must split in halves")
        return da.map_blocks(functools.partial(_run, name, axis=ax, **params), x, dtype=x.dtype,
                             chunks=_halved(x.chunks, ax, x.shape[ax] // 2), meta=_meta(x))

    def bwd(grad_output: Any, x: Any, up: Any = None, *, axis: int = -1, rechunk: bool = True, **params: Any) -> Any:
        fn = name + "_backward"
        g, x = _array(grad_output, fn, "grad_output"), _array(x, fn, "x")
        if up is not None:
            up = _like(up, x, fn, "up")
            g = _like(g, x, fn, "grad_output")
            return tuple(da.map_blocks(functools.partial(_item, fn, i, **params), g, x, up, dtype=x.dtype,
                                       meta=_meta(x)) for i in (0, 1))
        x, ax = _whole(x, axis, rechunk, fn)
        half = _halved(x.chunks, ax, x.shape[ax] // 2)
        if g.shape != tuple(sum(c) for c in half):
            raise ValueError(f"fastact.dask.{fn}: grad_output has shape {g.shape}; expected x's with axis {ax} "
                             f"halved, {tuple(sum(c) for c in half)}")
        g = g.rechunk(half)
        ind = tuple(range(x.ndim))
        return da.blockwise(functools.partial(_run, fn, axis=ax, **params), ind, g, ind, x, ind, dtype=x.dtype,
                            align_arrays=False, concatenate=True, meta=_meta(x))

    return {name: fwd, name + "_backward": bwd}


def _parameter_grad(fn: str, g: Any, x: Any, w: Any, args: tuple, kw: dict, shape: tuple, dtype: Any) -> Any:
    """The parameter's gradient: each block's, added in block order (one task)."""
    gb, xb = g.to_delayed().ravel(), x.to_delayed().ravel()
    parts = [dask.delayed(_item)(fn, 1, a, b, w, *args, **kw) for a, b in zip(gb, xb)]
    return da.from_delayed(dask.delayed(_in_order)(parts, dtype), shape=shape, dtype=dtype)


def _param_axes_whole(x: Any, weight: Any, channel_axis: int | None, rechunk: bool, fn: str) -> Any:
    """x with every axis the parameter varies along in one chunk, so each block gets all of it."""
    if channel_axis is not None:
        if np.ndim(weight) == 1 and np.size(weight) > 1:
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
    def fwd(x: Any, weight: Any, channel_axis: int | None = 1, *, rechunk: bool = True) -> Any:
        x = _param_axes_whole(_array(x, name, "x"), weight, channel_axis, rechunk, name)
        return da.map_blocks(functools.partial(_run, name), x, weight, channel_axis, dtype=x.dtype, meta=_meta(x))

    def bwd(grad_output: Any, x: Any, weight: Any, channel_axis: int | None = 1, *, rechunk: bool = True) -> Any:
        fn = name + "_backward"
        x = _param_axes_whole(_array(x, fn, "x"), weight, channel_axis, rechunk, fn)
        g = _like(grad_output, x, fn, "grad_output")
        dx = da.map_blocks(functools.partial(_item, fn, 0), g, x, weight, channel_axis, dtype=x.dtype, meta=_meta(x))
        return dx, _parameter_grad(fn, g, x, weight, (channel_axis,), {}, np.shape(weight), x.dtype)

    return {name: fwd, name + "_backward": bwd}


def _bias_act() -> dict[str, Any]:
    def fwd(x: Any, bias: Any, /, activation: str = "gelu", *, rechunk: bool = True, **params: Any) -> Any:
        x, _ = _whole(_array(x, "bias_act", "x"), -1, rechunk, "bias_act")
        return da.map_blocks(functools.partial(_run, "bias_act", activation=activation, **params), x, bias,
                             dtype=x.dtype, meta=_meta(x))

    def bwd(grad_output: Any, x: Any, bias: Any, /, activation: str = "gelu", *, rechunk: bool = True,
            **params: Any) -> Any:
        fn = "bias_act_backward"
        x, _ = _whole(_array(x, fn, "x"), -1, rechunk, fn)
        g = _like(grad_output, x, fn, "grad_output")
        kw = dict(activation=activation, **params)
        dx = da.map_blocks(functools.partial(_item, fn, 0, **kw), g, x, bias, dtype=x.dtype, meta=_meta(x))
        return dx, _parameter_grad(fn, g, x, bias, (), kw, np.shape(bias), x.dtype)

    return {"bias_act": fwd, "bias_act_backward": bwd}


def _reduced(parts: Any, reduction: str, size: int, dtype: Any) -> Any:
    total = parts.sum(dtype=np.float64)  # each block's compensated sum, then the blocks'
    if reduction == "mean":
        total = total / size
    return total.astype(dtype)


def _pointwise_loss(op: dict[str, Any]) -> dict[str, Any]:
    name = op["name"]
    names = op["operand"].split()
    first, weights = names[0], names[2:]

    def operands(fn: str, x: Any, target: Any, ws: dict[str, Any]) -> list[Any]:
        x = _array(x, fn, first)
        out = [x, _like(target, x, fn, "target")]
        for w in weights:  # a weight broadcasts to x's shape, as in the single call
            v = ws.get(w)
            out.append(_like(da.broadcast_to(da.asarray(v if v is not None else 1, dtype=x.dtype), x.shape)
                             if not isinstance(v, da.Array) else da.broadcast_to(v, x.shape), x, fn, w))
        return out

    def fwd(input: Any, target: Any, *args: Any, reduction: str = "mean", **kw: Any) -> Any:
        ws = dict(zip(weights, args))
        ws.update({w: kw.pop(w) for w in weights if w in kw})
        arrs = operands(name, input, target, ws)
        x = arrs[0]
        reduction = _losses._reduction(reduction, name)
        if reduction == "none":
            return da.map_blocks(functools.partial(_run, name, reduction="none", **kw), *arrs, dtype=x.dtype,
                                 meta=_meta(x))
        parts = da.map_blocks(functools.partial(_block_sum, name, keep=x.ndim, **kw), *arrs, dtype=np.float64,
                              chunks=tuple((1,) * len(c) for c in x.chunks), meta=np.empty((0,) * x.ndim))
        return _reduced(parts, reduction, x.size, x.dtype)

    def bwd(grad_output: Any, input: Any, target: Any, *args: Any, reduction: str = "mean", **kw: Any) -> Any:
        fn = name + "_backward"
        ws = dict(zip(weights, args))
        ws.update({w: kw.pop(w) for w in weights if w in kw})
        arrs = operands(fn, input, target, ws)
        x = arrs[0]
        reduction = _losses._reduction(reduction, fn)
        if reduction == "none":
            g = _like(grad_output, x, fn, "grad_output")
            return da.map_blocks(functools.partial(_run, fn, reduction="none", **kw), g, *arrs, dtype=x.dtype,
                                 meta=_meta(x))
        g = float(grad_output)
        if reduction == "mean":  # the single call's scale, grad_output / N, given to each block as a 'sum'
            g = g / x.size if x.size else float("nan")
        return da.map_blocks(lambda *b: getattr(fastact, fn)(g, *b, reduction="sum", **kw), *arrs, dtype=x.dtype,
                             meta=_meta(x))

    return {name: fwd, name + "_backward": bwd}


def map_blocks(fn: Any, *arrays: Any, **params: Any) -> Any:
    """Any fastact function whose result has its first array's shape and dtype, block by block
    (``fastact.dask.map_blocks(fastact.gelu, x, approximate='tanh')``): the arrays' blocks must line up."""
    if not callable(fn):
        raise TypeError(f"fastact.dask.map_blocks: fn must be a fastact function, got {type(fn).__name__}")
    x = _array(arrays[0] if arrays else None, "map_blocks", "the first array")
    others = [_like(a, x, "map_blocks", f"array {i + 1}") for i, a in enumerate(arrays[1:])]
    return da.map_blocks(functools.partial(_run, fn.__name__, **params), x, *others, dtype=x.dtype, meta=_meta(x))


def _build() -> dict[str, Any]:
    made: dict[str, Any] = {}
    for op in _core.ops():
        kind = op["kind"]
        if kind == "elementwise":
            made.update(_elementwise(op["name"]))
        elif kind == "row":
            made.update(_row(op["name"]))
        elif kind == "gated":
            made.update(_gated(op["name"]))
        elif kind == "broadcast" and op["activation"]:
            if "bias_act" not in made:
                made.update(_bias_act())
        elif kind == "broadcast":
            made.update(_prelu(op["name"]))
        elif kind == "loss":
            made.update(_pointwise_loss(op))
    for name, f in made.items():
        f.__name__ = f.__qualname__ = name
        f.__module__ = __name__
        f.__doc__ = (f"fastact.{name} over Dask arrays, block by block (see fastact.dask); the arguments are "
                     f"fastact.{name}'s, the arrays Dask arrays.\n\n{getattr(fastact, name).__doc__}")
    return made


globals().update(_build())
__all__ += sorted(n for n in globals() if not n.startswith("_") and n in fastact.__all__)
