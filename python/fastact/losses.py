"""Output activations fused with their losses, and logsumexp.

The softmax is never materialized: each row of logits is read for its max, then for its sums (the forward),
and once more to write its gradient (the backward); memory beyond the inputs is O(rows). Per-row values are
float64 (float32 and 16-bit logits are computed in float32 with a max shift kept exact and compensated sums),
and "mean" / "sum" add them in index order with a compensated sum: the same bits for any thread count and ISA.
GPU arrays run on the GPU (fastact.cuda) with the same bits.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from . import _core, _dispatch

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

_Reduction = Literal["mean", "sum", "none"]

_REDUCTIONS = ("mean", "sum", "none")  # the engine's codes 0, 1, 2


def _logits(obj, fn: str, name: str) -> np.ndarray:
    x = _core._as_array(obj, fn, name)
    if x.dtype.kind != "f" and str(x.dtype) != "bfloat16":
        raise TypeError(f"fastact.{fn}: {name} has dtype {x.dtype}; expected {_core._dtype_list}")
    if x.dtype.kind == "f" and x.dtype.itemsize not in (2, 4, 8):
        raise TypeError(f"fastact.{fn}: {name} has dtype {x.dtype}; expected {_core._dtype_list}")
    return x


def _axis(axis, ndim: int, fn: str, name: str) -> int:
    if isinstance(axis, bool) or not hasattr(type(axis), "__index__"):
        raise TypeError(f"fastact.{fn}: axis must be an int, got {type(axis).__name__}")
    a = int(axis)
    if ndim == 0:
        raise ValueError(f"fastact.{fn}: {name} must have at least one dimension (got a 0-d array)")
    if not -ndim <= a < ndim:
        raise ValueError(f"fastact.{fn}: axis {a} is out of range for an array of {ndim} dimensions")
    return a % ndim


def _reduction(reduction, fn: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"fastact.{fn}: reduction must be one of 'mean', 'sum', 'none', got {reduction!r}")
    return reduction


def _number(v, fn: str, name: str, lo=None, hi=None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"fastact.{fn}: {name} must be a number, got {type(v).__name__}")
    f = float(v)
    if not np.isfinite(f) or (lo is not None and f < lo) or (hi is not None and f > hi):
        rng = f" in [{lo}, {hi}]" if hi is not None else f" >= {lo}" if lo is not None else ""
        raise ValueError(f"fastact.{fn}: {name} must be a finite number{rng}, got {v}")
    return f


def _index(v, fn: str, name: str) -> int:
    if isinstance(v, bool) or not hasattr(type(v), "__index__"):
        raise TypeError(f"fastact.{fn}: {name} must be an int, got {type(v).__name__}")
    return int(v)


def _rows_view(x: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(x, axis, -1) if axis != x.ndim - 1 else x


def _out_array(out, like: np.ndarray, fn: str) -> np.ndarray:
    if out is None:  # in the machine's byte order (a byte-swapped input is read through a native copy)
        return np.empty_like(like, dtype=like.dtype.newbyteorder("=")) if like.dtype.byteorder == ">" else \
            np.empty_like(like)
    o = _core._as_array(out, fn, "out") if not isinstance(out, np.ndarray) else out
    if not isinstance(o, np.ndarray):
        raise TypeError(f"fastact.{fn}: out must be a NumPy array")
    if o.dtype != like.dtype or o.shape != like.shape:
        raise ValueError(f"fastact.{fn}: out must have the shape {like.shape} and dtype {like.dtype} of the input, "
                         f"got {o.shape} {o.dtype}")
    if not o.flags.writeable:
        raise ValueError(f"fastact.{fn}: out is read-only")
    return o


def _any_array(obj, fn: str, name: str) -> np.ndarray:
    """obj as a NumPy array of any dtype: CPU DLPack tensors (PyTorch, JAX) as views, GPU arrays a clear error."""
    if hasattr(obj, "__cuda_array_interface__"):
        raise _dispatch._gpu_error(fn, name, obj)
    if hasattr(obj, "__dlpack_device__") and not isinstance(obj, np.ndarray):
        if obj.__dlpack_device__()[0] not in (1, 3):  # CPU, CUDA host memory
            raise _dispatch._gpu_error(fn, name, obj)
        return np.from_dlpack(obj)
    return np.asarray(obj)


def _real_numbers(obj, fn: str, name: str) -> np.ndarray:
    """obj as a float64 array: integers and floats of any width (bfloat16 included), nothing else."""
    a = _any_array(obj, fn, name)
    if a.dtype.kind not in "fiu" and str(a.dtype) != "bfloat16":
        raise TypeError(f"fastact.{fn}: {name} must hold real numbers, got dtype {a.dtype}")
    return a.astype(np.float64)


def _scalar_grad(grad_output, fn: str) -> float:
    g = _any_array(grad_output, fn, "grad_output")
    if g.size != 1 or g.ndim > 1:
        raise ValueError(f"fastact.{fn}: grad_output must be a scalar (a 0-d array or a number) for reduction "
                         f"'mean' or 'sum', got shape {g.shape}")
    if g.dtype.kind not in "fiu" and str(g.dtype) != "bfloat16":
        raise TypeError(f"fastact.{fn}: grad_output must be a number, got dtype {g.dtype}")
    return float(g.reshape(()).astype(np.float64))


def _row_grad(grad_output, rows_shape, fn: str) -> np.ndarray:
    g = _real_numbers(grad_output, fn, "grad_output")
    if g.shape != tuple(rows_shape):
        raise ValueError(f"fastact.{fn}: grad_output must have the shape {tuple(rows_shape)} of the unreduced loss, "
                         f"got {g.shape}")
    return np.ascontiguousarray(g).reshape(-1)


def _result(value, dtype) -> np.ndarray:
    """float64 values in dtype, each correctly rounded: for 16-bit types through a float32 rounded to odd
    (toward zero, the last bit set where inexact), whose rounding to 16 bits is the float64's own (the
    C++ API does the same)."""
    d = np.asarray(value, dtype=np.float64)
    dtype = _native(dtype)
    if dtype.itemsize != 2:
        with np.errstate(over="ignore"):  # a float32 loss beyond its range is inf, without a warning
            return np.asarray(d.astype(dtype))
    with np.errstate(over="ignore"):  # (and a 16-bit one: its rounding below too)
        return np.asarray(_odd_float32(d).astype(dtype))


def _odd_float32(d) -> np.ndarray:
    """float64 values rounded to float32 toward zero, the last bit set where inexact (round to odd): floats
    whose rounding to a 16-bit type is the float64's own correct rounding."""
    with np.errstate(over="ignore", invalid="ignore"):
        d = np.asarray(d, dtype=np.float64)
        f = d.astype(np.float32)
        inexact = (f.astype(np.float64) != d) & np.isfinite(f) & ~np.isnan(d)
        f = np.where(inexact & (np.abs(f.astype(np.float64)) > np.abs(d)), np.nextafter(f, np.float32(0)), f)
        f = np.where(inexact, (f.view(np.uint32) | np.uint32(1)).view(np.float32), f)
        return np.asarray(f, dtype=np.float32)


