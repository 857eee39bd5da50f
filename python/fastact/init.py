"""Weight initialisation for NumPy arrays, as PyTorch's torch.nn.init, and the dying-ReLU check.

A ReLU unit whose input stays negative outputs 0 and gets no gradient, so it never recovers (a "dead" unit);
a large negative bias or a high learning rate kills many. The cures the practitioners' guides give start
here: Kaiming (He) initialisation scaled by the nonlinearity's gain, with zero biases, and watching the
fraction of dead units (:func:`dead_units`).

Every initialiser fills its array in place and returns it (the trailing underscore, as PyTorch's), with
PyTorch's fan convention: an (out, in) weight (a Linear layer's) has fan_in = shape[1] and fan_out =
shape[0]; a convolution's (out, in, *kernel) multiplies both by the kernel's size. ``rng`` is a
``numpy.random.Generator``, a seed (int) or None (fresh entropy): the same seed gives the same weights.

Example::

    w = np.empty((256, 784), np.float32)
    fastact.init.kaiming_normal_(w, nonlinearity="relu", rng=0)   # std = sqrt(2 / 784)
    b = fastact.init.zeros_(np.empty(256, np.float32))
    fastact.dead_units(fastact.relu(x @ w.T + b))                 # fraction of units that never fire
"""
from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union

import numpy as np

from . import _core

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

_N = TypeVar("_N", bound="NDArray[Any]")
_Rng = Union[np.random.Generator, int, None]

__all__ = ["calculate_gain", "kaiming_normal_", "kaiming_uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
           "dead_units"]

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "sigmoid")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's values): the factor by which an initialiser scales
    the standard deviation so that the activations' variance holds from layer to layer.

    linear, conv*, sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 + negative_slope^2)), param
    the negative slope (default 0.01); selu: 3/4. Any other name is a ValueError.

    Example::

        >>> from fastact import init
        >>> round(init.calculate_gain('leaky_relu', 0.2), 6)
        1.38675
    """
    if not isinstance(nonlinearity, str):
        raise TypeError(f"fastact.init.calculate_gain: nonlinearity must be a str, got {type(nonlinearity).__name__}")
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"fastact.init.calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"fastact.init.calculate_gain: unsupported nonlinearity {nonlinearity!r} (expected one of "
                     f"{', '.join(_LINEAR)}, tanh, relu, leaky_relu, selu)")


def _weight(a, fn: str) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"fastact.init.{fn}: expected a NumPy array to fill in place, got {type(a).__name__}")
    if a.dtype.kind != "f" and str(a.dtype) != "bfloat16":
        raise TypeError(f"fastact.init.{fn}: the array has dtype {a.dtype}; expected a floating-point dtype")
    if not a.flags.writeable:
        raise ValueError(f"fastact.init.{fn}: the array is read-only")
    if a.size and _core._has_internal_overlap(list(a.shape), [st // a.itemsize for st in a.strides]):
        raise ValueError(f"fastact.init.{fn}: the array has elements that share memory (a broadcast or overlapping "
                         "view); pass an array whose elements are distinct")
    return a


def _fans(a: np.ndarray, fn: str):
    if a.ndim < 2:
        raise ValueError(f"fastact.init.{fn}: fan in and fan out need at least 2 dimensions (a weight of shape "
                         f"(out, in, ...)), got shape {a.shape}")
    receptive = int(np.prod(a.shape[2:], dtype=np.int64)) if a.ndim > 2 else 1
    return a.shape[1] * receptive, a.shape[0] * receptive


def _fan(a: np.ndarray, mode, fn: str) -> int:
    m = mode.lower() if isinstance(mode, str) else mode  # (PyTorch lowercases it too)
    if m not in ("fan_in", "fan_out"):
        raise ValueError(f"fastact.init.{fn}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(a, fn)
    return fan_in if m == "fan_in" else fan_out


def _gain(gain, fn: str) -> float:
    if isinstance(gain, bool) or not isinstance(gain, numbers.Real) or not math.isfinite(gain) or gain < 0:
        raise ValueError(f"fastact.init.{fn}: gain must be a finite number >= 0, got {gain!r}")
    return float(gain)


def _rng(rng, fn: str) -> np.random.Generator:
    """A Generator from rng: a Generator as it is, or what numpy.random.default_rng takes (None: fresh
    entropy, not NumPy's global seed; an int seed, a SeedSequence, a BitGenerator)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, bool) or not (rng is None or isinstance(rng, (numbers.Integral, np.random.SeedSequence,
                                                                     np.random.BitGenerator))):
        raise TypeError(f"fastact.init.{fn}: rng must be a numpy.random.Generator, a seed (int, SeedSequence), a "
                        f"BitGenerator or None, got {type(rng).__name__}")
    try:
        return np.random.default_rng(rng)
    except ValueError as e:
        raise ValueError(f"fastact.init.{fn}: rng {rng!r}: {e}") from None


