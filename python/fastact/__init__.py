"""fastact: fast, accurate activation functions, forward and backward, for NumPy arrays.

Every op is ``fastact.<op>(x, *, <params>, out=None)``; every backward is
``fastact.<op>_backward(grad_output, x=None, *, y=None, <params>, out=None)``. Row ops take ``axis``.
The functions are generated from the compiled op registry (see ``fastact.ops()``), so the list below
is always what the extension provides. ``fastact.show_config()`` says how this build runs here.
"""
from __future__ import annotations

import operator as _operator
from typing import Any, TextIO

from . import _core, _dispatch, cuda, init
from . import losses as _losses
from ._core import compiled_isas, get_isa, get_num_threads, set_isa, supported_isas
from . import _generate, _ops
from ._ops import *  # noqa: F403  (the registry's functions: relu, relu_backward, ...)
from .losses import (cross_entropy, cross_entropy_backward, logsumexp, logsumexp_backward, nll_loss,
                     nll_loss_backward)
from .init import dead_units

_core._set_hooks(_dispatch.as_array, _dispatch.gpu_route, _dispatch.bfloat16_dtype)

__version__: str = _core.version()

_OPS = _core.ops()
if _ops.REGISTRY_DIGEST != _generate.digest(_OPS):
    # An op was added (or changed) in the core and _ops.py not regenerated: the same source, compiled here.
    import sys as _sys
    import warnings as _warnings

    _warnings.warn("fastact/_ops.py was not generated from this build's op registry; using functions made at "
                   "import (run tools/gen_api.py to regenerate it)", RuntimeWarning, stacklevel=2)
    _ops = _generate.load(_OPS, _ops.__file__)
    _sys.modules["fastact._ops"] = _ops
    globals().update({n: getattr(_ops, n) for n in _ops.__all__})
_functions = {n: getattr(_ops, n) for n in _ops.__all__}
_TABULATED = [o["name"] for o in _OPS if o["tabulated16"]]
from . import nn  # noqa: E402  (its layers are made from the functions above)

nn._build(_functions)
swish = silu  # noqa: F405  (alias: the ONNX / TF name)
swish_backward = silu_backward  # noqa: F405


def set_num_threads(n: int) -> None:
    """Use up to n threads (1 <= n <= 4096) for large calls; results do not depend on it."""
    if isinstance(n, bool) or not hasattr(type(n), "__index__"):
        raise TypeError(f"fastact.set_num_threads: n must be an int, got {type(n).__name__}")
    n = _operator.index(n)
    if not 1 <= n <= _core.MAX_THREADS:
        raise ValueError(f"fastact.set_num_threads: n must be from 1 to {_core.MAX_THREADS}, got {n}")
    _core.set_num_threads(n)


def release_memory() -> int:
    """Gives the buffers fastact keeps for reuse (released results of 1 MiB or more) back to the system now,
    instead of after they have been unused for a few seconds; returns the number of bytes freed."""
    return _core.release_memory()


def ops() -> list[dict[str, Any]]:
    """The op registry: one dict per op (name, kind, params with defaults, backward_from)."""
    return [dict(o, params=[dict(p) for p in o["params"]]) for o in _OPS]


def _cuda_config() -> str:
    if not cuda.is_built():
        return "not built (no CUDA toolkit when this fastact was built; CPU only)"
    line = f"built for {', '.join(cuda.targets())}"
    reason = cuda.unavailable_reason()
    if reason is not None:
        return f"{line}; {reason}"
    devs = "; ".join(f"{i}: {d['name']} (sm_{d['capability'][0]}{d['capability'][1]}, {d['multiprocessors']} SMs)"
                     for i, d in enumerate(cuda.devices()))
    return f"{line}; devices: {devs}"


def _half_tables_config() -> str:
    on, count, size = _core.half_tables()
    if not on:
        return "off (FASTACT_HALF_TABLES=0): every 16-bit call computes"
    return (f"on for {', '.join(_TABULATED)} (calls of >= {_core.HALF_TABLE_MIN_ELEMENTS} elements); "
            f"{count} built, {size >> 10} KiB  (FASTACT_HALF_TABLES=0 turns them off)")