def _on_gpu(*objs) -> bool:
    """Whether any argument is a GPU array (the call then runs on the GPU: fastact.cuda)."""
    if all(o is None or isinstance(o, (np.ndarray, int, float, list, tuple, str)) for o in objs):
        return False
    from . import cuda

    return any(cuda.on_gpu(o) for o in objs)


def _gpu_host(obj, fn: str, name: str):
    """A GPU argument read on the host (targets, weights, grad_output of the row losses)."""
    from . import cuda

    return cuda.to_host(obj, fn, name)


def _pos(name: str) -> str:
    """The possessive of an argument's name: pred's, logits'."""
    return name + ("'" if name.endswith("s") else "'s")


def _native(dtype) -> np.dtype:
    """dtype in the machine's byte order (a byte-swapped array is read through a native copy)."""
    dt = np.dtype(dtype)
    return dt.newbyteorder("=") if dt.byteorder == ">" else dt


# ---------------------------------------------------------------------------------------------- logsumexp
def _lse_layout(x: np.ndarray, axis, fn: str):
    """x as rows along its last axis (a view, or one copy where the reduced axes cannot merge), the
    reduced axes (sorted) and the shape of the result without keepdims."""
    if axis is None:
        axes = tuple(range(x.ndim))
    elif isinstance(axis, tuple):
        axes = tuple(_axis(a, x.ndim, fn, "x") for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"fastact.{fn}: axis {axis} repeats an axis")
    else:
        axes = (_axis(axis, x.ndim, fn, "x"),)
    axes = tuple(sorted(axes))
    kept = [i for i in range(x.ndim) if i not in axes]
    moved = np.transpose(x, kept + list(axes)) if x.ndim else x.reshape(1)
    kept_shape = tuple(x.shape[i] for i in kept)
    n = int(np.prod([x.shape[i] for i in axes], dtype=np.int64)) if x.ndim else 1
    if len(axes) == 1:
        return moved, axes, kept_shape
    rows = moved.view()
    try:
        rows.shape = kept_shape + (n,)  # a view where the strides allow
    except AttributeError:
        rows = moved.reshape(kept_shape + (n,))  # the reduced axes do not merge: one copy
    return rows, axes, kept_shape


