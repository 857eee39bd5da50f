"""Turning call arguments into NumPy arrays: the one place that knows about non-NumPy inputs.

NumPy arrays never come here (the compiled layer takes them as they are). Everything else does:
Python scalars and lists (converted with NumPy, integers promoted to float64 as NumPy ufuncs do),
CPU DLPack producers (PyTorch CPU tensors, JAX CPU arrays: consumed without a copy, bfloat16 included;
a read-only export stays read-only), and GPU arrays (a clear error: this build has no CUDA backend).
"""
from __future__ import annotations

import numpy as np

_DLPACK_CPU = 1


def _gpu_error(fn: str, name: str, obj) -> RuntimeError:
    return RuntimeError(
        f"fastact.{fn}: {name} is a GPU array ({type(obj).__module__}.{type(obj).__name__}), but this fastact "
        "build has no CUDA backend; pass a NumPy array or a CPU tensor")


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