def _fill(a: np.ndarray, values: np.ndarray) -> np.ndarray:
    a[...] = values.astype(a.dtype)
    return a


def _uniform(a, bound, rng, fn):
    g = _rng(rng, fn)
    if a.size == 0:
        return a
    return _fill(a, g.uniform(-bound, bound, a.shape))


def _normal(a, std, rng, fn):
    g = _rng(rng, fn)
    if a.size == 0:
        return a
    return _fill(a, g.normal(0.0, std, a.shape))


def kaiming_uniform_(tensor: _N, a: float = 0.0, mode: Literal["fan_in", "fan_out"] = "fan_in",
                     nonlinearity: str = "leaky_relu", *, rng: _Rng = None) -> _N:
    """Fills tensor with U(-bound, bound), bound = gain * sqrt(3 / fan) (He et al.; PyTorch's kaiming_uniform_,
    with its parameter names: ``a`` is the negative slope of a leaky_relu). mode 'fan_in' keeps the forward
    pass's variance, 'fan_out' the backward's. gain = calculate_gain(nonlinearity, a).

    Example::

        >>> import numpy as np
        >>> from fastact import init
        >>> w = init.kaiming_uniform_(np.empty((64, 128), np.float32), nonlinearity='relu', rng=0)
        >>> bool(np.abs(w).max() <= (6 / 128) ** 0.5)  # bound = gain * sqrt(3 / fan_in)
        True
    """
    fn = "kaiming_uniform_"
    t = _weight(tensor, fn)
    fan = _fan(t, mode, fn)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0
    return _uniform(t, math.sqrt(3.0) * std, rng, fn)


def kaiming_normal_(tensor: _N, a: float = 0.0, mode: Literal["fan_in", "fan_out"] = "fan_in",
                    nonlinearity: str = "leaky_relu", *, rng: _Rng = None) -> _N:
    """Fills tensor with N(0, std^2), std = gain / sqrt(fan) (He et al.; PyTorch's kaiming_normal_). For ReLU
    layers: ``kaiming_normal_(w, nonlinearity="relu")``, std = sqrt(2 / fan_in).

    Example::

        >>> import numpy as np
        >>> from fastact import init
        >>> w = init.kaiming_normal_(np.empty((256, 512), np.float32), nonlinearity='relu', rng=0)
        >>> round(float(w.std()), 2), round((2 / 512) ** 0.5, 2)  # std = gain / sqrt(fan_in)
        (0.06, 0.06)
    """
    fn = "kaiming_normal_"
    t = _weight(tensor, fn)
    fan = _fan(t, mode, fn)
    return _normal(t, calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0, rng, fn)