def _keep(shape_without, axes, ndim):
    s = list(shape_without)
    for a in axes:
        s.insert(a, 1)
    return tuple(s)


def logsumexp(x: Any, axis: int | tuple[int, ...] | None = -1, keepdims: bool = False) -> Any:
    """log(sum(exp(x))) along axis (an int, a tuple of ints, or None for all axes), as SciPy's logsumexp.

    The max is subtracted exactly, the sum of exp(x - max) is compensated and its elements equal to the max
    are counted apart, so the result is m + log1p(rest) with every digit of a small rest kept. An empty
    reduction gives -inf, a row of -inf -inf, a row with +inf +inf, a NaN NaN. float16 / bfloat16 are
    computed in float32; the result has x's dtype. Reduced axes that are not one block of memory are copied
    once (a single axis never is).

    Example::

        >>> import numpy as np, fastact
        >>> x = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -np.inf]])
        >>> fastact.logsumexp(x).round(4).tolist()
        [3.4076, 1000.6931]
    """
    fn = "logsumexp"
    if not isinstance(keepdims, (bool, np.bool_)):
        raise TypeError(f"fastact.{fn}: keepdims must be a bool, got {type(keepdims).__name__}")
    if _on_gpu(x):
        from . import cuda

        cuda._require(fn, x, "x")
        return cuda.logsumexp(fn, x, _gpu_axes(x, axis, fn), keepdims, None, None)
    x = _logits(x, fn, "x")
    rows, axes, kept_shape = _lse_layout(x, axis, fn)
    lse = _core._logsumexp(rows)
    r = _result(lse.reshape(kept_shape), x.dtype)
    return r.reshape(_keep(kept_shape, axes, x.ndim)) if keepdims else r