def _memory_config() -> str:
    held, limit = _core.result_cache()
    _, _, tables = _core.half_tables()
    cache = ("result cache off (FASTACT_RESULT_CACHE_MB=0)" if limit == 0 else
             f"{held / 2**20:.1f} MiB of released results cached for reuse (at most {limit >> 20} MiB, "
             f"FASTACT_RESULT_CACHE_MB; freed after {_core.RESULT_CACHE_IDLE_SECONDS:g} s unused or by "
             "fastact.release_memory())")
    return (f"{cache}; 16-bit tables {tables >> 10} KiB (at most 16 MiB); "
            "scratch <= 320 KiB per thread (16-bit softmax rows, the lanes of grad_bias / grad_weight sums)")


def _streaming_config() -> str:
    b = _core.stream_min_bytes()
    if b >= 1 << 62:
        return "off (FASTACT_STREAM_STORES=0)"
    return (f"non-temporal stores for float32/float64 calls writing >= {b >> 20} MiB per thread "
            "(half the last-level cache; FASTACT_STREAM_STORES=0 turns them off)")


def show_config(file: TextIO | None = None) -> None:
    """Print the version, compiler, ISA paths (compiled, supported here, in use), threads, the memory fastact
    holds (result cache, 16-bit tables, scratch rows), the 16-bit lookup tables (which ops, how many built),
    streaming stores for large outputs and CUDA."""
    import sys

    out = file or sys.stdout
    lines = [
        f"fastact {__version__}",
        f"  compiler:        {_core.compiler()}",
        f"  ISA compiled:    {', '.join(compiled_isas())}",
        f"  ISA supported:   {', '.join(supported_isas())}",
        f"  ISA in use:      {get_isa()}  (FASTACT_ISA or fastact.set_isa to change)",
        f"  threads:         {get_num_threads()}  (FASTACT_NUM_THREADS or fastact.set_num_threads)",
        f"  memory held:     {_memory_config()}",
        f"  dtypes:          {', '.join(d['name'] for d in _core._dtypes)} (16-bit: computed in float32, rounded once)",
        f"  16-bit tables:   {_half_tables_config()}",
        f"  streaming:       {_streaming_config()}",
        f"  CUDA:            {_cuda_config()}",
        f"  ops:             {', '.join(dict.fromkeys(o['name'] for o in _OPS if o['kind'] != 'loss'))} (bias_act over "
        f"{', '.join(o['activation'] for o in _OPS if o['kind'] == 'broadcast' and o['activation'])})",
    ]
    losses = [n for n in _losses.__all__ if not n.endswith("_backward")] + [o["name"] for o in _OPS if o["kind"] == "loss"]
    lines.append(f"  losses:          {', '.join(losses)} (each with its _backward; rows never materialize the "
                 "softmax; element-wise losses reduce in one pass, in a fixed order)")
    lines.append(f"  init:            fastact.init.{', '.join(n for n in init.__all__ if n != 'dead_units')} "
                 "(PyTorch's gains and fans, on NumPy arrays); fastact.dead_units")
    lines.append(f"  nn:              {len(nn.__all__) - 1} layers and losses as objects (fastact.nn: "
                 f"{', '.join(n for n in nn.__all__[:6] if n != 'Module')}, ...)")
    from importlib.util import find_spec

    have = {m: find_spec(m) is not None for m in ("dask", "matplotlib")}
    dask_state = "dask installed" if have["dask"] else "needs dask"
    plot_state = "matplotlib installed" if have["matplotlib"] else "needs matplotlib"
    lines.append(f"  extras:          fastact.dask: every op over Dask arrays ({dask_state}); python -m fastact plot "
                 f"({plot_state}); typed (py.typed, fastact/_ops.py, nn.pyi)")
    print("\n".join(lines), file=out)


__all__ = [
    "cuda", "init", "nn", "dead_units", "swish", "swish_backward", "ops", "show_config", "compiled_isas",
    "supported_isas", "get_isa", "set_isa", "get_num_threads", "set_num_threads", "release_memory",
    "cross_entropy", "cross_entropy_backward", "logsumexp", "logsumexp_backward", "nll_loss", "nll_loss_backward",
]
__all__ += _ops.__all__
