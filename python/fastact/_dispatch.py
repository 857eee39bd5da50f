"""Non-NumPy arguments: the Python side of the call path.

NumPy arrays never come here, nor do CPU DLPack tensors (the compiled layer reads them itself). The
compiled core calls these hooks, installed once at import (``fastact/__init__.py``): ``gpu_route`` sends
calls with GPU arrays (or ``stream=``) to fastact.cuda; ``as_array`` turns Python scalars and lists into
NumPy arrays (integers promoted to float64, as NumPy ufuncs do) and names GPU arrays that reached the CPU
path; ``bfloat16_dtype`` gives ml_dtypes' bfloat16 dtype for bfloat16 DLPack tensors.
"""
from __future__ import annotations

import numpy as np

from . import _core

_DLPACK_CPU = 1


def gpu_route(kind: str, op: int, direction: int, fn: str, a, b, out, extra, stream):
    """Runs the call on the GPU when any argument is a GPU array; NotImplemented when none is. For the gated
    kind, a is the tuple (x or gate, up, grad_output), b is unused and extra is (params, axis); for the
    broadcast kind, a is (grad_output, x, weight or bias), b their names and extra is (params, channel_axis)."""
    from . import cuda

    arrays = list(a) if kind in ("gated", "broadcast") else [a, b]
    arrays += list(out) if isinstance(out, tuple) else [out]
    if not any(cuda.on_gpu(x) for x in arrays):
        if stream is not None:
            raise ValueError(f"fastact.{fn}: stream= is for GPU arrays, and these arrays are on the CPU")
        return NotImplemented
    if kind == "elementwise":
        return cuda.elementwise(op, direction, fn, a, b, out, extra, stream)
    if kind == "gated":
        return cuda.gated(op, direction, fn, *a, out, *extra, stream)
    if kind == "broadcast":  # a: (grad_output, x, weight or bias), b: their names
        return cuda.broadcast(op, direction, fn, *a, out, *extra, stream, b[2])
    return cuda.rowwise(op, direction, fn, a, b, out, extra, stream)


def _gpu_error(fn: str, name: str, obj) -> RuntimeError:
    from . import cuda

    return RuntimeError(f"fastact.{fn}: {name} is a GPU array ({type(obj).__module__}.{type(obj).__name__}), "
                        f"but {cuda.unavailable_reason() or 'it reached the CPU path'}")


def bfloat16_dtype(fn: str, name: str):
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError(f"fastact.{fn}: {name} is a bfloat16 DLPack tensor; reading it needs ml_dtypes "
                        "(pip install ml_dtypes)") from None
    return np.dtype(ml_dtypes.bfloat16)


def as_array(obj, fn: str, name: str) -> np.ndarray:
    if obj is None:
        raise TypeError(f"fastact.{fn}: {name} is required (got None)")
    if hasattr(obj, "__cuda_array_interface__") or hasattr(obj, "__dlpack_device__"):
        raise _gpu_error(fn, name, obj)  # CPU DLPack tensors never come here
    if isinstance(obj, (str, bytes, dict, set)):
        raise TypeError(f"fastact.{fn}: {name} must be an array of {_core._dtype_list}, got "
                        f"{type(obj).__name__}")
    try:
        arr = np.asarray(obj)
    except MemoryError:
        raise
    except Exception as e:  # an object's own __array__ failing included: named, not passed through
        raise TypeError(f"fastact.{fn}: {name} could not be converted to an array: {e}") from e
    if arr.dtype.kind in "biu" and not isinstance(obj, np.generic):
        arr = arr.astype(np.float64)  # Python ints and bools: promote, as NumPy ufuncs do
    return arr