def logsumexp_backward(grad_output: Any, x: Any, axis: int | tuple[int, ...] | None = -1, keepdims: bool = False, *,
                       out: Any = None) -> Any:
    """grad_output * softmax(x) along axis: the gradient of logsumexp(x, axis, keepdims). grad_output has the
    shape of logsumexp's result (with or without the kept axes). out= (x's shape and dtype) may be x.

    Example::

        >>> import numpy as np, fastact
        >>> x = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -np.inf]])
        >>> fastact.logsumexp_backward(np.ones(2), x).round(4).tolist()
        [[0.09, 0.2447, 0.6652], [0.5, 0.5, 0.0]]
    """
    fn = "logsumexp_backward"
    if _on_gpu(x, out, grad_output):
        from . import cuda

        cuda._require(fn, x, "x")
        axes = _gpu_axes(x, axis, fn)
        shape = tuple(getattr(x, "shape", ()))
        kept_shape = tuple(n for i, n in enumerate(shape) if i not in axes)
        g = _lse_grad(_gpu_host(grad_output, fn, "grad_output"), kept_shape, axes, len(shape), fn)
        return cuda.logsumexp(fn, x, axes, keepdims, g, out)
    x = _logits(x, fn, "x")
    rows, axes, kept_shape = _lse_layout(x, axis, fn)
    g = _lse_grad(grad_output, kept_shape, axes, x.ndim, fn)
    o = _out_array(out, x, fn)
    coef = np.zeros((int(np.prod(kept_shape, dtype=np.int64)), 4))
    coef[:, 0] = g.reshape(-1)
    orows, _, _ = _lse_layout(o, axis, fn)
    if orows.size and not np.shares_memory(orows, o):
        # out's reduced axes do not merge (as x's may not): through a buffer of x's size, copied into out
        _core._logsumexp_backward(rows, coef, orows)
        kept = [i for i in range(x.ndim) if i not in axes]
        np.transpose(o, kept + list(axes))[...] = orows.reshape(np.transpose(o, kept + list(axes)).shape)
        return o
    _core._logsumexp_backward(rows, coef, orows)
    return o


def _lse_grad(grad_output, kept_shape, axes, ndim, fn):
    g = _real_numbers(grad_output, fn, "grad_output")
    if g.shape not in (kept_shape, _keep(kept_shape, axes, ndim)):
        raise ValueError(f"fastact.{fn}: grad_output has shape {g.shape}; expected {kept_shape} (or "
                         f"{_keep(kept_shape, axes, ndim)} with keepdims)")
    return g


def _gpu_axes(x, axis, fn):
    """The reduced axes (sorted) of a GPU array x, checked as _lse_layout checks them."""
    ndim = len(getattr(x, "shape", ()))
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, tuple):
        axes = tuple(_axis(a, ndim, fn, "x") for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"fastact.{fn}: axis {axis} repeats an axis")
        return tuple(sorted(axes))
    return (_axis(axis, ndim, fn, "x"),)


# ---------------------------------------------------------------------------------------------- cross-entropy
class _ClassTargets:
    """Validated targets: class indices t (int64 of the rows' shape, -1 where ignored; probs None) or class
    probabilities probs (the logits' dtype and shape; t None), and the class weights w (float64 or None)."""

    def __init__(self, fn, x, target, axis, weight, ignore_index, name):
        self.rows_shape = x.shape[:axis] + x.shape[axis + 1:]
        k = x.shape[axis]
        self.w = None
        if weight is not None:
            w = _real_numbers(weight, fn, "weight")
            if w.shape != (k,):
                raise ValueError(f"fastact.{fn}: weight has shape {w.shape}; expected ({k},), one per class")
            self.w = np.ascontiguousarray(w, dtype=np.float64)
        self.probs = None
        t = _any_array(target, fn, "target")
        if t.dtype.kind not in "iu":
            if (t.dtype.kind == "f" or str(t.dtype) == "bfloat16") and fn.startswith("cross_entropy"):
                if _native(t.dtype) != _native(x.dtype):
                    raise TypeError(f"fastact.{fn}: target (class probabilities) has dtype {t.dtype}; expected the "
                                    f"{name}' dtype {x.dtype}")
                if t.shape != x.shape:
                    raise ValueError(f"fastact.{fn}: target (class probabilities) has shape {t.shape}; expected the "
                                     f"{name}' shape {x.shape}")
                self.probs, self.t = t, None
                return
            raise TypeError(f"fastact.{fn}: target must be class indices (an integer array), got dtype {t.dtype}")
        if t.shape != self.rows_shape:
            raise ValueError(f"fastact.{fn}: target has shape {t.shape}; expected {self.rows_shape} (the {name}' "
                             f"shape {x.shape} without axis {axis})")
        ignored = t == ignore_index
        bad = ~ignored & ((t < 0) | (t >= k))
        if bad.any():
            i = int(np.flatnonzero(bad.reshape(-1))[0])
            raise ValueError(f"fastact.{fn}: target {t.reshape(-1)[i]} at index "
                             f"{tuple(int(v) for v in np.unravel_index(i, t.shape))} is not a class in [0, {k}) "
                             f"(nor ignore_index={ignore_index})")
        # (-1 as int64: np.where would cast it to an unsigned target's dtype, 255 for uint8)
        self.t = np.where(ignored, np.int64(-1), t.astype(np.int64))


