"""fastact: fast, accurate activation functions, forward and backward, for NumPy arrays.

Every op is ``fastact.<op>(x, *, <params>, out=None)``; every backward is
``fastact.<op>_backward(grad_output, x=None, *, y=None, <params>, out=None)``. Row ops take ``axis``.
The functions are generated from the compiled op registry (see ``fastact.ops()``), so the list below
is always what the extension provides. ``fastact.show_config()`` says how this build runs here.
"""
from __future__ import annotations

from . import _core, cuda
from ._core import compiled_isas, get_isa, get_num_threads, set_isa, set_num_threads, supported_isas
from ._generate import build_functions

__version__ = _core.version()

_OPS = _core.ops()
_functions = build_functions(_OPS, _core)
_TABULATED = [o["name"] for o in _OPS if o["tabulated16"]]
globals().update(_functions)
swish = _functions["silu"]  # alias (ONNX / TF name)
swish_backward = _functions["silu_backward"]


def ops() -> list:
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


def _streaming_config() -> str:
    b = _core.stream_min_bytes()
    if b >= 1 << 62:
        return "off (FASTACT_STREAM_STORES=0)"
    return (f"non-temporal stores for float32/float64 calls writing >= {b >> 20} MiB per thread "
            "(half the last-level cache; FASTACT_STREAM_STORES=0 turns them off)")


def show_config(file=None) -> None:
    """Print the version, compiler, ISA paths (compiled, supported here, in use), threads, the result cache,
    the 16-bit lookup tables (which ops, how many built), streaming stores for large outputs and CUDA."""
    import sys

    out = file or sys.stdout
    lines = [
        f"fastact {__version__}",
        f"  compiler:        {_core.compiler()}",
        f"  ISA compiled:    {', '.join(compiled_isas())}",
        f"  ISA supported:   {', '.join(supported_isas())}",
        f"  ISA in use:      {get_isa()}  (FASTACT_ISA or fastact.set_isa to change)",
        f"  threads:         {get_num_threads()}  (FASTACT_NUM_THREADS or fastact.set_num_threads)",
        f"  result cache:    {_core.result_cache()[1] >> 20} MiB for released results of >= 1 MiB, "
        f"{_core.result_cache()[0] >> 20} MiB held  (FASTACT_RESULT_CACHE_MB)",
        "  dtypes:          float32, float64, float16, bfloat16 (16-bit: computed in float32, rounded once)",
        f"  16-bit tables:   {_half_tables_config()}",
        f"  streaming:       {_streaming_config()}",
        f"  CUDA:            {_cuda_config()}",
        f"  ops:             {', '.join(o['name'] for o in _OPS)}",
    ]
    print("\n".join(lines), file=out)


__all__ = sorted(list(_functions) + [
    "cuda", "swish", "swish_backward", "ops", "show_config", "compiled_isas", "supported_isas", "get_isa",
    "set_isa", "get_num_threads", "set_num_threads",
])