def xavier_uniform_(tensor: _N, gain: float = 1.0, *, rng: _Rng = None) -> _N:
    """Fills tensor with U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio;
    PyTorch's xavier_uniform_): for tanh and sigmoid layers (gain = calculate_gain("tanh") for tanh).

    Example::

        >>> import numpy as np
        >>> from fastact import init
        >>> w = init.xavier_uniform_(np.empty((64, 128), np.float32), rng=0)
        >>> bool(np.abs(w).max() <= (6 / (64 + 128)) ** 0.5)  # bound = gain * sqrt(6 / (fan_in + fan_out))
        True
    """
    fn = "xavier_uniform_"
    t = _weight(tensor, fn)
    fan_in, fan_out = _fans(t, fn)
    std = _gain(gain, fn) * math.sqrt(2.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
    return _uniform(t, math.sqrt(3.0) * std, rng, fn)


def xavier_normal_(tensor: _N, gain: float = 1.0, *, rng: _Rng = None) -> _N:
    """Fills tensor with N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)) (PyTorch's xavier_normal_).

    Example::

        >>> import numpy as np
        >>> from fastact import init
        >>> w = init.xavier_normal_(np.empty((300, 500), np.float32), rng=0)
        >>> round(float(w.std()), 3), round((2 / 800) ** 0.5, 3)  # std = gain * sqrt(2 / (fan_in + fan_out))
        (0.05, 0.05)
    """
    fn = "xavier_normal_"
    t = _weight(tensor, fn)
    fan_in, fan_out = _fans(t, fn)
    return _normal(t, _gain(gain, fn) * math.sqrt(2.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0, rng, fn)


def zeros_(tensor: _N) -> _N:
    """Fills tensor with zeros (the biases of a Kaiming-initialised ReLU layer) and returns it.

    Example::

        >>> import numpy as np
        >>> from fastact import init
        >>> init.zeros_(np.ones(3, np.float32)).tolist()
        [0.0, 0.0, 0.0]
    """
    t = _weight(tensor, "zeros_")
    t[...] = 0
    return t


def dead_units(activations: ArrayLike, axis: int | tuple[int, ...] = 0) -> float:
    """The fraction of units that never fire over a batch: activations of shape (batch, units...) with the
    batch along ``axis`` (an int, or a tuple of axes for, say, batch and positions); a unit is dead when its
    activation is positive for no sample (ReLU's output is 0 for all of them). NaN counts as not firing.
    Returns a float in [0, 1]; a batch of no units is a ValueError.

    Example: ``fastact.dead_units(fastact.relu(x @ w.T + b))`` after each epoch shows units dying under a
    large negative bias or a high learning rate.

    Example::

        >>> import numpy as np, fastact
        >>> a = np.array([[0.0, 1.5, 0.0], [0.0, 0.2, 0.0], [0.3, 0.0, 0.0]])
        >>> round(fastact.dead_units(a), 4)  # the third unit never fires
        0.3333
    """
    if isinstance(activations, np.ma.MaskedArray):
        raise TypeError("fastact.dead_units: masked arrays are not supported (their mask would be lost)")
    a = np.asarray(activations)
    if a.dtype.kind not in "fiub" and str(a.dtype) != "bfloat16":
        raise TypeError(f"fastact.dead_units: activations must hold real numbers, got dtype {a.dtype}")
    if a.ndim == 0:
        raise ValueError("fastact.dead_units: activations must have a batch axis and units (got a 0-d array)")
    axes = axis if isinstance(axis, tuple) else (axis,)
    norm = []
    for ax in axes:
        if isinstance(ax, bool) or not isinstance(ax, numbers.Integral):
            raise TypeError(f"fastact.dead_units: axis must be an int or a tuple of ints, got {type(ax).__name__}")
        if not -a.ndim <= ax < a.ndim:
            raise ValueError(f"fastact.dead_units: axis {ax} is out of range for an array of {a.ndim} dimensions")
        norm.append(int(ax) % a.ndim)
    if len(set(norm)) != len(norm):
        raise ValueError(f"fastact.dead_units: axis {axis} repeats an axis")
    if not norm:
        raise ValueError("fastact.dead_units: axis must name the batch axis (or axes), got ()")
    if any(a.shape[i] == 0 for i in norm):
        raise ValueError(f"fastact.dead_units: activations of shape {a.shape} hold no sample along axis {axis}")
    fired = np.any(a.astype(np.float64, copy=False) > 0, axis=tuple(norm)) if a.size else np.zeros(
        [n for i, n in enumerate(a.shape) if i not in norm], bool)
    if fired.size == 0:
        raise ValueError(f"fastact.dead_units: activations of shape {a.shape} have no units besides axis {axis}")
    return float(1.0 - np.count_nonzero(fired) / fired.size)