def _ce_args(fn, logits, target, axis, weight, reduction, label_smoothing, ignore_index, z_loss, name="logits"):
    x = _logits(logits, fn, name)
    a = _axis(axis, x.ndim, fn, name)
    reduction = _reduction(reduction, fn)
    eps = _number(label_smoothing, fn, "label_smoothing", 0.0, 1.0)
    z = _number(z_loss, fn, "z_loss", 0.0)
    ignore_index = _index(ignore_index, fn, "ignore_index")
    tg = _ClassTargets(fn, x, target, a, weight, ignore_index, name)
    return x, a, reduction, eps, z, tg


def cross_entropy(logits: Any, target: Any, axis: int = -1, weight: ArrayLike | None = None,
                  reduction: _Reduction = "mean", label_smoothing: float = 0.0, ignore_index: int = -100,
                  z_loss: float = 0.0) -> Any:
    """Softmax cross-entropy from logits, as PyTorch's F.cross_entropy, with the class axis `axis`.

    target: class indices of the logits' shape without `axis`, any integer dtype; entries equal to
    ignore_index count for nothing, others outside [0, classes) are a ValueError naming the first. Or class
    probabilities of the logits' shape and dtype (a soft target): the loss of a row is
    -sum_j weight_j q_j log_softmax_j with q = (1 - label_smoothing) target + label_smoothing / classes, summed
    as two sums of terms that are never negative (no cancellation; a zero probability adds 0, also beside a
    -inf logit), "mean" over the rows, ignore_index unused.
    weight: one weight per class. label_smoothing: PyTorch's definition (with weights). z_loss: adds
    z_loss * logsumexp(row)**2 per counted row (PaLM's auxiliary loss; not weighted, its "mean" over the
    counted rows). reduction: "mean" (the weighted sum over the sum of the counted targets' weights, as
    PyTorch), "sum", or "none" (one loss per row, 0 where ignored). The loss of a confident row is kept
    (lse - x_t without cancellation), and no logits overflow. Returns an array of the logits' dtype (0-d for
    "mean" / "sum").

    Example::

        >>> import numpy as np, fastact
        >>> logits, target = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]), np.array([0, 2])
        >>> round(float(fastact.cross_entropy(logits, target)), 6)
        0.175456
        >>> fastact.cross_entropy(logits, target, reduction='none', label_smoothing=0.1).round(4).tolist()
        [0.3913, 0.2996]
    """
    fn = "cross_entropy"
    if _on_gpu(logits, target, weight):
        return _gpu_class_loss(fn, False, 0, None, logits, target, axis, weight, reduction, label_smoothing,
                               ignore_index, z_loss, None)
    x, a, reduction, eps, z, tg = _ce_args(fn, logits, target, axis, weight, reduction, label_smoothing,
                                           ignore_index, z_loss)
    if tg.probs is not None:
        r = _core._cross_entropy_probs(_rows_view(x, a), _rows_view(tg.probs, a), tg.w, _REDUCTIONS.index(reduction),
                                       eps, z)
        return _result(r, x.dtype)
    r = _core._cross_entropy(_rows_view(x, a), tg.t, tg.w, _REDUCTIONS.index(reduction), eps, z, False)
    return _result(r, x.dtype)


