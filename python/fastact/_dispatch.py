"""Non-NumPy arguments: the one place that knows about them.

NumPy arrays never come here (the compiled layer takes them as they are). Everything else does:
``gpu_route`` sends calls with GPU arrays (or ``stream=``) to fastact.cuda; ``as_array`` turns the rest
into NumPy arrays: Python scalars and lists (converted with NumPy, integers promoted to float64 as
NumPy ufuncs do) and CPU DLPack producers (PyTorch CPU tensors, JAX CPU arrays: consumed without a
copy, bfloat16 included; a read-only export stays read-only).
"""
from __future__ import annotations

import numpy as np

_DLPACK_CPU = 1


def gpu_route(kind: str, op: int, direction: int, fn: str, a, b, out, extra, stream):
    """Runs the call on the GPU when any argument is a GPU array; NotImplemented when none is."""
    from . import cuda

    if not (cuda.on_gpu(a) or cuda.on_gpu(b) or cuda.on_gpu(out)):
        if stream is not None:
            raise ValueError(f"fastact.{fn}: stream= is for GPU arrays, and these arrays are on the CPU")
        return NotImplemented
    if kind == "elementwise":
        return cuda.elementwise(op, direction, fn, a, b, out, extra, stream)
    return cuda.rowwise(op, direction, fn, a, b, out, extra, stream)


def _gpu_error(fn: str, name: str, obj) -> RuntimeError:
    from . import cuda

    return RuntimeError(f"fastact.{fn}: {name} is a GPU array ({type(obj).__module__}.{type(obj).__name__}), "
                        f"but {cuda.unavailable_reason() or 'it reached the CPU path'}")


def as_array(obj, fn: str, name: str) -> np.ndarray:
    if obj is None:
        raise TypeError(f"fastact.{fn}: {name} is required (got None)")
    if hasattr(obj, "__cuda_array_interface__"):
        raise _gpu_error(fn, name, obj)
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        device_type = obj.__dlpack_device__()[0]
        if device_type != _DLPACK_CPU:
            raise _gpu_error(fn, name, obj)
        try:
            return np.from_dlpack(obj)
        except (BufferError, TypeError, RuntimeError) as e:
            err = e
        try:  # bfloat16, which NumPy's from_dlpack does not know: read through ml_dtypes' dtype
            import ml_dtypes

            from . import _core

            return _core._dlpack_bfloat16(obj, np.dtype(ml_dtypes.bfloat16))
        except ImportError:
            raise TypeError(f"fastact.{fn}: {name} is a bfloat16 DLPack tensor? reading it needs ml_dtypes "
                            f"(pip install ml_dtypes); NumPy said: {err}") from None
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"fastact.{fn}: {name} could not be read through DLPack: {err}") from None
    if isinstance(obj, (str, bytes, dict, set)):
        raise TypeError(f"fastact.{fn}: {name} must be an array of float32 or float64, got {type(obj).__name__}")
    try:
        arr = np.asarray(obj)
    except (ValueError, TypeError) as e:
        raise TypeError(f"fastact.{fn}: {name} could not be converted to an array: {e}") from None
    if arr.dtype.kind in "biu" and not isinstance(obj, np.generic):
        arr = arr.astype(np.float64)  # Python ints and bools: promote, as NumPy ufuncs do
    return arr