def cross_entropy_backward(grad_output: Any, logits: Any, target: Any, axis: int = -1, weight: ArrayLike | None = None,
                           reduction: _Reduction = "mean", label_smoothing: float = 0.0, ignore_index: int = -100,
                           z_loss: float = 0.0, *, out: Any = None) -> Any:
    """The gradient of cross_entropy (same arguments) with respect to the logits: scale * (softmax - onehot),
    with label smoothing, weights and z_loss. grad_output: a scalar for "mean" / "sum", an array of the
    per-row loss's shape for "none". out= may be the logits themselves: each row is read before its gradient
    overwrites it, so a large-vocabulary training step needs no second logits-sized buffer. Ignored rows get
    zeros.

    Example::

        >>> import numpy as np, fastact
        >>> logits, target = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]), np.array([0, 2])
        >>> fastact.cross_entropy_backward(1.0, logits, target).round(4).tolist()
        [[-0.1072, 0.0876, 0.0196], [0.0247, 0.0272, -0.0519]]
    """
    fn = "cross_entropy_backward"
    if _on_gpu(logits, target, weight, grad_output, out):
        return _gpu_class_loss(fn, False, 1, grad_output, logits, target, axis, weight, reduction, label_smoothing,
                               ignore_index, z_loss, out)
    x, a, reduction, eps, z, tg = _ce_args(fn, logits, target, axis, weight, reduction, label_smoothing,
                                           ignore_index, z_loss)
    g = _grad_of(grad_output, reduction, tg.rows_shape, fn)
    o = _out_array(out, x, fn)
    if tg.probs is not None:
        _core._cross_entropy_probs_backward(g, _rows_view(x, a), _rows_view(tg.probs, a), tg.w,
                                            _REDUCTIONS.index(reduction), eps, z, _rows_view(o, a))
        return o
    _core._cross_entropy_backward(g, _rows_view(x, a), tg.t, tg.w, _REDUCTIONS.index(reduction), eps, z,
                                  _rows_view(o, a), False)
    return o


def _gpu_class_loss(fn, nll, direction, grad_output, logits, target, axis, weight, reduction, label_smoothing,
                    ignore_index, z_loss, out):
    """cross_entropy / nll_loss and their gradients on GPU arrays (fastact.cuda.class_loss): the same checks,
    on the host copies of the targets and weights."""
    from . import cuda

    name = "log_probs" if nll else "logits"

    def prepare(like, target_like):
        t = target_like if target_like is not None else _gpu_host(target, fn, "target")
        x, a, red, eps, z, tg = _ce_args(fn, like, t, axis, _gpu_host(weight, fn, "weight"), reduction,
                                         0.0 if nll else label_smoothing, ignore_index, 0.0 if nll else z_loss, name)
        return a, tg, red, eps, z

    def grad_of(rows_shape, red):
        return _grad_of(_gpu_host(grad_output, fn, "grad_output"), red, rows_shape, fn)

    return cuda.class_loss(fn, nll, direction, logits, target, name, out, prepare, grad_of)


def _grad_of(grad_output, reduction, rows_shape, fn):
    if reduction == "none":
        return _row_grad(grad_output, rows_shape, fn)
    return np.array([_scalar_grad(grad_output, fn)])


def nll_loss(log_probs: Any, target: Any, axis: int = -1, weight: ArrayLike | None = None,
             reduction: _Reduction = "mean", ignore_index: int = -100) -> Any:
    """The negative log-likelihood of class indices, as PyTorch's F.nll_loss (ONNX NegativeLogLikelihoodLoss
    with axis=1): -weight[t] * log_probs[t] per counted row, with cross_entropy's target checks and
    reductions ("mean": over the sum of the counted targets' weights). log_probs is typically
    log_softmax(logits); from logits, cross_entropy is one call and more accurate. Returns an array of the
    input's dtype (0-d for "mean" / "sum").

    Example::

        >>> import numpy as np, fastact
        >>> log_probs = fastact.log_softmax(np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]))
        >>> round(float(fastact.nll_loss(log_probs, np.array([0, 2]))), 6)
        0.175456
    """
    fn = "nll_loss"
    if _on_gpu(log_probs, target, weight):
        return _gpu_class_loss(fn, True, 0, None, log_probs, target, axis, weight, reduction, 0.0, ignore_index, 0.0,
                               None)
    x, a, reduction, _, _, tg = _ce_args(fn, log_probs, target, axis, weight, reduction, 0.0, ignore_index, 0.0,
                                         "log_probs")
    r = _core._cross_entropy(_rows_view(x, a), tg.t, tg.w, _REDUCTIONS.index(reduction), 0.0, 0.0, True)
    return _result(r, x.dtype)


def nll_loss_backward(grad_output: Any, log_probs: Any, target: Any, axis: int = -1, weight: ArrayLike | None = None,
                      reduction: _Reduction = "mean", ignore_index: int = -100, *, out: Any = None) -> Any:
    """The gradient of nll_loss (same arguments) with respect to log_probs: zero but -scale * weight[t] at
    each counted row's target. out= (log_probs' shape and dtype) may be log_probs itself.

    Example::

        >>> import numpy as np, fastact
        >>> log_probs = fastact.log_softmax(np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]))
        >>> fastact.nll_loss_backward(1.0, log_probs, np.array([0, 2])).tolist()
        [[-0.5, 0.0, 0.0], [0.0, 0.0, -0.5]]
    """
    fn = "nll_loss_backward"
    if _on_gpu(log_probs, target, weight, grad_output, out):
        return _gpu_class_loss(fn, True, 1, grad_output, log_probs, target, axis, weight, reduction, 0.0, ignore_index,
                               0.0, out)
    x, a, reduction, _, _, tg = _ce_args(fn, log_probs, target, axis, weight, reduction, 0.0, ignore_index, 0.0,
                                         "log_probs")
    g = _grad_of(grad_output, reduction, tg.t.shape, fn)
    o = _out_array(out, x, fn)
    _core._cross_entropy_backward(g, _rows_view(x, a), tg.t, tg.w, _REDUCTIONS.index(reduction), 0.0, 0.0,
                                  _rows_view(o, a), True)
    return o


# ---------------------------------------------------------------------------------------------- element-wise
def _same_dtype(obj, x: np.ndarray, fn: str, name: str, xname: str) -> np.ndarray:
    """obj as an array of x's dtype: an array (NumPy or CPU DLPack) must have it already (a TypeError names
    the difference: converting would be a silent copy); Python numbers and lists take it."""
    converted = isinstance(obj, (list, tuple, int, float)) and not isinstance(obj, bool)
    a = _core._as_array(obj, fn, name)
    if converted and a.dtype.kind in "fiu":
        with np.errstate(over="ignore", invalid="ignore"):
            c = a.astype(x.dtype)
        if np.any(np.isfinite(a) & ~np.isfinite(c.astype(np.float64))):
            raise ValueError(f"fastact.{fn}: {name} holds a value too large for {_pos(xname)} dtype {x.dtype}")
        return c
    if _native(a.dtype) != _native(x.dtype):
        raise TypeError(f"fastact.{fn}: {name} has dtype {a.dtype}; expected {_pos(xname)} dtype {x.dtype} (pass arrays "
                        "of one dtype)")
    return a


def _broadcast(a: np.ndarray, shape, fn: str, name: str, xname: str) -> np.ndarray:
    try:
        return np.broadcast_to(a, shape)
    except ValueError:
        raise ValueError(f"fastact.{fn}: {name} has shape {a.shape}, which does not broadcast to {_pos(xname)} shape "
                         f"{shape}") from None


def _pointwise(fn: str, oid: int, direction: int, grad_output: Any, operands: tuple[Any, ...], names: tuple[str, ...],
               reduction: Any, params: tuple[Any, ...], out: Any, stream: Any) -> Any:
    """An element-wise loss (registry.h FASTACT_LOSS_OPS) or its gradient: the functions _generate.py builds
    call this with the operands (the input, target, the weights or None) and their names. Checks the
    arguments, broadcasts the weights (and a scalar grad_output) to the input's shape as views, and calls
    the engine once."""
    reduction = _reduction(reduction, fn)
    code = _REDUCTIONS.index(reduction)
    gpu = _on_gpu(grad_output, out, *operands)
    if stream is not None and not gpu:
        raise ValueError(f"fastact.{fn}: stream= is for GPU arrays, and these arrays are on the CPU")
    if gpu:
        from . import cuda

        g_obj = grad_output if direction == 1 and reduction == "none" else None
        g = _scalar_grad(_gpu_host(grad_output, fn, "grad_output"), fn) if direction == 1 and g_obj is None else None
        return cuda.pointwise_loss(fn, oid, _summed_id(oid), direction, reduction,
                                   lambda size, dcode: _grad_scale(g, reduction, size, dcode != _core_f64(), fn,
                                                                   _core._dtypes[dcode]["name"]),
                                   g_obj, operands, names, params, out, stream)
    if direction == 1:  # checked in argument order: grad_output first
        g = _scalar_grad(grad_output, fn) if reduction != "none" else _core._as_array(grad_output, fn, "grad_output")
    first = names[0]
    x = _logits(operands[0], fn, first)
    t = _same_dtype(operands[1], x, fn, "target", first)
    if t.shape != x.shape:
        raise ValueError(f"fastact.{fn}: target has shape {t.shape}; expected {_pos(first)} shape {x.shape}")
    ones = None
    ins = [x, t]
    for name, w in zip(names[2:], operands[2:]):
        if w is None:
            if ones is None:
                ones = np.broadcast_to(np.ones((), dtype=_native(x.dtype)), x.shape)
            ins.append(ones)
        else:
            ins.append(_broadcast(_same_dtype(w, x, fn, name, first), x.shape, fn, name, first))
    if direction == 0:
        if reduction != "none":
            if out is not None:
                raise ValueError(f"fastact.{fn}: out= is for reduction='none' (the losses); 'mean' and 'sum' "
                                 "return a 0-d array")
            return _result(_core._loss(oid, 0, code, tuple(ins), None, params, 1.0), x.dtype)
        return _core._loss(oid, 0, code, tuple(ins), out, params, 1.0)
    if reduction == "none":
        g = _same_dtype(g, x, fn, "grad_output", first)
        if g.shape != x.shape:
            raise ValueError(f"fastact.{fn}: grad_output has shape {g.shape}; expected {_pos(first)} shape {x.shape} "
                             "(reduction 'none')")
        scale = 1.0
    else:
        scale = _grad_scale(g, reduction, x.size, x.dtype != np.float64, fn, x.dtype)
        g = np.broadcast_to(np.ones((), dtype=_native(x.dtype)), x.shape)
    return _core._loss(oid, 1, code, (g, *ins), out, params, scale)


def _grad_scale(g, reduction, size, in_float32, fn, dtype):
    """An element-wise loss gradient's factor: grad_output, over the element count for "mean"."""
    scale = g
    if reduction == "mean":
        scale = scale / size if size else float("nan")
    if in_float32 and np.isfinite(scale) and abs(scale) > float(np.finfo(np.float32).max):
        raise ValueError(f"fastact.{fn}: grad_output {scale} does not fit the compute type (float32) of {dtype}")
    return scale


_SUMMED = {}


def _summed_id(oid: int) -> int:
    if not _SUMMED:
        _SUMMED.update({o["id"]: o["summed"] for o in _core.ops() if o["kind"] == "loss"})
    return _SUMMED[oid]


def _core_f64() -> int:
    return [d["name"] for d in _core._dtypes].index("float64")


__all__ = ["logsumexp", "logsumexp_backward", "cross_entropy", "cross_entropy_backward", "nll_loss",
           "nll_loss_backward"]
